; Chunks: @chunk.<kind> on a definition, @name on its name, @body on the block after the signature,
; @doc on its docstring. When two chunks share one @name node (a decorated definition and the definition inside it)
; the outer one is kept, so decorators stay with their function.

(class_definition
  name: (identifier) @name
  body: (block . (expression_statement (string) @doc)?) @body) @chunk.class

(function_definition
  name: (identifier) @name
  body: (block . (expression_statement (string) @doc)?) @body) @chunk.function

(decorated_definition
  definition: (class_definition
    name: (identifier) @name
    body: (block . (expression_statement (string) @doc)?) @body)) @chunk.class

(decorated_definition
  definition: (function_definition
    name: (identifier) @name
    body: (block . (expression_statement (string) @doc)?) @body)) @chunk.function

; Comment lines directly above a definition belong to its chunk and are its doc when it has no docstring.
(comment) @leading.doc

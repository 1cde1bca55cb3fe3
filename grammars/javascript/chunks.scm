; Chunks: @chunk.<kind> on a definition, @name on its name, @body on what follows the signature.
; An export wrapper and the declaration inside it share one @name node: the outer one is kept.

(function_declaration name: (identifier) @name body: (_) @body) @chunk.function
(generator_function_declaration name: (identifier) @name body: (_) @body) @chunk.function
(class_declaration name: (identifier) @name body: (class_body) @body) @chunk.class
(method_definition name: (_) @name body: (_) @body) @chunk.method

(export_statement declaration: [
  (function_declaration name: (identifier) @name body: (_) @body)
  (generator_function_declaration name: (identifier) @name body: (_) @body)
]) @chunk.function
(export_statement declaration: (class_declaration name: (identifier) @name body: (class_body) @body)) @chunk.class

; const f = () => {...}; var f = function () {...}; export const f = ...
(lexical_declaration (variable_declarator name: (identifier) @name
  value: [(arrow_function body: (_) @body) (function_expression body: (_) @body)])) @chunk.function
(variable_declaration (variable_declarator name: (identifier) @name
  value: [(arrow_function body: (_) @body) (function_expression body: (_) @body)])) @chunk.function
(export_statement declaration: (lexical_declaration (variable_declarator name: (identifier) @name
  value: [(arrow_function body: (_) @body) (function_expression body: (_) @body)]))) @chunk.function
(lexical_declaration (variable_declarator name: (identifier) @name value: (class body: (class_body) @body))) @chunk.class

; obj.handler = function () {...}; Foo.prototype.bar = () => {...}
(expression_statement (assignment_expression
  left: [(identifier) @name (member_expression property: (property_identifier) @name)]
  right: [(arrow_function body: (_) @body) (function_expression body: (_) @body)])) @chunk.function

; { handler: function () {...} }
(pair key: (property_identifier) @name
  value: [(arrow_function body: (_) @body) (function_expression body: (_) @body)]) @chunk.function

; Comments directly above a definition belong to its chunk and are its doc.
(comment) @leading.doc

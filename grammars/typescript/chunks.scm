; Chunks: @chunk.<kind> on a definition, @name on its name, @body on what follows the signature.
; An export wrapper and the declaration inside it share one @name node: the outer one is kept.
; Also used for TSX (grammars/tsx/language.toml: queries = "typescript").

(function_declaration name: (identifier) @name body: (_) @body) @chunk.function
(generator_function_declaration name: (identifier) @name body: (_) @body) @chunk.function
(class_declaration name: (type_identifier) @name body: (class_body) @body) @chunk.class
(abstract_class_declaration name: (type_identifier) @name body: (class_body) @body) @chunk.class
(interface_declaration name: (type_identifier) @name body: (_) @body) @chunk.interface
(enum_declaration name: (identifier) @name body: (_) @body) @chunk.enum
(type_alias_declaration name: (type_identifier) @name value: (_) @body) @chunk.type
(internal_module name: (_) @name body: (_) @body) @chunk.module
(method_definition name: (_) @name body: (_) @body) @chunk.method

(export_statement declaration: [
  (function_declaration name: (identifier) @name body: (_) @body)
  (generator_function_declaration name: (identifier) @name body: (_) @body)
]) @chunk.function
(export_statement declaration: [
  (class_declaration name: (type_identifier) @name body: (class_body) @body)
  (abstract_class_declaration name: (type_identifier) @name body: (class_body) @body)
]) @chunk.class
(export_statement declaration: (interface_declaration name: (type_identifier) @name body: (_) @body)) @chunk.interface
(export_statement declaration: (enum_declaration name: (identifier) @name body: (_) @body)) @chunk.enum
(export_statement declaration: (type_alias_declaration name: (type_identifier) @name value: (_) @body)) @chunk.type

; const f = () => {...}; var f = function () {...}; export const f = ...
(lexical_declaration (variable_declarator name: (identifier) @name
  value: [(arrow_function body: (_) @body) (function_expression body: (_) @body)])) @chunk.function
(variable_declaration (variable_declarator name: (identifier) @name
  value: [(arrow_function body: (_) @body) (function_expression body: (_) @body)])) @chunk.function
(export_statement declaration: (lexical_declaration (variable_declarator name: (identifier) @name
  value: [(arrow_function body: (_) @body) (function_expression body: (_) @body)]))) @chunk.function

; obj.handler = function () {...}
(expression_statement (assignment_expression
  left: [(identifier) @name (member_expression property: (property_identifier) @name)]
  right: [(arrow_function body: (_) @body) (function_expression body: (_) @body)])) @chunk.function

(pair key: (property_identifier) @name
  value: [(arrow_function body: (_) @body) (function_expression body: (_) @body)]) @chunk.function

; Comments and decorators directly above a definition belong to its chunk; comments are its doc.
(comment) @leading.doc
(decorator) @leading

; Chunks: @chunk.<kind> on a definition, @name on its name, @body on what follows the signature.

(function_definition
  declarator: [
    (function_declarator declarator: (identifier) @name)
    (pointer_declarator declarator: (function_declarator declarator: (identifier) @name))
    (pointer_declarator declarator: (pointer_declarator declarator: (function_declarator declarator: (identifier) @name)))
  ]
  body: (compound_statement) @body) @chunk.function

(struct_specifier name: (type_identifier) @name body: (field_declaration_list) @body) @chunk.struct
(union_specifier name: (type_identifier) @name body: (field_declaration_list) @body) @chunk.struct
(enum_specifier name: (type_identifier) @name body: (enumerator_list) @body) @chunk.enum

; typedef struct { ... } name_t;
(type_definition type: (struct_specifier body: (field_declaration_list) @body) declarator: (type_identifier) @name) @chunk.struct
(type_definition type: (union_specifier body: (field_declaration_list) @body) declarator: (type_identifier) @name) @chunk.struct
(type_definition type: (enum_specifier body: (enumerator_list) @body) declarator: (type_identifier) @name) @chunk.enum

; Comments directly above a definition belong to its chunk and are its doc.
(comment) @leading.doc

; Chunks: @chunk.<kind> on a definition, @name on its name, @body on what follows the signature.
; @parent: the class of an out-of-line member, so "double Polygon::area()" is "Polygon.area".
; A template_declaration around a definition belongs to its chunk (language.toml: wrappers).

(function_definition
  declarator: [
    (function_declarator declarator: [(identifier) (field_identifier) (destructor_name) (operator_name)] @name)
    (pointer_declarator (function_declarator declarator: [(identifier) (field_identifier) (operator_name)] @name))
    (reference_declarator (function_declarator declarator: [(identifier) (field_identifier) (operator_name)] @name))
  ]
  body: (_) @body) @chunk.function

(function_definition
  declarator: [
    (function_declarator declarator: (qualified_identifier
      scope: (_) @parent name: [(identifier) (destructor_name) (operator_name)] @name))
    (function_declarator declarator: (qualified_identifier name: (qualified_identifier
      scope: (_) @parent name: [(identifier) (destructor_name) (operator_name)] @name)))
    (pointer_declarator (function_declarator declarator: (qualified_identifier
      scope: (_) @parent name: [(identifier) (operator_name)] @name)))
    (reference_declarator (function_declarator declarator: (qualified_identifier
      scope: (_) @parent name: [(identifier) (operator_name)] @name)))
  ]
  body: (_) @body) @chunk.method

(class_specifier name: (type_identifier) @name body: (field_declaration_list) @body) @chunk.class
(struct_specifier name: (type_identifier) @name body: (field_declaration_list) @body) @chunk.struct
(union_specifier name: (type_identifier) @name body: (field_declaration_list) @body) @chunk.struct
(enum_specifier name: (type_identifier) @name body: (enumerator_list) @body) @chunk.enum
(namespace_definition name: (_) @name body: (declaration_list) @body) @chunk.module

(type_definition type: (struct_specifier body: (field_declaration_list) @body) declarator: (type_identifier) @name) @chunk.struct
(type_definition type: (enum_specifier body: (enumerator_list) @body) declarator: (type_identifier) @name) @chunk.enum

; Comments directly above a definition belong to its chunk and are its doc.
(comment) @leading.doc

; Chunks: @chunk.<kind> on a definition, @name on its name, @body on what follows the signature.
; An impl block is named by its type, so its functions are "Type.method".

(function_item name: (identifier) @name body: (block) @body) @chunk.function
(struct_item name: (type_identifier) @name body: (_)? @body) @chunk.struct
(union_item name: (type_identifier) @name body: (_) @body) @chunk.struct
(enum_item name: (type_identifier) @name body: (_) @body) @chunk.enum
(trait_item name: (type_identifier) @name body: (_) @body) @chunk.trait
(mod_item name: (identifier) @name body: (_) @body) @chunk.module
(macro_definition name: (identifier) @name) @chunk.macro
(type_item name: (type_identifier) @name type: (_) @body) @chunk.type

(impl_item
  type: [
    (type_identifier) @name
    (generic_type type: (type_identifier) @name)
    (scoped_type_identifier name: (type_identifier) @name)
    (generic_type type: (scoped_type_identifier name: (type_identifier) @name))
  ]
  body: (_) @body) @chunk.impl

; Doc comments and attributes directly above a definition belong to its chunk; comments are its doc.
[(line_comment) (block_comment)] @leading.doc
(attribute_item) @leading

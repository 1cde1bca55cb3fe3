; Chunks: @chunk.<kind> on a definition, @name on its name, @body on what follows the signature.
; @parent: a method's receiver type, so "func (p *Point) Dist()" is "Point.Dist".

(function_declaration name: (identifier) @name body: (block) @body) @chunk.function

(method_declaration
  receiver: (parameter_list (parameter_declaration type: [
    (type_identifier) @parent
    (pointer_type (type_identifier) @parent)
    (generic_type type: (type_identifier) @parent)
    (pointer_type (generic_type type: (type_identifier) @parent))
  ]))
  name: (field_identifier) @name
  body: (block) @body) @chunk.method

(type_declaration (type_spec name: (type_identifier) @name type: (struct_type (field_declaration_list) @body))) @chunk.struct
(type_declaration (type_spec name: (type_identifier) @name type: (interface_type) @body)) @chunk.interface
(type_declaration (type_spec name: (type_identifier) @name
  type: [(function_type) (map_type) (slice_type) (type_identifier) (qualified_type) (pointer_type) (channel_type)] @body)) @chunk.type

; Comments directly above a definition belong to its chunk and are its doc.
(comment) @leading.doc

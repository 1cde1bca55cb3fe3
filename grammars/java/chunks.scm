; Chunks: @chunk.<kind> on a definition, @name on its name, @body on what follows the signature.
; Annotations are inside a declaration's modifiers, so they are part of its node already.

(class_declaration name: (identifier) @name body: (_) @body) @chunk.class
(record_declaration name: (identifier) @name body: (_) @body) @chunk.record
(interface_declaration name: (identifier) @name body: (_) @body) @chunk.interface
(annotation_type_declaration name: (identifier) @name body: (_) @body) @chunk.interface
(enum_declaration name: (identifier) @name body: (_) @body) @chunk.enum
(method_declaration name: (identifier) @name body: (_)? @body) @chunk.method
(constructor_declaration name: (identifier) @name body: (_) @body) @chunk.method
(compact_constructor_declaration name: (identifier) @name body: (_) @body) @chunk.method

; Javadoc and comments directly above a definition belong to its chunk and are its doc.
[(block_comment) (line_comment)] @leading.doc

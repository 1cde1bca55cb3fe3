; Chunks: @chunk.<kind> on a definition, @name on its name, @body on what follows the signature.

(namespace_declaration name: (_) @name body: (_) @body) @chunk.module
(class_declaration name: (identifier) @name body: (_) @body) @chunk.class
(struct_declaration name: (identifier) @name body: (_) @body) @chunk.struct
(interface_declaration name: (identifier) @name body: (_) @body) @chunk.interface
(enum_declaration name: (identifier) @name body: (_) @body) @chunk.enum
(record_declaration name: (identifier) @name body: (_)? @body) @chunk.record
(method_declaration name: (identifier) @name body: (_)? @body) @chunk.method
(constructor_declaration name: (identifier) @name body: (_) @body) @chunk.method
(destructor_declaration name: (identifier) @name body: (_) @body) @chunk.method
(property_declaration name: (identifier) @name accessors: (_)? @body) @chunk.property
(delegate_declaration name: (identifier) @name) @chunk.type

; XML doc comments and attributes directly above a definition belong to its chunk; comments are its doc.
(comment) @leading.doc
(attribute_list) @leading

; Chunks: @chunk.<kind> on a definition, @name on its name, @body on what follows the signature.

(namespace_definition name: (_) @name body: (_) @body) @chunk.module
(class_declaration name: (name) @name body: (_) @body) @chunk.class
(interface_declaration name: (name) @name body: (_) @body) @chunk.interface
(trait_declaration name: (name) @name body: (_) @body) @chunk.trait
(enum_declaration name: (name) @name body: (_) @body) @chunk.enum
(method_declaration name: (name) @name body: (_)? @body) @chunk.method
(function_definition name: (name) @name body: (_) @body) @chunk.function

; Doc blocks and attributes directly above a definition belong to its chunk; comments are its doc.
(comment) @leading.doc
(attribute_list) @leading

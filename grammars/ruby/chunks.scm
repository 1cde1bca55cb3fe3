; Chunks: @chunk.<kind> on a definition, @name on its name, @body on what follows the signature.
; A "def" inside a class is a method (kind function inside a class becomes method); "def self.x" is always one.

(method name: (_) @name body: (_)? @body) @chunk.function
(singleton_method name: (_) @name body: (_)? @body) @chunk.method
(class name: [(constant) (scope_resolution)] @name body: (_)? @body) @chunk.class
(module name: [(constant) (scope_resolution)] @name body: (_)? @body) @chunk.module

; Comments directly above a definition belong to its chunk and are its doc.
(comment) @leading.doc

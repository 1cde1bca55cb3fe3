; Chunks: @chunk.<kind> on a definition, @name on its name, @body on what follows the signature.

(function_definition name: (word) @name body: (_) @body) @chunk.function

; Comments directly above a function belong to its chunk and are its doc.
(comment) @leading.doc

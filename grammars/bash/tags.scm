; Aider convention: @name.definition.<kind> / @definition.<kind>, @name.reference.<kind> / @reference.<kind>.

(function_definition name: (word) @name.definition.function) @definition.function

(command name: (command_name (word) @name.reference.call)) @reference.call

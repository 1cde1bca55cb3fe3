; Aider convention: @name.definition.<kind> / @definition.<kind>, @name.reference.<kind> / @reference.<kind>.
; Specific patterns come first: when two captures name one node, the first in this file wins.

(method name: (_) @name.definition.method) @definition.method
(singleton_method name: (_) @name.definition.method) @definition.method
(class name: [(constant) @name.definition.class (scope_resolution name: (_) @name.definition.class)]) @definition.class
(module name: [(constant) @name.definition.module (scope_resolution name: (_) @name.definition.module)]) @definition.module
(alias name: (_) @name.definition.method) @definition.method
(program (assignment left: (constant) @name.definition.constant)) @definition.constant

(superclass [(constant) @name.reference.class (scope_resolution name: (constant) @name.reference.class)]) @reference.class

(call receiver: [(constant) @name.reference.class (scope_resolution name: (constant) @name.reference.class)]) @reference.class

(call method: (identifier) @name.reference.call) @reference.call

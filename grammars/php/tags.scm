; Aider convention: @name.definition.<kind> / @definition.<kind>, @name.reference.<kind> / @reference.<kind>.
; Specific patterns come first: when two captures name one node, the first in this file wins.

(class_declaration name: (name) @name.definition.class) @definition.class
(interface_declaration name: (name) @name.definition.interface) @definition.interface
(trait_declaration name: (name) @name.definition.trait) @definition.trait
(enum_declaration name: (name) @name.definition.enum) @definition.enum
(method_declaration name: (name) @name.definition.method) @definition.method
(function_definition name: (name) @name.definition.function) @definition.function
(const_element (name) @name.definition.constant) @definition.constant

(function_call_expression function: [
  (name) @name.reference.call
  (qualified_name (name) @name.reference.call .)
]) @reference.call
(member_call_expression name: (name) @name.reference.call) @reference.call
(nullsafe_member_call_expression name: (name) @name.reference.call) @reference.call
(scoped_call_expression name: (name) @name.reference.call) @reference.call

(object_creation_expression [
  (name) @name.reference.class
  (qualified_name (name) @name.reference.class .)
]) @reference.class

(base_clause [(name) @name.reference.class (qualified_name (name) @name.reference.class .)]) @reference.class
(class_interface_clause [(name) @name.reference.implementation
  (qualified_name (name) @name.reference.implementation .)]) @reference.implementation
(use_declaration [(name) @name.reference.implementation (qualified_name (name) @name.reference.implementation .)]) @reference.implementation

(named_type [(name) @name.reference.type (qualified_name (name) @name.reference.type .)]) @reference.type

(namespace_use_clause (qualified_name (name) @name.reference.import .)) @reference.import

; Aider convention: @name.definition.<kind> / @definition.<kind>, @name.reference.<kind> / @reference.<kind>.
; Specific patterns come first: when two captures name one node, the first in this file wins.

(class_declaration name: (identifier) @name.definition.class) @definition.class
(struct_declaration name: (identifier) @name.definition.struct) @definition.struct
(interface_declaration name: (identifier) @name.definition.interface) @definition.interface
(enum_declaration name: (identifier) @name.definition.enum) @definition.enum
(record_declaration name: (identifier) @name.definition.class) @definition.class
(method_declaration name: (identifier) @name.definition.method) @definition.method
(constructor_declaration name: (identifier) @name.definition.method) @definition.method
(property_declaration name: (identifier) @name.definition.property) @definition.property
(delegate_declaration name: (identifier) @name.definition.type) @definition.type
(namespace_declaration name: [(identifier) (qualified_name)] @name.definition.module) @definition.module

(invocation_expression function: [
  (identifier) @name.reference.call
  (member_access_expression name: (identifier) @name.reference.call)
  (generic_name (identifier) @name.reference.call)
  (member_access_expression name: (generic_name (identifier) @name.reference.call))
]) @reference.call

(object_creation_expression type: [
  (identifier) @name.reference.class
  (generic_name (identifier) @name.reference.class)
  (qualified_name name: (identifier) @name.reference.class)
]) @reference.class

(base_list [
  (identifier) @name.reference.implementation
  (generic_name (identifier) @name.reference.implementation)
  (qualified_name name: (identifier) @name.reference.implementation)
]) @reference.implementation

(parameter type: [(identifier) (generic_name (identifier))] @name.reference.type) @reference.type
(variable_declaration type: (identifier) @name.reference.type) @reference.type
(method_declaration returns: (identifier) @name.reference.type) @reference.type
(property_declaration type: (identifier) @name.reference.type) @reference.type
(type_argument_list (identifier) @name.reference.type) @reference.type

(using_directive [(identifier) (qualified_name)] @name.reference.import) @reference.import

; Aider convention: @name.definition.<kind> / @definition.<kind>, @name.reference.<kind> / @reference.<kind>.

(function_declaration name: (identifier) @name.definition.function) @definition.function
(generator_function_declaration name: (identifier) @name.definition.function) @definition.function
(function_signature name: (identifier) @name.definition.function) @definition.function
(class_declaration name: (type_identifier) @name.definition.class) @definition.class
(abstract_class_declaration name: (type_identifier) @name.definition.class) @definition.class
(interface_declaration name: (type_identifier) @name.definition.interface) @definition.interface
(enum_declaration name: (identifier) @name.definition.enum) @definition.enum
(type_alias_declaration name: (type_identifier) @name.definition.type) @definition.type
(internal_module name: (identifier) @name.definition.module) @definition.module
(method_definition name: (property_identifier) @name.definition.method) @definition.method
(method_signature name: (property_identifier) @name.definition.method) @definition.method
(abstract_method_signature name: (property_identifier) @name.definition.method) @definition.method

(variable_declarator
  name: (identifier) @name.definition.function
  value: [(arrow_function) (function_expression)]) @definition.function

(assignment_expression
  left: [
    (identifier) @name.definition.function
    (member_expression property: (property_identifier) @name.definition.function)
  ]
  right: [(arrow_function) (function_expression)]) @definition.function

(call_expression
  function: [
    (identifier) @name.reference.call
    (member_expression property: (property_identifier) @name.reference.call)
  ]) @reference.call

(new_expression
  constructor: [
    (identifier) @name.reference.class
    (member_expression property: (property_identifier) @name.reference.class)
  ]) @reference.class

(extends_clause value: (identifier) @name.reference.class) @reference.class
(implements_clause (type_identifier) @name.reference.interface) @reference.interface
(extends_type_clause type: (type_identifier) @name.reference.interface) @reference.interface
(type_annotation (type_identifier) @name.reference.type) @reference.type
(type_arguments (type_identifier) @name.reference.type) @reference.type
(generic_type name: (type_identifier) @name.reference.type) @reference.type
(array_type (type_identifier) @name.reference.type) @reference.type

(import_specifier name: (identifier) @name.reference.import) @reference.import

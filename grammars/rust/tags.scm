; Aider convention: @name.definition.<kind> / @definition.<kind>, @name.reference.<kind> / @reference.<kind>.

(function_item name: (identifier) @name.definition.function) @definition.function
(function_signature_item name: (identifier) @name.definition.method) @definition.method
(struct_item name: (type_identifier) @name.definition.struct) @definition.struct
(union_item name: (type_identifier) @name.definition.struct) @definition.struct
(enum_item name: (type_identifier) @name.definition.enum) @definition.enum
(trait_item name: (type_identifier) @name.definition.trait) @definition.trait
(type_item name: (type_identifier) @name.definition.type) @definition.type
(mod_item name: (identifier) @name.definition.module) @definition.module
(macro_definition name: (identifier) @name.definition.macro) @definition.macro
(const_item name: (identifier) @name.definition.constant) @definition.constant
(static_item name: (identifier) @name.definition.constant) @definition.constant

(call_expression
  function: [
    (identifier) @name.reference.call
    (field_expression field: (field_identifier) @name.reference.call)
    (scoped_identifier name: (identifier) @name.reference.call)
    (generic_function function: (identifier) @name.reference.call)
    (generic_function function: (scoped_identifier name: (identifier) @name.reference.call))
    (generic_function function: (field_expression field: (field_identifier) @name.reference.call))
  ]) @reference.call

(macro_invocation macro: (identifier) @name.reference.call) @reference.call

(struct_expression name: [
  (type_identifier) @name.reference.class
  (scoped_type_identifier name: (type_identifier) @name.reference.class)
]) @reference.class

(impl_item trait: [
  (type_identifier) @name.reference.implementation
  (scoped_type_identifier name: (type_identifier) @name.reference.implementation)
  (generic_type type: (type_identifier) @name.reference.implementation)
]) @reference.implementation

(parameter type: [
  (type_identifier) @name.reference.type
  (reference_type type: (type_identifier) @name.reference.type)
  (generic_type type: (type_identifier) @name.reference.type)
]) @reference.type

(function_item return_type: [
  (type_identifier) @name.reference.type
  (generic_type type: (type_identifier) @name.reference.type)
]) @reference.type

(field_declaration type: [
  (type_identifier) @name.reference.type
  (generic_type type: (type_identifier) @name.reference.type)
]) @reference.type

(type_arguments (type_identifier) @name.reference.type) @reference.type

(use_declaration argument: [
  (scoped_identifier name: (identifier) @name.reference.import)
  (identifier) @name.reference.import
]) @reference.import
(use_list (identifier) @name.reference.import) @reference.import
(use_list (scoped_identifier name: (identifier) @name.reference.import)) @reference.import

; Aider convention: @name.definition.<kind> / @definition.<kind>, @name.reference.<kind> / @reference.<kind>.

(class_definition
  name: (identifier) @name.definition.class) @definition.class

(function_definition
  name: (identifier) @name.definition.function) @definition.function

(module
  (expression_statement
    (assignment left: (identifier) @name.definition.constant) @definition.constant))

(call
  function: [
    (identifier) @name.reference.call
    (attribute attribute: (identifier) @name.reference.call)
  ]) @reference.call

(class_definition
  superclasses: (argument_list [
    (identifier) @name.reference.class
    (attribute attribute: (identifier) @name.reference.class)
  ])) @reference.class

(type [
  (identifier) @name.reference.type
  (generic_type (identifier) @name.reference.type)
  (attribute attribute: (identifier) @name.reference.type)
]) @reference.type

(decorator [
  (identifier) @name.reference.call
  (attribute attribute: (identifier) @name.reference.call)
]) @reference.call

(import_from_statement
  name: [
    (dotted_name (identifier) @name.reference.import .)
    (aliased_import name: (dotted_name (identifier) @name.reference.import .))
  ]) @reference.import

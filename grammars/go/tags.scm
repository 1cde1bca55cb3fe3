; Aider convention: @name.definition.<kind> / @definition.<kind>, @name.reference.<kind> / @reference.<kind>.

(function_declaration name: (identifier) @name.definition.function) @definition.function
(method_declaration name: (field_identifier) @name.definition.method) @definition.method
(type_spec name: (type_identifier) @name.definition.type) @definition.type
(type_alias name: (type_identifier) @name.definition.type) @definition.type
(method_elem name: (field_identifier) @name.definition.method) @definition.method
(source_file (const_declaration (const_spec name: (identifier) @name.definition.constant))) @definition.constant

(call_expression
  function: [
    (identifier) @name.reference.call
    (selector_expression field: (field_identifier) @name.reference.call)
    (parenthesized_expression (identifier) @name.reference.call)
  ]) @reference.call

(composite_literal type: [
  (type_identifier) @name.reference.type
  (qualified_type name: (type_identifier) @name.reference.type)
]) @reference.type

(parameter_declaration type: [
  (type_identifier) @name.reference.type
  (pointer_type (type_identifier) @name.reference.type)
  (qualified_type name: (type_identifier) @name.reference.type)
  (pointer_type (qualified_type name: (type_identifier) @name.reference.type))
]) @reference.type

(field_declaration type: [
  (type_identifier) @name.reference.type
  (pointer_type (type_identifier) @name.reference.type)
  (qualified_type name: (type_identifier) @name.reference.type)
]) @reference.type

(function_declaration result: [
  (type_identifier) @name.reference.type
  (pointer_type (type_identifier) @name.reference.type)
  (qualified_type name: (type_identifier) @name.reference.type)
]) @reference.type

(method_declaration result: [
  (type_identifier) @name.reference.type
  (pointer_type (type_identifier) @name.reference.type)
  (qualified_type name: (type_identifier) @name.reference.type)
]) @reference.type

(import_spec path: (interpreted_string_literal) @name.reference.import) @reference.import

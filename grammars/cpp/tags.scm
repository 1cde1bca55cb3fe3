; Aider convention: @name.definition.<kind> / @definition.<kind>, @name.reference.<kind> / @reference.<kind>.
; Specific patterns come first: when two captures name one node, the first in this file wins.

(function_declarator
  declarator: [(identifier) (field_identifier) (destructor_name) (operator_name)] @name.definition.function) @definition.function
(function_declarator
  declarator: (qualified_identifier name: [(identifier) (destructor_name) (operator_name)] @name.definition.method)) @definition.method
(function_declarator
  declarator: (qualified_identifier name: (qualified_identifier
    name: [(identifier) (destructor_name) (operator_name)] @name.definition.method))) @definition.method

(class_specifier name: (type_identifier) @name.definition.class body: (_)) @definition.class
(struct_specifier name: (type_identifier) @name.definition.struct body: (_)) @definition.struct
(union_specifier name: (type_identifier) @name.definition.struct body: (_)) @definition.struct
(enum_specifier name: (type_identifier) @name.definition.enum body: (_)) @definition.enum
(namespace_definition name: (namespace_identifier) @name.definition.module) @definition.module
(type_definition declarator: (type_identifier) @name.definition.type) @definition.type
(alias_declaration name: (type_identifier) @name.definition.type) @definition.type
(preproc_def name: (identifier) @name.definition.constant) @definition.constant
(preproc_function_def name: (identifier) @name.definition.macro) @definition.macro

(call_expression function: [
  (identifier) @name.reference.call
  (field_expression field: (field_identifier) @name.reference.call)
  (qualified_identifier name: (identifier) @name.reference.call)
  (template_function name: (identifier) @name.reference.call)
  (qualified_identifier name: (template_function name: (identifier) @name.reference.call))
]) @reference.call

(new_expression type: [
  (type_identifier) @name.reference.class
  (qualified_identifier name: (type_identifier) @name.reference.class)
  (template_type name: (type_identifier) @name.reference.class)
]) @reference.class

(base_class_clause [
  (type_identifier) @name.reference.class
  (qualified_identifier name: (type_identifier) @name.reference.class)
  (template_type name: (type_identifier) @name.reference.class)
]) @reference.class

(type_identifier) @name.reference.type @reference.type

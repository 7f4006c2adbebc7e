/*
 * schema_grammar.h - GBNF grammars (the dialect of grammar.h) for constrained
 * decoding: JSON values valid against a JSON Schema (response_format
 * json_schema) and any JSON object (response_format json_object). GLM-5's
 * tool-call grammars are built on the same compiler (glm/tool_grammar.h).
 *
 * Every grammar's start rule is `root`. JSON text may carry limited whitespace
 * between tokens, as llama.cpp's grammars do,
 *     ws ::= ( " " | "\n" [ \t]{0,20} )?
 * and none before or after the value.
 *
 * Supported JSON Schema subset (draft 2020-12 names, a few older spellings):
 *   true, {}                any JSON value;  false: no value
 *   type                    "string" "number" "integer" "boolean" "null" "object"
 *                           "array", or a list of them (nullable: ["string", "null"])
 *   enum, const             any JSON values (1 and 1.0 are equal); each allowed value
 *                           is generated in one spelling: members in their order,
 *                           numbers in their shortest form, strings escaped minimally
 *   properties, required    members appear in declaration order, each at most once,
 *                           required ones always; a name in "required" that no
 *                           "properties" declares is a member with any value
 *   additionalProperties    false, true, absent, or a schema. In every case only the
 *                           declared (or required) members are generated. An object
 *                           that declares none is {} when it is false, a map from any
 *                           key to the schema when it is one, else any JSON object
 *   items, prefixItems      (draft 7: "items" as a list + "additionalItems")
 *   minItems, maxItems      0..1000
 *   minLength, maxLength    0..1000, in code points
 *   minimum, maximum, exclusiveMinimum, exclusiveMaximum
 *                           only where "type" rules out non-integers ("integer", or a
 *                           list without "number"); draft 4 boolean exclusive* too
 *   anyOf, oneOf            alternatives (oneOf is treated as anyOf)
 *   allOf                   any number of subschemas, all apply
 *   $ref                    "#", "#/$defs/NAME", "#/definitions/NAME" (JSON pointer
 *                           ~0 ~1 escapes); recursion is fine. $defs/definitions only
 *                           at the top of the document
 * Keywords apply together, as JSON Schema says: type + enum, $ref + siblings, allOf
 * of several objects, a type list around anyOf, ... are intersected exactly.
 * Ignored annotations: title, description, default, examples, $schema, $id,
 * $anchor, $comment, format, deprecated, readOnly, writeOnly, strict,
 * contentEncoding, contentMediaType, contentSchema, and any keyword JSON Schema
 * does not define (x-..., OpenAPI's nullable, ...), as JSON Schema ignores them.
 * Other JSON Schema keywords are errors: pattern, multipleOf, not, if/then/else,
 * patternProperties, propertyNames, uniqueItems, contains/minContains/maxContains,
 * dependentRequired, dependentSchemas, dependencies, minProperties, maxProperties,
 * unevaluatedProperties/Items, $dynamicRef and $recursiveRef, and the numeric
 * bounds on numbers that may have a fraction.
 *
 * Generated values are tighter than JSON where a model should not wander:
 *   integers  "-"? ("0" | [1-9][0-9]{0,15}): at most 16 digits (integer bounds
 *             are clamped to +-(10^16 - 1)); no "-0" where bounds apply
 *   numbers   an integer, then ("." [0-9]{1,16})? ([eE] [-+]? [0-9]{1,2})?
 *   strings   "\"" ( [^"\\\x00-\x1f] | "\\" (["\\/bfnrt] | "u" HEX4) )* "\"", where
 *             a \u escape is a non-surrogate or a high + low surrogate pair, so
 *             each escape is one code point and minLength/maxLength count right
 * A part of a schema that no finite value satisfies (a property that requires
 * itself, an impossible anyOf branch, an item schema `false`) is left out; when
 * nothing is left the schema is an error.
 *
 * Limits, so that a schema from the network costs little: nesting 64 levels,
 * 10000 subschemas per grammar (all tools together), 256 subschemas applying to
 * one value, counts up to 1000 (x{m,n} costs n rules once compiled), 10000
 * generated rules, 1 MB of grammar text, a bounded amount of work checking enum
 * values. A $ref cycle that never reaches a keyword ({"$ref": "#"}) constrains
 * nothing. Anything past a limit is an error, never a crash or a hang.
 *
 * Errors: one line naming the place, e.g.
 *   "schema.properties.age.type: unknown type 'int'"
 *   "schema.properties.x: 'pattern' is not supported"
 *   "tools[1].function.parameters.properties.q.maxLength: over 1000 is not supported"
 */
#ifndef GLM_SCHEMA_GRAMMAR_H
#define GLM_SCHEMA_GRAMMAR_H

#include <jansson.h>
#include <stddef.h>

/* GLM_OK when `schema` is in the supported subset and some JSON value satisfies
 * it, which is exactly when glm_schema_gbnf succeeds; else GLM_ERR and one line
 * in err (paths start with "schema"). */
int glm_schema_check(const json_t *schema, char *err, size_t errlen);

/*
 * GLM_OK when `schema` is a well-formed JSON Schema (draft 2020-12, with the
 * draft 2019-09, 7 and 4 spellings), whether or not the grammar builder
 * supports its keywords; else GLM_ERR and one line in err, in the style and
 * with the paths of glm_schema_check. Every schema glm_schema_check accepts is
 * well-formed; this one also accepts unsatisfiable schemas (false, an empty
 * enum) and every keyword listed as unsupported above.
 *
 * Each subschema must be an object or a boolean, and each keyword's value of
 * the right shape:
 *   schemas        additionalProperties propertyNames unevaluatedProperties
 *                  contains unevaluatedItems not if then else, items (or, draft
 *                  7, an array of schemas, then also additionalItems)
 *   schema arrays  anyOf oneOf allOf (non-empty), prefixItems
 *   schema maps    properties patternProperties dependentSchemas $defs
 *                  definitions; dependencies (draft 7: schemas or arrays of
 *                  strings), dependentRequired (arrays of strings)
 *   type           a type name or a non-empty array of them
 *   enum           an array;  required: an array of strings
 *   counts         minLength maxLength minItems maxItems minProperties
 *                  maxProperties minContains maxContains: integers >= 0 (2.0 is one)
 *   numbers        minimum maximum, exclusiveMinimum exclusiveMaximum (draft 4:
 *                  or booleans), multipleOf (above 0)
 *   strings        pattern (its regex syntax is not checked) $dynamicRef
 *                  $recursiveRef $dynamicAnchor;  booleans: uniqueItems
 *                  $recursiveAnchor
 *   $ref           a string; a local one must resolve: "#" always, "#/pointer"
 *                  (percent-encoded or not, ~0 ~1) to a schema within the
 *                  resource around it (the nearest "$id") or the document,
 *                  "#name" to an "$anchor", "$dynamicAnchor" or draft-7
 *                  "$id": "#name". A value reached only through a pointer
 *                  (under an unknown keyword) is checked as a schema too.
 *                  References to other documents are not followed.
 * Annotations (title, description, default, examples, format, const, $comment,
 * $schema, $id, $anchor, deprecated, readOnly, writeOnly, content*, ...) and
 * unknown keywords (x-..., nullable, ...) may hold any value.
 * Limits as for the grammars: nesting 64 levels, 10000 subschemas; no
 * reference is followed more than once, so $ref cycles cost nothing.
 */
int glm_schema_wellformed(const json_t *schema, char *err, size_t errlen);

/* A grammar whose `root` matches the JSON texts valid against `schema`, in the
 * spellings above. malloc'd, NUL-terminated; NULL and one line in err for an
 * unsupported or unsatisfiable schema or one over a limit. */
char *glm_schema_gbnf(const json_t *schema, char *err, size_t errlen);

/* A grammar whose `root` matches any JSON object. malloc'd. */
char *glm_json_object_gbnf(void);

#endif

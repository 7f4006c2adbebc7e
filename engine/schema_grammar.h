/*
 * schema_grammar.h - GBNF grammars (the dialect of grammar.h) for constrained
 * decoding: JSON values valid against a JSON Schema (response_format
 * json_schema), any JSON object (response_format json_object), and GLM-5 tool
 * calls whose arguments fit the tools' parameter schemas (tool_choice
 * "required" or a named function).
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

#include "output_parser.h"

/* GLM_OK when `schema` is in the supported subset and some JSON value satisfies
 * it, which is exactly when glm_schema_gbnf succeeds; else GLM_ERR and one line
 * in err (paths start with "schema"). */
int glm_schema_check(const json_t *schema, char *err, size_t errlen);

/* A grammar whose `root` matches the JSON texts valid against `schema`, in the
 * spellings above. malloc'd, NUL-terminated; NULL and one line in err for an
 * unsupported or unsatisfiable schema or one over a limit. */
char *glm_schema_gbnf(const json_t *schema, char *err, size_t errlen);

/* A grammar whose `root` matches any JSON object. malloc'd. */
char *glm_json_object_gbnf(void);

/*
 * A grammar whose `root` matches one GLM-5 tool call, or one or more (each pair
 * optionally separated by one "\n") when `parallel`, of the functions in `tools`
 * or only of the one named `only_name` when that is not NULL:
 *
 *   TAG(tool_call_start) NAME "\n"?
 *   ( TAG(arg_key_start) KEY TAG(arg_key_end) "\n"?
 *     TAG(arg_value_start) VALUE TAG(arg_value_end) "\n"? )*
 *   TAG(tool_call_end)
 *
 * `tools` is the OpenAI array [{"type": "function", "function": {"name",
 * "parameters"}}]; an entry without "function" is read as the function itself
 * (Responses API), entries whose "type" is not "function" are skipped, and of
 * two functions with one name the first counts (as in the output parser).
 * The arguments are the members the parameters schema generates (see above):
 * declared order, required ones always, optional ones possibly, no others; a
 * function without parameters or members takes none. Each VALUE is text that
 * the output parser (output_parser.h) turns into a valid argument, chosen by the
 * type mask the parser derives from the property's schema:
 *   - the mask is exactly "string" (type, enum, const, anyOf branches all
 *     strings): the raw text of a valid string, unquoted, kept verbatim;
 *   - the schema accepts every value of every type the parser may produce from
 *     raw text (a raw string among them): any raw text. {"type": ["string",
 *     "null"]}, anyOf string|null, {} and description-only schemas are such;
 *   - otherwise: a JSON value valid against the property's schema, with no
 *     whitespace around it (so ["string", "integer"] or a string with
 *     maxLength in a union needs its strings JSON-quoted).
 * No VALUE contains "</", so it ends exactly at its closing tag: raw text never
 * holds "</" (nor NUL); JSON strings hold "<" but never "</" (enum strings spell
 * it "<\/"), and length-bounded ones hold no literal "<" (it must be "\u003c").
 * An enum string containing "</" cannot be a raw value and is left out.
 *
 * Requirements (errors otherwise): tags->arg_value_end and tags->tool_call_end
 * start with "</"; names pass the parser's check (1..256 bytes, no whitespace,
 * control character, '<' or '>') and hold no tag's first byte; argument names
 * have at most 512 bytes, no whitespace at either end and no tag's first byte;
 * the parameters are valid schemas that admit an object; `only_name` names a
 * function. tags may be NULL: glm_out_tags_default.
 * malloc'd, NUL-terminated; NULL and one line in err.
 */
char *glm_tool_calls_gbnf(const json_t *tools, const char *only_name, int parallel,
                          const glm_out_tags *tags, char *err, size_t errlen);

#endif

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

#include "glm/output_parser.h"

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
 * A function marked "strict": true is compiled like glm_schema_gbnf (keywords
 * outside the subset are errors); for the others, validation keywords the
 * subset cannot express (pattern, bounds on numbers, multipleOf, uniqueItems,
 * ...) are left out, so the call keeps the schema's shape and types.
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

/*
 * A grammar whose `root` matches EITHER what glm_tool_calls_gbnf(tools, NULL,
 * parallel, tags) matches OR what the GBNF text content_gbnf matches from its
 * rule `root` (a grammar from glm_schema_gbnf or glm_json_object_gbnf, or one
 * from a request), never a mixture: for tools with tool_choice "auto" together
 * with an output format. The content grammar keeps its rules under new names
 * (each prefixed with "content-"), so its names never clash with the tool
 * grammar's, whatever they are.
 * Errors (NULL, one line in err): the tool grammar's; "content: grammar line N:
 * ..." when content_gbnf does not parse (glm_grammar_parse, start rule root);
 * the combined text over GLM_GRAMMAR_MAX_TEXT. malloc'd, NUL-terminated.
 */
char *glm_tool_calls_or_content_gbnf(const json_t *tools, int parallel, const glm_out_tags *tags,
                                     const char *content_gbnf, char *err, size_t errlen);

#endif

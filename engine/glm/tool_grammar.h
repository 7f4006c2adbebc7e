/*
 * tool_grammar.h - GBNF grammars (constrain/grammar.h) that hold GLM-5 tool
 * calls to the tools a request offers, for tool_choice "required" or a named
 * function, and for tools under "auto" together with an output format. The
 * values follow the JSON Schema subset of constrain/schema_grammar.h.
 */
#ifndef GLM_TOOL_GRAMMAR_H
#define GLM_TOOL_GRAMMAR_H

#include <jansson.h>
#include <stddef.h>

#include "glm/output_parser.h"

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

/*
 * jsonnum.h - numbers that keep the text they were written with.
 *
 * json-c keeps the source text of a parsed double (json_object_new_double_s)
 * but not of an integer: one beyond 64 bits is clamped and -0 becomes 0.
 * YAML plain scalars go through strtod and would print back as
 * 0.10000000000000001. These helpers make a json-c number from its text so
 * that serialising it gives the same text (DESIGN.md section 3, "Values are
 * kept exactly"), and repair the integers of a tree json-c has parsed.
 */
#ifndef PW_JSONNUM_H
#define PW_JSONNUM_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

/* true when s[0..len) is a number in JSON's grammar (RFC 8259). */
bool pw_json_number_text(const char *s, size_t len);

/*
 * A json-c number for the decimal number text s[0..len) (JSON, or a YAML
 * 1.2 core-schema int or float): an int when the text is the canonical
 * form of a 64-bit integer, else a double that prints as the text. Text
 * that is not valid JSON (YAML's +1, 007, .5, 1.) prints in the nearest
 * JSON form (1, 7, 0.5, 1.0). NULL when out of memory or not a number.
 */
json_object *pw_json_number_new(const char *s, size_t len);

/*
 * After json-c accepted text[0..len) into *root, replaces the integers
 * json-c could not keep (beyond 64 bits, -0) by exact numbers, so that
 * the tree prints them as written. Returns 0, or -1 when out of memory.
 */
int pw_json_keep_numbers(json_object **root, const char *text, size_t len);

/*
 * json_tokener_parse(text) with the numbers kept as written: the value, or
 * NULL for text that does not parse (or JSON null, or out of memory).
 */
json_object *pw_json_parse_exact(const char *text);

#endif

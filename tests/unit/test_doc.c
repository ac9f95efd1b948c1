/* test_doc.c - YAML and JSON documents: values, lines, key lines, errors. */
#include "testhelp.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "doc.h"

static pw_doc *parse(const char *text, int as_json, pw_errors *errs)
{
	return pw_doc_parse(text, strlen(text), as_json ? "f.json" : "f.yml",
			    as_json, errs);
}

/* Parses text that must be valid; fails the test otherwise. */
static pw_doc *parse_ok(const char *text, int as_json)
{
	pw_errors errs = {0};
	pw_doc *doc = parse(text, as_json, &errs);
	if (!doc)
		fail_msg("parse failed: %s",
			 errs.n ? errs.v[0].message : "(no error)");
	assert_int_equal(errs.n, 0);
	return doc;
}

/* Parses text that must fail with exactly one error at line; returns
 * nothing but checks type (NULL = ValueError, i.e. type NULL or
 * "ValueError") and that the message contains `part`. */
static void parse_fails(const char *text, int as_json, int line,
			const char *type, const char *part)
{
	pw_errors errs = {0};
	pw_doc *doc = parse(text, as_json, &errs);
	assert_null(doc);
	assert_int_equal(errs.n, 1);
	assert_int_equal(errs.v[0].line, line);
	assert_string_equal(errs.v[0].file, as_json ? "f.json" : "f.yml");
	if (type)
		assert_string_equal(errs.v[0].type, type);
	else
		assert_true(!errs.v[0].type ||
			    strcmp(errs.v[0].type, "ValueError") == 0);
	if (!strstr(errs.v[0].message, part))
		fail_msg("message '%s' lacks '%s'", errs.v[0].message, part);
	pw_errors_free(&errs);
}

/* The value at a path like "a.b.2.c" (numbers index arrays). */
static json_object *at(json_object *o, const char *path)
{
	char buf[256];
	snprintf(buf, sizeof buf, "%s", path);
	for (char *save = NULL, *p = strtok_r(buf, ".", &save); p;
	     p = strtok_r(NULL, ".", &save)) {
		if (json_object_is_type(o, json_type_array)) {
			o = json_object_array_get_idx(o, (size_t)atoi(p));
		} else if (!json_object_object_get_ex(o, p, &o)) {
			fail_msg("no '%s' in path %s", p, path);
		}
	}
	return o;
}

static void assert_type(json_object *o, enum json_type t)
{
	if (!json_object_is_type(o, t))
		fail_msg("type %s, wanted %s",
			 json_type_to_name(json_object_get_type(o)),
			 json_type_to_name(t));
}

static void assert_int_at(json_object *root, const char *path, long long v)
{
	json_object *o = at(root, path);
	assert_type(o, json_type_int);
	assert_true(json_object_get_int64(o) == v);
}

static void assert_double_at(json_object *root, const char *path, double v)
{
	json_object *o = at(root, path);
	assert_type(o, json_type_double);
	assert_true(json_object_get_double(o) == v);
}

static void assert_str_at(json_object *root, const char *path, const char *v)
{
	json_object *o = at(root, path);
	assert_type(o, json_type_string);
	assert_string_equal(json_object_get_string(o), v);
}

static void assert_bool_at(json_object *root, const char *path, int v)
{
	json_object *o = at(root, path);
	assert_type(o, json_type_boolean);
	assert_int_equal(json_object_get_boolean(o), v);
}

static void assert_lines(const pw_doc *doc, json_object *o, int line, int end)
{
	assert_non_null(o);
	assert_int_equal(pw_doc_line(doc, o), line);
	assert_int_equal(pw_doc_end_line(doc, o), end);
}

static void test_yaml_plain_scalars(void **state)
{
	(void)state;
	pw_doc *doc = parse_ok(
		"n1: null\nn2: ~\nn3:\nn4: NULL\n"
		"b1: true\nb2: True\nb3: FALSE\nyes: yes\n"
		"i1: 42\ni2: -7\ni3: +3\ni4: 0o17\ni5: 0x1F\ni6: 012\n"
		"f1: 1.5\nf2: -2e3\nf3: .5\nf4: .inf\nf5: -.Inf\nf6: .nan\n"
		"f7: 1.\nbig: 99999999999999999999\n"
		"s1: hello world\ns2: 1_000\ns3: 0o8\ns4: 1.2.3\ns5: nulls\n",
		0);
	json_object *r = pw_doc_root(doc);
	assert_type(r, json_type_object);
	for (const char *const *k = (const char *const[]){ "n1", "n2", "n3", "n4",
							     NULL };
	     *k; k++) {
		json_object *v = (json_object *)1;
		assert_true(json_object_object_get_ex(r, *k, &v));
		assert_null(v);
	}
	assert_bool_at(r, "b1", 1);
	assert_bool_at(r, "b2", 1);
	assert_bool_at(r, "b3", 0);
	assert_str_at(r, "yes", "yes"); /* YAML 1.2: not a boolean */
	assert_int_at(r, "i1", 42);
	assert_int_at(r, "i2", -7);
	assert_int_at(r, "i3", 3);
	assert_int_at(r, "i4", 15);
	assert_int_at(r, "i5", 31);
	assert_int_at(r, "i6", 12);
	assert_double_at(r, "f1", 1.5);
	assert_double_at(r, "f2", -2000.0);
	assert_double_at(r, "f3", 0.5);
	assert_double_at(r, "f4", INFINITY);
	assert_double_at(r, "f5", -INFINITY);
	assert_type(at(r, "f6"), json_type_double);
	assert_true(isnan(json_object_get_double(at(r, "f6"))));
	assert_double_at(r, "f7", 1.0);
	assert_double_at(r, "big", 1e20);
	assert_str_at(r, "s1", "hello world");
	assert_str_at(r, "s2", "1_000");
	assert_str_at(r, "s3", "0o8");
	assert_str_at(r, "s4", "1.2.3");
	assert_str_at(r, "s5", "nulls");
	pw_doc_free(doc);
}

static void test_yaml_quoted_and_tagged(void **state)
{
	(void)state;
	pw_doc *doc = parse_ok(
		"a: \"true\"\nb: '1'\nc: \"null\"\nd: ''\ne: true\nf: 1\n"
		"g: !!str 12\nh: !!float 3\ni: !!int \"7\"\nj: ! 5\n"
		"k: !custom 8\nl: \"multi\\nline\"\n",
		0);
	json_object *r = pw_doc_root(doc);
	assert_str_at(r, "a", "true");
	assert_str_at(r, "b", "1");
	assert_str_at(r, "c", "null");
	assert_str_at(r, "d", "");
	assert_bool_at(r, "e", 1);
	assert_int_at(r, "f", 1);
	assert_str_at(r, "g", "12");
	assert_double_at(r, "h", 3.0);
	assert_int_at(r, "i", 7);
	assert_str_at(r, "j", "5");
	assert_int_at(r, "k", 8); /* unknown tags are ignored */
	assert_str_at(r, "l", "multi\nline");
	/* keys are strings whatever they look like */
	pw_doc_free(doc);
	doc = parse_ok("1: a\ntrue: b\nnull: c\n", 0);
	assert_str_at(pw_doc_root(doc), "1", "a");
	assert_str_at(pw_doc_root(doc), "true", "b");
	assert_str_at(pw_doc_root(doc), "null", "c");
	pw_doc_free(doc);
	parse_fails("a: 1\nb: !!int abc\n", 0, 2, NULL, "!!int");
}

static const char nested[] =
	"a:\n"              /* 1 */
	"  b: 1\n"          /* 2 */
	"  c:\n"            /* 3 */
	"    - x\n"         /* 4 */
	"    - y: 2\n"      /* 5 */
	"      z: 3.5\n"    /* 6 */
	"\n"                /* 7 */
	"# comment\n"       /* 8 */
	"d: |\n"            /* 9 */
	"  lit\n"           /* 10 */
	"  more\n"          /* 11 */
	"e: null\n"         /* 12 */
	"f:\n"              /* 13 */
	"g: \"s\"\n";       /* 14 */

static void test_yaml_nested_lines(void **state)
{
	(void)state;
	pw_doc *doc = parse_ok(nested, 0);
	json_object *r = pw_doc_root(doc);
	assert_lines(doc, r, 1, 14);
	assert_lines(doc, at(r, "a"), 2, 6); /* not 9: the next key's line */
	assert_lines(doc, at(r, "a.b"), 2, 2);
	assert_lines(doc, at(r, "a.c"), 4, 6);
	assert_lines(doc, at(r, "a.c.0"), 4, 4);
	assert_lines(doc, at(r, "a.c.1"), 5, 6);
	assert_lines(doc, at(r, "a.c.1.z"), 6, 6);
	assert_lines(doc, at(r, "d"), 9, 11);
	assert_str_at(r, "d", "lit\nmore\n");
	assert_lines(doc, at(r, "g"), 14, 14);
	/* key lines, also for numbers and nulls */
	assert_int_equal(pw_doc_key_line(doc, r, "a"), 1);
	assert_int_equal(pw_doc_key_line(doc, r, "d"), 9);
	assert_int_equal(pw_doc_key_line(doc, r, "e"), 12);
	assert_int_equal(pw_doc_key_line(doc, r, "f"), 13);
	assert_int_equal(pw_doc_key_line(doc, at(r, "a"), "b"), 2);
	assert_int_equal(pw_doc_key_line(doc, at(r, "a"), "c"), 3);
	assert_int_equal(pw_doc_key_line(doc, at(r, "a.c.1"), "z"), 6);
	/* unknown things are 0 */
	assert_int_equal(pw_doc_key_line(doc, r, "nope"), 0);
	assert_int_equal(pw_doc_key_line(doc, at(r, "a"), "a"), 0);
	assert_int_equal(pw_doc_line(doc, NULL), 0);
	json_object *other = json_object_new_object();
	assert_int_equal(pw_doc_line(doc, other), 0);
	json_object_put(other);
	assert_string_equal(pw_doc_file(doc), "f.yml");
	pw_doc_free(doc);
}

static void test_yaml_flow(void **state)
{
	(void)state;
	pw_doc *doc = parse_ok("x: {a: 1, b: [1, 2,\n  3], c: {}}\n"
			       "y: [ ]\n"
			       "z: [a, \"b\", {k: v}]\n", 0);
	json_object *r = pw_doc_root(doc);
	assert_lines(doc, at(r, "x"), 1, 2);
	assert_lines(doc, at(r, "x.b"), 1, 2);
	assert_lines(doc, at(r, "x.c"), 2, 2);
	assert_int_equal(json_object_array_length(at(r, "x.b")), 3);
	assert_int_at(r, "x.b.2", 3);
	assert_lines(doc, at(r, "x.b.2"), 2, 2);
	assert_int_equal(pw_doc_key_line(doc, at(r, "x"), "b"), 1);
	assert_int_equal(pw_doc_key_line(doc, at(r, "x"), "c"), 2);
	assert_type(at(r, "y"), json_type_array);
	assert_int_equal(json_object_array_length(at(r, "y")), 0);
	assert_lines(doc, at(r, "y"), 3, 3);
	assert_str_at(r, "z.0", "a");
	assert_str_at(r, "z.1", "b");
	assert_str_at(r, "z.2.k", "v");
	assert_lines(doc, at(r, "z"), 4, 4);
	pw_doc_free(doc);
}

static void test_yaml_anchors(void **state)
{
	(void)state;
	pw_doc *doc = parse_ok(
		"base: &b\n"             /* 1 */
		"  type: csv\n"          /* 2 */
		"  opts: {sep: \",\"}\n" /* 3 */
		"copy: *b\n"             /* 4 */
		"merged:\n"              /* 5 */
		"  <<: *b\n"             /* 6 */
		"  type: parquet\n"      /* 7 */
		"list: [&n 5, *n]\n"     /* 8 */
		"two:\n"                 /* 9 */
		"  <<: [{p: 1}, {p: 2, q: 3}]\n" /* 10 */
		"  \"<<\": literal\n",   /* 11 */
		0);
	json_object *r = pw_doc_root(doc);
	assert_str_at(r, "copy.type", "csv");
	assert_str_at(r, "copy.opts.sep", ",");
	/* a deep copy: no object appears twice in the tree */
	assert_ptr_not_equal(at(r, "copy"), at(r, "base"));
	assert_ptr_not_equal(at(r, "copy.opts"), at(r, "base.opts"));
	assert_lines(doc, at(r, "copy"), 4, 4);
	assert_lines(doc, at(r, "copy.opts"), 3, 3);
	assert_int_equal(pw_doc_key_line(doc, at(r, "copy"), "type"), 2);
	/* merge keys: explicit keys win, "<<" itself disappears */
	assert_str_at(r, "merged.type", "parquet");
	assert_str_at(r, "merged.opts.sep", ",");
	assert_false(json_object_object_get_ex(at(r, "merged"), "<<", NULL));
	assert_int_equal(json_object_object_length(at(r, "merged")), 2);
	assert_int_equal(pw_doc_key_line(doc, at(r, "merged"), "type"), 7);
	assert_int_equal(pw_doc_key_line(doc, at(r, "merged"), "opts"), 3);
	assert_ptr_not_equal(at(r, "merged.opts"), at(r, "base.opts"));
	assert_int_at(r, "list.0", 5);
	assert_int_at(r, "list.1", 5);
	assert_ptr_not_equal(at(r, "list.0"), at(r, "list.1"));
	/* the first mapping of a merge list wins; quoted "<<" is a key */
	assert_int_at(r, "two.p", 1);
	assert_int_at(r, "two.q", 3);
	assert_str_at(r, "two.<<", "literal");
	pw_doc_free(doc);
	parse_fails("a: *nope\n", 0, 1, NULL, "undefined alias 'nope'");
	parse_fails("a: 1\nm:\n  <<: 5\n", 0, 3, NULL, "merge key");
}

/* Nine levels of ten aliases each would be 10^9 values. */
static void test_yaml_alias_bomb(void **state)
{
	(void)state;
	char text[2048] = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
	for (char c = 'b'; c <= 'j'; c++) {
		char line[128];
		snprintf(line, sizeof line, "%c: &%c [*%c, *%c, *%c, *%c, *%c, "
			 "*%c, *%c, *%c, *%c, *%c]\n", c, c, c - 1, c - 1,
			 c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1);
		strcat(text, line);
	}
	pw_errors errs = {0};
	assert_null(parse(text, 0, &errs));
	assert_int_equal(errs.n, 1);
	assert_non_null(strstr(errs.v[0].message, "too many"));
	pw_errors_free(&errs);
}

static void test_yaml_duplicate_key(void **state)
{
	(void)state;
	parse_fails("a: 1\nb:\n  c: 1\n  c: 2\n", 0, 4, NULL,
		    "duplicate key 'c'");
	pw_errors errs = {0};
	assert_null(parse("a: 1\nb:\n  c: 1\n  c: 2\n", 0, &errs));
	assert_string_equal(errs.v[0].message, "duplicate key 'c'");
	pw_errors_free(&errs);
	parse_fails("x: {k: 1, k: 2}\n", 0, 1, NULL, "duplicate key 'k'");
	parse_fails("m:\n  <<: {a: 1}\n  <<: {b: 1}\n", 0, 3, NULL,
		    "duplicate key '<<'");
	/* the same key in different mappings is fine */
	pw_doc *doc = parse_ok("a: {k: 1}\nb: {k: 2}\n", 0);
	pw_doc_free(doc);
}

static void test_yaml_errors(void **state)
{
	(void)state;
	/* Typed as PyYAML types them (checked with PyYAML 6). */
	parse_fails("a: 1\nb: 2\n  c: 3\n", 0, 3, "ScannerError",
		    "mapping values are not allowed");
	parse_fails("a: [1, 2\nb: 3\n", 0, 2, "ParserError",
		    "expected ',' or ']'");
	parse_fails("a: \"open\n\n", 0, 3, "ScannerError", "quoted scalar");
	parse_fails("a: \"\xff\"\n", 0, 1, "ReaderError", "invalid");
	parse_fails("a: 1\n---\nb: 2\n", 0, 2, NULL, "single document");
	parse_fails("ok: 1\n? [a, b]\n: 1\n", 0, 2, NULL,
		    "keys must be scalars");
	char deep[1200] = "";
	for (int i = 0; i < 300; i++)
		strcat(deep, "[");
	parse_fails(deep, 0, 1, NULL, "too deeply nested");
}

static void test_yaml_empty(void **state)
{
	(void)state;
	const char *empties[] = { "", "# only a comment\n", "---\n", "~\n",
				  "--- null\n...\n" };
	for (size_t i = 0; i < sizeof empties / sizeof *empties; i++) {
		pw_doc *doc = parse_ok(empties[i], 0);
		assert_null(pw_doc_root(doc));
		pw_doc_free(doc);
	}
	pw_doc *doc = parse_ok("just text\n", 0);
	assert_string_equal(json_object_get_string(pw_doc_root(doc)),
			    "just text");
	assert_lines(doc, pw_doc_root(doc), 1, 1);
	pw_doc_free(doc);
}

/* len is honoured: the text need not end with a NUL. */
static void test_length_not_nul(void **state)
{
	(void)state;
	pw_errors errs = {0};
	pw_doc *doc = pw_doc_parse("a: 1\nb: 2", 4, "f.yml", 0, &errs);
	assert_non_null(doc);
	assert_int_equal(json_object_object_length(pw_doc_root(doc)), 1);
	pw_doc_free(doc);
	doc = pw_doc_parse("[1, 2]xyz", 6, "f.json", 1, &errs);
	assert_non_null(doc);
	assert_int_equal(json_object_array_length(pw_doc_root(doc)), 2);
	pw_doc_free(doc);
	doc = pw_doc_parse("12345", 2, "f.json", 1, &errs);
	assert_non_null(doc);
	assert_int_equal(json_object_get_int(pw_doc_root(doc)), 12);
	pw_doc_free(doc);
	assert_int_equal(errs.n, 0);
}

static const char json_text[] =
	"{\n"                             /* 1 */
	"  \"name\": \"x\",\n"            /* 2 */
	"  \"tasks\": [\n"                /* 3 */
	"    {\"id\": \"a\",\n"           /* 4 */
	"     \"n\": 1},\n"               /* 5 */
	"    {\"id\": \"b\\\"q\"}\n"      /* 6 */
	"  ],\n"                          /* 7 */
	"  \"e\": null,\n"                /* 8 */
	"  \"k\\u00e9y\": true,\n"        /* 9 */
	"  \"f\": [1.5, {}, []]\n"        /* 10 */
	"}\n";                            /* 11 */

static void test_json_lines(void **state)
{
	(void)state;
	pw_doc *doc = parse_ok(json_text, 1);
	json_object *r = pw_doc_root(doc);
	assert_lines(doc, r, 1, 11);
	assert_lines(doc, at(r, "name"), 2, 2);
	assert_lines(doc, at(r, "tasks"), 3, 7);
	assert_lines(doc, at(r, "tasks.0"), 4, 5);
	assert_lines(doc, at(r, "tasks.0.n"), 5, 5);
	assert_lines(doc, at(r, "tasks.1"), 6, 6);
	assert_str_at(r, "tasks.1.id", "b\"q");
	assert_lines(doc, at(r, "f.1"), 10, 10);
	assert_double_at(r, "f.0", 1.5);
	assert_int_equal(pw_doc_key_line(doc, r, "name"), 2);
	assert_int_equal(pw_doc_key_line(doc, r, "e"), 8);
	assert_int_equal(pw_doc_key_line(doc, r, "k\xc3\xa9y"), 9);
	assert_int_equal(pw_doc_key_line(doc, at(r, "tasks.0"), "n"), 5);
	assert_int_equal(pw_doc_key_line(doc, at(r, "tasks.1"), "id"), 6);
	assert_bool_at(r, "k\xc3\xa9y", 1);
	assert_string_equal(pw_doc_file(doc), "f.json");
	pw_doc_free(doc);

	doc = parse_ok("  42 \n", 1);
	assert_int_equal(json_object_get_int(pw_doc_root(doc)), 42);
	assert_lines(doc, pw_doc_root(doc), 1, 1);
	pw_doc_free(doc);
	doc = parse_ok("\nnull", 1);
	assert_null(pw_doc_root(doc));
	pw_doc_free(doc);
}

static void test_json_duplicate_key(void **state)
{
	(void)state;
	parse_fails("{\n \"a\": 1,\n \"b\": {\"x\": 1,\n  \"x\": 2}\n}", 1, 4,
		    NULL, "duplicate key 'x'");
	/* escapes are decoded before comparing */
	parse_fails("{\"ab\": 1,\n\"a\\u0062\": 2}", 1, 2, NULL,
		    "duplicate key 'ab'");
	pw_doc *doc = parse_ok("{\"a\": {\"x\": 1}, \"b\": {\"x\": 2}}", 1);
	pw_doc_free(doc);
}

static void test_json_errors(void **state)
{
	(void)state;
	parse_fails("{\n \"a\": 1,\n \"b\": x\n}", 1, 3, "JSONDecodeError",
		    "unexpected character");
	parse_fails("{\"a\": 1,\n\n\"b\": 2\n", 1, 4, "JSONDecodeError",
		    "unexpected end of data");
	parse_fails("{}\n\n]", 1, 3, "JSONDecodeError", "");
	parse_fails("[1,\n 2,]", 1, 2, "JSONDecodeError", "");
	parse_fails("", 1, 1, "JSONDecodeError", "");
	parse_fails("a: 1\n", 1, 1, "JSONDecodeError", "");
	char deep[400] = "";
	for (int i = 0; i < 300; i++)
		strcat(deep, "[");
	parse_fails(deep, 1, 1, "JSONDecodeError", "");
}

static void test_load(void **state)
{
	(void)state;
	char *dir = th_mkdtemp();
	char path[4096];
	pw_errors errs = {0};

	th_write(dir, "conf/a.json", "{\n  \"k\": [1,\n 2]\n}\n");
	th_write(dir, "conf/b.yml", "k: v\nn: 3\n");
	th_write(dir, "conf/c.json", "k: v\n");

	snprintf(path, sizeof path, "%s/conf/a.json", dir);
	pw_doc *doc = pw_doc_load(path, "conf/a.json", &errs);
	assert_non_null(doc);
	assert_string_equal(pw_doc_file(doc), "conf/a.json");
	assert_lines(doc, at(pw_doc_root(doc), "k"), 2, 3);
	pw_doc_free(doc);

	snprintf(path, sizeof path, "%s/conf/b.yml", dir);
	doc = pw_doc_load(path, NULL, &errs);
	assert_non_null(doc);
	assert_string_equal(pw_doc_file(doc), path);
	assert_str_at(pw_doc_root(doc), "k", "v");
	assert_int_equal(pw_doc_key_line(doc, pw_doc_root(doc), "n"), 2);
	pw_doc_free(doc);
	assert_int_equal(errs.n, 0);

	/* YAML content in a .json file is read as JSON */
	snprintf(path, sizeof path, "%s/conf/c.json", dir);
	assert_null(pw_doc_load(path, "conf/c.json", &errs));
	assert_int_equal(errs.n, 1);
	assert_string_equal(errs.v[0].type, "JSONDecodeError");
	assert_string_equal(errs.v[0].file, "conf/c.json");
	pw_errors_free(&errs);

	snprintf(path, sizeof path, "%s/conf/missing.yml", dir);
	assert_null(pw_doc_load(path, "conf/missing.yml", &errs));
	assert_int_equal(errs.n, 1);
	assert_int_equal(errs.v[0].line, 0);
	assert_string_equal(errs.v[0].file, "conf/missing.yml");
	assert_non_null(strstr(errs.v[0].message, "No such file"));
	pw_errors_free(&errs);

	snprintf(path, sizeof path, "%s/conf", dir);
	assert_null(pw_doc_load(path, "conf", &errs));
	assert_int_equal(errs.n, 1);
	assert_int_equal(errs.v[0].line, 0);
	pw_errors_free(&errs);
	th_rmtree(dir);
}

/* What test_each's callback saw. */
struct seen {
	int lines[4];
	int list_line;
	size_t n;
};

static int see_item(void *arg, const pw_doc *doc, const json_object *list,
		    json_object *item)
{
	struct seen *s = arg;
	if (s->n < 4)
		s->lines[s->n] = item ? pw_doc_key_line(doc, item, "id") : -1;
	s->n++;
	s->list_line = pw_doc_line(doc, list);
	return 0;
}

/* pw_doc_parse_each hands over each item with its lines, then drops it,
 * except an anchored one; other keys and nested lists are not streamed. */
static void test_each(void **state)
{
	(void)state;
	const char *text = "a: [1, 2]\n"   /* 1 */
			   "tasks:\n"      /* 2 */
			   "  - id: x\n"   /* 3 */
			   "    l: [1]\n"  /* 4 */
			   "  - &k\n"      /* 5 */
			   "    id: y\n"   /* 6 */
			   "  -\n"         /* 7 */
			   "  - {id: z}\n" /* 8 */
			   "b: *k\n";      /* 9 */
	struct seen s = { 0 };
	pw_doc_each each = { "tasks", see_item, &s };
	pw_errors errs = { 0 };
	pw_doc *doc = pw_doc_parse_each(text, strlen(text), "f.yml", 0, &each,
					&errs);
	assert_non_null(doc);
	assert_int_equal(s.n, 4);
	assert_int_equal(s.lines[0], 3);
	assert_int_equal(s.lines[1], 6);
	assert_int_equal(s.lines[2], -1);
	assert_int_equal(s.lines[3], 8);
	assert_int_equal(s.list_line, 3);
	json_object *root = pw_doc_root(doc), *tasks, *b, *a;
	assert_true(json_object_object_get_ex(root, "tasks", &tasks));
	assert_int_equal(json_object_array_length(tasks), 1);
	assert_int_equal(pw_doc_line(doc, tasks), 3);
	assert_int_equal(pw_doc_end_line(doc, tasks), 8);
	assert_true(json_object_object_get_ex(root, "b", &b));
	assert_int_equal(pw_doc_key_line(doc, b, "id"), 6);
	assert_true(json_object_object_get_ex(root, "a", &a));
	assert_int_equal(json_object_array_length(a), 2);
	pw_doc_free(doc);

	/* JSON: the same calls, over the whole tree */
	memset(&s, 0, sizeof s);
	text = "{\"tasks\": [{\"id\": 1},\n{\"id\": 2}]}";
	doc = pw_doc_parse_each(text, strlen(text), "f.json", 1, &each, &errs);
	assert_non_null(doc);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.lines[0], 1);
	assert_int_equal(s.lines[1], 2);
	pw_doc_free(doc);
	assert_int_equal(errs.n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_yaml_plain_scalars),
		cmocka_unit_test(test_yaml_quoted_and_tagged),
		cmocka_unit_test(test_yaml_nested_lines),
		cmocka_unit_test(test_yaml_flow),
		cmocka_unit_test(test_yaml_anchors),
		cmocka_unit_test(test_yaml_alias_bomb),
		cmocka_unit_test(test_yaml_duplicate_key),
		cmocka_unit_test(test_yaml_errors),
		cmocka_unit_test(test_yaml_empty),
		cmocka_unit_test(test_length_not_nul),
		cmocka_unit_test(test_json_lines),
		cmocka_unit_test(test_json_duplicate_key),
		cmocka_unit_test(test_json_errors),
		cmocka_unit_test(test_load),
		cmocka_unit_test(test_each),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

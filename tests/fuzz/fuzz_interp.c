/*
 * fuzz_interp.c - libFuzzer target for interpolation (src/interp.c) and
 * exact numbers (src/jsonnum.c). The first byte picks the mode: bit 0
 * resolves with runtime params (else at load time, deferring them), bit 1
 * reads the rest as JSON (else YAML). The rest is also given to the exact
 * JSON parser and, when short, to the number builder.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "doc.h"
#include "interp.h"
#include "jsonnum.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	pw_errors errs = {0};
	pw_kerror err = {0};
	if (size == 0)
		return 0;
	const char *text = (const char *)data + 1;
	size_t len = size - 1;
	json_object *globals = json_tokener_parse("{\"a\": {\"b\": [1, \"${x}\"]}, \"k\": \"a\"}");
	json_object *runtime = data[0] & 1 ? json_tokener_parse("{\"x\": -0, \"y\": {\"z\": 1}}")
					   : NULL;
	pw_doc *doc = pw_doc_parse(text, len, "fuzz", data[0] & 2, &errs);
	if (doc) {
		pw_interp_ctx ctx = {.globals = globals, .runtime_params = runtime,
				     .defer_runtime = runtime == NULL};
		json_object *root = pw_doc_root(doc);
		if (pw_interp_resolve(root, &ctx, &err) == 0)
			json_object_to_json_string(root);
	}
	pw_doc_free(doc);
	char *copy = malloc(len + 1);
	if (copy) {
		memcpy(copy, text, len);
		copy[len] = '\0';
		json_object *v = pw_json_parse_exact(copy);
		json_object_to_json_string(v);
		json_object_put(v);
		if (len < 64) {
			json_object *n = pw_json_number_new(text, len);
			json_object_to_json_string(n);
			json_object_put(n);
		}
		bool found;
		pw_json_path_get(globals, copy, &found);
		free(copy);
	}
	json_object_put(globals);
	json_object_put(runtime);
	pw_kerror_clear(&err);
	pw_errors_free(&errs);
	return 0;
}

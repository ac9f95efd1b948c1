/*
 * fuzz_doc.c - libFuzzer target for the YAML/JSON loader (src/doc.c).
 * The first byte picks the format; the rest is the document.
 */
#include <stddef.h>
#include <stdint.h>

#include "doc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	pw_errors errs = {0};
	if (size == 0)
		return 0;
	pw_doc *doc = pw_doc_parse((const char *)data + 1, size - 1, "fuzz", data[0] & 1, &errs);
	if (doc) {
		json_object *root = pw_doc_root(doc);
		pw_doc_line(doc, root);
		pw_doc_end_line(doc, root);
		if (json_object_is_type(root, json_type_object))
			pw_doc_key_line(doc, root, "tasks");
		json_object_to_json_string(root);
	}
	pw_doc_free(doc);
	pw_errors_free(&errs);
	return 0;
}

/*
 * yaml2json.c - a build tool: `yaml2json IN.yaml OUT.json` writes the YAML
 * document IN as JSON to OUT (through OUT.tmp, renamed at the end, so a
 * failed run leaves no half file). The build turns docs/openapi.yaml into
 * the served /openapi.json with it: the same parser as the rest of
 * pipewright (doc.c, libyaml, YAML 1.2 core schema, keys in their order),
 * no network, nothing but the C toolchain a release tarball needs anyway.
 * Exit status 0, or 1 with "file:line: message" on stderr.
 */
#include <stdio.h>
#include <stdlib.h>

#include "doc.h"

/* Writes root as JSON to path via path.tmp. Returns 0 or -1 (reported). */
static int write_json(json_object *root, const char *path)
{
	int rc = -1;
	char *tmp = pw_asprintf("%s.tmp", path);
	const char *text = json_object_to_json_string_ext(
		root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
			      JSON_C_TO_STRING_NOSLASHESCAPE);
	FILE *f = tmp && text ? fopen(tmp, "w") : NULL;
	if (!f)
		goto out;
	int werr = fputs(text, f) < 0 || fputc('\n', f) == EOF;
	if (fclose(f) != 0 || werr || rename(tmp, path) != 0)
		goto out;
	rc = 0;
out:
	if (rc != 0) {
		perror(tmp ? tmp : path);
		if (tmp)
			remove(tmp);
	}
	free(tmp);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: yaml2json IN.yaml OUT.json\n");
		return 2;
	}
	pw_errors errs = {0};
	pw_doc *doc = pw_doc_load(argv[1], NULL, &errs);
	int rc = 1;
	if (!doc) {
		for (size_t i = 0; i < errs.n; i++) {
			char *m = pw_error_format(&errs.v[i]);
			fprintf(stderr, "%s\n", m ? m : "yaml2json: out of memory");
			free(m);
		}
	} else if (!pw_doc_root(doc)) {
		fprintf(stderr, "%s: empty document\n", argv[1]);
	} else {
		rc = write_json(pw_doc_root(doc), argv[2]) == 0 ? 0 : 1;
	}
	pw_doc_free(doc);
	pw_errors_free(&errs);
	return rc;
}

/*
 * interp.h - OmegaConf-style interpolation of configuration values, as
 * Kedro's OmegaConfigLoader resolves them (DESIGN.md section 3):
 *
 *   ${a.b}                    another value of the same tree (a list item
 *                             by its index, a.0); ${.b} is relative to the
 *                             mapping holding the value, ${..b} to its parent
 *   ${globals:key}            a value of the globals* files
 *   ${globals:key, default}
 *   ${runtime_params:key}     a value of the run's params (dotted keys reach
 *   ${runtime_params:key, d}  into nested objects)
 *   \${...}                   the text ${...}, not interpolated
 *
 * A string that is exactly one interpolation takes the referenced value
 * with its type; otherwise the pieces are joined as text. Interpolations
 * nest (${globals:${name}}). Errors keep OmegaConf's and Kedro's types:
 * InterpolationKeyError, InterpolationResolutionError (a cycle, a missing
 * globals or runtime parameter), UnsupportedInterpolationType (an unknown
 * resolver), GrammarParseError (bad syntax).
 */
#ifndef PW_INTERP_H
#define PW_INTERP_H

#include <json-c/json.h>
#include <stdbool.h>

#include "util.h"

/* Where a value came from: sets *file and *line for key of obj (0 unknown). */
typedef void (*pw_interp_locate_fn)(void *arg, const json_object *obj, const char *key,
				    const char **file, int *line);

typedef struct pw_interp_ctx {
	json_object *globals;        /* resolved globals, or NULL */
	json_object *runtime_params; /* the run's params; NULL at load time */
	/* With no runtime_params: a string needing a runtime parameter that
	 * has no default stays as written (resolved per run instead). */
	bool defer_runtime;
	pw_interp_locate_fn locate;  /* may be NULL */
	void *locate_arg;
	int runtime_uses;            /* out: how many runtime_params were met */
} pw_interp_ctx;

/*
 * Resolves every interpolation in root (a mapping, changed in place).
 * Returns 0, or -1 with err set: type as above, message
 * "FILE:LINE: key 'a.b': what" (the parts known). Out of memory is a
 * MemoryError.
 */
int pw_interp_resolve(json_object *root, pw_interp_ctx *ctx, pw_kerror *err);

/* true when s holds an interpolation to resolve ("${" not escaped). */
bool pw_interp_has(const char *s);

/*
 * The value at a dotted path ("a.b.0") below root, or NULL (found false)
 * when there is none. A json null found sets *found and returns NULL.
 */
json_object *pw_json_path_get(json_object *root, const char *path, bool *found);

#endif

/*
 * project.c - loading a project folder: pipewright.yml, the configuration
 * environments under conf/, and the DAG files under dags/.
 *
 * Three kinds of trouble are kept apart (see project.h): a folder that is
 * not a project fails the load; a configuration problem becomes the one
 * Kedro-style conf_error; a broken DAG file becomes an import error and
 * leaves the other DAGs alone.
 */
#include "project.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "doc.h"
#include "interp.h"
#include "slice.h"
#include "store.h"
#include "strmap.h"

#define PROJECT_FILE "pipewright.yml"
#define DEFAULT_ENV "local"
#define BASE_ENV "base"

/* The configuration keys read from conf/<env>/<key>*.{yml,yaml,json}. */
enum conf_key { CONF_GLOBALS, CONF_CATALOG, CONF_PARAMETERS, CONF_POOLS, CONF_NKEYS };
static const char *const conf_key_names[CONF_NKEYS] = {
	"globals", "catalog", "parameters", "pools",
};

static const char *const config_extensions[] = {".yml", ".yaml", ".json"};

/* --- small helpers ----------------------------------------------------- */

bool pw_valid_env_name(const char *name)
{
	if (!name || !*name)
		return false;
	return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			    "0123456789_-") == strlen(name);
}

/* The length of name without its config extension, or 0 if it has none. */
static size_t config_stem_len(const char *name)
{
	size_t len = strlen(name);
	for (size_t i = 0; i < sizeof config_extensions / sizeof *config_extensions; i++) {
		size_t el = strlen(config_extensions[i]);
		if (len > el && strcmp(name + len - el, config_extensions[i]) == 0)
			return len - el;
	}
	return 0;
}

/*
 * The config files directly in dir whose name starts with prefix (every
 * config file when prefix is NULL), sorted by name. A missing folder gives
 * an empty list. Returns 0, or -1 when out of memory or unreadable.
 */
static int list_config_files(const char *dir, const char *prefix, pw_strv *out)
{
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT || errno == ENOTDIR ? 0 : -1;
	int rc = 0;
	struct dirent *de;
	while (rc == 0 && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || config_stem_len(de->d_name) == 0)
			continue;
		if (prefix && strncmp(de->d_name, prefix, strlen(prefix)) != 0)
			continue;
		rc = pw_strv_push(out, de->d_name);
	}
	closedir(d);
	pw_strv_sort(out);
	return rc;
}

/* "conf/base/catalog.yml" style name of a file below the project root. */
static char *relative_name(const pw_project *p, const char *path)
{
	size_t lr = strlen(p->root);
	if (strncmp(path, p->root, lr) == 0 && path[lr] == '/')
		return strdup(path + lr + 1);
	return strdup(path);
}

/* A deep copy of v (NULL for json null), or NULL with *oom set. */
static json_object *copy_value(json_object *v, bool *oom)
{
	json_object *out = NULL;
	if (v && json_object_deep_copy(v, &out, NULL) != 0)
		*oom = true;
	return out;
}

json_object *pw_params_merge(json_object *base, json_object *over)
{
	bool oom = false;
	if (!over)
		return copy_value(base, &oom);
	if (!json_object_is_type(base, json_type_object) ||
	    !json_object_is_type(over, json_type_object))
		return copy_value(over, &oom);
	json_object *out = copy_value(base, &oom);
	if (!out)
		return NULL;
	json_object_object_foreach(over, key, value) {
		json_object *mine = json_object_object_get(out, key);
		json_object *merged = json_object_is_type(mine, json_type_object) &&
					      json_object_is_type(value, json_type_object)
					      ? pw_params_merge(mine, value)
					      : copy_value(value, &oom);
		if (oom || (value && !merged) ||
		    json_object_object_add(out, key, merged) != 0) {
			json_object_put(merged);
			json_object_put(out);
			return NULL;
		}
	}
	return out;
}

/* --- pipewright.yml ------------------------------------------------------ */

/* What one settings key must look like, and where it goes. */
typedef int (*setting_fn)(pw_project *p, json_object *value, char **why);

static int set_path(char **slot, const char *root, json_object *value, char **why)
{
	if (!json_object_is_type(value, json_type_string)) {
		*why = strdup("must be a string");
		return -1;
	}
	char *path = pw_path_join(root, json_object_get_string(value));
	if (!path)
		return -1;
	free(*slot);
	*slot = path;
	return 0;
}

static int set_database(pw_project *p, json_object *v, char **why)
{
	return set_path(&p->database, p->root, v, why);
}

static int set_logs_dir(pw_project *p, json_object *v, char **why)
{
	return set_path(&p->logs_dir, p->root, v, why);
}

static int set_max_parallel(pw_project *p, json_object *v, char **why)
{
	if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 1 ||
	    json_object_get_int64(v) > 4096) {
		*why = strdup("must be an integer from 1 to 4096");
		return -1;
	}
	p->max_parallel_tasks = (int)json_object_get_int64(v);
	return 0;
}

/* events_keep_days / events_keep_max: how long and how many events stay. */
static int set_keep(long long *slot, long long scale, json_object *v, char **why)
{
	if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0 ||
	    json_object_get_int64(v) > 1000000000LL) {
		*why = strdup("must be an integer >= 0");
		return -1;
	}
	*slot = json_object_get_int64(v) * scale;
	return 0;
}

static int set_keep_days(pw_project *p, json_object *v, char **why)
{
	return set_keep(&p->events_keep_ms, 86400000LL, v, why);
}

static int set_keep_max(pw_project *p, json_object *v, char **why)
{
	return set_keep(&p->events_keep_max, 1, v, why);
}

/* max_log_bytes: output kept in one try's log (0: no cap). */
static int set_max_log(pw_project *p, json_object *v, char **why)
{
	return set_keep(&p->max_log_bytes, 1, v, why);
}

/* cors_origins: a list of strings. */
static int check_string_list(pw_project *p, json_object *v, char **why)
{
	(void)p;
	if (!json_object_is_type(v, json_type_array))
		goto bad;
	for (size_t i = 0; i < json_object_array_length(v); i++)
		if (!json_object_is_type(json_object_array_get_idx(v, i), json_type_string))
			goto bad;
	return 0;
bad:
	*why = strdup("must be a list of strings");
	return -1;
}

/*
 * trusted_user_header: the name of a request header an authenticating
 * proxy sets (e.g. "X-Forwarded-User"); letters, digits and '-' only.
 */
static int check_header_name(pw_project *p, json_object *v, char **why)
{
	(void)p;
	const char *s = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
	size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-");
	if (*s && !s[n] && n <= 64)
		return 0;
	*why = strdup("must be a header name (letters, digits and '-')");
	return -1;
}

/* roles: user -> read | operate | admin. */
static int check_roles(pw_project *p, json_object *v, char **why)
{
	(void)p;
	if (!json_object_is_type(v, json_type_object))
		goto bad;
	json_object_object_foreach(v, user, role) {
		(void)user;
		const char *r = json_object_get_string(role);
		if (!json_object_is_type(role, json_type_string) ||
		    (strcmp(r, "read") && strcmp(r, "operate") && strcmp(r, "admin")))
			goto bad;
	}
	return 0;
bad:
	*why = strdup("must map user names to read, operate or admin");
	return -1;
}

/*
 * settings.runners: name -> {type: TYPE, options...}. Each type has a table
 * of its options and how each is checked; the runner reads the values
 * (runner-daemon/slurm.c) and supplies the defaults (docs/runner.md).
 */
typedef const char *(*runner_opt_fn)(json_object *v); /* NULL when fine */

static const char *opt_string(json_object *v)
{
	return json_object_is_type(v, json_type_string) && *json_object_get_string(v)
		       ? NULL : "must be a non-empty string";
}

static const char *opt_string_list(json_object *v)
{
	char *why = NULL;
	int bad = check_string_list(NULL, v, &why);
	free(why);
	return bad ? "must be a list of strings" : NULL;
}

/* A number of seconds from 0.1 to 3600 (int or float). */
static const char *opt_interval(json_object *v)
{
	double d = json_object_get_double(v);
	bool number = json_object_is_type(v, json_type_int) ||
		      json_object_is_type(v, json_type_double);
	return number && d >= 0.1 && d <= 3600 ? NULL : "must be a number of seconds from 0.1 to 3600";
}

/* A whole number of seconds from 0 to 86400. */
static const char *opt_seconds(json_object *v)
{
	return json_object_is_type(v, json_type_int) && json_object_get_int64(v) >= 0 &&
		       json_object_get_int64(v) <= 86400
		       ? NULL : "must be a whole number of seconds from 0 to 86400";
}

typedef struct runner_opt {
	const char *key;
	runner_opt_fn check;
} runner_opt;

/* type: slurm (docs/runner.md, "Slurm runner"). */
static const runner_opt slurm_opts[] = {
	{"partition", opt_string},
	{"sbatch_args", opt_string_list},
	{"poll_interval", opt_interval},
	{"time_margin", opt_seconds},
	{"status_wait", opt_seconds},
	{NULL, NULL},
};

static const struct {
	const char *type;
	const runner_opt *opts;
} runner_types[] = {
	{"slurm", slurm_opts},
};

/* Checks the options of runner `name` against its type's table. */
static int check_runner_opts(const char *name, const char *type, const runner_opt *opts,
			     json_object *spec, char **why)
{
	json_object_object_foreach(spec, key, value) {
		const runner_opt *o = opts;
		if (strcmp(key, "type") == 0)
			continue;
		while (o->key && strcmp(o->key, key) != 0)
			o++;
		const char *bad = o->key ? o->check(value) : NULL;
		if (!o->key)
			*why = pw_asprintf("entry '%s': unknown option '%s' for type %s", name, key,
					   type);
		else if (bad)
			*why = pw_asprintf("entry '%s': option '%s' %s", name, key, bad);
		if (!o->key || bad)
			return -1;
	}
	return 0;
}

/* One entry of settings.runners: a mapping with a known type and its options. */
static int check_runner(const char *name, json_object *spec, char **why)
{
	json_object *type = json_object_object_get(spec, "type");
	if (!json_object_is_type(spec, json_type_object) ||
	    !json_object_is_type(type, json_type_string)) {
		*why = pw_asprintf("entry '%s' must be a mapping with a 'type'", name);
		return -1;
	}
	for (size_t i = 0; i < sizeof runner_types / sizeof *runner_types; i++)
		if (strcmp(runner_types[i].type, json_object_get_string(type)) == 0)
			return check_runner_opts(name, runner_types[i].type, runner_types[i].opts,
						 spec, why);
	*why = pw_asprintf("entry '%s': unknown type '%s' (known types: slurm)", name,
			   json_object_get_string(type));
	return -1;
}

static int check_runners(pw_project *p, json_object *v, char **why)
{
	(void)p;
	if (!json_object_is_type(v, json_type_object)) {
		*why = strdup("must map runner names to mappings with a 'type'");
		return -1;
	}
	json_object_object_foreach(v, name, spec)
		if (check_runner(name, spec, why) != 0)
			return -1;
	return 0;
}

/* runner: daemon (default) or cron (pipewright-runner --once from cron). */
static int check_runner_mode(pw_project *p, json_object *v, char **why)
{
	(void)p;
	const char *s = json_object_get_string(v);
	if (json_object_is_type(v, json_type_string) && (!strcmp(s, "daemon") || !strcmp(s, "cron")))
		return 0;
	*why = strdup("must be daemon or cron");
	return -1;
}

static const struct {
	const char *key;
	setting_fn apply;
} settings_table[] = {
	{"database", set_database},
	{"logs_dir", set_logs_dir},
	{"max_parallel_tasks", set_max_parallel},
	{"events_keep_days", set_keep_days},
	{"events_keep_max", set_keep_max},
	{"max_log_bytes", set_max_log},
	{"runners", check_runners},
	{"cors_origins", check_string_list},
	{"roles", check_roles},
	{"runner", check_runner_mode},
	{"trusted_user_header", check_header_name},
};

/* Applies the settings mapping; the first bad key fails with *err set. */
static int apply_settings(pw_project *p, const pw_doc *doc, json_object *settings,
			  char **err)
{
	json_object_object_foreach(settings, key, value) {
		size_t i, n = sizeof settings_table / sizeof *settings_table;
		for (i = 0; i < n && strcmp(settings_table[i].key, key) != 0; i++)
			;
		int line = pw_doc_key_line(doc, settings, key);
		if (i == n) {
			const char *allowed[sizeof settings_table / sizeof *settings_table];
			for (size_t k = 0; k < n; k++)
				allowed[k] = settings_table[k].key;
			char *hint = pw_key_hint(key, allowed, n);
			*err = hint ? pw_asprintf(PROJECT_FILE ":%d: unknown setting '%s' %s", line,
						  key, hint) : NULL;
			free(hint);
			return -1;
		}
		char *why = NULL;
		if (settings_table[i].apply(p, value, &why) != 0) {
			*err = why ? pw_asprintf(PROJECT_FILE ":%d: setting '%s' %s",
						 line, key, why)
				   : NULL;
			free(why);
			return -1;
		}
	}
	return 0;
}

/* Copies the string value of key into *slot, keeping *slot when absent. */
static int take_string(const pw_doc *doc, json_object *root, const char *key,
		       char **slot, char **err)
{
	json_object *v;
	if (!json_object_object_get_ex(root, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_string)) {
		*err = pw_asprintf(PROJECT_FILE ":%d: '%s' must be a string",
				   pw_doc_key_line(doc, root, key), key);
		return -1;
	}
	free(*slot);
	*slot = strdup(json_object_get_string(v));
	return *slot ? 0 : -1;
}

/* Fills the defaults of every setting before pipewright.yml is read. */
static int set_defaults(pw_project *p)
{
	const char *base = strrchr(p->root, '/');
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	p->max_parallel_tasks = cpus > 0 ? (int)cpus : 1;
	p->events_keep_ms = PW_EVENTS_KEEP_MS;
	p->events_keep_max = PW_EVENTS_KEEP_MAX;
	p->max_log_bytes = PW_MAX_LOG_BYTES;
	p->project_name = strdup(base && base[1] ? base + 1 : p->root);
	p->package_name = strdup(p->project_name);
	p->version = strdup("0.1");
	p->database = pw_path_join(p->root, "var/pipewright.db");
	p->logs_dir = pw_path_join(p->root, "var/logs");
	p->settings = json_object_new_object();
	return p->project_name && p->package_name && p->version && p->database &&
		       p->logs_dir && p->settings ? 0 : -1;
}

/* Reads pipewright.yml. Any problem fails the load with *err set. */
static int load_project_file(pw_project *p, char **err)
{
	static const char *const known[] = {"project_name", "package_name", "version", "settings"};
	int rc = -1;
	pw_errors errs = {0};
	char *path = pw_path_join(p->root, PROJECT_FILE);
	if (!path)
		return -1;
	if (access(path, F_OK) != 0) {
		*err = pw_asprintf("%s is not a pipewright project: %s not found",
				   p->root, PROJECT_FILE);
		goto out;
	}
	pw_doc *doc = pw_doc_load(path, PROJECT_FILE, &errs);
	if (!doc) {
		*err = errs.n ? pw_error_format(&errs.v[0]) : NULL;
		goto out;
	}
	json_object *root = pw_doc_root(doc);
	if (root && !json_object_is_type(root, json_type_object)) {
		*err = strdup(PROJECT_FILE ": must be a mapping");
		goto out_doc;
	}
	if (root) {
		json_object_object_foreach(root, key, value) {
			(void)value;
			size_t i, n = sizeof known / sizeof *known;
			for (i = 0; i < n && strcmp(known[i], key); i++)
				;
			if (i == n) {
				char *hint = pw_key_hint(key, known, n);
				*err = hint ? pw_asprintf(PROJECT_FILE ":%d: unknown key '%s' %s",
							  pw_doc_key_line(doc, root, key), key,
							  hint) : NULL;
				free(hint);
				goto out_doc;
			}
		}
	}
	json_object *settings = NULL;
	if (root && json_object_object_get_ex(root, "settings", &settings) && settings) {
		if (!json_object_is_type(settings, json_type_object)) {
			*err = pw_asprintf(PROJECT_FILE ":%d: 'settings' must be a mapping",
					   pw_doc_key_line(doc, root, "settings"));
			goto out_doc;
		}
		if (apply_settings(p, doc, settings, err) != 0)
			goto out_doc;
		json_object_put(p->settings);
		p->settings = json_object_get(settings);
	}
	if (root && (take_string(doc, root, "project_name", &p->project_name, err) ||
		     take_string(doc, root, "package_name", &p->package_name, err) ||
		     take_string(doc, root, "version", &p->version, err)))
		goto out_doc;
	rc = 0;
out_doc:
	pw_doc_free(doc);
out:
	pw_errors_free(&errs);
	free(path);
	return rc;
}

/* --- conf/<env>/ --------------------------------------------------------- */

/* The top-level keys of one environment, and which file each came from. */
typedef struct env_conf {
	json_object *values;  /* key -> value */
	json_object *sources; /* key -> file name (string) */
	bool found;           /* at least one matching file exists */
	pw_doc **docs;        /* the files, kept for the lines of values */
	size_t n_docs;
} env_conf;

/* How values are interpolated (interp.h) while one key is loaded. */
typedef struct conf_resolve {
	json_object *globals;  /* resolved globals, or NULL */
	json_object *runtime;  /* the run's params, or NULL at load time */
	int runtime_uses;      /* out */
} conf_resolve;

static void env_conf_free(env_conf *ec)
{
	json_object_put(ec->values);
	json_object_put(ec->sources);
	for (size_t i = 0; i < ec->n_docs; i++)
		pw_doc_free(ec->docs[i]);
	free(ec->docs);
}

/* Keeps doc (taken over) in ec. Returns 0 or -1 (freed). */
static int env_keep_doc(env_conf *ec, pw_doc *doc)
{
	pw_doc **grown = realloc(ec->docs, (ec->n_docs + 1) * sizeof *grown);
	if (!grown) {
		pw_doc_free(doc);
		return -1;
	}
	ec->docs = grown;
	ec->docs[ec->n_docs++] = doc;
	return 0;
}

/*
 * Reads every <key>* file of one environment folder into ec. A top-level key
 * in two files is Kedro's "Duplicate keys found" ValueError. Returns 0, or
 * -1 with err set (or out of memory).
 */
static int read_env_key(const pw_project *p, const char *dir, const char *key, env_conf *ec,
			pw_kerror *err)
{
	pw_strv files = {0};
	int rc = list_config_files(dir, key, &files);
	for (size_t i = 0; rc == 0 && i < files.n; i++) {
		pw_errors errs = {0};
		char *path = pw_path_join(dir, files.v[i]);
		char *rel = path ? relative_name(p, path) : NULL;
		pw_doc *doc = rel ? pw_doc_load(path, rel, &errs) : NULL;
		json_object *root = doc ? pw_doc_root(doc) : NULL;
		ec->found = true;
		if (!doc) {
			char *msg = errs.n ? pw_error_format(&errs.v[0]) : NULL;
			rc = msg ? pw_kerror_set(err, errs.v[0].type, "%s", msg) : -1;
			free(msg);
		} else if (root && !json_object_is_type(root, json_type_object)) {
			rc = pw_kerror_set(err, "ValueError", "%s: must be a mapping", rel);
		} else if (root) {
			json_object_object_foreach(root, k, v) {
				json_object *src = json_object_object_get(ec->sources, k);
				if (src) {
					rc = pw_kerror_set(err, "ValueError",
							   "Duplicate keys found in %s and %s: ['%s']",
							   json_object_get_string(src), rel, k);
					break;
				}
				json_object_object_add(ec->values, k, json_object_get(v));
				json_object_object_add(ec->sources, k, json_object_new_string(rel));
			}
		}
		if (doc && env_keep_doc(ec, doc) != 0)
			rc = -1;
		pw_errors_free(&errs);
		free(rel);
		free(path);
	}
	pw_strv_free(&files);
	return rc;
}

/* interp.h's locate: the file and line of key in obj, from ec's docs. */
static void env_locate(void *arg, const json_object *obj, const char *key, const char **file,
		       int *line)
{
	const env_conf *ec = arg;
	for (size_t i = 0; i < ec->n_docs; i++) {
		const json_object *in = obj == ec->values ? pw_doc_root(ec->docs[i]) : obj;
		int l = pw_doc_key_line(ec->docs[i], in, key);
		if (l) {
			*file = pw_doc_file(ec->docs[i]);
			*line = l;
			return;
		}
	}
}

/*
 * Resolves the interpolations of one environment's values, as Kedro's
 * OmegaConfigLoader does per folder, then drops the templates: top-level
 * keys starting with '_'. Returns 0 or -1 with err set.
 */
static int resolve_env(env_conf *ec, conf_resolve *res, pw_kerror *err)
{
	pw_interp_ctx ctx = {
		.globals = res->globals, .runtime_params = res->runtime,
		.defer_runtime = res->runtime == NULL,
		.locate = env_locate, .locate_arg = ec,
	};
	int rc = pw_interp_resolve(ec->values, &ctx, err);
	res->runtime_uses += ctx.runtime_uses;
	pw_strv templates = {0};
	json_object_object_foreach(ec->values, k, v) {
		(void)v;
		if (k[0] == '_' && pw_strv_push(&templates, k) != 0)
			rc = pw_kerror_set(err, "MemoryError", "out of memory");
	}
	for (size_t i = 0; i < templates.n; i++)
		json_object_object_del(ec->values, templates.v[i]);
	pw_strv_free(&templates);
	return rc;
}

/*
 * Loads one configuration key: base, with the run environment read over it
 * (a top-level key of the environment replaces base's), interpolations
 * resolved by res. *out gets a new object; *found whether any file matched.
 * Returns 0 or -1 with err set.
 */
static int load_conf_key(const pw_project *p, const char *key, conf_resolve *res,
			 json_object **out, bool *found, pw_kerror *err)
{
	const char *envs[] = {BASE_ENV, strcmp(p->env, BASE_ENV) ? p->env : NULL};
	int rc = 0;
	*out = json_object_new_object();
	*found = false;
	if (!*out)
		return -1;
	for (size_t e = 0; rc == 0 && e < 2 && envs[e]; e++) {
		env_conf ec = {json_object_new_object(), json_object_new_object(), false, NULL, 0};
		char *dir = pw_path_join(p->conf_source, envs[e]);
		rc = dir && ec.values && ec.sources ? read_env_key(p, dir, key, &ec, err) : -1;
		if (rc == 0)
			rc = resolve_env(&ec, res, err);
		if (rc == 0) {
			json_object_object_foreach(ec.values, k, v)
				json_object_object_add(*out, k, json_object_get(v));
		}
		*found |= ec.found;
		env_conf_free(&ec);
		free(dir);
	}
	return rc;
}

/*
 * One configuration key as a run sees it: loaded again and resolved with
 * the run's params when it uses ${runtime_params:...} (uses_runtime), else
 * a new reference to the value loaded with the project.
 */
static int run_conf(const pw_project *p, const char *key, bool uses_runtime,
		    json_object *loaded, json_object *runtime, json_object **out, pw_kerror *err)
{
	conf_resolve res = {p->globals, runtime, 0};
	bool found;
	*out = NULL;
	if (!uses_runtime) {
		*out = json_object_get(loaded);
		return 0;
	}
	if (load_conf_key(p, key, &res, out, &found, err) == 0)
		return 0;
	json_object_put(*out);
	*out = NULL;
	if (!err->type)
		pw_kerror_set(err, "MemoryError", "out of memory");
	return -1;
}

int pw_project_run_parameters(const pw_project *p, json_object *runtime, json_object **out,
			      pw_kerror *err)
{
	return run_conf(p, "parameters", p->params_runtime, p->parameters, runtime, out, err);
}

int pw_project_run_catalog(const pw_project *p, json_object *runtime, json_object **out,
			   pw_kerror *err)
{
	return run_conf(p, "catalog", p->catalog_runtime, p->catalog, runtime, out, err);
}

/* Checks catalog entries: type, filepath and versioned have their types. */
static int check_catalog(pw_project *p)
{
	json_object_object_foreach(p->catalog, name, entry) {
		if (name[0] == '_')
			continue; /* Kedro's YAML-anchor templates */
		const char *why = NULL;
		json_object *type, *fp, *versioned;
		if (!json_object_is_type(entry, json_type_object))
			why = "the entry must be a mapping";
		else if (!json_object_object_get_ex(entry, "type", &type) ||
			 !json_object_is_type(type, json_type_string))
			why = "'type' is missing or not a string";
		else if (json_object_object_get_ex(entry, "filepath", &fp) &&
			 !json_object_is_type(fp, json_type_string))
			why = "'filepath' must be a string";
		else if (json_object_object_get_ex(entry, "versioned", &versioned) &&
			 !json_object_is_type(versioned, json_type_boolean))
			why = "'versioned' must be true or false";
		if (why)
			return pw_kerror_set(&p->conf_error, "DatasetError",
					     "An exception occurred when parsing config for dataset '%s': %s",
					     name, why);
	}
	return 0;
}

/* Checks pools: name -> {slots: n >= 0, description?: string}. */
static int check_pools(pw_project *p)
{
	json_object_object_foreach(p->pools, name, spec) {
		json_object *slots, *desc;
		bool ok = pw_valid_pool_name(name) &&
			  json_object_is_type(spec, json_type_object) &&
			  json_object_object_get_ex(spec, "slots", &slots) &&
			  json_object_is_type(slots, json_type_int) &&
			  json_object_get_int64(slots) >= 0 &&
			  json_object_get_int64(slots) <= INT_MAX &&
			  (!json_object_object_get_ex(spec, "description", &desc) ||
			   json_object_is_type(desc, json_type_string));
		if (!ok)
			return pw_kerror_set(&p->conf_error, "ValueError",
					     "pool '%s': expected {slots: <integer >= 0>, description: <string>}",
					     name);
	}
	return 0;
}

/* An environment named explicitly (--env, PIPEWRIGHT_ENV) must exist. */
static int check_env_folder(pw_project *p)
{
	struct stat st;
	char *dir = pw_path_join(p->conf_source, p->env);
	if (!dir)
		return -1;
	if (p->env_explicit && (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)))
		pw_kerror_set(&p->conf_error, "MissingConfigException",
			      "Given configuration path either does not exist or is not a valid "
			      "directory: %s", dir);
	free(dir);
	return 0;
}

/*
 * Loads globals, then catalog, parameters and pools with their
 * interpolations resolved. A missing catalog is Kedro's
 * MissingConfigException. Returns 0; problems land in p->conf_error, and
 * only running out of memory returns -1.
 */
static int load_conf(pw_project *p)
{
	json_object **slots[CONF_NKEYS] = {&p->globals, &p->catalog, &p->parameters, &p->pools};
	bool found[CONF_NKEYS] = {false};
	struct stat st;

	for (int k = 0; k < CONF_NKEYS; k++) {
		*slots[k] = json_object_new_object();
		if (!*slots[k])
			return -1;
	}
	if (stat(p->conf_source, &st) != 0 || !S_ISDIR(st.st_mode)) {
		pw_kerror_set(&p->conf_error, "MissingConfigException",
			      "Given configuration path either does not exist or is not a valid directory: %s",
			      p->conf_source);
		return p->conf_error.message ? 0 : -1;
	}
	if (check_env_folder(p) != 0)
		return -1;
	for (int k = 0; k < CONF_NKEYS && !p->conf_error.type; k++) {
		json_object *value = NULL;
		conf_resolve res = {k == CONF_GLOBALS ? NULL : p->globals, NULL, 0};
		if (load_conf_key(p, conf_key_names[k], &res, &value, &found[k],
				  &p->conf_error) == 0) {
			json_object_put(*slots[k]);
			*slots[k] = value;
		} else {
			json_object_put(value);
			if (!p->conf_error.type)
				return -1;
		}
		if (k == CONF_PARAMETERS)
			p->params_runtime = res.runtime_uses > 0;
		if (k == CONF_CATALOG)
			p->catalog_runtime = res.runtime_uses > 0;
	}
	if (!p->conf_error.type && !found[CONF_CATALOG])
		pw_kerror_set(&p->conf_error, "MissingConfigException",
			      "No config files found matching the pattern(s) 'catalog*'");
	if (!p->conf_error.type)
		check_catalog(p);
	if (!p->conf_error.type)
		check_pools(p);
	return 0;
}

/* --- dags/ ----------------------------------------------------------------- */

static int compare_dags(const void *a, const void *b)
{
	return strcmp((*(pw_dag *const *)a)->id, (*(pw_dag *const *)b)->id);
}

/*
 * Records in dag->warnings the DAG's free inputs that neither the catalog
 * nor the parameters (conf < DAG params) define, each at the line that
 * first reads it. Skipped when the configuration itself is broken.
 * Returns 0 or -1 (out of memory).
 */
static int check_free_inputs(const pw_project *p, pw_dag *dag)
{
	pw_strv missing = {0};
	if (p->conf_error.type)
		return 0;
	json_object *params = pw_params_merge(p->parameters, dag->params);
	int rc = params ? pw_free_inputs_missing(dag, NULL, p->catalog, params, &missing) : -1;
	for (size_t i = 0; rc == 0 && i < missing.n; i++) {
		pw_strv one = {0};
		pw_kerror e = {0};
		if (pw_strv_push(&one, missing.v[i]) == 0)
			pw_free_inputs_error(&one, &e);
		if (!e.message || !e.type)
			rc = -1;
		else
			rc = pw_errors_add(&dag->warnings, dag->file, pw_dag_input_line(dag, missing.v[i]),
					   e.type, "%s", e.message);
		pw_kerror_clear(&e);
		pw_strv_free(&one);
	}
	json_object_put(params);
	pw_strv_free(&missing);
	return rc;
}

/* Loads one DAG file into p->dags, or its errors into p->import_errors. */
static int load_dag_file(pw_project *p, const char *dir, const char *name, pw_strv *seen)
{
	int rc = -1;
	pw_errors errs = {0};
	char *stem = strndup(name, config_stem_len(name));
	char *path = pw_path_join(dir, name);
	char *rel = path ? relative_name(p, path) : NULL;
	if (!stem || !rel)
		goto out;
	if (!pw_valid_dag_id(stem)) {
		rc = pw_errors_add(&p->import_errors, rel, 0, NULL,
				   "invalid DAG id '%s': use letters, digits, '_', '.' and '-'",
				   stem);
		goto out;
	}
	if (pw_strv_contains(seen, stem)) {
		rc = pw_errors_add(&p->import_errors, rel, 0, NULL,
				   "another file already defines DAG '%s'", stem);
		goto out;
	}
	if (pw_strv_push(seen, stem) != 0)
		goto out;
	pw_dag *dag = pw_dag_load(stem, path, rel, &errs);
	if (dag && check_free_inputs(p, dag) != 0) {
		pw_dag_free(dag);
		goto out;
	}
	if (dag) {
		pw_dag **grown = realloc(p->dags, (p->n_dags + 1) * sizeof *grown);
		if (!grown) {
			pw_dag_free(dag);
			goto out;
		}
		p->dags = grown;
		p->dags[p->n_dags++] = dag;
		rc = 0;
	} else {
		if (errs.n == 0)
			goto out; /* out of memory */
		rc = pw_errors_move(&p->import_errors, &errs);
	}
out:
	pw_errors_free(&errs);
	free(rel);
	free(path);
	free(stem);
	return rc;
}

/* Loads every DAG file of dags/, in name order. Returns 0 or -1 (OOM). */
static int load_dags(pw_project *p)
{
	pw_strv files = {0}, seen = {0};
	char *dir = pw_path_join(p->root, "dags");
	int rc = dir ? list_config_files(dir, NULL, &files) : -1;
	for (size_t i = 0; rc == 0 && i < files.n; i++)
		rc = load_dag_file(p, dir, files.v[i], &seen);
	if (p->n_dags > 1)
		qsort(p->dags, p->n_dags, sizeof *p->dags, compare_dags);
	pw_strv_free(&files);
	pw_strv_free(&seen);
	free(dir);
	return rc;
}

/* --- the whole project ------------------------------------------------------- */

/* Resolves root, env and conf_source from opts and the environment. */
static int resolve_location(pw_project *p, const pw_project_opts *opts, char **err)
{
	const char *path = opts->path ? opts->path : getenv("PIPEWRIGHT_PROJECT_PATH");
	const char *env = opts->env ? opts->env : getenv("PIPEWRIGHT_ENV");
	const char *conf = opts->conf_source ? opts->conf_source
					     : getenv("PIPEWRIGHT_CONF_SOURCE");
	char resolved[PATH_MAX];

	if (!path || !*path)
		path = ".";
	bool named = env && *env;
	if (!named)
		env = DEFAULT_ENV;
	if (!realpath(path, resolved)) {
		*err = pw_asprintf("project folder '%s': %s", path, strerror(errno));
		return -1;
	}
	if (!pw_valid_env_name(env)) {
		*err = pw_asprintf("invalid environment name '%s': use letters, digits, '_' and '-'",
				   env);
		return -1;
	}
	p->root = strdup(resolved);
	p->env = strdup(env);
	p->env_explicit = named && strcmp(env, DEFAULT_ENV) != 0; /* serve passes local on */
	p->conf_source = p->root ? pw_path_join(p->root, conf && *conf ? conf : "conf") : NULL;
	return p->root && p->env && p->conf_source ? 0 : -1;
}

int pw_project_load(const pw_project_opts *opts, pw_project **out, char **err)
{
	static const pw_project_opts no_opts = {0};
	pw_project *p = calloc(1, sizeof *p);
	*err = NULL;
	*out = NULL;
	if (!p)
		goto oom;
	if (resolve_location(p, opts ? opts : &no_opts, err) != 0 || set_defaults(p) != 0 ||
	    load_project_file(p, err) != 0 || load_conf(p) != 0 || load_dags(p) != 0)
		goto fail;
	*out = p;
	return PW_OK;
fail:
	if (*err)
		goto out;
oom:
	*err = strdup("out of memory");
out:
	pw_project_free(p);
	return PW_ERR;
}

void pw_project_free(pw_project *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n_dags; i++)
		pw_dag_free(p->dags[i]);
	free(p->dags);
	pw_errors_free(&p->import_errors);
	pw_kerror_clear(&p->conf_error);
	json_object_put(p->catalog);
	json_object_put(p->parameters);
	json_object_put(p->pools);
	json_object_put(p->globals);
	json_object_put(p->settings);
	free(p->root);
	free(p->env);
	free(p->conf_source);
	free(p->project_name);
	free(p->package_name);
	free(p->version);
	free(p->database);
	free(p->logs_dir);
	free(p);
}

pw_dag *pw_project_dag(const pw_project *p, const char *id)
{
	size_t lo = 0, hi = p->n_dags;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(p->dags[mid]->id, id);
		if (c == 0)
			return p->dags[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

pw_dag *pw_project_pipeline(const pw_project *p, const char *name, bool *owned,
			    pw_kerror *err)
{
	pw_dag *dag = pw_project_dag(p, name);
	*owned = false;
	if (dag)
		return dag;
	if (strcmp(name, "__default__") != 0) {
		pw_kerror_set(err, "ValueError",
			      "Failed to find the pipeline named '%s'. It needs to be generated "
			      "and returned by the 'register_pipelines' function. ",
			      name);
		return NULL;
	}
	pw_errors errs = {0};
	dag = pw_dag_union(name, p->dags, p->n_dags, &errs);
	if (dag)
		*owned = true;
	else if (errs.n)
		pw_kerror_set(err, errs.v[0].type, "%s", errs.v[0].message);
	else
		pw_kerror_set(err, "MemoryError", "out of memory");
	pw_errors_free(&errs);
	return dag;
}

/* --- change detection ------------------------------------------------------- */

/* Adds one file's identity (mtime in ns, size, inode) to the sum. */
static void fingerprint_add(unsigned long long *sum, unsigned long long *count,
			    const struct stat *st)
{
	const unsigned long long parts[] = {
		(unsigned long long)st->st_mtim.tv_sec * 1000000000ULL +
			(unsigned long long)st->st_mtim.tv_nsec,
		(unsigned long long)st->st_size,
		(unsigned long long)st->st_ino,
	};
	*sum += pw_fnv1a(PW_FNV1A_INIT, parts, sizeof parts);
	(*count)++;
}

/* A folder and every entry in it. */
static void fingerprint_dir(unsigned long long *sum, unsigned long long *count,
			    const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct stat st;
	struct dirent *de;
	if (fstat(dirfd(d), &st) == 0)
		fingerprint_add(sum, count, &st);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0 &&
		    fstatat(dirfd(d), de->d_name, &st, 0) == 0)
			fingerprint_add(sum, count, &st);
	closedir(d);
}

long long pw_project_fingerprint(const pw_project *p)
{
	unsigned long long sum = 0, count = 0;
	const char *const subdirs[] = {BASE_ENV, p->env};
	char *path = pw_path_join(p->root, PROJECT_FILE);
	struct stat st;

	if (path && stat(path, &st) == 0)
		fingerprint_add(&sum, &count, &st);
	free(path);
	fingerprint_dir(&sum, &count, p->conf_source);
	for (size_t i = 0; i < sizeof subdirs / sizeof *subdirs; i++) {
		path = pw_path_join(p->conf_source, subdirs[i]);
		if (path)
			fingerprint_dir(&sum, &count, path);
		free(path);
	}
	path = pw_path_join(p->root, "dags");
	if (path)
		fingerprint_dir(&sum, &count, path);
	free(path);
	return (long long)((sum ^ (count * 0x9E3779B97F4A7C15ULL)) & 0x7fffffffffffffffULL);
}

int pw_runner_resolve(const pw_project *p, const char *name, pw_runner_kind fallback,
		      pw_kerror *err)
{
	static const struct {
		const char *name;
		pw_runner_kind kind;
	} builtin[] = {
		{"SequentialRunner", PW_RUNNER_SEQUENTIAL},
		{"ParallelRunner", PW_RUNNER_PARALLEL},
		{"ThreadRunner", PW_RUNNER_PARALLEL},
	};
	json_object *runners = json_object_object_get(p->settings, "runners");
	if (!name)
		return (int)fallback;
	if (json_object_is_type(runners, json_type_object) &&
	    json_object_object_get_ex(runners, name, NULL))
		return PW_RUNNER_PROJECT;
	const char *shortname = strncmp(name, "kedro.runner.", 13) == 0 ? name + 13 : name;
	const char *dot = strrchr(name, '.');
	if (shortname == name && dot)
		return pw_kerror_set(err, "ValueError",
			"Runner module '%.*s' is not allowed. Runners must belong to 'kedro.runner', "
			"or be listed in `settings.runners` of pipewright.yml "
			"(Kedro's RUNNER_MODULES_WHITELIST).", (int)(dot - name), name);
	if (strchr(shortname, '.'))
		return pw_kerror_set(err, "ModuleNotFoundError", "No module named '%.*s'",
				     (int)(dot - name), name);
	for (size_t i = 0; i < sizeof builtin / sizeof *builtin; i++)
		if (strcmp(shortname, builtin[i].name) == 0)
			return (int)builtin[i].kind;
	return pw_kerror_set(err, "AttributeError", "module 'kedro.runner' has no attribute '%s'",
			     shortname);
}

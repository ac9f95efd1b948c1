/*
 * project.h - loading a project folder (DESIGN.md section 3).
 *
 *   pipewright.yml        project_name, package_name, version, settings
 *   conf/base/            catalog*, parameters*, pools* (.yml .yaml .json)
 *   conf/<env>/           read over base; a top-level key replaces base's
 *   dags/NAME.yml         one DAG per file (.yml .yaml .json), id = NAME
 *
 * Loading never stops at the first problem: configuration errors are kept
 * as one Kedro-style error (e.g. MissingConfigException) in conf_error, DAG
 * files that fail go to import_errors, and every good DAG is still loaded.
 */
#ifndef PW_PROJECT_H
#define PW_PROJECT_H

#include <json-c/json.h>
#include <stdbool.h>

#include "dag.h"
#include "util.h"

/* Default of settings.max_log_bytes: 100 MiB of output per try. */
#define PW_MAX_LOG_BYTES (100LL * 1024 * 1024)

/* Where to find the project; NULL fields take the PIPEWRIGHT_* variables. */
typedef struct pw_project_opts {
	const char *path;        /* PIPEWRIGHT_PROJECT_PATH, else "." */
	const char *env;         /* PIPEWRIGHT_ENV, else "local" */
	const char *conf_source; /* PIPEWRIGHT_CONF_SOURCE, else <root>/conf */
} pw_project_opts;

typedef struct pw_project {
	char *root;           /* absolute */
	char *env;
	char *conf_source;    /* absolute */
	char *project_name;
	char *package_name;
	char *version;
	/* settings, with defaults applied; paths absolute */
	char *database;
	char *logs_dir;
	int max_parallel_tasks;
	long long events_keep_ms;   /* events older than this are pruned */
	long long events_keep_max;  /* and beyond the newest this many */
	long long max_log_bytes;    /* task output kept per try's log; 0: all */
	json_object *settings;    /* the raw settings object (runners, roles, ...) */
	/* merged configuration; empty objects when absent */
	json_object *catalog;
	json_object *parameters;
	json_object *pools;
	json_object *globals;     /* globals* files, resolved */
	bool params_runtime;      /* parameters use ${runtime_params:...} */
	bool catalog_runtime;     /* the catalog does */
	bool env_explicit;        /* named, and not "local": its folder must exist */
	pw_kerror conf_error;     /* type NULL when the configuration is fine */
	pw_dag **dags;            /* loaded DAGs, sorted by id */
	size_t n_dags;
	pw_errors import_errors;  /* DAG files that failed */
} pw_project;

/*
 * Loads a project. Returns PW_OK with *out, or PW_ERR with *err (malloc'd)
 * when there is no project to speak of: the folder or pipewright.yml is
 * missing or unreadable, or the environment name is refused. Everything
 * else is reported inside the project.
 */
int pw_project_load(const pw_project_opts *opts, pw_project **out, char **err);
void pw_project_free(pw_project *p);

/* The DAG with this id, or NULL. */
pw_dag *pw_project_dag(const pw_project *p, const char *id);

/*
 * A pipeline by Kedro's name: a DAG id; "__default__" (the union of all
 * DAGs, unless a DAG file has that name). Returns a DAG the caller frees
 * with pw_dag_free when *owned is set, or NULL with err set to Kedro's
 * "Failed to find the pipeline named 'x'..." ValueError.
 */
pw_dag *pw_project_pipeline(const pw_project *p, const char *name,
			    bool *owned, pw_kerror *err);

/* What a Kedro runner name resolves to. */
typedef enum pw_runner_kind {
	PW_RUNNER_SEQUENTIAL,  /* one task of the run at a time */
	PW_RUNNER_PARALLEL,    /* ParallelRunner, ThreadRunner */
	PW_RUNNER_PROJECT,     /* a runner of settings.runners (e.g. Slurm) */
} pw_runner_kind;

/*
 * Resolves a runner name as Kedro's load_obj(name, "kedro.runner") would,
 * without loading anything: short names and kedro.runner.X against
 * kedro.runner; a dotted name only when settings.runners lists it, else
 * refused like a module outside Kedro's RUNNER_MODULES_WHITELIST. NULL is
 * the default (`fallback`). Returns the kind, or -1 with err set to Kedro's
 * exception (ValueError, AttributeError, ModuleNotFoundError).
 */
int pw_runner_resolve(const pw_project *p, const char *name, pw_runner_kind fallback,
		      pw_kerror *err);

/*
 * The project's parameters as a run with these params (its conf) sees
 * them: when the parameters use ${runtime_params:...}, the parameters
 * files are read again and resolved with runtime; otherwise a reference
 * to p->parameters. Returns 0 with *out, or -1 with err set (an
 * unresolvable interpolation names file, line and key).
 */
int pw_project_run_parameters(const pw_project *p, json_object *runtime, json_object **out,
			      pw_kerror *err);
/* The same for the catalog (dataset paths may use runtime params). */
int pw_project_run_catalog(const pw_project *p, json_object *runtime, json_object **out,
			   pw_kerror *err);

/* true when name matches [A-Za-z0-9_-]+ (environment names). */
bool pw_valid_env_name(const char *name);

/*
 * Deep merge of Kedro runtime parameters: objects merge key by key, other
 * values replace. Returns a new object (base and over untouched), or NULL.
 */
json_object *pw_params_merge(json_object *base, json_object *over);

/*
 * A cheap fingerprint of the files a project is loaded from: pipewright.yml,
 * the conf folder, conf/base and conf/<env>, dags/ and every file in them
 * (mtime in ns, size, inode and count). It changes when any of them does;
 * equal values mean the project would load the same.
 */
long long pw_project_fingerprint(const pw_project *p);

#endif

/* slice.c - see slice.h. */
#include "slice.h"

#include "interp.h"
#include "strmap.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* --- small helpers ---------------------------------------------------- */

static int set_oom(pw_kerror *err)
{
	pw_kerror_set(err, "MemoryError", "out of memory");
	return -1;
}

/* Length of a dataset name without its transcoding suffix ("df@pandas"). */
static size_t strip_transcoding_len(const char *s)
{
	const char *at = strchr(s, '@');
	return at ? (size_t)(at - s) : strlen(s);
}

/* Copies the unique entries of sv, in order, into out (which starts empty). */
static int unique_copy(const pw_strv *sv, pw_strv *out)
{
	for (size_t i = 0; i < sv->n; i++)
		if (pw_strv_add_unique(out, sv->v[i]) != 0)
			return -1;
	return 0;
}

/*
 * Marks in mark[] everything reachable from the already-marked tasks over
 * `down` edges (downstream) or `up` edges (upstream). stack holds n_tasks
 * entries. O(V+E).
 */
static void close_over(const pw_dag *dag, bool *mark, size_t *stack,
		       bool downstream)
{
	size_t top = 0;
	for (size_t i = 0; i < dag->n_tasks; i++)
		if (mark[i])
			stack[top++] = i;
	while (top > 0) {
		const pw_task *t = &dag->tasks[stack[--top]];
		const size_t *next = downstream ? t->down : t->up;
		size_t n_next = downstream ? t->n_down : t->n_up;
		for (size_t k = 0; k < n_next; k++) {
			if (!mark[next[k]]) {
				mark[next[k]] = true;
				stack[top++] = next[k];
			}
		}
	}
}

/* --- the filters ------------------------------------------------------ */

/*
 * Every map here borrows its keys from the DAG or the request (a key may be
 * a prefix: "df" of the transcoded "df@pandas") and is sized by
 * pw_strmap_init for all it gets, so pw_strmap_add cannot fail (strmap.h).
 */

/* Kedro's only_nodes_with_tags: tasks with any of the tags. */
static int filter_tags(const pw_dag *dag, const pw_strv *tags, bool *mark)
{
	pw_strmap m;
	if (pw_strmap_init(&m, tags->n) != 0)
		return -1;
	for (size_t i = 0; i < tags->n; i++)
		(void)pw_strmap_add(&m, tags->v[i], strlen(tags->v[i]), i);
	for (size_t i = 0; i < dag->n_tasks; i++) {
		const pw_strv *tt = &dag->tasks[i].tags;
		for (size_t k = 0; k < tt->n && !mark[i]; k++)
			if (pw_strmap_gets(&m, tt->v[k]))
				mark[i] = true;
	}
	pw_strmap_free(&m);
	return 0;
}

/*
 * Kedro's only_nodes: marks the named tasks. Unknown names give Kedro's
 * ValueError, with "Did you mean" listing the task names that end in
 * ".<name>" (namespaced tasks). names_map maps task names to indices.
 */
static int filter_names(const pw_dag *dag, const pw_strmap *names_map,
			const pw_strv *names, bool *mark, pw_kerror *err)
{
	pw_strv unknown = {0}, suggest = {0};
	char *u_repr = NULL, *s_repr = NULL;
	int rc = -1;

	for (size_t i = 0; i < names->n; i++) {
		const size_t *idx = pw_strmap_gets(names_map, names->v[i]);
		if (idx)
			mark[*idx] = true;
		else if (pw_strv_add_unique(&unknown, names->v[i]) != 0)
			goto oom;
	}
	if (unknown.n == 0) {
		rc = 0;
		goto out;
	}
	for (size_t u = 0; u < unknown.n; u++) {
		size_t lu = strlen(unknown.v[u]);
		for (size_t i = 0; i < dag->n_tasks; i++) {
			const char *tn = dag->tasks[i].name;
			size_t lt = strlen(tn);
			if (lt > lu && tn[lt - lu - 1] == '.' &&
			    memcmp(tn + lt - lu, unknown.v[u], lu) == 0 &&
			    pw_strv_push(&suggest, tn) != 0)
				goto oom;
		}
	}
	if (!(u_repr = pw_pylist_repr(&unknown)))
		goto oom;
	if (suggest.n == 0) {
		pw_kerror_set(err, "ValueError",
			      "Pipeline does not contain nodes named %s.",
			      u_repr);
		goto out;
	}
	if (!(s_repr = pw_pylist_repr(&suggest)))
		goto oom;
	pw_kerror_set(err, "ValueError",
		      "Pipeline does not contain nodes named %s. "
		      "Did you mean: %s?",
		      u_repr, s_repr);
	goto out;
oom:
	set_oom(err);
out:
	free(u_repr);
	free(s_repr);
	pw_strv_free(&unknown);
	pw_strv_free(&suggest);
	return rc;
}

/*
 * The seed of from_inputs (use_inputs) or to_outputs: the tasks that read
 * (write) one of the datasets. First checks, like Kedro, that each name is
 * a dataset of the pipeline (read or written by some task, or the name of a
 * transcoded one without its "@format"); the missing ones, sorted, make the
 * ValueError. A requested name without "@" also matches its transcoded
 * forms; one with "@" matches only itself.
 */
static int seed_datasets(const pw_dag *dag, const pw_strv *names,
			 bool use_inputs, bool *mark, pw_kerror *err)
{
	pw_strmap all = {0}, req = {0};
	pw_strv missing = {0};
	char *repr = NULL;
	size_t total = 0;
	int rc = -1;

	for (size_t i = 0; i < dag->n_tasks; i++)
		total += dag->tasks[i].inputs.n + dag->tasks[i].outputs.n;
	/* Each dataset may add itself and its stripped name. */
	if (pw_strmap_init(&all, 2 * total) != 0 ||
	    pw_strmap_init(&req, names->n) != 0)
		goto oom;
	for (size_t i = 0; i < dag->n_tasks; i++) {
		const pw_task *t = &dag->tasks[i];
		for (int side = 0; side < 2; side++) {
			const pw_strv *ds = side ? &t->outputs : &t->inputs;
			for (size_t k = 0; k < ds->n; k++) {
				const char *d = ds->v[k];
				(void)pw_strmap_add(&all, d, strlen(d), 0);
				(void)pw_strmap_add(&all, d, strip_transcoding_len(d), 0);
			}
		}
	}
	for (size_t i = 0; i < names->n; i++) {
		const char *r = names->v[i];
		if (!pw_strmap_gets(&all, r) && pw_strv_add_unique(&missing, r) != 0)
			goto oom;
		(void)pw_strmap_add(&req, r, strlen(r), 0);
	}
	if (missing.n > 0) {
		pw_strv_sort(&missing);
		if (!(repr = pw_pylist_repr(&missing)))
			goto oom;
		pw_kerror_set(err, "ValueError",
			      "Pipeline does not contain datasets named %s",
			      repr);
		goto out;
	}
	for (size_t i = 0; i < dag->n_tasks; i++) {
		const pw_task *t = &dag->tasks[i];
		const pw_strv *ds = use_inputs ? &t->inputs : &t->outputs;
		for (size_t k = 0; k < ds->n && !mark[i]; k++) {
			const char *d = ds->v[k];
			size_t stripped = strip_transcoding_len(d);
			if (pw_strmap_gets(&req, d) ||
			    (d[stripped] == '@' && pw_strmap_get(&req, d, stripped)))
				mark[i] = true;
		}
	}
	rc = 0;
	goto out;
oom:
	set_oom(err);
out:
	free(repr);
	pw_strv_free(&missing);
	pw_strmap_free(&all);
	pw_strmap_free(&req);
	return rc;
}

/*
 * Tasks whose namespace is one of nss or lies below one ("a" matches "a" and
 * "a.b", not "ab"). A namespace that matches no task is Kedro's ValueError.
 * Each task's namespace prefixes are looked up, so the cost is the total
 * length of the namespaces.
 */
static int filter_namespaces(const pw_dag *dag, const pw_strv *nss, bool *mark,
			     pw_kerror *err)
{
	pw_strv uniq = {0}, unfound = {0};
	bool *found = NULL;
	char *repr = NULL;
	pw_strmap m = {0};
	int rc = -1;

	if (unique_copy(nss, &uniq) != 0 || pw_strmap_init(&m, uniq.n) != 0 ||
	    !(found = calloc(uniq.n, sizeof *found)))
		goto oom;
	for (size_t i = 0; i < uniq.n; i++)
		(void)pw_strmap_add(&m, uniq.v[i], strlen(uniq.v[i]), i);
	for (size_t i = 0; i < dag->n_tasks; i++) {
		const char *ns = dag->tasks[i].namespace_;
		if (!ns || !*ns)
			continue;
		for (size_t len = 1;; len++) {
			if (ns[len] == '.' || ns[len] == '\0') {
				const size_t *at = pw_strmap_get(&m, ns, len);
				if (at) {
					found[*at] = true;
					mark[i] = true;
				}
				if (ns[len] == '\0')
					break;
			}
		}
	}
	for (size_t i = 0; i < uniq.n; i++)
		if (!found[i] && pw_strv_push(&unfound, uniq.v[i]) != 0)
			goto oom;
	if (unfound.n > 0) {
		if (!(repr = pw_pylist_repr(&unfound)))
			goto oom;
		pw_kerror_set(err, "ValueError",
			      "Pipeline does not contain nodes with "
			      "namespace(s) %s.",
			      repr);
		goto out;
	}
	rc = 0;
	goto out;
oom:
	set_oom(err);
out:
	free(repr);
	free(found);
	pw_strmap_free(&m);
	pw_strv_free(&uniq);
	pw_strv_free(&unfound);
	return rc;
}

void pw_slice_req_free(pw_slice_req *req)
{
	if (!req)
		return;
	pw_strv_free(&req->tags);
	pw_strv_free(&req->node_names);
	pw_strv_free(&req->from_nodes);
	pw_strv_free(&req->to_nodes);
	pw_strv_free(&req->from_inputs);
	pw_strv_free(&req->to_outputs);
	pw_strv_free(&req->namespaces);
}

/* Which filter a step of pw_slice applies, in Kedro's order. */
enum slice_step {
	STEP_TAGS,
	STEP_FROM_NODES,
	STEP_TO_NODES,
	STEP_NODE_NAMES,
	STEP_FROM_INPUTS,
	STEP_TO_OUTPUTS,
	STEP_NAMESPACES,
	STEP_COUNT
};

/*
 * Each given filter marks its own subset of the whole DAG in mark[]; the
 * subsets are intersected into selected[]. The first filter (in Kedro's
 * order) that fails stops the slice with its error.
 */
int pw_slice(const pw_dag *dag, const pw_slice_req *req, bool *selected,
	     pw_kerror *err)
{
	size_t n = dag->n_tasks;
	const pw_strv *args[STEP_COUNT] = {
		&req->tags,        &req->from_nodes,  &req->to_nodes,
		&req->node_names,  &req->from_inputs, &req->to_outputs,
		&req->namespaces,
	};
	bool *mark = calloc(n ? n : 1, sizeof *mark);
	size_t *stack = malloc((n ? n : 1) * sizeof *stack);
	pw_strmap names = {0};
	int rc = -1;

	if (!mark || !stack) {
		set_oom(err);
		goto out;
	}
	if (args[STEP_FROM_NODES]->n || args[STEP_TO_NODES]->n ||
	    args[STEP_NODE_NAMES]->n) {
		if (pw_strmap_init(&names, n) != 0) {
			set_oom(err);
			goto out;
		}
		for (size_t i = 0; i < n; i++)
			(void)pw_strmap_add(&names, dag->tasks[i].name,
				 strlen(dag->tasks[i].name), i);
	}
	for (size_t i = 0; i < n; i++)
		selected[i] = true;

	for (int step = 0; step < STEP_COUNT; step++) {
		const pw_strv *arg = args[step];
		int r = 0;
		if (arg->n == 0)
			continue;
		memset(mark, 0, n * sizeof *mark);
		switch (step) {
		case STEP_TAGS:
			if (filter_tags(dag, arg, mark) != 0)
				r = set_oom(err);
			break;
		case STEP_FROM_NODES:
		case STEP_TO_NODES:
			r = filter_names(dag, &names, arg, mark, err);
			if (r == 0)
				close_over(dag, mark, stack,
					   step == STEP_FROM_NODES);
			break;
		case STEP_NODE_NAMES:
			r = filter_names(dag, &names, arg, mark, err);
			break;
		case STEP_FROM_INPUTS:
		case STEP_TO_OUTPUTS:
			r = seed_datasets(dag, arg, step == STEP_FROM_INPUTS,
					  mark, err);
			if (r == 0)
				close_over(dag, mark, stack,
					   step == STEP_FROM_INPUTS);
			break;
		default:
			r = filter_namespaces(dag, arg, mark, err);
			break;
		}
		if (r != 0)
			goto out;
		for (size_t i = 0; i < n; i++)
			selected[i] = selected[i] && mark[i];
	}

	bool any = false;
	for (size_t i = 0; i < n && !any; i++)
		any = selected[i];
	if (!any) {
		pw_kerror_set(err, "ValueError",
			      "Pipeline contains no nodes after applying all "
			      "provided filters. Please ensure that at least "
			      "one pipeline with nodes has been defined.");
		goto out;
	}
	rc = 0;
out:
	pw_strmap_free(&names);
	free(mark);
	free(stack);
	return rc;
}

/* --- datasets on disk --------------------------------------------------- */

/* The catalog entry of a dataset that has a filepath, else NULL. */
static json_object *persisted_entry(const pw_catalog_view *cat,
				    const char *name, const char **filepath)
{
	json_object *entry, *fp;
	if (!cat || !cat->catalog ||
	    !json_object_object_get_ex(cat->catalog, name, &entry) ||
	    !json_object_is_type(entry, json_type_object) ||
	    !json_object_object_get_ex(entry, "filepath", &fp) ||
	    !json_object_is_type(fp, json_type_string) ||
	    json_object_get_string_len(fp) == 0)
		return NULL;
	*filepath = json_object_get_string(fp);
	return entry;
}

static bool entry_versioned(json_object *entry)
{
	json_object *v;
	return json_object_object_get_ex(entry, "versioned", &v) &&
	       json_object_is_type(v, json_type_boolean) &&
	       json_object_get_boolean(v);
}

/* The version pinned in load_versions for name, or NULL. */
static const char *pinned_version(const pw_catalog_view *cat, const char *name)
{
	json_object *v;
	if (!cat->load_versions ||
	    !json_object_object_get_ex(cat->load_versions, name, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/*
 * The resolved dataset location of a persisted dataset, split for versioned
 * paths: *dir = root/filepath without trailing slashes, *base = its last
 * component (borrowed from *dir). Returns 0 or -1 (out of memory).
 */
static int resolve_filepath(const pw_catalog_view *cat, const char *filepath,
			    char **dir, const char **base)
{
	char *p = cat->root ? pw_path_join(cat->root, filepath)
			    : strdup(filepath);
	if (!p)
		return -1;
	size_t len = strlen(p);
	while (len > 1 && p[len - 1] == '/')
		p[--len] = '\0';
	const char *slash = strrchr(p, '/');
	*base = slash ? slash + 1 : p;
	*dir = p;
	return 0;
}

static bool path_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/*
 * Kedro's latest load version: the greatest version folder name under dir
 * (hidden ones skipped) whose <version>/<base> exists. *out is a malloc'd
 * name, or NULL when there is none (or dir cannot be read). Returns 0 or
 * -1 (out of memory).
 */
static int newest_version(const char *dir, const char *base, char **out)
{
	DIR *d = opendir(dir);
	char *best = NULL;
	int rc = 0;

	*out = NULL;
	if (!d)
		return 0;
	for (struct dirent *e; (e = readdir(d));) {
		if (e->d_name[0] == '.' ||
		    (best && strcmp(e->d_name, best) <= 0))
			continue;
		char *p = pw_asprintf("%s/%s/%s", dir, e->d_name, base);
		if (!p) {
			rc = -1;
			break;
		}
		bool ok = path_exists(p);
		free(p);
		if (!ok)
			continue;
		char *copy = strdup(e->d_name);
		if (!copy) {
			rc = -1;
			break;
		}
		free(best);
		best = copy;
	}
	closedir(d);
	if (rc != 0)
		free(best);
	else
		*out = best;
	return rc;
}

/*
 * Shared by the save and load paths: the path of version `version` of a
 * versioned dataset, or the plain path. for_load picks the pinned or
 * newest version first and falls back to version.
 */
static char *dataset_path(const pw_catalog_view *cat, const char *name,
			  const char *version, bool for_load, bool *oom)
{
	const char *filepath, *base;
	char *dir = NULL, *newest = NULL, *path = NULL;
	bool failed = false;
	json_object *entry = persisted_entry(cat, name, &filepath);

	if (oom)
		*oom = false;
	if (!entry)
		return NULL;
	if (resolve_filepath(cat, filepath, &dir, &base) != 0) {
		failed = true;
		goto out;
	}
	if (!entry_versioned(entry)) {
		path = dir;
		dir = NULL;
		goto out;
	}
	if (for_load) {
		const char *pinned = pinned_version(cat, name);
		if (pinned) {
			version = pinned;
		} else if (newest_version(dir, base, &newest) != 0) {
			failed = true;
			goto out;
		} else if (newest) {
			version = newest;
		}
	}
	if (!version)
		goto out;
	if (!(path = pw_asprintf("%s/%s/%s", dir, version, base)))
		failed = true;
out:
	if (oom)
		*oom = failed;
	free(newest);
	free(dir);
	return path;
}

char *pw_dataset_save_path(const pw_catalog_view *cat, const char *name,
			   const char *save_version, bool *oom)
{
	return dataset_path(cat, name, save_version, false, oom);
}

char *pw_dataset_load_path(const pw_catalog_view *cat, const char *name,
			   const char *save_version, bool *oom)
{
	return dataset_path(cat, name, save_version, true, oom);
}

/*
 * Whether a persisted dataset exists: its path, or for a versioned one the
 * pinned version (or any version at all, which the newest then is).
 * *persisted says whether it has a filepath; *oom reports failure.
 */
static bool dataset_exists(const pw_catalog_view *cat, const char *name,
			   bool *persisted, bool *oom)
{
	const char *fp;
	*oom = false;
	*persisted = persisted_entry(cat, name, &fp) != NULL;
	if (!*persisted)
		return false;
	char *path = dataset_path(cat, name, NULL, true, oom);
	bool ok = path && path_exists(path);
	free(path);
	return ok;
}

bool pw_dataset_exists(const pw_catalog_view *cat, const char *name)
{
	bool persisted, oom;
	return dataset_exists(cat, name, &persisted, &oom);
}

/* Parameters are inputs, never datasets on disk. */
static bool is_params(const char *name)
{
	return strncmp(name, "params:", 7) == 0 ||
	       strcmp(name, "parameters") == 0;
}

/*
 * Walks the selection in reverse topological order, so that every consumer
 * is decided before its producer. A task that stays selected marks, as
 * needed, the producers of those of its inputs that are in memory or
 * missing on disk. Producers are found through a dataset -> task map of the
 * selected tasks (dataset edges only, as in Kedro): O(V+E) lookups and at
 * most one existence check per output and per input edge.
 */
int pw_only_missing_outputs(const pw_dag *dag, const pw_catalog_view *cat,
			    bool *selected)
{
	size_t n = dag->n_tasks, total = 0;
	bool *needed = calloc(n ? n : 1, sizeof *needed);
	bool *keep = calloc(n ? n : 1, sizeof *keep);
	pw_strmap producer = {0};
	int rc = -1;

	if (!needed || !keep)
		goto out;
	for (size_t i = 0; i < n; i++)
		if (selected[i])
			total += dag->tasks[i].outputs.n;
	if (pw_strmap_init(&producer, total) != 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (!selected[i])
			continue;
		const pw_strv *o = &dag->tasks[i].outputs;
		for (size_t k = 0; k < o->n; k++)
			(void)pw_strmap_add(&producer, o->v[k], strlen(o->v[k]), i);
	}

	for (size_t r = n; r-- > 0;) {
		size_t i = dag->order[r];
		const pw_task *t = &dag->tasks[i];
		bool persisted, oom, runs;
		if (!selected[i])
			continue;
		runs = t->outputs.n == 0 || needed[i];
		for (size_t k = 0; k < t->outputs.n && !runs; k++) {
			bool ex = dataset_exists(cat, t->outputs.v[k],
						 &persisted, &oom);
			if (oom)
				goto out;
			runs = persisted && !ex;
		}
		if (!runs)
			continue;
		keep[i] = true;
		for (size_t k = 0; k < t->inputs.n; k++) {
			const char *in = t->inputs.v[k];
			const size_t *p;
			if (is_params(in) ||
			    !(p = pw_strmap_get(&producer, in, strlen(in))) ||
			    needed[*p])
				continue;
			bool ex = dataset_exists(cat, in, &persisted, &oom);
			if (oom)
				goto out;
			if (!persisted || !ex)
				needed[*p] = true;
		}
	}
	for (size_t i = 0; i < n; i++)
		selected[i] = keep[i];
	rc = 0;
out:
	pw_strmap_free(&producer);
	free(needed);
	free(keep);
	return rc;
}

/* --- free inputs ------------------------------------------------------- */

/* Whether the catalog or the parameters define dataset name. */
static bool input_defined(const char *name, json_object *catalog, json_object *params)
{
	bool found = false;
	if (strcmp(name, "parameters") == 0)
		return true;
	if (strncmp(name, "params:", 7) == 0) {
		pw_json_path_get(params, name + 7, &found);
		return found && name[7];
	}
	return json_object_object_get_ex(catalog, name, NULL);
}

int pw_free_inputs_missing(const pw_dag *dag, const bool *selected, json_object *catalog,
			   json_object *params, pw_strv *missing)
{
	pw_strv inputs = {0}, outputs = {0};
	int rc = pw_dag_io(dag, selected, &inputs, &outputs);
	for (size_t i = 0; rc == 0 && i < inputs.n; i++)
		if (!input_defined(inputs.v[i], catalog, params))
			rc = pw_strv_push(missing, inputs.v[i]);
	pw_strv_free(&inputs);
	pw_strv_free(&outputs);
	return rc;
}

int pw_free_inputs_error(const pw_strv *missing, pw_kerror *err)
{
	char *list = pw_pylist_repr(missing);
	if (!list)
		return pw_kerror_set(err, "MemoryError", "out of memory");
	/* a Python set prints like the list, in braces */
	size_t n = strlen(list);
	if (n >= 2) {
		list[0] = '{';
		list[n - 1] = '}';
	}
	pw_kerror_set(err, "ValueError", "Pipeline input(s) %s not found in the DataCatalog", list);
	free(list);
	return -1;
}

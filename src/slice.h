/*
 * slice.h - Kedro's pipeline slicing, only_missing_outputs, and dataset
 * paths (versioned datasets, load_versions).
 *
 * Slicing follows Kedro's Pipeline.filter: each filter given is applied to
 * the whole pipeline and the results are intersected; errors are Kedro's
 * ValueError messages, raised in Kedro's order (tags, from_nodes, to_nodes,
 * node_names, from_inputs, to_outputs, namespaces). Edges are the DAG's:
 * dataset edges and explicit `upstream` edges both count.
 */
#ifndef PW_SLICE_H
#define PW_SLICE_H

#include <json-c/json.h>
#include <stdbool.h>

#include "dag.h"
#include "util.h"

/* The filters of a run request; an empty vector means "not given". */
typedef struct pw_slice_req {
	pw_strv tags;        /* nodes with any of these tags */
	pw_strv node_names;  /* exactly these nodes (trigger body: task_ids) */
	pw_strv from_nodes;  /* these nodes and all downstream */
	pw_strv to_nodes;    /* these nodes and all upstream */
	pw_strv from_inputs; /* consumers of these datasets and all downstream */
	pw_strv to_outputs;  /* producers of these datasets and all upstream */
	pw_strv namespaces;  /* nodes in namespace ns or ns.* */
} pw_slice_req;

void pw_slice_req_free(pw_slice_req *req);

/*
 * Applies req to dag. selected must hold dag->n_tasks entries; on success
 * selected[i] says whether task i is in the slice and 0 is returned. On a
 * Kedro error (unknown node or dataset, empty result) returns -1 with err
 * set; selected is then unspecified.
 */
int pw_slice(const pw_dag *dag, const pw_slice_req *req, bool *selected,
	     pw_kerror *err);

/*
 * How a dataset is stored: its catalog entry (an object with "type",
 * "filepath", "versioned"), or NULL for a dataset not in the catalog
 * (a MemoryDataset: never persisted).
 */
typedef struct pw_catalog_view {
	const char *root;         /* project root, for relative filepaths */
	json_object *catalog;     /* name -> entry */
	json_object *load_versions; /* name -> version string, or NULL */
} pw_catalog_view;

/*
 * Path a task should write dataset `name` to: filepath (resolved against the
 * root), or for a versioned dataset <filepath>/<save_version>/<basename>.
 * NULL (without error) for a dataset that has no filepath; sets *oom on
 * allocation failure. malloc'd.
 */
char *pw_dataset_save_path(const pw_catalog_view *cat, const char *name,
			   const char *save_version, bool *oom);

/*
 * Path a task should read dataset `name` from: for a versioned dataset the
 * version pinned in load_versions, else the newest existing version (the
 * greatest directory name under filepath); when none exists yet, the path
 * of save_version. NULL for a dataset without a filepath. malloc'd.
 */
char *pw_dataset_load_path(const pw_catalog_view *cat, const char *name,
			   const char *save_version, bool *oom);

/* Whether the dataset is persisted (has a filepath) and exists on disk. */
bool pw_dataset_exists(const pw_catalog_view *cat, const char *name);

/*
 * Kedro's only_missing_outputs over an existing selection: a selected task
 * stays selected if it has no outputs, if one of its persisted outputs does
 * not exist, or if a task that stays selected needs an output of it that is
 * not persisted or does not exist. Others are deselected. Returns 0 or -1
 * (out of memory).
 */
int pw_only_missing_outputs(const pw_dag *dag, const pw_catalog_view *cat,
			    bool *selected);

/*
 * The free inputs of dag (of the selected tasks when selected is non-NULL:
 * datasets read by one of them and written by none) that neither the
 * catalog nor params define, sorted, into missing. "parameters" is always
 * defined; "params:a.b" is when params has a, and a has b. Returns 0 or -1
 * (out of memory).
 */
int pw_free_inputs_missing(const pw_dag *dag, const bool *selected, json_object *catalog,
			   json_object *params, pw_strv *missing);

/*
 * Kedro's error for missing free inputs, into err:
 * ValueError "Pipeline input(s) {'a', 'b'} not found in the DataCatalog".
 * Returns -1.
 */
int pw_free_inputs_error(const pw_strv *missing, pw_kerror *err);

#endif

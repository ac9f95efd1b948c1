/*
 * backend.c - the table of execution backends (runner.h's rn_backend) and
 * what they share. A run's tries go to the backend of its runner: a
 * `type: <name>` entry of settings.runners picks the row of that type;
 * every other runner (Parallel, Sequential) runs them under local shims.
 * A new backend is one file with its rn_backend and one row here
 * (docs/runner.md, "Adding a backend").
 */
#include <stdlib.h>
#include <string.h>

#include "runner.h"

const rn_backend *const rn_backends[] = {
	&rn_local_backend, /* first: the default */
	&rn_slurm_backend,
	NULL,
};

_Static_assert(sizeof rn_backends / sizeof *rn_backends <= RN_MAX_BACKENDS + 1,
	       "raise RN_MAX_BACKENDS");

const rn_backend *rn_backend_of_type(const char *type)
{
	for (size_t i = 0; type && rn_backends[i]; i++)
		if (strcmp(rn_backends[i]->type, type) == 0)
			return rn_backends[i];
	return NULL;
}

void *rn_backend_state(runner *r, const rn_backend *b)
{
	for (size_t i = 0; rn_backends[i]; i++)
		if (rn_backends[i] == b)
			return r->backend_state[i];
	return NULL;
}

int rn_report_end(runner *r, rn_run *run, size_t t)
{
	rn_ended *e = &r->fl.ended;
	if (run->tasks[t].ended)
		return PW_OK; /* reported twice (a socket and an exit): once */
	if (pw_grow(&e->v, e->n, &e->cap, sizeof *e->v, 16) != 0)
		return PW_ERR;
	e->v[e->n++] = (rn_proc){run, t};
	run->tasks[t].ended = true;
	return PW_OK;
}

char *rn_try_path(const rn_run *run, size_t t, int try_number, const char *ext)
{
	return pw_asprintf("%s/%s/%d.%s", run->dir, run->dag->tasks[t].name, try_number, ext);
}

int rn_try_status(const rn_run *run, size_t t, pw_try_result *res)
{
	char *status = rn_try_path(run, t, run->tasks[t].try_number, "status");
	int found = status ? pw_launch_read_status(status, res) : -1;
	free(status);
	return found;
}

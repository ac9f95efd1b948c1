/*
 * recovery.c - a runner that starts takes over the runs the last one left
 * `running` (docs/runner.md, "Crash safety"). Each try left running is
 * its backend's to take over (exec_recover_try): the local one records
 * an end the shim wrote meanwhile, adopts a shim still alive, or finds the
 * try lost (retries apply); Slurm's follows the job again.
 *
 * Queued, pending and up-for-retry tasks just continue.
 */
#include <stdlib.h>

#include "runner.h"

/* Rebuilds one run the last runner left running. */
static int recover_run(runner *r, const st_run_row *row, void *arg)
{
	long long now = *(long long *)arg;
	char *etype = NULL, *emsg = NULL;
	rn_run *run = exec_run_new(r, row->pk, row->dag_id, row->run_id, row->conf,
				   row->options, &etype, &emsg);
	int rc;
	if (!run) {
		/* Its DAG is gone or broken now: the run cannot go on. */
		rc = etype ? st_run_set_state(r, row->pk, row->dag_id, row->run_id, RUN_FAILED,
					      RUN_RUNNING, now, etype, emsg)
			   : PW_ERR;
		free(etype);
		free(emsg);
		return rc;
	}
	rn_run **link = &r->fl.runs;
	while (*link)
		link = &(*link)->next;
	*link = run; /* keep claim order */
	rc = exec_run_begin(r, run, now);
	for (size_t t = 0; rc == PW_OK && t < run->dag->n_tasks; t++)
		if (run->tasks[t].selected && run->tasks[t].state == TI_RUNNING)
			rc = exec_recover_try(r, run, t, now);
	return rc;
}

int recover(runner *r, long long now)
{
	return st_each_run(r, RUN_RUNNING, recover_run, &now);
}

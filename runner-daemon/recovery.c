/*
 * recovery.c - a runner that starts takes over the runs the last one left
 * `running` (docs/runner.md, "Crash safety"). For each try left running:
 *
 *   status file written  -> the try ended while no runner watched: record it
 *   shim alive, same start time -> adopt it and wait for its end
 *   otherwise            -> lost: the try failed (retries apply)
 *
 * A Slurm try is followed again through its job (slurm.c).
 *
 * Queued, pending and up-for-retry tasks just continue.
 */
#include <stdlib.h>
#include <unistd.h>

#include "launch.h"
#include "runner.h"

/* Whether the try's shim wrote its status file. */
static bool has_status(const rn_run *run, size_t t)
{
	char *path = exec_try_path(run, t, run->tasks[t].try_number, "status");
	bool found = path && access(path, F_OK) == 0;
	free(path);
	return found;
}

/* Takes over one try left running. */
static int recover_try(runner *r, rn_run *run, size_t t, long long now)
{
	pid_t pid = 0;
	long long proc_start = -1;
	if (run->slurm)
		return slurm_recover(r, run, t, now);
	if (st_try_pid(r, run, t, &pid, &proc_start) == PW_ERR)
		return PW_ERR;
	bool alive = pid > 0 && proc_start >= 0 && pw_proc_start_time(pid) == proc_start;
	if (exec_adopt(r, run, t, pid, proc_start) != PW_OK)
		return PW_ERR;
	if (alive && !has_status(run, t)) {
		rn_info(r, "task %s/%s/%s: adopted its running process %d", run->dag_id,
			run->run_id, run->dag->tasks[t].name, (int)pid);
		return PW_OK;
	}
	return exec_try_ended(r, run, t, now);
}

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
		rc = etype ? st_run_set_state(r, row->pk, row->dag_id, row->run_id, "failed",
					      "running", now, etype, emsg)
			   : PW_ERR;
		free(etype);
		free(emsg);
		return rc;
	}
	rn_run **link = &r->runs;
	while (*link)
		link = &(*link)->next;
	*link = run; /* keep claim order */
	rc = exec_run_begin(r, run, now);
	for (size_t t = 0; rc == PW_OK && t < run->dag->n_tasks; t++)
		if (run->tasks[t].selected && run->tasks[t].state == TI_RUNNING)
			rc = recover_try(r, run, t, now);
	return rc;
}

int recover(runner *r, long long now)
{
	return st_each_run(r, "running", recover_run, &now);
}

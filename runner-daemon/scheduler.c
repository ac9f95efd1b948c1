/*
 * scheduler.c - what decides which runs exist and run: cron schedules,
 * claiming queued runs (pause flags, max_active_runs), and the cancel and
 * retry commands the API writes.
 */
#include <stdlib.h>
#include <string.h>

#include "cron.h"
#include "runner.h"

/* --- schedules ------------------------------------------------------------ */

/* Queues one scheduled run of dag for the fire time `fire`. */
static int queue_scheduled(runner *r, const pw_dag *dag, long long fire, long long now)
{
	char run_id[32];
	pw_format_run_id(fire, run_id);
	pw_run_new run = {.dag_id = dag->id, .run_id = run_id, .run_type = "scheduled",
			  .queued_at = now};
	if (rn_tx(r) != PW_OK)
		return PW_ERR;
	int rc = pw_store_insert_run(r->store, &run, NULL);
	if (rc == PW_CONFLICT)
		return PW_OK; /* queued already, e.g. by a runner that died since */
	if (rc == PW_OK) {
		rn_info(r, "scheduled run %s/%s queued", dag->id, run_id);
		r->work_changed = true;
	}
	return rc;
}

/*
 * Fires one DAG's schedule when due. A DAG without next_run_at gets the
 * next fire time after now; a due one queues a run (unless paused) and
 * moves to the next fire time after now: missed intervals are skipped.
 */
static int fire_if_due(runner *r, const pw_dag *dag, long long now, long long *next_wake)
{
	pw_cron cron;
	char err[256];
	long long next = 0;
	bool paused = false;
	if (pw_cron_parse(dag->schedule, &cron, err, sizeof err) != 0)
		return PW_OK; /* validated at load; cannot happen */
	int rc = st_next_run(r, dag->id, &next, &paused);
	if (rc == PW_ERR)
		return rc;
	if (next > 0 && now < next) {
		if (!*next_wake || next < *next_wake)
			*next_wake = next;
		return PW_OK;
	}
	if (next > 0 && !paused && queue_scheduled(r, dag, next, now) != PW_OK)
		return PW_ERR;
	long long upcoming = pw_cron_next(&cron, now / 1000) * 1000;
	if (upcoming > 0 && (!*next_wake || upcoming < *next_wake))
		*next_wake = upcoming;
	return st_set_next_run(r, dag->id, upcoming > 0 ? upcoming : 0, next);
}

int sched_cron(runner *r, long long now, long long *next_wake)
{
	for (size_t i = 0; i < r->project->n_dags; i++) {
		const pw_dag *dag = r->project->dags[i];
		if (dag->schedule && fire_if_due(r, dag, now, next_wake) != PW_OK)
			return PW_ERR;
	}
	return PW_OK;
}

/* --- claiming queued runs ----------------------------------------------------- */

/* Active runs of dag_id. */
static int active_runs(const runner *r, const char *dag_id)
{
	int n = 0;
	for (const rn_run *run = r->runs; run; run = run->next)
		n += strcmp(run->dag_id, dag_id) == 0;
	return n;
}

/* Appends run to the active runs (claim order is start priority). */
static void add_active(runner *r, rn_run *run)
{
	rn_run **link = &r->runs;
	while (*link)
		link = &(*link)->next;
	*link = run;
}

/* Claims one queued run if its DAG allows it now. */
static int claim_one(runner *r, const st_run_row *row, void *arg)
{
	long long now = *(long long *)arg;
	const pw_dag *dag = pw_project_dag(r->project, row->dag_id);
	bool paused = false;
	if (st_paused(r, row->dag_id, &paused) != PW_OK)
		return PW_ERR;
	if (paused || (dag && active_runs(r, row->dag_id) >= dag->max_active_runs))
		return PW_OK;
	char *etype = NULL, *emsg = NULL;
	rn_run *run = exec_run_new(r, row->pk, row->dag_id, row->run_id, row->conf,
				   row->options, &etype, &emsg);
	int rc;
	if (!run) {
		rc = etype ? st_run_set_state(r, row->pk, row->dag_id, row->run_id, "failed",
					      "queued", now, etype, emsg)
			   : PW_ERR;
		if (etype)
			rn_info(r, "run %s/%s: %s: %s", row->dag_id, row->run_id, etype, emsg);
	} else {
		rc = st_run_set_state(r, row->pk, row->dag_id, row->run_id, "running", "queued",
				      now, NULL, NULL);
		add_active(r, run);
		if (rc == PW_OK)
			rc = exec_run_begin(r, run, now);
	}
	free(etype);
	free(emsg);
	return rc;
}

int sched_claim(runner *r, long long now)
{
	return st_each_run(r, "queued", claim_one, &now);
}

/* --- commands -------------------------------------------------------------------- */

/*
 * Builds a run that is not active (queued or finished) with its task
 * instances loaded, for a command to change. NULL when its pipeline is gone.
 */
static rn_run *load_inactive(runner *r, const st_run_row *row)
{
	char *etype = NULL, *emsg = NULL;
	rn_run *run = exec_run_new(r, row->pk, row->dag_id, row->run_id, row->conf,
				   row->options, &etype, &emsg);
	if (run && st_ti_load(r, run) < 0) {
		exec_run_free(run);
		run = NULL;
	}
	free(etype);
	free(emsg);
	return run;
}

/* Cancels a run: an active one through the executor, a queued one here. */
static int cancel(runner *r, const st_run_row *row, long long now)
{
	rn_run *active = exec_find_run(r, row->pk);
	if (active)
		return exec_cancel(r, active, now);
	if (strcmp(row->state, "queued") != 0)
		return PW_OK; /* finished meanwhile: nothing to cancel */
	rn_run *run = load_inactive(r, row);
	int rc = run ? exec_cancel(r, run, now) : PW_OK;
	exec_run_free(run);
	if (rc == PW_OK)
		rc = st_run_set_state(r, row->pk, row->dag_id, row->run_id, "cancelled", "queued",
				      now, NULL, NULL);
	return rc;
}

/* Retries a failed or cancelled run: its failed tasks to pending, run queued. */
static int retry(runner *r, const st_run_row *row, long long now)
{
	if (strcmp(row->state, "failed") != 0 && strcmp(row->state, "cancelled") != 0)
		return PW_OK; /* the API answered 409; or it changed meanwhile */
	rn_run *run = load_inactive(r, row);
	int rc = run ? exec_retry(r, run, now) : PW_OK;
	exec_run_free(run);
	if (rc == PW_OK)
		rc = st_run_set_state(r, row->pk, row->dag_id, row->run_id, "queued", row->state,
				      now, NULL, NULL);
	r->work_changed = true;
	return rc;
}

static int apply_command(runner *r, const st_command *c, void *arg)
{
	long long now = *(long long *)arg;
	int rc = strcmp(c->kind, "cancel") == 0 ? cancel(r, &c->run, now)
						 : retry(r, &c->run, now);
	return rc == PW_OK ? st_command_done(r, c->id, now) : rc;
}

int sched_commands(runner *r, long long now)
{
	return st_each_command(r, apply_command, &now);
}

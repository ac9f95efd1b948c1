/*
 * scheduler.c - what decides which runs exist and run: cron schedules,
 * claiming queued runs (pause flags, max_active_runs), and the cancel,
 * retry, clear and mark commands the API writes.
 */
#include <stdlib.h>
#include <string.h>

#include "cron.h"
#include "runner.h"

/* --- schedules ------------------------------------------------------------ */

/* At most this many catchup runs are queued for one DAG in one step. */
#define CATCHUP_MAX 10000

/* Queues one run of dag (type "scheduled" or "backfill") for the tick `fire`. */
static int queue_tick(runner *r, const pw_dag *dag, const char *type, long long fire,
		      long long now)
{
	char run_id[32];
	pw_format_run_id(fire, run_id);
	pw_run_new run = {.dag_id = dag->id, .run_id = run_id, .run_type = type,
			  .logical_date = fire, .queued_at = now};
	if (st_begin(r) != PW_OK)
		return PW_ERR;
	int rc = pw_store_insert_run(r->tx.store, &run, NULL);
	if (rc == PW_CONFLICT)
		return PW_OK; /* queued already, e.g. by a runner that died since */
	if (rc == PW_OK) {
		rn_info(r, "%s run %s/%s queued", type, dag->id, run_id);
		r->work_changed = true;
	}
	return rc;
}

/*
 * catchup: queues one backfill run per tick t with after < t <= now (at
 * most CATCHUP_MAX). The run id is the tick's, so a tick that has its run
 * already (an earlier runner's) is skipped: the runs are made once.
 */
static int catch_up(runner *r, const pw_dag *dag, const pw_cron *cron, long long after,
		    long long now)
{
	int n = 0;
	for (long long t = pw_cron_next(cron, after / 1000) * 1000; t > 0 && t <= now &&
	     n < CATCHUP_MAX; t = pw_cron_next(cron, t / 1000) * 1000, n++)
		if (queue_tick(r, dag, "backfill", t, now) != PW_OK)
			return PW_ERR;
	return PW_OK;
}

/*
 * Fires one DAG's schedule when due. A DAG without next_run_at gets the
 * next fire time after now; a due one queues a run (unless paused) and
 * moves to the next fire time after now: missed intervals are skipped,
 * unless the DAG has catchup (then each gets a backfill run, and so do the
 * ticks since start_date when the DAG is first scheduled).
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
	if (next > 0 && !paused && queue_tick(r, dag, "scheduled", next, now) != PW_OK)
		return PW_ERR;
	/* catchup: the ticks missed since start_date (first time) or since next */
	if (dag->catchup && !paused && (next > 0 || dag->start_date > 0) &&
	    catch_up(r, dag, &cron, next > 0 ? next : dag->start_date - 1000, now) != PW_OK)
		return PW_ERR;
	long long upcoming = pw_cron_next(&cron, now / 1000) * 1000;
	if (upcoming > 0 && (!*next_wake || upcoming < *next_wake))
		*next_wake = upcoming;
	return st_set_next_run(r, dag->id, upcoming > 0 ? upcoming : 0, next);
}

int sched_cron(runner *r, long long now, long long *next_wake)
{
	for (size_t i = 0; i < r->cfg.project->n_dags; i++) {
		const pw_dag *dag = r->cfg.project->dags[i];
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
	for (const rn_run *run = r->fl.runs; run; run = run->next)
		n += strcmp(run->dag_id, dag_id) == 0;
	return n;
}

/* Appends run to the active runs (claim order is start priority). */
static void add_active(runner *r, rn_run *run)
{
	rn_run **link = &r->fl.runs;
	while (*link)
		link = &(*link)->next;
	*link = run;
}

/* What one claim pass has taken so far, per DAG. */
typedef struct claim_pass {
	long long now;
	const pw_dag **taken; /* one entry per run taken */
	size_t n_taken, cap;
} claim_pass;

/*
 * Takes a queued run if its DAG is not paused and has a free slot of
 * max_active_runs, counting the runs this pass took before it. A run whose
 * DAG is gone is taken too: claim_one fails it with the reason.
 */
static int pick(runner *r, const st_queued_row *q, void *arg)
{
	claim_pass *pass = arg;
	if (q->paused)
		return 0;
	const pw_dag *dag = pw_project_dag(r->cfg.project, q->dag_id);
	if (dag) {
		int busy = active_runs(r, q->dag_id);
		for (size_t i = 0; i < pass->n_taken; i++)
			busy += pass->taken[i] == dag;
		if (busy >= (q->max_active > 0 ? q->max_active : dag->max_active_runs))
			return 0;
	}
	if (pw_grow(&pass->taken, pass->n_taken, &pass->cap, sizeof *pass->taken, 8) != 0)
		return PW_ERR;
	pass->taken[pass->n_taken++] = dag;
	return 1;
}

/* Claims a run pick took: makes it active and begins it, or fails it. */
static int claim_one(runner *r, const st_run_row *row, void *arg)
{
	long long now = ((const claim_pass *)arg)->now;
	char *etype = NULL, *emsg = NULL;
	rn_run *run = exec_run_new(r, row->pk, row->dag_id, row->run_id, row->conf,
				   row->options, &etype, &emsg);
	int rc;
	if (!run) {
		rc = etype ? st_run_set_state(r, row->pk, row->dag_id, row->run_id, RUN_FAILED,
					      RUN_QUEUED, now, etype, emsg)
			   : PW_ERR;
		if (etype)
			rn_info(r, "run %s/%s: %s: %s", row->dag_id, row->run_id, etype, emsg);
		r->work_changed = true; /* its slot, counted by pick, is free again */
	} else {
		rc = st_run_set_state(r, row->pk, row->dag_id, row->run_id, RUN_RUNNING, RUN_QUEUED,
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
	claim_pass pass = {.now = now};
	int rc = st_claim_queued(r, pick, claim_one, &pass);
	free(pass.taken);
	return rc;
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
	if (row->state != RUN_QUEUED)
		return PW_OK; /* finished meanwhile: nothing to cancel */
	rn_run *run = load_inactive(r, row);
	int rc = run ? exec_cancel(r, run, now) : PW_OK;
	exec_run_free(run);
	if (rc == PW_OK)
		rc = st_run_set_state(r, row->pk, row->dag_id, row->run_id, RUN_CANCELLED, RUN_QUEUED,
				      now, NULL, NULL);
	return rc;
}

/* Retries a failed or cancelled run: its failed tasks to pending, run queued. */
static int retry(runner *r, const st_run_row *row, long long now)
{
	if (row->state != RUN_FAILED && row->state != RUN_CANCELLED)
		return PW_OK; /* the API answered 409; or it changed meanwhile */
	rn_run *run = load_inactive(r, row);
	int rc = run ? exec_retry(r, run, now) : PW_OK;
	exec_run_free(run);
	if (rc == PW_OK)
		rc = st_run_set_state(r, row->pk, row->dag_id, row->run_id, RUN_QUEUED, row->state,
				      now, NULL, NULL);
	r->work_changed = true;
	return rc;
}

/* The index of the task named name in run's pipeline, or -1. */
static long task_index(const rn_run *run, const char *name)
{
	for (size_t t = 0; name && t < run->dag->n_tasks; t++)
		if (strcmp(run->dag->tasks[t].name, name) == 0)
			return (long)t;
	return -1;
}

/*
 * Ends the changes of a clear or a mark on a run that is not active: one
 * with tasks left to do goes (back) to queued, a finished one takes the
 * state its tasks make now.
 */
static int settle_inactive(runner *r, const st_run_row *row, rn_run *run, long long now)
{
	int settled = exec_settled_state(run);
	run_state state = settled < 0 ? RUN_QUEUED : (run_state)settled;
	r->work_changed = true;
	if (state == row->state || row->state == RUN_QUEUED)
		return PW_OK; /* a queued run stays queued until claimed */
	return st_run_set_state(r, row->pk, row->dag_id, row->run_id, state, row->state, now,
				NULL, NULL);
}

/*
 * A clear or a mark command: the run's task instances change, in the
 * active run when it is one, else in one loaded for the change.
 */
static int operate(runner *r, const st_command *c, long long now)
{
	rn_run *active = exec_find_run(r, c->run.pk);
	rn_run *run = active ? active : load_inactive(r, &c->run);
	bool *clear = NULL;
	int rc = PW_OK;
	if (!run)
		return PW_OK; /* its pipeline is gone: nothing to change */
	if (strcmp(c->kind, "clear") == 0) {
		json_object *ids = json_object_object_get(c->args, "task_ids");
		clear = calloc(run->dag->n_tasks + 1, sizeof *clear);
		if (!clear)
			rc = PW_ERR;
		for (size_t t = 0; clear && !ids && t < run->dag->n_tasks; t++)
			clear[t] = true;  /* no list: every task */
		for (size_t i = 0; clear && ids && i < json_object_array_length(ids); i++) {
			long t = task_index(run, json_object_get_string(
						 json_object_array_get_idx(ids, i)));
			if (t >= 0)
				clear[t] = true;
		}
		if (rc == PW_OK)
			rc = exec_clear(r, run, clear, active != NULL, now);
	} else {
		long t = task_index(run, json_object_get_string(
					 json_object_object_get(c->args, "task_id")));
		int state = ti_state_parse(json_object_get_string(
						json_object_object_get(c->args, "state")));
		if (t >= 0 && (state == TI_SUCCESS || state == TI_FAILED || state == TI_SKIPPED))
			rc = exec_mark(r, run, (size_t)t, (ti_state)state, now);
	}
	if (rc == PW_OK && !active)
		rc = settle_inactive(r, &c->run, run, now);
	free(clear);
	if (!active)
		exec_run_free(run);
	return rc;
}

static int apply_command(runner *r, const st_command *c, void *arg)
{
	long long now = *(long long *)arg;
	int rc;
	if (strcmp(c->kind, "cancel") == 0)
		rc = cancel(r, &c->run, now);
	else if (strcmp(c->kind, "retry") == 0)
		rc = retry(r, &c->run, now);
	else
		rc = operate(r, c, now);
	return rc == PW_OK ? st_command_done(r, c->id, now) : rc;
}

int sched_commands(runner *r, long long now)
{
	return st_each_command(r, apply_command, &now);
}

/*
 * latency.c - trigger -> first task started, as bench/runner measures it.
 *
 *     latency DATABASE DAG_ID COUNT
 *
 * With a runner already running (not --once) on DATABASE, COUNT times:
 * queues a run of DAG_ID through pw_store_insert_run (which also pokes the
 * runner's FIFO, as the API and the CLI do), polls the database every 1 ms
 * (up to 5 s) until the run's first try has a started_at, and records
 * task_tries.started_at - runs.queued_at (both ms, both from the database;
 * the runner stamps started_at with the time its loop woke up, before it
 * claims the run and forks). It also records, on its own microsecond clock,
 * the time from just before the insert to the moment its poll sees the
 * try's row committed ("observed": includes the claim, the fork, the commit
 * and up to 1 ms of polling).
 * It then waits for the run to end before queuing the next one, so every
 * sample starts from an idle runner.
 *
 * Prints one line per sample, then "observed_p50_ms X observed_p99_ms X
 * observed_max_ms X" and a final line "p50 N p99 N max N n N timeouts N". Exit status 1 on any error.
 *
 *     latency DATABASE DAG_ID COUNT BACKLOG_DAG BACKLOG_N
 *
 * First queues BACKLOG_N runs of BACKLOG_DAG at once (one transaction),
 * then takes the COUNT samples while that backlog drains, then waits for
 * the backlog to end. Every 1 ms poll also counts the backlog's running
 * runs. Before the final line it prints "backlog_runs N drain_ms X
 * max_running N not_success N": from the first insert to the last of
 * them ending, the most running at once seen (max_active_runs bounds it),
 * and how many did not end in success.
 * Built by bench/runner against the build tree's src/libpipewright.a.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store.h"

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Wall clock, microseconds. */
static long long now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

/* The backlog, as the last tick saw it. */
static int backlog_open = 1, backlog_max_running, backlog_bad;
static long long backlog_end;

/*
 * Sleeps 1 ms, then (with a backlog) counts its running and open runs:
 * keeps the most running seen and when the last one ended.
 */
static void tick(sqlite3_stmt *q, const char *backlog_dag)
{
	sleep_ms(1);
	if (!backlog_dag || !backlog_open)
		return;
	sqlite3_bind_text(q, 1, backlog_dag, -1, SQLITE_STATIC);
	if (sqlite3_step(q) == SQLITE_ROW) {
		int running = sqlite3_column_int(q, 0);
		if (running > backlog_max_running)
			backlog_max_running = running;
		backlog_open = sqlite3_column_int(q, 1);
		backlog_bad = sqlite3_column_int(q, 2);
		if (!backlog_open)
			backlog_end = now_us();
	}
	sqlite3_reset(q);
}

/* Queues n runs of dag in one transaction, as n triggers at once. 0 or -1. */
static int queue_backlog(pw_store *s, const char *dag, int n)
{
	sqlite3 *db = pw_store_db(s);
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	for (int i = 0; i < n; i++) {
		char run_id[64];
		snprintf(run_id, sizeof run_id, "backlog-%d-%d", (int)time(NULL), i);
		pw_run_new rn = {.dag_id = dag, .run_id = run_id, .run_type = "manual"};
		if (pw_store_insert_run(s, &rn, NULL) != PW_OK)
			goto fail;
	}
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
		return 0;
fail:
	fprintf(stderr, "latency: cannot queue the backlog: %s\n", sqlite3_errmsg(db));
	return -1;
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted v[0..n). */
static long long pct(const long long *v, int n, int p)
{
	int k = (p * n + 99) / 100;
	if (k < 1)
		k = 1;
	return v[k - 1];
}

int main(int argc, char **argv)
{
	if (argc != 4 && argc != 6) {
		fprintf(stderr, "usage: %s DATABASE DAG_ID COUNT [BACKLOG_DAG BACKLOG_N]\n",
			argv[0]);
		return 2;
	}
	const char *dbpath = argv[1], *dag = argv[2];
	const char *backlog_dag = argc == 6 ? argv[4] : NULL;
	int count = atoi(argv[3]), backlog_n = argc == 6 ? atoi(argv[5]) : 0;
	if (count < 1)
		count = 1;

	pw_store *s;
	char *err = NULL;
	if (pw_store_open(dbpath, &s, &err) != PW_OK) {
		fprintf(stderr, "latency: %s\n", err ? err : "cannot open the database");
		return 1;
	}
	sqlite3 *db = pw_store_db(s);
	sqlite3_stmt *q_start, *q_state, *q_backlog = NULL;
	if (sqlite3_prepare_v2(db,
			       "SELECT r.id, r.queued_at, t.started_at FROM runs r"
			       " LEFT JOIN task_tries t ON t.run_pk = r.id"
			       " WHERE r.dag_id = ?1 AND r.run_id = ?2"
			       " ORDER BY t.started_at IS NULL, t.started_at LIMIT 1",
			       -1, &q_start, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT state FROM runs WHERE id = ?1", -1,
			       &q_state, NULL) != SQLITE_OK) {
		fprintf(stderr, "latency: %s\n", sqlite3_errmsg(db));
		return 1;
	}

	long long backlog_t0 = now_us();
	if (backlog_dag && queue_backlog(s, backlog_dag, backlog_n) != 0)
		return 1;
	if (backlog_dag && sqlite3_prepare_v2(db,
			"SELECT count(*) FILTER (WHERE state = 'running'),"
			" count(*) FILTER (WHERE state IN ('queued', 'running')),"
			" count(*) FILTER (WHERE state IN ('failed', 'cancelled'))"
			" FROM runs WHERE dag_id = ?1", -1, &q_backlog, NULL) != SQLITE_OK) {
		fprintf(stderr, "latency: %s\n", sqlite3_errmsg(db));
		return 1;
	}

	long long *lat = calloc((size_t)count, sizeof *lat);
	long long *obs = calloc((size_t)count, sizeof *obs);
	int n = 0, timeouts = 0;
	for (int i = 0; i < count; i++) {
		char run_id[64];
		snprintf(run_id, sizeof run_id, "bench-%d-%d", (int)time(NULL), i);
		pw_run_new rn = {.dag_id = dag, .run_id = run_id, .run_type = "manual"};
		long long t0 = now_us();
		if (pw_store_insert_run(s, &rn, NULL) != PW_OK) {
			fprintf(stderr, "latency: cannot queue run %s\n", run_id);
			return 1;
		}
		/* Poll for the first try's start. */
		long long run_pk = 0, queued = 0, started = 0;
		for (int w = 0; w < 5000 && !started; w++) {
			sqlite3_bind_text(q_start, 1, dag, -1, SQLITE_STATIC);
			sqlite3_bind_text(q_start, 2, run_id, -1, SQLITE_STATIC);
			if (sqlite3_step(q_start) == SQLITE_ROW) {
				run_pk = sqlite3_column_int64(q_start, 0);
				queued = sqlite3_column_int64(q_start, 1);
				if (sqlite3_column_type(q_start, 2) != SQLITE_NULL)
					started = sqlite3_column_int64(q_start, 2);
			}
			sqlite3_reset(q_start);
			if (!started)
				tick(q_backlog, backlog_dag);
		}
		if (!started) {
			timeouts++;
			fprintf(stderr, "latency: run %s: no task started within 5 s\n", run_id);
		} else {
			obs[n] = now_us() - t0;
			lat[n] = started - queued;
			printf("latency_ms %lld observed_us %lld\n", lat[n], obs[n]);
			n++;
		}
		/* Wait (up to 10 s) for the run to end, so the runner is idle again. */
		for (int w = 0; w < 10000; w++) {
			char state[16] = "";
			sqlite3_bind_int64(q_state, 1, run_pk);
			if (sqlite3_step(q_state) == SQLITE_ROW)
				snprintf(state, sizeof state, "%s",
					 (const char *)sqlite3_column_text(q_state, 0));
			sqlite3_reset(q_state);
			if (strcmp(state, "success") == 0 || strcmp(state, "failed") == 0 ||
			    strcmp(state, "cancelled") == 0)
				break;
			tick(q_backlog, backlog_dag);
		}
		/* Let the runner go back to sleep in poll() before the next one. */
		sleep_ms(20);
	}
	/* Then the rest of the backlog drains. */
	while (backlog_dag && backlog_open) {
		tick(q_backlog, backlog_dag);
		if (now_us() - backlog_t0 > 600 * 1000000LL) {
			fprintf(stderr, "latency: the backlog did not drain within 600 s\n");
			return 1;
		}
	}
	if (backlog_dag)
		printf("backlog_runs %d drain_ms %.1f max_running %d not_success %d\n", backlog_n,
		       (backlog_end - backlog_t0) / 1000.0, backlog_max_running, backlog_bad);
	sqlite3_finalize(q_backlog);
	sqlite3_finalize(q_start);
	sqlite3_finalize(q_state);
	pw_store_close(s);

	if (n == 0) {
		fprintf(stderr, "latency: no sample\n");
		return 1;
	}
	qsort(lat, (size_t)n, sizeof *lat, cmp_ll);
	qsort(obs, (size_t)n, sizeof *obs, cmp_ll);
	printf("observed_p50_ms %.1f observed_p99_ms %.1f observed_max_ms %.1f\n",
	       pct(obs, n, 50) / 1000.0, pct(obs, n, 99) / 1000.0, obs[n - 1] / 1000.0);
	printf("p50 %lld p99 %lld max %lld n %d timeouts %d\n", pct(lat, n, 50),
	       pct(lat, n, 99), lat[n - 1], n, timeouts);
	free(lat);
	free(obs);
	return timeouts ? 1 : 0;
}

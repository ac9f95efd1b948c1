/* harness.c - see harness.h. */
#include "harness.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define POLL_MS 20

/* Runners of the live projects, so that hr_reap can record their status. */
static hr_runner *tracked[64];

static void track(hr_runner *r)
{
	for (size_t i = 0; i < sizeof tracked / sizeof *tracked; i++)
		if (!tracked[i]) {
			tracked[i] = r;
			return;
		}
	fail_msg("too many runners tracked");
}

static void untrack(hr_runner *r)
{
	for (size_t i = 0; i < sizeof tracked / sizeof *tracked; i++)
		if (tracked[i] == r)
			tracked[i] = NULL;
}

void hr_reap(void)
{
	int st;
	pid_t pid;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		for (size_t i = 0; i < sizeof tracked / sizeof *tracked; i++)
			if (tracked[i] && tracked[i]->pid == pid && !tracked[i]->exited) {
				tracked[i]->exited = true;
				tracked[i]->status = st;
			}
	}
}

void hr_sleep_ms(int ms)
{
	while (ms > 0) {
		int step = ms < POLL_MS ? ms : POLL_MS;
		struct timespec ts = {0, (long)step * 1000000L};
		hr_reap();
		nanosleep(&ts, NULL);
		ms -= step;
	}
	hr_reap();
}

static const char *ring(hr_project *p, const char *s)
{
	char *slot = p->ring[p->ring_next];
	p->ring_next = (p->ring_next + 1) % (int)(sizeof p->ring / sizeof *p->ring);
	snprintf(slot, sizeof p->ring[0], "%s", s);
	return slot;
}

/* --- the project folder ------------------------------------------------ */

hr_project *hr_project_new(int max_parallel)
{
	char *err = NULL;
	hr_project *p = calloc(1, sizeof *p);

	assert_non_null(p);
	/* Orphaned task processes come to us (and are reaped), not to init. */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
		fail_msg("prctl(PR_SET_CHILD_SUBREAPER): %s", strerror(errno));
	char *tmp = th_mkdtemp();
	char real[PATH_MAX];
	if (!realpath(tmp, real))
		fail_msg("realpath %s: %s", tmp, strerror(errno));
	free(tmp);
	p->dir = strdup(real);
	assert_non_null(p->dir);
	char settings[64];
	snprintf(settings, sizeof settings, "max_parallel_tasks: %d", max_parallel);
	hr_settings(p, settings);
	hr_catalog(p, "{}\n");
	char *dags = hr_path(p, "dags"), *var = hr_path(p, "var");
	if (mkdir(dags, 0755) != 0 || mkdir(var, 0755) != 0)
		fail_msg("mkdir: %s", strerror(errno));
	free(dags);
	free(var);
	p->db_path = hr_path(p, "var/pipewright.db");
	if (pw_store_open(p->db_path, &p->store, &err) != PW_OK)
		fail_msg("pw_store_open %s: %s", p->db_path, err ? err : "?");
	return p;
}

void hr_pass(hr_project *p)
{
	p->quiet = true;
}

/* Kills the groups of tries that never recorded an end (no test leaks). */
static void kill_leftover_tries(hr_project *p)
{
	sqlite3_stmt *st = NULL;
	pid_t pids[256];
	int n = 0;

	if (!p->store ||
	    sqlite3_prepare_v2(pw_store_db(p->store),
			       "SELECT pid FROM task_tries"
			       " WHERE ended_at IS NULL AND pid IS NOT NULL",
			       -1, &st, NULL) != SQLITE_OK)
		return;
	while (n < 256 && sqlite3_step(st) == SQLITE_ROW)
		pids[n++] = (pid_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	for (int i = 0; i < n; i++) {
		if (pids[i] <= 1)
			continue;
		if (kill(-pids[i], SIGKILL) == 0)
			hr_wait_group_gone(pids[i], 5000);
	}
}

void hr_project_free(hr_project *p)
{
	if (!p)
		return;
	for (int i = 0; i < p->n_runners; i++)
		if (!p->runners[i].exited)
			hr_runner_stop(p, p->runners[i].pid, 10000);
	kill_leftover_tries(p);
	hr_reap();
	if (!p->quiet)
		hr_dump_logs(p);
	for (int i = 0; i < p->n_runners; i++) {
		untrack(&p->runners[i]);
		free(p->runners[i].log_path);
	}
	pw_store_close(p->store);
	free(p->db_path);
	if (getenv("PW_KEEP_TMP")) {
		fprintf(stderr, "kept %s\n", p->dir);
		free(p->dir);
	} else {
		th_rmtree(p->dir);
	}
	free(p);
}

char *hr_path(hr_project *p, const char *relpath)
{
	char *path = pw_path_join(p->dir, relpath);
	assert_non_null(path);
	return path;
}

void hr_write(hr_project *p, const char *relpath, const char *text)
{
	th_write(p->dir, relpath, text);
}

char *hr_read(hr_project *p, const char *relpath)
{
	char *path = hr_path(p, relpath);
	char *text = th_read(path);
	free(path);
	return text;
}

bool hr_exists(hr_project *p, const char *relpath)
{
	char *path = hr_path(p, relpath);
	bool yes = access(path, F_OK) == 0;
	free(path);
	return yes;
}

void hr_dag(hr_project *p, const char *dag_id, const char *yaml)
{
	char rel[512];
	snprintf(rel, sizeof rel, "dags/%s.yml", dag_id);
	hr_write(p, rel, yaml);
}

void hr_settings(hr_project *p, const char *settings_flow)
{
	char *text = pw_asprintf("project_name: itest\npackage_name: itest\n"
				 "version: \"0.1\"\nsettings: {%s}\n",
				 settings_flow);
	assert_non_null(text);
	hr_write(p, "pipewright.yml", text);
	free(text);
}

void hr_catalog(hr_project *p, const char *yaml)
{
	hr_write(p, "conf/base/catalog.yml", yaml);
}

void hr_parameters(hr_project *p, const char *yaml)
{
	hr_write(p, "conf/base/parameters.yml", yaml);
}

void hr_pools(hr_project *p, const char *yaml)
{
	hr_write(p, "conf/base/pools.yml", yaml);
}

/* --- runners ------------------------------------------------------------ */

static const char *runner_binary(void)
{
	static char path[PATH_MAX];
	const char *b = getenv("PW_BUILDDIR");

	snprintf(path, sizeof path, "%s/runner-daemon/pipewright-runner",
		 b && *b ? b : ".");
	return path;
}

static hr_runner *find_runner(hr_project *p, pid_t pid)
{
	for (int i = 0; i < p->n_runners; i++)
		if (p->runners[i].pid == pid)
			return &p->runners[i];
	fail_msg("pid %d is not a runner of this test", (int)pid);
	return NULL;
}

pid_t hr_runner_start(hr_project *p, const char *const *args)
{
	const char *argv[32];
	int n = 0;

	if (p->n_runners == HR_MAX_RUNNERS)
		fail_msg("too many runners in one test");
	const char *bin = runner_binary();
	if (access(bin, X_OK) != 0)
		fail_msg("%s: %s", bin, strerror(errno));
	argv[n++] = bin;
	argv[n++] = "--project";
	argv[n++] = p->dir;
	for (int i = 0; args && args[i]; i++) {
		if (n == 31)
			fail_msg("too many runner arguments");
		argv[n++] = args[i];
	}
	argv[n] = NULL;

	hr_runner *r = &p->runners[p->n_runners];
	char rel[64];
	snprintf(rel, sizeof rel, "runner-%d.log", p->n_runners + 1);
	r->log_path = hr_path(p, rel);
	int fd = open(r->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		fail_msg("open %s: %s", r->log_path, strerror(errno));
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		fail_msg("fork: %s", strerror(errno));
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);
		if (null < 0 || dup2(null, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(126);
		/* The project is named by --project only. */
		unsetenv("PIPEWRIGHT_PROJECT_PATH");
		unsetenv("PIPEWRIGHT_ENV");
		unsetenv("PIPEWRIGHT_CONF_SOURCE");
		execv(bin, (char *const *)argv);
		dprintf(2, "harness: exec %s: %s\n", bin, strerror(errno));
		_exit(127);
	}
	close(fd);
	r->pid = pid;
	r->exited = false;
	r->status = 0;
	p->n_runners++;
	track(r);
	return pid;
}

bool hr_runner_wait(hr_project *p, pid_t pid, int timeout_ms, int *status)
{
	hr_runner *r = find_runner(p, pid);

	for (int waited = 0;; waited += POLL_MS) {
		hr_reap();
		if (r->exited) {
			if (status)
				*status = r->status;
			return true;
		}
		if (waited >= timeout_ms)
			return false;
		hr_sleep_ms(POLL_MS);
	}
}

/* Sends sig and waits (unbounded after SIGKILL) until the runner is reaped. */
static int signal_and_wait(hr_project *p, hr_runner *r, int sig, int timeout_ms)
{
	int st = 0;

	if (!r->exited && kill(r->pid, sig) != 0 && errno != ESRCH)
		fail_msg("kill %d: %s", (int)r->pid, strerror(errno));
	if (hr_runner_wait(p, r->pid, timeout_ms, &st))
		return st;
	fprintf(stderr, "harness: runner %d ignored signal %d; SIGKILL\n",
		(int)r->pid, sig);
	kill(r->pid, SIGKILL);
	while (!hr_runner_wait(p, r->pid, 1000, &st))
		;
	return st;
}

int hr_runner_stop(hr_project *p, pid_t pid, int timeout_ms)
{
	return signal_and_wait(p, find_runner(p, pid), SIGTERM, timeout_ms);
}

void hr_runner_kill9(hr_project *p, pid_t pid)
{
	signal_and_wait(p, find_runner(p, pid), SIGKILL, 10000);
}

char *hr_runner_log(hr_project *p, pid_t pid)
{
	char *text = th_read(find_runner(p, pid)->log_path);
	if (!text)
		text = strdup("");
	assert_non_null(text);
	return text;
}

void hr_dump_logs(hr_project *p)
{
	for (int i = 0; i < p->n_runners; i++) {
		char *text = th_read(p->runners[i].log_path);
		fprintf(stderr, "---- runner %d (pid %d) log %s ----\n%s", i + 1,
			(int)p->runners[i].pid, p->runners[i].log_path,
			text ? text : "(none)\n");
		free(text);
	}
	if (p->n_runners)
		fprintf(stderr, "---- end of runner logs ----\n");
}

/* --- SQL ------------------------------------------------------------------ */

static sqlite3_stmt *prepare_va(hr_project *p, const char *sql,
				const char *types, va_list ap)
{
	sqlite3 *db = pw_store_db(p->store);
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("prepare %s: %s", sql, sqlite3_errmsg(db));
	for (int i = 0; types && types[i]; i++) {
		int rc;
		if (types[i] == 's') {
			const char *v = va_arg(ap, const char *);
			rc = v ? sqlite3_bind_text(st, i + 1, v, -1, SQLITE_TRANSIENT)
			       : sqlite3_bind_null(st, i + 1);
		} else if (types[i] == 'i') {
			rc = sqlite3_bind_int(st, i + 1, va_arg(ap, int));
		} else if (types[i] == 'l') {
			rc = sqlite3_bind_int64(st, i + 1, va_arg(ap, long long));
		} else {
			sqlite3_finalize(st);
			fail_msg("bad bind type '%c'", types[i]);
			return NULL;
		}
		if (rc != SQLITE_OK) {
			sqlite3_finalize(st);
			fail_msg("bind %d of %s: %s", i + 1, sql, sqlite3_errmsg(db));
		}
	}
	return st;
}

static sqlite3_stmt *prepare(hr_project *p, const char *sql, const char *types, ...)
{
	va_list ap;
	va_start(ap, types);
	sqlite3_stmt *st = prepare_va(p, sql, types, ap);
	va_end(ap);
	return st;
}

/* sqlite3_step that fails the test on an error. */
static int step(hr_project *p, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		char msg[256];
		snprintf(msg, sizeof msg, "%s", sqlite3_errmsg(pw_store_db(p->store)));
		sqlite3_finalize(st);
		fail_msg("sqlite step: %s", msg);
	}
	return rc;
}

void hr_sql(hr_project *p, const char *sql, const char *types, ...)
{
	va_list ap;
	va_start(ap, types);
	sqlite3_stmt *st = prepare_va(p, sql, types, ap);
	va_end(ap);
	while (step(p, st) == SQLITE_ROW)
		;
	sqlite3_finalize(st);
	pw_store_wake(p->store);
}

long long hr_sql_int(hr_project *p, long long dflt, const char *sql,
		     const char *types, ...)
{
	va_list ap;
	va_start(ap, types);
	sqlite3_stmt *st = prepare_va(p, sql, types, ap);
	va_end(ap);
	long long v = dflt;
	if (step(p, st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

char *hr_sql_text(hr_project *p, const char *sql, const char *types, ...)
{
	va_list ap;
	va_start(ap, types);
	sqlite3_stmt *st = prepare_va(p, sql, types, ap);
	va_end(ap);
	char *v = NULL;
	if (step(p, st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
		v = strdup((const char *)sqlite3_column_text(st, 0));
		assert_non_null(v);
	}
	sqlite3_finalize(st);
	return v;
}

/* --- intent ----------------------------------------------------------------- */

static json_object *parse_json(const char *text)
{
	if (!text)
		return NULL;
	json_object *o = json_tokener_parse(text);
	if (!o)
		fail_msg("bad JSON in test: %s", text);
	return o;
}

const char *hr_queue_run(hr_project *p, const char *dag_id, const char *run_id,
			 const char *options_json, const char *conf_json)
{
	json_object *options = parse_json(options_json);
	json_object *conf = parse_json(conf_json);
	pw_run_new run = {
		.dag_id = dag_id, .run_id = run_id, .run_type = "manual",
		.conf = conf, .options = options, .triggered_by = "itest",
	};
	char *id = NULL;
	int rc = pw_store_insert_run(p->store, &run, &id);
	json_object_put(options);
	json_object_put(conf);
	if (rc != PW_OK || !id) {
		free(id);
		fail_msg("pw_store_insert_run %s/%s: %d", dag_id,
			 run_id ? run_id : "(generated)", rc);
	}
	const char *r = ring(p, id);
	free(id);
	return r;
}

void hr_request(hr_project *p, const char *dag_id, const char *run_id,
		const char *kind)
{
	int rc = pw_store_request(p->store, dag_id, run_id, kind);
	if (rc != PW_OK)
		fail_msg("pw_store_request %s %s/%s: %d", kind, dag_id, run_id, rc);
}

void hr_set_paused(hr_project *p, const char *dag_id, bool paused)
{
	if (pw_store_set_paused(p->store, dag_id, paused) != PW_OK)
		fail_msg("pw_store_set_paused %s", dag_id);
}

void hr_pool_add(hr_project *p, const char *name, int slots)
{
	hr_sql(p, "INSERT INTO pools(name, slots, description) VALUES (?1, ?2, '')",
	       "si", name, slots);
}

/* --- readers ---------------------------------------------------------------- */

const char *hr_run_state(hr_project *p, const char *dag_id, const char *run_id)
{
	char *s = hr_sql_text(p, "SELECT state FROM runs WHERE dag_id = ?1 AND run_id = ?2",
			      "ss", dag_id, run_id);
	if (!s)
		return NULL;
	const char *r = ring(p, s);
	free(s);
	return r;
}

long long hr_run_pk(hr_project *p, const char *dag_id, const char *run_id)
{
	long long pk = hr_sql_int(p, -1, "SELECT id FROM runs WHERE dag_id = ?1 AND run_id = ?2",
				  "ss", dag_id, run_id);
	if (pk < 0)
		fail_msg("no run %s/%s", dag_id, run_id);
	return pk;
}

static void copy_text(char *dst, size_t n, sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	snprintf(dst, n, "%s", t ? (const char *)t : "");
}

bool hr_task(hr_project *p, const char *dag_id, const char *run_id,
	     const char *task_id, hr_ti *out)
{
	sqlite3_stmt *st = prepare(p,
		"SELECT ti.state, ti.try_number, ti.max_tries, ti.exit_code,"
		"       ti.started_at, ti.ended_at"
		"  FROM task_instances ti JOIN runs r ON r.id = ti.run_pk"
		" WHERE r.dag_id = ?1 AND r.run_id = ?2 AND ti.task_id = ?3",
		"sss", dag_id, run_id, task_id);
	bool found = step(p, st) == SQLITE_ROW;
	memset(out, 0, sizeof *out);
	if (found) {
		copy_text(out->state, sizeof out->state, st, 0);
		out->try_number = sqlite3_column_int(st, 1);
		out->max_tries = sqlite3_column_int(st, 2);
		out->has_exit = sqlite3_column_type(st, 3) != SQLITE_NULL;
		out->exit_code = sqlite3_column_int(st, 3);
		out->started_at = sqlite3_column_int64(st, 4);
		out->ended_at = sqlite3_column_int64(st, 5);
	}
	sqlite3_finalize(st);
	return found;
}

const char *hr_task_state(hr_project *p, const char *dag_id, const char *run_id,
			  const char *task_id)
{
	hr_ti ti;
	return hr_task(p, dag_id, run_id, task_id, &ti) ? ring(p, ti.state) : NULL;
}

int hr_task_count(hr_project *p, const char *dag_id, const char *run_id)
{
	return (int)hr_sql_int(p, 0,
		"SELECT count(*) FROM task_instances ti JOIN runs r ON r.id = ti.run_pk"
		" WHERE r.dag_id = ?1 AND r.run_id = ?2", "ss", dag_id, run_id);
}

size_t hr_tries(hr_project *p, const char *dag_id, const char *run_id,
		const char *task_id, hr_try **out)
{
	sqlite3_stmt *st = prepare(p,
		"SELECT t.task_id, t.try_number, t.state, t.started_at, t.ended_at,"
		"       t.exit_code, t.pid, t.reason, t.log_path"
		"  FROM task_tries t JOIN runs r ON r.id = t.run_pk"
		" WHERE r.dag_id = ?1 AND r.run_id = ?2"
		"   AND (?3 IS NULL OR t.task_id = ?3)"
		" ORDER BY t.started_at, t.task_id, t.try_number",
		"sss", dag_id, run_id, task_id);
	hr_try *v = NULL;
	size_t n = 0;

	while (step(p, st) == SQLITE_ROW) {
		hr_try *nv = realloc(v, (n + 1) * sizeof *v);
		if (!nv) {
			free(v);
			sqlite3_finalize(st);
			fail_msg("out of memory");
		}
		v = nv;
		hr_try *t = &v[n++];
		memset(t, 0, sizeof *t);
		copy_text(t->task_id, sizeof t->task_id, st, 0);
		t->try_number = sqlite3_column_int(st, 1);
		copy_text(t->state, sizeof t->state, st, 2);
		t->started_at = sqlite3_column_int64(st, 3);
		t->ended_at = sqlite3_column_int64(st, 4);
		t->has_exit = sqlite3_column_type(st, 5) != SQLITE_NULL;
		t->exit_code = sqlite3_column_int(st, 5);
		t->pid = (pid_t)sqlite3_column_int64(st, 6);
		copy_text(t->reason, sizeof t->reason, st, 7);
		copy_text(t->log_path, sizeof t->log_path, st, 8);
	}
	sqlite3_finalize(st);
	*out = v;
	return n;
}

char *hr_xcom(hr_project *p, const char *dag_id, const char *run_id,
	      const char *task_id, const char *key)
{
	return hr_sql_text(p,
		"SELECT x.value FROM xcom x JOIN runs r ON r.id = x.run_pk"
		" WHERE r.dag_id = ?1 AND r.run_id = ?2 AND x.task_id = ?3"
		"   AND x.key = ?4", "ssss", dag_id, run_id, task_id, key);
}

char *hr_try_log(hr_project *p, const char *dag_id, const char *run_id,
		 const char *task_id, int try_number)
{
	char *rel = hr_sql_text(p,
		"SELECT t.log_path FROM task_tries t JOIN runs r ON r.id = t.run_pk"
		" WHERE r.dag_id = ?1 AND r.run_id = ?2 AND t.task_id = ?3"
		"   AND t.try_number = ?4", "sssi", dag_id, run_id, task_id, try_number);
	char *path;
	if (rel && *rel) {
		path = hr_path(p, rel);   /* absolute paths stay as they are */
	} else {
		path = pw_asprintf("%s/var/logs/%s/%s/%s/%d.log", p->dir, dag_id,
				   run_id, task_id, try_number);
		assert_non_null(path);
	}
	free(rel);
	char *text = th_read(path);
	free(path);
	return text;
}

char *hr_state_events(hr_project *p, const char *dag_id, const char *run_id,
		      const char *task_id)
{
	sqlite3_stmt *st = prepare(p,
		"SELECT data FROM events WHERE type = ?1 AND dag_id = ?2"
		"   AND run_id = ?3 AND task_id IS ?4 ORDER BY id",
		"ssss", task_id ? "task.state" : "run.state", dag_id, run_id, task_id);
	char seq[1024] = "", last[64] = "", bad[512] = "";

	while (step(p, st) == SQLITE_ROW) {
		const char *data = (const char *)sqlite3_column_text(st, 0);
		json_object *o = json_tokener_parse(data ? data : "");
		json_object *sv = NULL, *pv = NULL;
		const char *state = o && json_object_object_get_ex(o, "state", &sv)
			? json_object_get_string(sv) : NULL;
		const char *prev = o && json_object_object_get_ex(o, "previous_state", &pv)
			? json_object_get_string(pv) : NULL;
		if (!state && !*bad)
			snprintf(bad, sizeof bad, "event without a state: %s",
				 data ? data : "(null)");
		if (state && *last && !*bad && (!prev || strcmp(prev, last) != 0))
			snprintf(bad, sizeof bad,
				 "event %s has previous_state %s, but the state before was %s",
				 state, prev ? prev : "(none)", last);
		if (state) {
			size_t len = strlen(seq);
			snprintf(seq + len, sizeof seq - len, "%s%s", len ? "," : "", state);
			snprintf(last, sizeof last, "%s", state);
		}
		json_object_put(o);
	}
	sqlite3_finalize(st);
	if (*bad)
		fail_msg("%s %s/%s%s%s: %s (sequence %s)", task_id ? "task" : "run",
			 dag_id, run_id, task_id ? "/" : "", task_id ? task_id : "",
			 bad, seq);
	char *r = strdup(seq);
	assert_non_null(r);
	return r;
}

/* --- waiting ------------------------------------------------------------ */

void hr_wait_for(hr_project *p, bool (*pred)(hr_project *, void *), void *arg,
		 const char *what, int timeout_ms)
{
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		hr_reap();
		if (pred(p, arg))
			return;
		clock_gettime(CLOCK_MONOTONIC, &t);
		long long ms = (t.tv_sec - t0.tv_sec) * 1000LL +
			       (t.tv_nsec - t0.tv_nsec) / 1000000;
		if (ms >= timeout_ms)
			break;
		hr_sleep_ms(POLL_MS);
	}
	hr_dump_logs(p);
	p->quiet = true; /* already printed */
	fail_msg("timed out after %d ms waiting for %s", timeout_ms, what);
}

typedef struct state_wait {
	const char *dag_id, *run_id, *task_id, *state;
	char last[32];
	int try_number;
	pid_t pid;
} state_wait;

static bool run_in_state(hr_project *p, void *arg)
{
	state_wait *w = arg;
	const char *s = hr_run_state(p, w->dag_id, w->run_id);
	snprintf(w->last, sizeof w->last, "%s", s ? s : "(no run)");
	if (!w->state)
		return s && (!strcmp(s, "success") || !strcmp(s, "failed") ||
			     !strcmp(s, "cancelled"));
	return s && strcmp(s, w->state) == 0;
}

void hr_wait_run_state(hr_project *p, const char *dag_id, const char *run_id,
		       const char *state, int timeout_ms)
{
	state_wait w = {.dag_id = dag_id, .run_id = run_id, .state = state};
	char what[512];
	snprintf(what, sizeof what, "run %s/%s to be %s", dag_id, run_id, state);
	if (run_in_state(p, &w))
		return;
	/* Say where it got stuck when it never arrives. */
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		hr_sleep_ms(POLL_MS);
		if (run_in_state(p, &w))
			return;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000LL + (t.tv_nsec - t0.tv_nsec) / 1000000 >= timeout_ms)
			break;
	}
	hr_dump_logs(p);
	p->quiet = true;
	fail_msg("timed out after %d ms waiting for %s (it is %s)", timeout_ms,
		 what, w.last);
}

const char *hr_wait_run_end(hr_project *p, const char *dag_id,
			    const char *run_id, int timeout_ms)
{
	state_wait w = {.dag_id = dag_id, .run_id = run_id};
	char what[512];
	snprintf(what, sizeof what, "run %s/%s to end", dag_id, run_id);
	hr_wait_for(p, run_in_state, &w, what, timeout_ms);
	return ring(p, w.last);
}

static bool task_in_state(hr_project *p, void *arg)
{
	state_wait *w = arg;
	const char *s = hr_task_state(p, w->dag_id, w->run_id, w->task_id);
	return s && strcmp(s, w->state) == 0;
}

void hr_wait_task_state(hr_project *p, const char *dag_id, const char *run_id,
			const char *task_id, const char *state, int timeout_ms)
{
	state_wait w = {.dag_id = dag_id, .run_id = run_id, .task_id = task_id,
			.state = state};
	char what[512];
	snprintf(what, sizeof what, "task %s/%s/%s to be %s", dag_id, run_id,
		 task_id, state);
	hr_wait_for(p, task_in_state, &w, what, timeout_ms);
}

static bool try_has_pid(hr_project *p, void *arg)
{
	state_wait *w = arg;
	w->pid = (pid_t)hr_sql_int(p, 0,
		"SELECT t.pid FROM task_tries t JOIN runs r ON r.id = t.run_pk"
		" WHERE r.dag_id = ?1 AND r.run_id = ?2 AND t.task_id = ?3"
		"   AND t.try_number = ?4",
		"sssi", w->dag_id, w->run_id, w->task_id, w->try_number);
	return w->pid > 0;
}

pid_t hr_wait_try_pid(hr_project *p, const char *dag_id, const char *run_id,
		      const char *task_id, int try_number, int timeout_ms)
{
	state_wait w = {.dag_id = dag_id, .run_id = run_id, .task_id = task_id,
			.try_number = try_number};
	char what[512];
	snprintf(what, sizeof what, "try %d of %s/%s/%s to have a pid", try_number,
		 dag_id, run_id, task_id);
	hr_wait_for(p, try_has_pid, &w, what, timeout_ms);
	return w.pid;
}

bool hr_wait_group_gone(pid_t pgid, int timeout_ms)
{
	for (int waited = 0;; waited += POLL_MS) {
		hr_reap();
		if (kill(-pgid, 0) != 0 && errno == ESRCH)
			return true;
		if (waited >= timeout_ms)
			return false;
		hr_sleep_ms(POLL_MS);
	}
}

int hr_children(pid_t parent, const char *comm, char state, pid_t *out, int max)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)) && n < max) {
		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		char path[300], buf[512];
		snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		size_t len = fread(buf, 1, sizeof buf - 1, f);
		fclose(f);
		buf[len] = '\0';
		/* pid (comm) state ppid ... ; comm may hold spaces or ')' */
		char *open = strchr(buf, '('), *close = strrchr(buf, ')');
		if (!open || !close || close < open)
			continue;
		*close = '\0';
		int ppid = 0;
		char st;
		if (sscanf(close + 1, " %c %d", &st, &ppid) != 2)
			continue;
		if (ppid == parent && (!comm || !strncmp(open + 1, comm, strlen(comm))) &&
		    (!state || st == state))
			out[n++] = (pid_t)atoi(e->d_name);
	}
	closedir(d);
	return n;
}

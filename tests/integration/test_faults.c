/*
 * test_faults.c - the runner against faults (issue 17, the runner's part;
 * docs/runner.md "Faults"): a database another process keeps locked past
 * the busy timeout, a full disk (a small tmpfs, mounted here as root), and
 * tasks that misbehave. Real runners, shims, tasks, SQLite and tmpfs.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

#define W HR_WAIT_MS

static int setup(void **state)
{
	*state = hr_project_new(4);
	return 0;
}

static int teardown(void **state)
{
	hr_project *p = *state;
	/* The tmpfs of the disk-full tests: detached, so the folder can go. */
	for (int i = 0; i < 2; i++) {
		char *dir = hr_path(p, i ? "logs" : "var");
		(void)umount2(dir, MNT_DETACH);
		free(dir);
	}
	hr_project_free(p);
	return 0;
}

/* --- helpers ------------------------------------------------------------ */

static void expect_task(hr_project *p, const char *dag, const char *run,
			const char *task, const char *state)
{
	const char *s = hr_task_state(p, dag, run, task);
	if (!s || strcmp(s, state) != 0)
		fail_msg("task %s/%s/%s is %s, expected %s", dag, run, task,
			 s ? s : "(no task instance)", state);
}

static void expect_run(hr_project *p, const char *dag, const char *run, const char *state)
{
	const char *s = hr_wait_run_end(p, dag, run, 3 * W);
	if (strcmp(s, state) != 0) {
		hr_dump_logs(p);
		p->quiet = true;
		fail_msg("run %s/%s ended %s, expected %s", dag, run, s, state);
	}
}

/* The one try of a task, which must have ended with exit status code. */
static hr_try one_try(hr_project *p, const char *dag, const char *run,
		      const char *task, int code)
{
	hr_try *t, one;
	size_t n = hr_tries(p, dag, run, task, &t);
	if (n != 1)
		fail_msg("%s/%s/%s has %zu tries, expected 1", dag, run, task, n);
	one = t[0];
	free(t);
	if (!one.has_exit || one.exit_code != code)
		fail_msg("%s/%s/%s: exit code %s%d, expected %d (reason \"%s\")", dag,
			 run, task, one.has_exit ? "" : "none ", one.exit_code, code,
			 one.reason);
	return one;
}

static void expect_xcom(hr_project *p, const char *dag, const char *run,
			const char *task, const char *key, const char *json)
{
	char *v = hr_xcom(p, dag, run, task, key);
	if (json && (!v || strcmp(v, json) != 0))
		fail_msg("XCom %s of %s/%s/%s is %s, expected %s", key, dag, run, task,
			 v ? v : "(none)", json);
	if (!json && v)
		fail_msg("XCom %s of %s/%s/%s is %s, expected none", key, dag, run, task, v);
	free(v);
}

/* Number of times needle occurs in hay. */
static int count(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *c = hay; c && (c = strstr(c, needle)); c += strlen(needle))
		n++;
	return n;
}

static void expect_in(const char *text, const char *needle, const char *what)
{
	if (!text || !strstr(text, needle))
		fail_msg("%s lacks \"%s\":\n%s", what, needle, text ? text : "(none)");
}

/* The try's log once it holds needle (a shim may still copy into it). */
static char *log_with(hr_project *p, const char *dag, const char *run, const char *task,
		      const char *needle)
{
	char *log = NULL;
	for (int i = 0; i < W / 20; i++) {
		free(log);
		log = hr_try_log(p, dag, run, task, 1);
		if (log && strstr(log, needle))
			return log;
		hr_sleep_ms(20);
	}
	expect_in(log, needle, "the try's log");
	return log;
}

/* PRAGMA integrity_check answers "ok", and each state event came once. */
static void expect_consistent(hr_project *p, const char *dag, const char *run,
			      const char *const *tasks, const char *const *events)
{
	char *ok = hr_sql_text(p, "PRAGMA integrity_check", NULL);
	if (!ok || strcmp(ok, "ok") != 0)
		fail_msg("integrity_check: %s", ok ? ok : "(no answer)");
	free(ok);
	for (size_t i = 0; tasks[i]; i++) {
		char *ev = hr_state_events(p, dag, run, tasks[i]);
		if (!ev || strcmp(ev, events[i]) != 0)
			fail_msg("events of %s: %s, expected %s", tasks[i], ev ? ev : "(none)",
				 events[i]);
		free(ev);
	}
}

typedef struct log_wait {
	pid_t runner;
	const char *needle;
} log_wait;

static bool runner_said(hr_project *p, void *arg)
{
	const log_wait *w = arg;
	char *log = hr_runner_log(p, w->runner);
	bool found = log && strstr(log, w->needle);
	free(log);
	return found;
}

/* The runner is still the same process, and said needle exactly once. */
static void expect_said_once(hr_project *p, pid_t runner, const char *needle)
{
	if (kill(runner, 0) != 0)
		fail_msg("the runner %d exited", (int)runner);
	char *log = hr_runner_log(p, runner);
	if (count(log, needle) != 1)
		fail_msg("the runner said \"%s\" %d times, expected once:\n%s", needle,
			 count(log, needle), log);
	free(log);
}

/* A DAG whose tasks wait for the file "go" of the project, then run cmd. */
static void waiting_dag(hr_project *p, const char *dag, const char *tasks_yaml)
{
	hr_dag(p, dag, tasks_yaml);
}

static void touch(hr_project *p, const char *rel)
{
	hr_write(p, rel, "");
}

/* --- the database locked past the busy timeout ------------------------- */

/*
 * Another connection holds BEGIN IMMEDIATE for about 8 s (past the 5 s
 * busy timeout) while tries end: the runner says once that it waits and
 * why, goes on when the lock is gone, and records every end exactly once
 * (a success, a failure with its XCom, and the task after them).
 */
static void test_locked_database(void **state)
{
	hr_project *p = *state;
	waiting_dag(p, "lk",
		    "tasks:\n"
		    "  - id: ok\n"
		    "    command: 'while [ ! -e go ]; do sleep 0.05; done; echo ok-line'\n"
		    "  - id: bad\n"
		    "    command: 'while [ ! -e go ]; do sleep 0.05; done;"
		    " echo \"{\\\"seen\\\": 1}\" > \"$PIPEWRIGHT_XCOM\"; exit 3'\n"
		    "  - id: after\n"
		    "    upstream: [ok]\n"
		    "    command: 'echo after-line'\n");
	hr_queue_run(p, "lk", "r1", NULL, NULL);
	pid_t runner = hr_runner_start(p, NULL);
	hr_wait_task_state(p, "lk", "r1", "ok", "running", W);
	hr_wait_task_state(p, "lk", "r1", "bad", "running", W);

	sqlite3 *db = NULL;
	if (sqlite3_open(p->db_path, &db) != SQLITE_OK ||
	    sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		fail_msg("BEGIN IMMEDIATE: %s", sqlite3_errmsg(db));
	touch(p, "go");
	log_wait w = {runner, "cannot write to the database: database is locked"};
	hr_wait_for(p, runner_said, &w, "the runner's wait line", W);
	hr_sleep_ms(3000); /* the lock outlives a few retries */
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(db);

	expect_run(p, "lk", "r1", "failed");
	expect_task(p, "lk", "r1", "ok", "success");
	expect_task(p, "lk", "r1", "bad", "failed");
	expect_task(p, "lk", "r1", "after", "success");
	one_try(p, "lk", "r1", "ok", 0);
	one_try(p, "lk", "r1", "bad", 3);
	one_try(p, "lk", "r1", "after", 0);
	expect_xcom(p, "lk", "r1", "ok", "return_value", "\"ok-line\"");
	expect_xcom(p, "lk", "r1", "bad", "seen", "1");
	expect_consistent(p, "lk", "r1", (const char *const[]){"ok", "bad", "after", NULL},
			  (const char *const[]){"queued,running,success",
						"queued,running,failed",
						"pending,queued,running,success"});
	expect_said_once(p, runner, "cannot write to the database");
	expect_said_once(p, runner, "writes commit again, after ");
	/* The failed step and perhaps its heartbeat; then only quiet probes. */
	char *log = hr_runner_log(p, runner);
	if (count(log, "pipewright: store: database is locked") > 2)
		fail_msg("the store complained on every retry:\n%s", log);
	free(log);
	hr_pass(p);
}

/* --- a full disk ---------------------------------------------------------- */

/* Mounts a tmpfs of size bytes on the project's var/ (database, logs). */
static bool mount_var(hr_project *p, const char *size)
{
	char *var = hr_path(p, "var"), opts[64];
	char *err = NULL;
	snprintf(opts, sizeof opts, "size=%s,mode=0755", size);
	pw_store_close(p->store);
	p->store = NULL;
	bool ok = mount("tmpfs", var, "tmpfs", 0, opts) == 0;
	if (!ok)
		print_message("mount tmpfs on %s: %s (needs root): skipped\n", var,
			      strerror(errno));
	if (pw_store_open(p->db_path, &p->store, &err) != PW_OK)
		fail_msg("pw_store_open %s: %s", p->db_path, err ? err : "?");
	free(var);
	return ok;
}

/* Empties the WAL, so that the runner's next commit must grow it. */
static void truncate_wal(hr_project *p)
{
	for (int i = 0; i < 500; i++) {
		long long busy = hr_sql_int(p, 1, "PRAGMA wal_checkpoint(TRUNCATE)", NULL);
		struct stat sb;
		char *wal = hr_path(p, "var/pipewright.db-wal");
		bool empty = stat(wal, &sb) == 0 && sb.st_size == 0;
		free(wal);
		if (busy == 0 && empty)
			return;
		hr_sleep_ms(20);
	}
	fail_msg("cannot empty the WAL");
}

/* Writes <rel> until its file system is full. */
static void fill_file(hr_project *p, const char *rel)
{
	char *path = hr_path(p, rel), buf[65536];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	memset(buf, 'f', sizeof buf);
	if (fd < 0)
		fail_msg("open %s: %s", path, strerror(errno));
	while (write(fd, buf, sizeof buf) > 0)
		;
	while (write(fd, buf, 1) > 0)
		;
	if (errno != ENOSPC)
		fail_msg("filling %s: %s", path, strerror(errno));
	close(fd);
	free(path);
}

/*
 * The database and logs on a small tmpfs; it fills up while a task runs
 * and ends (exit 0, output in the log) and fills up while the runner
 * records it. Once space is freed, the task is recorded as it ended
 * (success, not "lost"), its output is in its log, the next task runs,
 * the database is intact and no event came twice.
 */
static void test_disk_full(void **state)
{
	hr_project *p = *state;
	if (!mount_var(p, "16m")) {
		hr_pass(p);
		skip();
	}
	char *go = hr_path(p, "go"), dag[1024];
	snprintf(dag, sizeof dag,
		 "tasks:\n"
		 "  - id: a\n"
		 "    command: 'while [ ! -e %s ]; do sleep 0.05; done; echo a-output; echo a-last'\n"
		 "  - id: b\n"
		 "    upstream: [a]\n"
		 "    command: 'echo b-line'\n", go);
	free(go);
	hr_dag(p, "df", dag);
	hr_queue_run(p, "df", "r1", NULL, NULL);
	pid_t runner = hr_runner_start(p, NULL);
	hr_wait_task_state(p, "df", "r1", "a", "running", W);

	truncate_wal(p);
	fill_file(p, "var/fill");
	touch(p, "go");
	log_wait w = {runner, "cannot write to the database: database or disk is full"};
	hr_wait_for(p, runner_said, &w, "the runner's wait line", W);
	hr_sleep_ms(1000); /* the shim and the runner retry meanwhile */
	char *fill = hr_path(p, "var/fill");
	if (unlink(fill) != 0)
		fail_msg("unlink %s: %s", fill, strerror(errno));
	free(fill);

	expect_run(p, "df", "r1", "success");
	one_try(p, "df", "r1", "a", 0);
	one_try(p, "df", "r1", "b", 0);
	expect_xcom(p, "df", "r1", "a", "return_value", "\"a-last\"");
	char *log = log_with(p, "df", "r1", "a", "a-last\n");
	expect_in(log, "a-output\n", "a's log");
	free(log);
	expect_consistent(p, "df", "r1", (const char *const[]){"a", "b", NULL},
			  (const char *const[]){"queued,running,success",
						"pending,queued,running,success"});
	expect_said_once(p, runner, "cannot write to the database");
	hr_pass(p);
}

/* Creates empty files <dir>/inode-N until no inode is left; returns N. */
static int fill_inodes(hr_project *p, const char *dir)
{
	int n = 0;
	for (;; n++) {
		char rel[64];
		snprintf(rel, sizeof rel, "%s/inode-%d", dir, n);
		char *path = hr_path(p, rel);
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		free(path);
		if (fd < 0) {
			if (errno != ENOSPC)
				fail_msg("creating %s: %s", rel, strerror(errno));
			return n;
		}
		close(fd);
	}
}

static void free_inodes(hr_project *p, const char *dir, int n)
{
	for (int i = 0; i < n; i++) {
		char rel[64];
		snprintf(rel, sizeof rel, "%s/inode-%d", dir, i);
		char *path = hr_path(p, rel);
		unlink(path);
		free(path);
	}
}

/*
 * Only the logs' disk is full (no page, no inode); the database is
 * fine. A running task's output waits in its shim and reaches the log
 * once there is room; the try's end is recorded at once. The next task
 * waits, `running`, until its log can be made, then runs; a run claimed
 * meanwhile stays queued until its folder can be made. Nothing fails.
 */
static void test_logs_disk_full(void **state)
{
	hr_project *p = *state;
	char *logs = hr_path(p, "logs");
	if (mkdir(logs, 0755) != 0 ||
	    mount("tmpfs", logs, "tmpfs", 0, "size=1m,nr_inodes=64,mode=0755") != 0) {
		print_message("mount tmpfs on %s: %s (needs root): skipped\n", logs,
			      strerror(errno));
		free(logs);
		hr_pass(p);
		skip();
	}
	free(logs);
	hr_settings(p, "max_parallel_tasks: 4, logs_dir: logs");
	hr_dag(p, "ld", "tasks:\n"
	       "  - id: t1\n"
	       "    command: 'head -c 4095 /dev/zero | tr \"\\\\0\" f; echo;"
	       " while [ ! -e go ]; do sleep 0.05; done; echo second-line'\n"
	       "  - id: t2\n"
	       "    upstream: [t1]\n"
	       /* not all_success: not armed (its log made) while t1 runs,
	        * so its log is still to make once the disk is full */
	       "    trigger_rule: all_done\n"
	       "    command: 'echo t2-line'\n");
	hr_queue_run(p, "ld", "r1", NULL, NULL);
	pid_t runner = hr_runner_start(p, NULL);
	/* 4096 bytes: the log's page is full, the next byte needs another. */
	char *log = log_with(p, "ld", "r1", "t1", "ff\n");
	free(log);
	fill_file(p, "logs/fill");
	int n = fill_inodes(p, "logs");
	touch(p, "go");
	hr_wait_task_state(p, "ld", "r1", "t1", "success", W);
	hr_wait_task_state(p, "ld", "r1", "t2", "running", W);
	hr_sleep_ms(500); /* t2's shim waits for room meanwhile */
	log = hr_try_log(p, "ld", "r1", "t1", 1);
	if (log && strstr(log, "second-line"))
		fail_msg("the log of t1 got its output while the disk was full:\n%s", log);
	free(log);
	log = hr_try_log(p, "ld", "r1", "t2", 1);
	if (log)
		fail_msg("t2 has a log on a disk without inodes:\n%s", log);
	/* A run claimed now cannot make its folder: it waits, queued. */
	hr_dag(p, "ld2", "tasks:\n  - {id: only, command: 'echo only-line'}\n");
	hr_queue_run(p, "ld2", "r2", NULL, NULL);
	log_wait w = {runner, "cannot write "};
	hr_wait_for(p, runner_said, &w, "the runner's wait line", W);
	const char *r2 = hr_run_state(p, "ld2", "r2");
	if (!r2 || strcmp(r2, "queued") != 0)
		fail_msg("run ld2/r2 is %s while the logs' disk is full, expected queued",
			 r2 ? r2 : "(none)");
	free_inodes(p, "logs", n);
	char *fill = hr_path(p, "logs/fill");
	unlink(fill);
	free(fill);

	expect_run(p, "ld", "r1", "success");
	one_try(p, "ld", "r1", "t1", 0);
	one_try(p, "ld", "r1", "t2", 0);
	expect_xcom(p, "ld", "r1", "t1", "return_value", "\"second-line\"");
	expect_xcom(p, "ld", "r1", "t2", "return_value", "\"t2-line\"");
	log = log_with(p, "ld", "r1", "t1", "second-line\n");
	free(log);
	log = log_with(p, "ld", "r1", "t2", "t2-line\n");
	free(log);
	expect_run(p, "ld2", "r2", "success");
	expect_xcom(p, "ld2", "r2", "only", "return_value", "\"only-line\"");
	expect_said_once(p, runner, ": No space left on device; waiting and retrying");
	char *said = hr_runner_log(p, runner);
	if (strstr(said, "cannot write to the database"))
		fail_msg("the database was not full:\n%s", said);
	free(said);
	hr_pass(p);
}

/* --- misbehaving tasks ---------------------------------------------------- */

/*
 * A background child keeps stdout open after the task's process exits:
 * the try ends with the task's process (its status, its last line), the
 * log says what was left running, and the child's later output still
 * reaches the log.
 */
static void test_background_keeps_output(void **state)
{
	hr_project *p = *state;
	hr_dag(p, "bgo", "tasks:\n"
	       "  - id: t\n"
	       "    command: '(while [ ! -e late ]; do sleep 0.05; done; echo late-line) & echo main-line'\n");
	hr_queue_run(p, "bgo", "r1", NULL, NULL);
	hr_runner_start(p, NULL);
	expect_run(p, "bgo", "r1", "success");
	one_try(p, "bgo", "r1", "t", 0);
	expect_xcom(p, "bgo", "r1", "t", "return_value", "\"main-line\"");
	char *log = log_with(p, "bgo", "r1", "t", "its output is still open");
	expect_in(log, "pipewright: the task's process exited; left running: ", "the log");
	free(log);
	touch(p, "late"); /* only now, after the try ended */
	log = log_with(p, "bgo", "r1", "t", "late-line\n");
	free(log);
	hr_pass(p);
}

/* Whether process pid is gone (reaping what the harness inherits). */
static bool gone(pid_t pid)
{
	for (int i = 0; i < W / 20; i++) {
		hr_reap();
		if (kill(pid, 0) != 0)
			return true;
		hr_sleep_ms(20);
	}
	return false;
}

static pid_t read_pid(hr_project *p, const char *rel)
{
	char *s = NULL;
	for (int i = 0; i < W / 20 && !(s && strchr(s, '\n')); i++) {
		free(s);
		s = hr_read(p, rel);
		if (!(s && strchr(s, '\n')))
			hr_sleep_ms(20);
	}
	if (!s)
		fail_msg("no %s", rel);
	pid_t pid = (pid_t)atol(s);
	free(s);
	return pid;
}

/*
 * Daemons that escape the task's process group with setsid (one of them
 * ignoring SIGTERM) are still ended by a cancel: the shim is their
 * subreaper and passes SIGTERM on, then SIGKILL before the runner's.
 */
static void test_cancel_reaches_setsid_daemons(void **state)
{
	hr_project *p = *state;
	hr_dag(p, "esc", "tasks:\n"
	       "  - id: t\n"
	       "    command: 'setsid sleep 300 & echo $! > d1.pid;"
	       " setsid sh -c \"trap \\\"\\\" TERM; echo \\$\\$ > d2.pid; while :; do sleep 0.1; done\" &"
	       " sleep 300'\n");
	hr_queue_run(p, "esc", "r1", NULL, NULL);
	hr_runner_start(p, NULL);
	pid_t d1 = read_pid(p, "d1.pid"), d2 = read_pid(p, "d2.pid");
	for (int i = 0; i < W / 20 && (getpgid(d1) != d1 || getpgid(d2) != d2); i++)
		hr_sleep_ms(20); /* setsid may come just after the pid file */
	if (getpgid(d1) != d1 || getpgid(d2) != d2)
		fail_msg("the daemons did not leave the task's group");
	hr_request(p, "esc", "r1", "cancel");
	expect_run(p, "esc", "r1", "cancelled");
	if (!gone(d1))
		fail_msg("the setsid daemon %d survived the cancel", (int)d1);
	if (!gone(d2))
		fail_msg("the setsid daemon %d that ignores SIGTERM survived the cancel",
			 (int)d2);
	char *log = log_with(p, "esc", "r1", "t", "pipewright: SIGKILL passed on to ");
	expect_in(log, "pipewright: SIGTERM passed on to ", "the log");
	if (strstr(log, "left running"))
		fail_msg("a cancelled try left processes running:\n%s", log);
	free(log);
	hr_pass(p);
}

/*
 * A task that ignores SIGTERM runs into its timeout: SIGKILL follows the
 * grace, the try fails by timeout, and its log says what was sent.
 */
static void test_sigterm_ignored(void **state)
{
	hr_project *p = *state;
	hr_dag(p, "ign", "tasks:\n"
	       "  - id: t\n"
	       "    timeout: 1\n"
	       "    command: 'trap \"\" TERM; echo stubborn; while :; do sleep 0.1; done'\n");
	hr_queue_run(p, "ign", "r1", NULL, NULL);
	hr_runner_start(p, NULL);
	pid_t pgid = hr_wait_try_pid(p, "ign", "r1", "t", 1, W);
	expect_run(p, "ign", "r1", "failed");
	expect_task(p, "ign", "r1", "t", "failed");
	hr_try *t;
	if (hr_tries(p, "ign", "r1", "t", &t) != 1 || strcmp(t[0].reason, "timeout after 1 s") != 0)
		fail_msg("the try's reason is \"%s\", expected \"timeout after 1 s\"",
			 t ? t[0].reason : "(no try)");
	free(t);
	if (!hr_wait_group_gone(pgid, W))
		fail_msg("group %d still has processes", (int)pgid);
	char *log = log_with(p, "ign", "r1", "t", "pipewright: timeout after 1 s: SIGTERM sent "
			     "to the task's process group, then SIGKILL\n");
	expect_in(log, "stubborn\n", "the log");
	free(log);
	hr_pass(p);
}

/*
 * 100 MB of output with settings.max_log_bytes 1 MiB: the log keeps the
 * first MiB and says how much was cut; the last line still becomes the
 * return_value.
 */
static void test_log_cap(void **state)
{
	hr_project *p = *state;
	hr_settings(p, "max_parallel_tasks: 4, max_log_bytes: 1048576");
	hr_dag(p, "big", "tasks:\n"
	       "  - id: t\n"
	       "    command: 'head -c 100000000 /dev/zero | tr \"\\\\0\" x; echo; echo the-end'\n");
	hr_queue_run(p, "big", "r1", NULL, NULL);
	hr_runner_start(p, NULL);
	expect_run(p, "big", "r1", "success");
	one_try(p, "big", "r1", "t", 0);
	expect_xcom(p, "big", "r1", "t", "return_value", "\"the-end\"");
	char *log = log_with(p, "big", "r1", "t", "were not kept");
	expect_in(log, "\npipewright: the log reached settings.max_log_bytes (1048576 bytes "
		  "of output); 98951433 more bytes were not kept\n", "the log");
	size_t len = strlen(log);
	if (len < 1048576 || len > 1048576 + 512)
		fail_msg("the log holds %zu bytes, expected 1 MiB and a note", len);
	free(log);
	hr_pass(p);
}

/* A setting that is not a count of bytes is refused at load. */
static void test_log_cap_setting(void **state)
{
	hr_project *p = *state;
	hr_settings(p, "max_log_bytes: lots");
	pid_t runner = hr_runner_start(p, NULL);
	int status;
	if (!hr_runner_wait(p, runner, W, &status) || status == 0)
		fail_msg("the runner accepted max_log_bytes: lots");
	char *log = hr_runner_log(p, runner);
	expect_in(log, "max_log_bytes", "the runner's log");
	free(log);
	hr_pass(p);
}

/*
 * Output without a final newline, and a task that closes stdout early
 * and still writes to stderr: the last line is kept, the log is whole.
 */
static void test_odd_output(void **state)
{
	hr_project *p = *state;
	hr_dag(p, "odd", "tasks:\n"
	       "  - id: nonl\n"
	       "    command: 'printf \"one\\\\nlast-no-newline\"'\n"
	       "  - id: closed\n"
	       "    command: 'echo before; exec 1>&-; sleep 0.3; echo on-stderr >&2'\n");
	hr_queue_run(p, "odd", "r1", NULL, NULL);
	hr_runner_start(p, NULL);
	expect_run(p, "odd", "r1", "success");
	expect_xcom(p, "odd", "r1", "nonl", "return_value", "\"last-no-newline\"");
	expect_xcom(p, "odd", "r1", "closed", "return_value", "\"before\"");
	char *log = log_with(p, "odd", "r1", "closed", "on-stderr\n");
	expect_in(log, "before\n", "the log");
	free(log);
	log = log_with(p, "odd", "r1", "nonl", "last-no-newline");
	free(log);
	hr_pass(p);
}

/*
 * XComs a try wrote before it failed are kept (Airflow keeps them), with
 * no return_value; the next try starts without them.
 */
static void test_xcom_of_failed_try(void **state)
{
	hr_project *p = *state;
	hr_dag(p, "xf", "tasks:\n"
	       "  - id: once\n"
	       "    command: 'echo \"{\\\"partial\\\": [1, 2]}\" > \"$PIPEWRIGHT_XCOM\"; echo out; exit 2'\n"
	       "  - id: twice\n"
	       "    retries: 1\n"
	       "    retry_delay: 0\n"
	       "    command: 'if [ \"$PIPEWRIGHT_TRY_NUMBER\" = 1 ]; then"
	       " echo \"{\\\"first\\\": 1}\" > \"$PIPEWRIGHT_XCOM\"; exit 1; fi;"
	       " echo \"{\\\"second\\\": 2}\" > \"$PIPEWRIGHT_XCOM\"'\n");
	hr_queue_run(p, "xf", "r1", NULL, NULL);
	hr_runner_start(p, NULL);
	expect_run(p, "xf", "r1", "failed");
	expect_task(p, "xf", "r1", "once", "failed");
	expect_xcom(p, "xf", "r1", "once", "partial", "[1,2]");
	expect_xcom(p, "xf", "r1", "once", "return_value", NULL);
	expect_task(p, "xf", "r1", "twice", "success");
	expect_xcom(p, "xf", "r1", "twice", "first", NULL);
	expect_xcom(p, "xf", "r1", "twice", "second", "2");
	hr_pass(p);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_locked_database),
		T(test_disk_full),
		T(test_logs_disk_full),
		T(test_background_keeps_output),
		T(test_cancel_reaches_setsid_daemons),
		T(test_sigterm_ignored),
		T(test_log_cap),
		T(test_log_cap_setting),
		T(test_odd_output),
		T(test_xcom_of_failed_try),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

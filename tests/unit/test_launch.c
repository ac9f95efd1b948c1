/* test_launch.c - the try shim, status and XCom files, the task's env. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testhelp.h"

#include "jsonnum.h"
#include "launch.h"

/* --- helpers ------------------------------------------------------------ */

/* A scratch folder with the files of one try. */
typedef struct try_files {
	char *dir;
	char log[PATH_MAX];
	char status[PATH_MAX];
} try_files;

static void files_init(try_files *f)
{
	f->dir = th_mkdtemp();
	snprintf(f->log, sizeof f->log, "%s/1.log", f->dir);
	snprintf(f->status, sizeof f->status, "%s/1.status", f->dir);
}

static char *const test_env[] = {"PATH=/usr/bin:/bin", "LC_ALL=C", NULL};


/* Starts a try; returns the shim pid (fails the test on error). */
static pid_t start(try_files *f, char *const *argv, const char *shell,
		   char *const *env)
{
	pw_launch l = {.workdir = f->dir, .argv = argv, .shell = shell,
		       .env = env ? env : test_env, .log_path = f->log,
		       .status_path = f->status};
	long long ps = 0;
	int go = -1;
	pid_t pid = pw_launch_start(&l, &ps, &go);
	assert_true(pid > 0);
	assert_true(ps > 0);
	pw_launch_go(go);
	return pid;
}

/* Waits for the shim, checks that it exited 0, reads the status. */
static void finish(try_files *f, pid_t pid, pw_try_result *r)
{
	int ws;
	assert_int_equal(waitpid(pid, &ws, 0), pid);
	assert_true(WIFEXITED(ws));
	assert_int_equal(WEXITSTATUS(ws), 0);
	assert_int_equal(pw_launch_read_status(f->status, r), 0);
	char tmp[PATH_MAX + 8];
	snprintf(tmp, sizeof tmp, "%s.tmp", f->status);
	assert_int_equal(access(tmp, F_OK), -1); /* renamed, none left */
}

/* Runs a try to its end. */
static void run(try_files *f, char *const *argv, const char *shell,
		pw_try_result *r)
{
	finish(f, start(f, argv, shell, NULL), r);
}

/* The log's text (malloc'd, "" when missing). */
static char *log_text(const try_files *f)
{
	char *s = th_read(f->log);
	if (!s)
		s = strdup("");
	assert_non_null(s);
	return s;
}

/* Waits up to 5 s until the log contains needle. */
static void wait_log(const try_files *f, const char *needle)
{
	for (int i = 0; i < 500; i++) {
		char *s = th_read(f->log);
		bool found = s && strstr(s, needle);
		free(s);
		if (found)
			return;
		usleep(10000);
	}
	fail_msg("log never got '%s'", needle);
}

/* --- the shim ----------------------------------------------------------- */

static void test_argv_exit_codes(void **state)
{
	(void)state;
	try_files f;
	pw_try_result r;
	files_init(&f);
	run(&f, (char *const[]){"true", NULL}, NULL, &r);
	assert_int_equal(r.exit_code, 0);
	assert_int_equal(r.signal, 0);
	assert_null(r.last_line);
	pw_try_result_free(&r);

	run(&f, (char *const[]){"sh", "-c", "echo hello; exit 3", NULL}, NULL,
	    &r);
	assert_int_equal(r.exit_code, 3);
	assert_int_equal(r.signal, 0);
	assert_string_equal(r.last_line, "hello");
	pw_try_result_free(&r);
	th_rmtree(f.dir);
}

static void test_shell_pipes_and_last_line(void **state)
{
	(void)state;
	try_files f;
	pw_try_result r;
	files_init(&f);
	run(&f, NULL,
	    "printf 'b\\na\\n' | sort | tr a-z A-Z; echo 'the end  '; "
	    "echo to-stderr >&2; printf '\\n  \\n\\r\\n'",
	    &r);
	assert_int_equal(r.exit_code, 0);
	assert_string_equal(r.last_line, "the end  ");
	pw_try_result_free(&r);
	char *log = log_text(&f);
	/* stdout and stderr may interleave in the log between chunks. */
	assert_non_null(strstr(log, "A\nB\n"));
	assert_non_null(strstr(log, "the end  \n"));
	assert_non_null(strstr(log, "to-stderr\n"));
	free(log);

	/* A last line without newline, with CRLF, and only stderr. */
	run(&f, NULL, "echo one; printf 'two\\r\\n'; printf three", &r);
	assert_string_equal(r.last_line, "three");
	pw_try_result_free(&r);
	run(&f, NULL, "printf 'crlf\\r\\n'", &r);
	assert_string_equal(r.last_line, "crlf");
	pw_try_result_free(&r);
	run(&f, NULL, "echo only-err >&2", &r);
	assert_null(r.last_line);
	pw_try_result_free(&r);
	th_rmtree(f.dir);
}

static void test_long_line_and_bad_utf8(void **state)
{
	(void)state;
	try_files f;
	pw_try_result r;
	files_init(&f);
	/* 100,000 'x' then a newline: the first 64 KiB are kept. */
	run(&f, NULL, "head -c 100000 /dev/zero | tr '\\0' x; echo", &r);
	assert_non_null(r.last_line);
	assert_int_equal(strlen(r.last_line), 64 * 1024);
	pw_try_result_free(&r);
	run(&f, NULL, "printf 'a\\377b\\n'", &r);
	assert_string_equal(r.last_line, "a\xef\xbf\xbd" "b");
	pw_try_result_free(&r);
	th_rmtree(f.dir);
}

static void test_exec_failure(void **state)
{
	(void)state;
	try_files f;
	pw_try_result r;
	files_init(&f);
	run(&f, (char *const[]){"/nonexistent/prog", "x", NULL}, NULL, &r);
	assert_int_equal(r.exit_code, 127);
	assert_int_equal(r.signal, 0);
	char *log = log_text(&f);
	assert_non_null(strstr(log, "pipewright: cannot run '/nonexistent/"
				    "prog': No such file or directory\n"));
	free(log);

	run(&f, (char *const[]){"no-such-command-pw", NULL}, NULL, &r);
	assert_int_equal(r.exit_code, 127);
	log = log_text(&f);
	assert_non_null(strstr(log, "pipewright: cannot run "
				    "'no-such-command-pw': No such file"));
	free(log);

	th_write(f.dir, "noexec.sh", "#!/bin/sh\necho hi\n");
	run(&f, (char *const[]){"./noexec.sh", NULL}, NULL, &r);
	assert_int_equal(r.exit_code, 127);
	log = log_text(&f);
	assert_non_null(strstr(log, "cannot run './noexec.sh': "
				    "Permission denied"));
	free(log);
	th_rmtree(f.dir);
}

static void test_workdir_and_exact_env(void **state)
{
	(void)state;
	try_files f;
	pw_try_result r;
	char real[PATH_MAX], *log;
	files_init(&f);
	assert_non_null(realpath(f.dir, real));

	run(&f, NULL, "pwd -P", &r);
	assert_string_equal(r.last_line, real);
	pw_try_result_free(&r);

	/* env is found through the task's PATH, not the runner's. */
	char *old = getenv("PATH") ? strdup(getenv("PATH")) : NULL;
	setenv("PATH", "/nonexistent", 1);
	char *const env[] = {"PATH=/usr/bin:/bin", "A=1", "B=two words",
			     NULL};
	unlink(f.log);
	finish(&f, start(&f, (char *const[]){"env", NULL}, NULL, env), &r);
	if (old)
		setenv("PATH", old, 1);
	free(old);
	assert_int_equal(r.exit_code, 0);
	log = log_text(&f);
	assert_string_equal(log, "PATH=/usr/bin:/bin\nA=1\nB=two words\n");
	free(log);
	pw_try_result_free(&r);
	th_rmtree(f.dir);
}

static void test_killed_by_signal(void **state)
{
	(void)state;
	try_files f;
	pw_try_result r;
	files_init(&f);
	run(&f, NULL, "kill -9 $$", &r);
	assert_int_equal(r.exit_code, -1);
	assert_int_equal(r.signal, 9);
	pw_try_result_free(&r);
	run(&f, NULL, "echo before; kill -TERM $$", &r);
	assert_int_equal(r.exit_code, -1);
	assert_int_equal(r.signal, 15);
	assert_string_equal(r.last_line, "before");
	pw_try_result_free(&r);
	th_rmtree(f.dir);
}

/* SIGTERM to the group ends the task; the shim survives to record it. */
static void test_sigterm_group(void **state)
{
	(void)state;
	try_files f;
	pw_try_result r;
	files_init(&f);
	pid_t pid = start(&f, NULL, "echo started; exec sleep 30", NULL);
	wait_log(&f, "started");
	assert_int_equal(kill(-pid, SIGTERM), 0);
	assert_int_equal(kill(-pid, SIGINT), 0);
	finish(&f, pid, &r);
	assert_int_equal(r.exit_code, -1);
	assert_int_equal(r.signal, 15);
	pw_try_result_free(&r);
	th_rmtree(f.dir);
}

/* The task's process group and session are the shim's pid. */
static void test_process_group(void **state)
{
	(void)state;
	try_files f;
	pw_try_result r;
	files_init(&f);
	pid_t pid = start(&f, NULL, "cut -d' ' -f5,6 /proc/self/stat", NULL);
	finish(&f, pid, &r);
	char want[64];
	snprintf(want, sizeof want, "%ld %ld", (long)pid, (long)pid);
	assert_string_equal(r.last_line, want);
	pw_try_result_free(&r);
	th_rmtree(f.dir);
}

/* Only the log is open in the task: fds 0-2, nothing of the runner. */
static void test_descriptors(void **state)
{
	(void)state;
	try_files f;
	pw_try_result r;
	files_init(&f);
	int leak = open("/dev/null", O_RDONLY); /* not O_CLOEXEC */
	assert_true(leak >= 0);
	run(&f, NULL,
	    "ls /proc/self/fd | sort -n | tr '\\n' ' '; echo;"
	    "readlink /proc/self/fd/0",
	    &r);
	close(leak);
	assert_string_equal(r.last_line, "/dev/null");
	char *log = log_text(&f);
	/* ls's own fd 3 (its directory) is the only one above 2. */
	assert_non_null(strstr(log, "0 1 2 3 \n"));
	free(log);
	pw_try_result_free(&r);
	th_rmtree(f.dir);
}

/*
 * A background child holding stdout does not hold the status: the try
 * ends with the task's process, the log says what was left behind, and
 * what the child writes later still goes into the log (the shim copies it
 * on until the child closes stdout, then exits).
 */
static void test_background_child(void **state)
{
	(void)state;
	try_files f;
	pw_try_result r;
	files_init(&f);
	pid_t pid = start(&f, NULL, "(sleep 1; echo late) & echo done", NULL);
	/* The status comes while the child still runs (it sleeps 1 s; 20 s
	 * here only bounds a failure). */
	int found = 1;
	for (int i = 0; i < 2000 && found == 1; i++) {
		found = pw_launch_read_status(f.status, &r);
		if (found == 1)
			usleep(10000);
	}
	assert_int_equal(found, 0);
	assert_int_equal(kill(pid, 0), 0); /* the shim still copies the output */
	assert_int_equal(r.exit_code, 0);
	assert_string_equal(r.last_line, "done");
	pw_try_result_free(&r);
	int ws;
	assert_int_equal(waitpid(pid, &ws, 0), pid);
	char *log = log_text(&f);
	assert_non_null(strstr(log, "done\n"));
	assert_non_null(strstr(log, "pipewright: the task's process exited; left running: "));
	assert_non_null(strstr(log, "; its output is still open: what is written to it goes "
				    "on into this log until it is closed\n"));
	assert_non_null(strstr(log, "late\n"));
	free(log);
	th_rmtree(f.dir);
}

static void test_missing_log_folder(void **state)
{
	(void)state;
	try_files f;
	pw_try_result r;
	files_init(&f);
	snprintf(f.log, sizeof f.log, "%s/no/such/dir/1.log", f.dir);
	run(&f, (char *const[]){"true", NULL}, NULL, &r);
	assert_int_equal(r.exit_code, 127);
	pw_try_result_free(&r);
	th_rmtree(f.dir);

	/* A workdir that does not exist. */
	files_init(&f);
	pw_launch l = {.workdir = "/nonexistent/wd", .shell = "true",
		       .env = test_env, .log_path = f.log,
		       .status_path = f.status};
	long long ps;
	int go = -1;
	pid_t shim = pw_launch_start(&l, &ps, &go);
	pw_launch_go(go);
	finish(&f, shim, &r);
	assert_int_equal(r.exit_code, 127);
	char *log = log_text(&f);
	assert_non_null(strstr(log, "cannot enter '/nonexistent/wd'"));
	free(log);
	pw_try_result_free(&r);
	th_rmtree(f.dir);

	l.shell = NULL;
	assert_int_equal(pw_launch_start(&l, &ps, &go), -1);
	assert_int_equal(errno, EINVAL);
}

/*
 * A shim whose go pipe closes without the go byte (the runner died before
 * committing the try) exits at once: the task never runs, nothing is written.
 */
static void test_no_go_means_no_task(void **state)
{
	(void)state;
	try_files f;
	files_init(&f);
	char marker[PATH_MAX + 16];
	snprintf(marker, sizeof marker, "%s/ran", f.dir);
	char *cmd = pw_asprintf("touch '%s'", marker);
	pw_launch l = {.workdir = f.dir, .shell = cmd, .env = test_env,
		       .log_path = f.log, .status_path = f.status};
	long long ps;
	int go = -1, ws;
	pid_t shim = pw_launch_start(&l, &ps, &go);
	assert_true(shim > 0);
	close(go);
	assert_int_equal(waitpid(shim, &ws, 0), shim);
	assert_true(WIFEXITED(ws));
	assert_int_equal(access(marker, F_OK), -1);
	assert_int_equal(access(f.status, F_OK), -1);
	assert_int_equal(access(f.log, F_OK), -1);
	free(cmd);
	th_rmtree(f.dir);
}

/*
 * The shim leads its own process group when pw_launch_start returns: the
 * runner may signal the try's group at once (a cancel right after the
 * start), and kill(-pid) must not miss it.
 */
static void test_group_at_once(void **state)
{
	(void)state;
	for (int i = 0; i < 50; i++) {
		try_files f;
		files_init(&f);
		pw_launch l = {.workdir = f.dir, .shell = "true", .env = test_env,
			       .log_path = f.log, .status_path = f.status};
		long long ps;
		int go = -1, ws;
		pid_t shim = pw_launch_start(&l, &ps, &go);
		assert_true(shim > 0);
		if (kill(-shim, 0) != 0)
			fail_msg("start %d: kill(-%d, 0): %s", i, (int)shim, strerror(errno));
		close(go);
		assert_int_equal(waitpid(shim, &ws, 0), shim);
		th_rmtree(f.dir);
	}
}

/* --- status, processes -------------------------------------------------- */

static void test_read_status(void **state)
{
	(void)state;
	char *dir = th_mkdtemp(), path[PATH_MAX];
	pw_try_result r;
	snprintf(path, sizeof path, "%s/s", dir);
	assert_int_equal(pw_launch_read_status(path, &r), 1);
	th_write(dir, "s", "{\"exit_code\": 2, \"signal\": 0, "
			   "\"last_line\": \"x \\\"y\\\"\"}\n");
	assert_int_equal(pw_launch_read_status(path, &r), 0);
	assert_int_equal(r.exit_code, 2);
	assert_string_equal(r.last_line, "x \"y\"");
	pw_try_result_free(&r);
	th_write(dir, "s", "{\"exit_code\": 0, \"signal\": 0}");
	assert_int_equal(pw_launch_read_status(path, &r), 0);
	assert_null(r.last_line);
	const char *bad[] = {"", "{\"exit_code\": 1", "[1]",
			     "{\"exit_code\": \"1\", \"signal\": 0}",
			     "{\"exit_code\": 1, \"signal\": 0} x", NULL};
	for (int i = 0; bad[i]; i++) {
		th_write(dir, "s", bad[i]);
		assert_int_equal(pw_launch_read_status(path, &r), -1);
		assert_null(r.last_line);
	}
	th_rmtree(dir);
}

static void test_proc_start_time(void **state)
{
	(void)state;
	long long self = pw_proc_start_time(getpid());
	assert_true(self > 0);
	assert_int_equal(pw_proc_start_time(0), -1);
	assert_int_equal(pw_proc_start_time(-5), -1);

	/* A comm with spaces and ')' */
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char c;
		close(p[1]);
		prctl(PR_SET_NAME, "a) b ) (c", 0, 0, 0);
		(void)read(p[0], &c, 1);
		_exit(0);
	}
	close(p[0]);
	usleep(50000);
	long long child = pw_proc_start_time(pid);
	assert_true(child >= self);
	assert_true(child - self < 100 * 3600); /* ticks: not a wrong field */
	close(p[1]);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	assert_int_equal(pw_proc_start_time(pid), -1); /* reaped */
}

/* pw_descendants finds a child and a grandchild in its own session. */
static void test_descendants(void **state)
{
	(void)state;
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		close(p[0]);
		pid_t grand = fork();
		if (grand == 0) {
			(void)setsid();
			(void)write(p[1], "g", 1);
			pause();
			_exit(0);
		}
		pause();
		_exit(0);
	}
	close(p[1]);
	char c;
	assert_int_equal(read(p[0], &c, 1), 1);
	close(p[0]);
	pw_procs d;
	assert_int_equal(pw_descendants(getpid(), &d), 0);
	pid_t grand = 0;
	bool saw_child = false;
	for (size_t i = 0; i < d.n; i++) {
		if (d.v[i].pid == child)
			saw_child = true;
		else if (d.v[i].pgid == d.v[i].pid)
			grand = d.v[i].pid; /* setsid: its own group */
	}
	pw_procs_free(&d);
	assert_true(saw_child);
	assert_true(grand > 0);
	assert_int_equal(getpgid(grand), grand);
	kill(grand, SIGKILL);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
}

static void test_pidfd(void **state)
{
	(void)state;
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char c;
		close(p[1]);
		(void)read(p[0], &c, 1);
		_exit(0);
	}
	close(p[0]);
	int fd = pw_pidfd_open(pid);
	if (fd < 0) {
		close(p[1]);
		waitpid(pid, NULL, 0);
		skip();
	}
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	assert_int_equal(poll(&pfd, 1, 0), 0);
	close(p[1]);
	assert_int_equal(poll(&pfd, 1, 5000), 1);
	assert_true(pfd.revents & POLLIN);
	close(fd);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
}

/* --- XCom --------------------------------------------------------------- */

/* pw_xcom_read of text; returns rc, sets *err (caller frees). */
static int xcom(const char *dir, const char *text, json_object **o,
		char **err)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/x.json", dir);
	if (text)
		th_write(dir, "x.json", text);
	else
		unlink(path);
	return pw_xcom_read(path, o, err);
}

static void test_xcom(void **state)
{
	(void)state;
	char *dir = th_mkdtemp(), *err;
	json_object *o;

	const char *empty[] = {NULL, "", " \n\t\r\n", NULL};
	for (int i = 0; i < 3; i++) {
		assert_int_equal(xcom(dir, empty[i], &o, &err), 0);
		assert_null(o);
		assert_null(err);
	}
	assert_int_equal(xcom(dir, "{\"a\": 1, \"b\": [true]}\n", &o, &err),
			 0);
	assert_non_null(o);
	assert_int_equal(json_object_object_length(o), 2);
	json_object_put(o);

	struct {
		const char *text, *err;
	} bad[] = {
		{"[1, 2]", "XCom file is not a JSON object (it holds a JSON "
			   "array)"},
		{"42", "XCom file is not a JSON object (it holds a JSON int)"},
		{"\"s\"", "XCom file is not a JSON object"},
		{"{\"a\": ", "XCom file is not valid JSON"},
		{"{a: 1}", "XCom file is not valid JSON"},
		{"{\"a\": 1} {\"b\": 2}", "XCom file is not valid JSON"},
		{"{\"a\": 1} x", "XCom file is not valid JSON"},
		{"{\"a\": \"\xff\"}", "XCom file is not valid JSON"},
		{"{\"a\": [NaN]}", "XCom file is not valid JSON: NaN and "
				    "Infinity are not JSON numbers"},
		{"{\"a\": }", "XCom file is not valid JSON: unexpected "
			       "character (at byte 6)"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(xcom(dir, bad[i].text, &o, &err), -1);
		assert_null(o);
		assert_non_null(err);
		if (strncmp(err, bad[i].err, strlen(bad[i].err)) != 0)
			fail_msg("'%s': got '%s'", bad[i].text, err);
		free(err);
	}

	/* Larger than 1 MiB. */
	size_t n = 1024 * 1024 + 10;
	char *big = malloc(n + 1);
	assert_non_null(big);
	memset(big, ' ', n);
	memcpy(big, "{}", 2);
	big[n] = '\0';
	assert_int_equal(xcom(dir, big, &o, &err), -1);
	assert_string_equal(err, "XCom file is larger than 1 MiB");
	free(err);
	free(big);
	th_rmtree(dir);
}

/* --- the task's environment --------------------------------------------- */

/* Value of name in env (NULL when absent); fails if it appears twice. */
static const char *env_get(const pw_strv *env, const char *name)
{
	const char *found = NULL;
	size_t len = strlen(name);
	for (size_t i = 0; i < env->n; i++) {
		if (strncmp(env->v[i], name, len) == 0 &&
		    env->v[i][len] == '=') {
			if (found)
				fail_msg("%s appears twice", name);
			found = env->v[i] + len + 1;
		}
	}
	return found;
}

static void strv_add(pw_strv *sv, const char *const *names)
{
	for (; *names; names++)
		assert_int_equal(pw_strv_push(sv, *names), 0);
}

static void test_task_env(void **state)
{
	(void)state;
	char *root = th_mkdtemp(), want[PATH_MAX * 2];
	th_write(root, "data/model.pkl/2020-01-01T00.00.00.000Z/model.pkl", "");
	th_write(root, "data/old.pkl/v0/old.pkl", "");
	json_object *catalog = json_tokener_parse(
		"{\"raw\": {\"type\": \"t\", \"filepath\": \"data/raw.csv\"},"
		" \"my-data.v2\": {\"type\": \"t\", \"filepath\": \"/abs/md\"},"
		" \"model\": {\"type\": \"t\", \"filepath\": \"data/model.pkl\","
		"  \"versioned\": true},"
		" \"old\": {\"type\": \"t\", \"filepath\": \"data/old.pkl\","
		"  \"versioned\": true},"
		" \"pinned\": {\"type\": \"t\", \"filepath\": \"data/p.pkl\","
		"  \"versioned\": true},"
		" \"out\": {\"type\": \"t\", \"filepath\": \"data/out.pkl\","
		"  \"versioned\": true}}");
	json_object *pins = json_tokener_parse("{\"pinned\": \"v7\"}");
	json_object *run_outputs = json_tokener_parse(
		"{\"model\": true, \"pinned\": true}");
	assert_non_null(catalog);
	pw_catalog_view cat = {.root = root, .catalog = catalog,
			       .load_versions = pins};
	pw_task t;
	memset(&t, 0, sizeof t);
	t.name = "ns.task";
	strv_add(&t.inputs, (const char *[]){"raw", "params:x", "parameters",
					     "my-data.v2", "model", "old",
					     "pinned", "memory", NULL});
	strv_add(&t.outputs, (const char *[]){"out", "memory2", NULL});
	t.env = json_tokener_parse("{\"LC_ALL\": \"C\", \"EXTRA\": \"e\"}");
	char *const base[] = {"HOME=/root", "LC_ALL=en_US.UTF-8",
			      "PATH=/usr/bin:/bin", "junk-without-equals",
			      "PIPEWRIGHT_RUN_ID=stale", NULL};
	pw_task_env in = {.base = base, .dag_id = "d", .run_id = "R1",
			  .task = &t, .try_number = 2,
			  .params_path = "/p.json", .xcom_path = "/x.json",
			  .catalog = &cat, .run_outputs = run_outputs};
	pw_strv env = {0};
	assert_int_equal(pw_task_env_build(&in, &env), 0);

	assert_string_equal(env_get(&env, "PATH"), "/usr/bin:/bin");
	assert_string_equal(env_get(&env, "HOME"), "/root");
	assert_string_equal(env_get(&env, "LC_ALL"), "C");
	assert_string_equal(env_get(&env, "EXTRA"), "e");
	assert_string_equal(env_get(&env, "PIPEWRIGHT_DAG_ID"), "d");
	assert_string_equal(env_get(&env, "PIPEWRIGHT_RUN_ID"), "R1");
	assert_string_equal(env_get(&env, "PIPEWRIGHT_TASK_ID"), "ns.task");
	assert_string_equal(env_get(&env, "PIPEWRIGHT_TRY_NUMBER"), "2");
	assert_string_equal(env_get(&env, "PIPEWRIGHT_PARAMS"), "/p.json");
	assert_string_equal(env_get(&env, "PIPEWRIGHT_XCOM"), "/x.json");
	snprintf(want, sizeof want, "%s/data/raw.csv", root);
	assert_string_equal(env_get(&env, "PIPEWRIGHT_INPUT_RAW"), want);
	assert_string_equal(env_get(&env, "PIPEWRIGHT_INPUT_MY_DATA_V2"),
			    "/abs/md");
	/* Written in this run: this run's version, not the newest. */
	snprintf(want, sizeof want, "%s/data/model.pkl/R1/model.pkl", root);
	assert_string_equal(env_get(&env, "PIPEWRIGHT_INPUT_MODEL"), want);
	/* Not written in this run: the newest existing version. */
	snprintf(want, sizeof want, "%s/data/old.pkl/v0/old.pkl", root);
	assert_string_equal(env_get(&env, "PIPEWRIGHT_INPUT_OLD"), want);
	/* Pinned by load_versions, even though this run writes it. */
	snprintf(want, sizeof want, "%s/data/p.pkl/v7/p.pkl", root);
	assert_string_equal(env_get(&env, "PIPEWRIGHT_INPUT_PINNED"), want);
	snprintf(want, sizeof want, "%s/data/out.pkl/R1/out.pkl", root);
	assert_string_equal(env_get(&env, "PIPEWRIGHT_OUTPUT_OUT"), want);
	assert_null(env_get(&env, "PIPEWRIGHT_INPUT_MEMORY"));
	assert_null(env_get(&env, "PIPEWRIGHT_OUTPUT_MEMORY2"));
	assert_null(env_get(&env, "junk-without-equals"));
	for (size_t i = 0; i < env.n; i++)
		assert_null(strstr(env.v[i], "PARAMS_X"));
	/* Replaced entries keep their place: base order first. */
	assert_string_equal(env.v[0], "HOME=/root");
	assert_string_equal(env.v[1], "LC_ALL=C");
	assert_int_equal(env.n, 16);

	char **vec = pw_env_vector(&env);
	assert_non_null(vec);
	assert_null(vec[env.n]);
	assert_ptr_equal(vec[0], env.v[0]);
	free(vec);

	/* Without run_outputs, the model is read from the newest version. */
	pw_strv env2 = {0};
	in.run_outputs = NULL;
	assert_int_equal(pw_task_env_build(&in, &env2), 0);
	snprintf(want, sizeof want,
		 "%s/data/model.pkl/2020-01-01T00.00.00.000Z/model.pkl", root);
	assert_string_equal(env_get(&env2, "PIPEWRIGHT_INPUT_MODEL"), want);

	pw_strv_free(&env);
	pw_strv_free(&env2);
	pw_strv_free(&t.inputs);
	pw_strv_free(&t.outputs);
	json_object_put(t.env);
	json_object_put(catalog);
	json_object_put(pins);
	json_object_put(run_outputs);
	th_rmtree(root);
}

/* The built env really reaches a task. */
/* PIPEWRIGHT_PARAM_<NAME> for each params: input the parameters define. */
static void test_task_env_params(void **state)
{
	(void)state;
	pw_task t;
	memset(&t, 0, sizeof t);
	t.name = "t";
	strv_add(&t.inputs, (const char *[]){"params:top_n", "params:model.lr", "params:name",
					     "params:model", "params:nope", "raw", NULL});
	json_object *params = pw_json_parse_exact(
		"{\"top_n\": 5, \"name\": \"a b\", \"model\": {\"lr\": 0.10,"
		" \"big\": 123456789012345678901234567890}}");
	assert_non_null(params);
	char *const base[] = {"PATH=/bin", NULL};
	pw_task_env in = {.base = base, .dag_id = "d", .run_id = "r", .task = &t,
			  .try_number = 1, .params = params};
	pw_strv env = {0};
	assert_int_equal(pw_task_env_build(&in, &env), 0);
	assert_string_equal(env_get(&env, "PIPEWRIGHT_PARAM_TOP_N"), "5");
	assert_string_equal(env_get(&env, "PIPEWRIGHT_PARAM_MODEL_LR"), "0.10");
	assert_string_equal(env_get(&env, "PIPEWRIGHT_PARAM_NAME"), "a b");
	assert_string_equal(env_get(&env, "PIPEWRIGHT_PARAM_MODEL"),
			    "{\"lr\":0.10,\"big\":123456789012345678901234567890}");
	assert_null(env_get(&env, "PIPEWRIGHT_PARAM_NOPE"));
	assert_null(env_get(&env, "PIPEWRIGHT_PARAM_RAW"));
	pw_strv_free(&env);
	pw_strv_free(&t.inputs);
	json_object_put(params);
}

static void test_task_env_reaches_task(void **state)
{
	(void)state;
	try_files f;
	pw_try_result r;
	files_init(&f);
	pw_task t;
	memset(&t, 0, sizeof t);
	t.name = "t";
	t.env = json_tokener_parse("{\"GREETING\": \"hi there\"}");
	char *const base[] = {"PATH=/usr/bin:/bin", NULL};
	pw_task_env in = {.base = base, .dag_id = "d", .run_id = "r",
			  .task = &t, .try_number = 1, .params_path = "/p",
			  .xcom_path = "/x"};
	pw_strv env = {0};
	assert_int_equal(pw_task_env_build(&in, &env), 0);
	char **vec = pw_env_vector(&env);
	assert_non_null(vec);
	finish(&f,
	       start(&f, NULL,
		     "echo \"$GREETING/$PIPEWRIGHT_TASK_ID/"
		     "$PIPEWRIGHT_TRY_NUMBER\"",
		     vec),
	       &r);
	assert_string_equal(r.last_line, "hi there/t/1");
	pw_try_result_free(&r);
	free(vec);
	pw_strv_free(&env);
	json_object_put(t.env);
	th_rmtree(f.dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_go_means_no_task),
		cmocka_unit_test(test_group_at_once),
		cmocka_unit_test(test_argv_exit_codes),
		cmocka_unit_test(test_shell_pipes_and_last_line),
		cmocka_unit_test(test_long_line_and_bad_utf8),
		cmocka_unit_test(test_exec_failure),
		cmocka_unit_test(test_workdir_and_exact_env),
		cmocka_unit_test(test_killed_by_signal),
		cmocka_unit_test(test_sigterm_group),
		cmocka_unit_test(test_process_group),
		cmocka_unit_test(test_descriptors),
		cmocka_unit_test(test_background_child),
		cmocka_unit_test(test_missing_log_folder),
		cmocka_unit_test(test_read_status),
		cmocka_unit_test(test_proc_start_time),
		cmocka_unit_test(test_pidfd),
		cmocka_unit_test(test_descendants),
		cmocka_unit_test(test_xcom),
		cmocka_unit_test(test_task_env),
		cmocka_unit_test(test_task_env_params),
		cmocka_unit_test(test_task_env_reaches_task),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

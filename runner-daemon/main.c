/*
 * main.c - pipewright-runner: options, the single-instance lock, the wake-up
 * FIFO, signals, and the loop that runs one step per wake-up.
 *
 *   pipewright-runner --project PATH [--env ENV] [--conf-source DIR]
 *                     [--once] [--verbose]
 *   pipewright-runner --slurm-job     (inside a Slurm batch job: slurm.c)
 *
 * Each pass of the loop holds one transaction (group commit): it polls the
 * backends for ended tries (Slurm's commands before anything is written),
 * records them, applies commands, fires schedules, claims queued runs,
 * handles timers, starts ready tries and ends finished runs; then it
 * commits, and only then are the shims started in it told to go and the
 * ends it recorded acked (exec_committed). The loop then sleeps in poll()
 * until a FIFO poke, a signal, a try's end, or the next timer. A pass that
 * cannot commit (the database locked or the disk full) is rolled back and
 * retried from the database (settle), never a reason to exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "launch.h"
#include "runner.h"
#include "walvfs.h"

#define HEARTBEAT_MS 2000
#define IDLE_POLL_MS 1000   /* fallback check of PRAGMA data_version */
#define DATA_VERSION_MS 200 /* ... and at most this often while busy */
#define PRUNE_EVERY_MS 3600000  /* old events go once an hour */
#define RETRY_FIRST_MS 250  /* a failed step is retried after this, */
#define RETRY_MAX_MS 8000   /* doubling up to this (see settle) */

extern char **environ;

static volatile sig_atomic_t stop_requested;
static int signal_pipe[2] = {-1, -1};

/* SIGTERM, SIGINT: stop; SIGCHLD: wake the loop. Async-signal-safe. */
static void on_signal(int sig)
{
	int saved = errno;
	if (sig == SIGTERM || sig == SIGINT)
		stop_requested = 1;
	ssize_t ignored = write(signal_pipe[1], "s", 1);
	(void)ignored;
	errno = saved;
}

static int setup_signals(void)
{
	if (pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
		return -1;
	struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART};
	sigemptyset(&sa.sa_mask);
	struct sigaction ign = {.sa_handler = SIG_IGN};
	return sigaction(SIGTERM, &sa, NULL) || sigaction(SIGINT, &sa, NULL) ||
	       sigaction(SIGCHLD, &sa, NULL) || sigaction(SIGPIPE, &ign, NULL) ? -1 : 0;
}

/*
 * Takes the single-instance lock "<database>.lock". Returns the lock fd;
 * -2 when another runner holds it; -1 on an I/O error. Says why.
 */
static int take_lock(const char *database)
{
	char *path = pw_asprintf("%s.lock", database);
	int fd = path ? open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640) : -1;
	if (fd < 0) {
		fprintf(stderr, "pipewright-runner: %s: %s\n", path ? path : "lock", strerror(errno));
	} else if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		char pid[32] = "?";
		ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
		pid[n > 0 ? n : 1] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		fprintf(stderr, "pipewright-runner: another runner is active on %s (pid %s)\n",
			database, pid);
		close(fd);
		fd = -2;
	} else {
		char pid[32];
		int len = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
		if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len)
			fprintf(stderr, "pipewright-runner: cannot write %s\n", path);
	}
	free(path);
	return fd;
}

/* Opens (creating) the wake-up FIFO "<database>.wake"; -1 if impossible. */
static int open_wake_fifo(const char *database)
{
	char *path = pw_asprintf("%s.wake", database);
	int fd = -1;
	if (path && (mkfifo(path, 0620) == 0 || errno == EEXIST))
		fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd >= 0)
		fchmod(fd, 0620); /* the web server's group pokes it, nobody else */
	free(path);
	return fd;
}

/* Loads the project and logs what is wrong with it. */
static int load_project(runner *r)
{
	char *err = NULL;
	if (pw_project_load(&r->cfg.opts, &r->cfg.project, &err) != PW_OK) {
		fprintf(stderr, "pipewright-runner: %s\n", err ? err : "out of memory");
		free(err);
		return -1;
	}
	if (r->cfg.project->conf_error.type)
		rn_error(r, "configuration: %s: %s", r->cfg.project->conf_error.type,
			 r->cfg.project->conf_error.message);
	for (size_t i = 0; i < r->cfg.project->import_errors.n; i++) {
		char *line = pw_error_format(&r->cfg.project->import_errors.v[i]);
		rn_error(r, "import error: %s", line ? line : "?");
		free(line);
	}
	return 0;
}

/* Seeds the pools of the configuration and a row for every DAG. */
static int seed(runner *r)
{
	if (pw_store_seed_pools(r->tx.store, r->cfg.project->pools) != PW_OK)
		return PW_ERR;
	for (size_t i = 0; i < r->cfg.project->n_dags; i++)
		if (pw_store_seed_dag(r->tx.store, r->cfg.project->dags[i]->id,
				      r->cfg.project->dags[i]->paused) != PW_OK)
			return PW_ERR;
	return PW_OK;
}

/*
 * Reloads the project when its files changed since it was loaded. Active
 * runs keep the pipeline they were claimed with (their own copy); new runs
 * and schedules see the new files. The database path is not reloaded.
 */
static int reload_if_changed(runner *r)
{
	long long fp = pw_project_fingerprint(r->cfg.project);
	if (fp == r->cfg.fingerprint)
		return PW_OK;
	pw_project *next = NULL;
	char *err = NULL;
	if (pw_project_load(&r->cfg.opts, &next, &err) != PW_OK) {
		rn_error(r, "reload: %s", err ? err : "out of memory");
		free(err);
		r->cfg.fingerprint = fp; /* say it once, not every time */
		return PW_OK;
	}
	if (strcmp(next->database, r->cfg.project->database) != 0)
		rn_error(r, "reload: a new database path takes a restart");
	pw_project_free(r->cfg.project);
	r->cfg.project = next;
	r->cfg.fingerprint = fp;
	r->work_changed = true;
	rn_info(r, "project reloaded: %zu DAGs, %zu import errors", next->n_dags,
		next->import_errors.n);
	return seed(r);
}

static int heartbeat(runner *r, long long now)
{
	char host[HOST_NAME_MAX + 1] = "";
	char *why = r->tx.checkpointer ? ckpt_take_error(r->tx.checkpointer) : NULL;
	if (why)
		rn_error(r, "%s (the WAL grows until a checkpoint succeeds)", why);
	free(why);
	gethostname(host, sizeof host - 1);
	return pw_store_heartbeat(r->tx.store, (int)getpid(), host, now);
}

/*
 * One step of work at time now; *next_wake gets the earliest timer. Runs
 * the parts that may have something to do, all in one transaction.
 */
static int step(runner *r, long long now, long long *next_wake, long long *next_cron)
{
	json_object *slots = NULL;
	bool changed = r->work_changed; /* by us, or by another process */
	int rc = exec_poll(r, now);
	if (rc == PW_OK && changed) {
		r->work_changed = false;
		rc = sched_commands(r, now);
		if (rc == PW_OK)
			rc = sched_claim(r, now);
		if (rc == PW_OK && (rc = st_pools(r, &slots)) == PW_OK) {
			json_object_put(r->fl.pool_slots);
			r->fl.pool_slots = slots;
		}
	}
	if (rc == PW_OK && (changed || now >= *next_cron)) {
		*next_cron = 0;
		rc = sched_cron(r, now, next_cron);
		if (!*next_cron)
			*next_cron = now + 60000;
	}
	if (rc == PW_OK)
		rc = exec_timers(r, now, next_wake);
	if (rc == PW_OK)
		rc = exec_start_ready(r, now);
	if (rc == PW_OK)
		rc = exec_finish_runs(r, now);
	if (rc == PW_OK && (rc = st_commit(r)) == PW_OK)
		exec_committed(r);
	if (*next_cron && (!*next_wake || *next_cron < *next_wake))
		*next_wake = *next_cron;
	exec_idle(r, next_wake);
	return rc;
}

/* Reads everything from a non-blocking fd; true if there was anything. */
static bool drain(int fd)
{
	char buf[256];
	bool any = false;
	while (fd >= 0 && read(fd, buf, sizeof buf) > 0)
		any = true;
	return any;
}

/* Makes room for n entries in r->pollfds. Returns 0 or -1. */
static int pollfds_reserve(runner *r, size_t n)
{
	if (n <= r->cap_pollfds)
		return 0;
	struct pollfd *grown = realloc(r->pollfds, n * sizeof *grown);
	if (!grown)
		return -1;
	r->pollfds = grown;
	r->cap_pollfds = n;
	return 0;
}

/*
 * Sleeps until a wake-up or until deadline (ms): a signal (SIGCHLD among
 * them), a FIFO poke, or a watched shim's exit.
 */
static void wait_for_work(runner *r, long long deadline)
{
	nfds_t n = 0;
	if (pollfds_reserve(r, r->fl.n_running + 2) != 0)
		deadline = pw_now_ms() + 10; /* no room to watch: look again soon */
	struct pollfd *fds = r->pollfds;
	fds[n++] = (struct pollfd){.fd = signal_pipe[0], .events = POLLIN};
	if (r->wake_fd >= 0)
		fds[n++] = (struct pollfd){.fd = r->wake_fd, .events = POLLIN};
	for (size_t i = 0; i < r->fl.n_running && n < r->cap_pollfds; i++) {
		const rn_task *k = &r->fl.procs[i].run->tasks[r->fl.procs[i].t];
		if (k->end_fd >= 0)
			fds[n++] = (struct pollfd){.fd = k->end_fd, .events = POLLIN};
	}
	long long wait = deadline - pw_now_ms();
	if (wait < 0)
		wait = 0;
	if (wait > IDLE_POLL_MS)
		wait = IDLE_POLL_MS;
	int ready = poll(fds, n, (int)wait);
	if (ready < 0 && errno != EINTR)
		rn_error(r, "poll: %s", strerror(errno));
	/* Read the pipes only when poll says so (or could not say): a try's
	 * end wakes the loop without them, two reads saved on each step. */
	if (ready < 0 || fds[0].revents)
		drain(signal_pipe[0]);
	if ((ready < 0 || (r->wake_fd >= 0 && fds[1].revents)) && drain(r->wake_fd))
		r->work_changed = true;
	/* A read transaction of its own: not after every try's end. */
	long long now = pw_now_ms();
	bool changed = false;
	if (now - r->tx.data_version_at >= DATA_VERSION_MS) {
		r->tx.data_version_at = now;
		if (st_changed(r, &changed) == PW_OK && changed)
			r->work_changed = true;
	}
}

/*
 * Why the step failed: rn_fault's reason, else the connection's last
 * error before the rollback clears it ("database is locked", "database or
 * disk is full", ...).
 */
static void note_cause(runner *r, char *buf, size_t size)
{
	sqlite3 *db = pw_store_db(r->tx.store);
	int code = db ? sqlite3_extended_errcode(db) : SQLITE_ERROR;
	if (r->tx.fault[0])
		snprintf(buf, size, "%s", r->tx.fault);
	else if (code == SQLITE_OK || code == SQLITE_DONE || code == SQLITE_ROW)
		snprintf(buf, size, "cannot go on: out of memory or a file error");
	else
		snprintf(buf, size, "cannot write to the database: %s (SQLite error %d)",
			 db ? sqlite3_errmsg(db) : "no database", code);
	r->tx.fault[0] = '\0';
}

/* Sleeps ms unless a stop is requested. Returns false when one is. */
static bool backoff(long long ms)
{
	struct pollfd fd = {.fd = signal_pipe[0], .events = POLLIN};
	long long until = pw_now_ms() + ms;
	while (!stop_requested) {
		long long left = until - pw_now_ms();
		if (left <= 0)
			return true;
		if (poll(&fd, 1, (int)left) > 0)
			drain(signal_pipe[0]);
	}
	return false;
}

/*
 * Takes over the runs left running, as at start: seeds pools and DAGs,
 * rebuilds the active runs from the database and commits. After a failed
 * step (the database locked past the busy timeout by another process, or
 * the disk full) memory is dropped first and this is retried with a
 * growing delay until it commits: nothing waits on an exit and a restart.
 * In-flight ends are not lost meanwhile: their shims were never acked, so
 * they keep them (the status file, which they retry while the disk is
 * full) and recovery records them exactly once. One line says that the
 * runner waits and why, and st_commit one when a write commits again.
 * failed: a step failed (else: the start). PW_OK, or PW_ERR when a stop
 * was requested while waiting.
 */
static int settle(runner *r, bool failed)
{
	for (bool waiting = failed;; waiting = true) {
		if (waiting) {
			char cause[300];
			note_cause(r, cause, sizeof cause);
			if (!r->tx.stuck_since) { /* once per episode */
				rn_error(r, "%s; waiting and retrying (running tasks go on, "
					 "their ends are kept)", cause);
				r->tx.stuck_since = pw_now_ms();
				r->tx.retry_ms = RETRY_FIRST_MS;
			}
			st_rollback(r);
			exec_forget(r);
			if (!backoff(r->tx.retry_ms))
				return PW_ERR;
			r->tx.retry_ms = r->tx.retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS
								   : r->tx.retry_ms * 2;
			if (!st_can_write(r))
				continue; /* still locked: no statement fails, nothing logged */
		}
		if (seed(r) == PW_OK && recover(r, pw_now_ms()) == PW_OK && st_commit(r) == PW_OK) {
			exec_committed(r);
			return PW_OK;
		}
	}
}

/*
 * Whether the database file the runner opened is still the one at its
 * path (pw_store_moved: one stat per pass). 0: it is. 1: it is gone
 * (deleted, moved away, unreadable): the runner halts (no step, so
 * nothing is claimed, started, reaped or written; ended tries keep their
 * ends in their shims) and goes on by itself when the same file is back.
 * -1: another file took its place (a restored backup): the runner must
 * exit 1, so that its supervisor starts it again on the new file. Each
 * change is logged once (docs/runner.md, "Faults").
 */
static int database_moved(runner *r)
{
	static const char *halted;   /* why, while halted */
	const char *why = pw_store_moved(r->tx.store);

	if (why && strstr(why, "replaced")) {
		rn_error(r, "%s (%s): this runner stops; started again (by `pipewright server "
			 "start`, systemd) it opens the new file", why, r->cfg.project->database);
		return -1;
	}
	if (why && why != halted)
		rn_error(r, "%s (%s): claiming and starting nothing until it is back; running "
			 "tasks go on and their ends are kept", why, r->cfg.project->database);
	else if (!why && halted)
		rn_info(r, "the database file is back (%s): going on", r->cfg.project->database);
	halted = why;
	return why ? 1 : 0;
}

/* The loop. Returns the exit status. */
static int run_loop(runner *r)
{
	long long next_heartbeat = 0, next_cron = 0, next_prune = 0;
	while (!stop_requested) {
		long long now = pw_now_ms(), next_wake = 0;
		int moved = database_moved(r);
		if (moved < 0 || (moved > 0 && r->cfg.once))
			return 1;
		if (moved > 0) {
			backoff(HEARTBEAT_MS / 2);
			continue;
		}
		if (now >= next_prune) {
			long long n = pw_store_prune_events(r->tx.store, r->cfg.project->events_keep_ms,
							    r->cfg.project->events_keep_max);
			if (n > 0)
				rn_info(r, "pruned %lld old events", n);
			next_prune = now + PRUNE_EVERY_MS;
		}
		bool beat = now >= next_heartbeat;
		if (beat) {
			heartbeat(r, now);
			next_heartbeat = now + HEARTBEAT_MS;
		}
		/* Also before new work is claimed: a DAG file written just before
		 * its trigger must be the one that runs. */
		if ((beat || r->work_changed) && reload_if_changed(r) != PW_OK)
			rn_error(r, "reload: cannot seed pools and DAGs");
		if (step(r, now, &next_wake, &next_cron) != PW_OK && settle(r, true) != PW_OK)
			break; /* stopped while waiting for the database */
		if (r->cfg.once && !r->fl.runs && !r->work_changed) {
			/*
			 * The heartbeat stays, fresh: in cron mode (settings.runner)
			 * health counts it for 150 s, until the next --once.
			 */
			heartbeat(r, pw_now_ms());
			return 0;
		}
		if (r->work_changed)
			continue; /* a run ended or was queued: look again at once */
		if (!next_wake || next_wake > next_heartbeat)
			next_wake = next_heartbeat;
		wait_for_work(r, next_wake);
	}
	rn_info(r, "stopping; running tasks go on and the next runner adopts them");
	st_runner_stopped(r, (int)getpid()); /* health: "absent", not "stale" */
	return 0;
}

static void usage(FILE *out)
{
	fprintf(out, "usage: pipewright-runner --project PATH [--env ENV] [--conf-source DIR]\n"
		     "                         [--once] [--verbose]\n");
}

/* Parses the options into r. Returns -1 on a usage error. */
static int parse_options(int argc, char **argv, runner *r)
{
	static const struct option longopts[] = {
		{"project", required_argument, NULL, 'P'},
		{"env", required_argument, NULL, 'e'},
		{"conf-source", required_argument, NULL, 'c'},
		{"once", no_argument, NULL, 'o'},
		{"verbose", no_argument, NULL, 'v'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;
	while ((c = getopt_long(argc, argv, "e:vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'P': r->cfg.opts.path = optarg; break;
		case 'e': r->cfg.opts.env = optarg; break;
		case 'c': r->cfg.opts.conf_source = optarg; break;
		case 'o': r->cfg.once = true; break;
		case 'v': r->cfg.verbose = true; break;
		case 'V': printf("pipewright-runner %s\n", PACKAGE_VERSION); exit(0);
		case 'h': usage(stdout); exit(0);
		default: return -1;
		}
	}
	return optind == argc ? 0 : -1;
}

/* Frees everything the runner holds. */
static void shutdown_runner(runner *r, int lock_fd)
{
	while (r->fl.runs) {
		rn_run *next = r->fl.runs->next;
		exec_run_free(r->fl.runs);
		r->fl.runs = next;
	}
	free(r->fl.procs);
	free(r->pollfds);
	free(r->cfg.exe);
	exec_close(r); /* running shims go on */
	json_object_put(r->fl.pool_slots);
	json_object_put(r->fl.pool_used);
	ckpt_stop(r->tx.checkpointer);
	pw_store_close(r->tx.store);
	st_log_free();
	pw_project_free(r->cfg.project);
	if (r->wake_fd >= 0)
		close(r->wake_fd);
	if (lock_fd >= 0)
		close(lock_fd);
}

int main(int argc, char **argv)
{
	runner r = {.cfg = {.environ = environ, .grace_ms = PW_KILL_GRACE_MS},
		    .tx = {.data_version = -1}, .wake_fd = -1, .work_changed = true};
	int lock_fd = -1, status = 1;
	char *err = NULL;
	if (argc == 2 && strcmp(argv[1], "--slurm-job") == 0)
		return slurm_job_main(); /* inside a Slurm job: run its try */
	if (parse_options(argc, argv, &r) != 0) {
		usage(stderr);
		return 2;
	}
	pw_umask_private();
	r.cfg.exe = realpath("/proc/self/exe", NULL); /* what Slurm jobs exec */
	st_crash_points(&r);
	/* First, while the runner is small (the launcher forks): see launch.h. */
	if (exec_open(&r) != PW_OK || setup_signals() != 0 || load_project(&r) != 0)
		goto out;
	r.cfg.fingerprint = pw_project_fingerprint(r.cfg.project);
	const char *database = r.cfg.project->database;
	if (pw_mkdirs_for(database) != 0 || (lock_fd = take_lock(database)) < 0) {
		/* --once from cron beside a daemon: nothing to do, not an error */
		if (lock_fd == -2 && r.cfg.once)
			status = 0;
		goto out;
	}
	if (walvfs_register() != 0)
		rn_error(&r, "walvfs: not registered: the WAL is written frame by frame");
	if (pw_store_open(database, &r.tx.store, &err) != PW_OK) {
		fprintf(stderr, "pipewright-runner: %s\n", err);
		goto out;
	}
	r.tx.checkpointer = ckpt_start(r.tx.store, &err);
	if (!r.tx.checkpointer) {
		rn_error(&r, "%s: checkpoints stay in the commits", err);
		free(err);
		err = NULL;
	}
	r.wake_fd = open_wake_fifo(database);
	r.fl.pool_used = json_object_new_object();
	if (!r.fl.pool_used || settle(&r, false) != PW_OK)
		goto out;
	rn_info(&r, "started on %s (pid %d)", database, (int)getpid());
	status = run_loop(&r);
out:
	free(err);
	shutdown_runner(&r, lock_fd);
	return status;
}

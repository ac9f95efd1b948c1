/*
 * local.c - the local backend: each try runs under a shim (launch.h) on
 * this machine, forked by the launcher (or by the runner when it has
 * none). The shim waits for its go until the try's start is committed,
 * sends the try's end on its socket, and writes its status file unless
 * the runner acks that end after committing it; so a runner killed at
 * any moment loses no end and starts no try twice (docs/runner.md,
 * "Crash safety").
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "launch.h"
#include "runner.h"

/* An ended try's socket, acked after the commit (pw_launcher_ack). */
typedef struct ack {
	int fd;
	pid_t pid;              /* its shim when it offered reuse, else 0 */
	long long proc_start;
} ack;

typedef struct local_state {
	pw_launcher *launcher;  /* forks the shims (launch.h), or NULL */
	int *go_fds;            /* sockets of the shims started in this pass, */
	size_t n_go, cap_go;    /* waiting for the commit (pw_launch_go) */
	ack *acks;              /* sockets of the tries ended in this pass, */
	size_t n_ack, cap_ack;  /* acked after the commit */
} local_state;

/* The local backend's state (local_open's). */
static local_state *state_of(runner *r)
{
	return rn_backend_state(r, &rn_local_backend);
}

/* Starts the launcher first, while the runner is small (launch.h). */
static int local_open(runner *r, void **state)
{
	(void)r;
	local_state *ls = calloc(1, sizeof *ls);
	if (!ls)
		return PW_ERR;
	ls->launcher = pw_launcher_start(); /* NULL: fork shims directly */
	*state = ls;
	return PW_OK;
}

/* Closes the launcher (its spares and kept shims exit; running ones go on). */
static void local_close(runner *r, void *state)
{
	(void)r;
	local_state *ls = state;
	if (!ls)
		return;
	pw_launcher_close(ls->launcher); /* running shims go on */
	free(ls->go_fds);
	free(ls->acks);
	free(ls);
}

/* Appends fd to a growable int array. PW_OK or PW_ERR. */
static int go_push(local_state *ls, int fd)
{
	if (pw_grow(&ls->go_fds, ls->n_go, &ls->cap_go, sizeof *ls->go_fds, 16) != 0)
		return PW_ERR;
	ls->go_fds[ls->n_go++] = fd;
	return PW_OK;
}

/* Keeps an ended try's socket until the commit, with its shim's pid when
 * the shim may serve another try (else 0). PW_OK or PW_ERR. */
static int ack_push(local_state *ls, int fd, pid_t pid, long long proc_start)
{
	if (pw_grow(&ls->acks, ls->n_ack, &ls->cap_ack, sizeof *ls->acks, 16) != 0)
		return PW_ERR;
	ls->acks[ls->n_ack++] = (ack){fd, pid, proc_start};
	return PW_OK;
}

/*
 * Starts the shim of a local try: through the launcher if there is one (a
 * shim kept from an earlier try, else a spare: launch.h), else forked; or,
 * with l NULL, takes the task's armed shim (local_arm) if it is still
 * there. It waits for its go (local_committed).
 */
static int local_prepare(runner *r, rn_run *run, size_t t, const pw_launch *l,
			 long long *proc_start)
{
	local_state *ls = state_of(r);
	rn_task *k = &run->tasks[t];
	int go = -1;
	if (!l) {
		/* An armed shim that went away shows end of file. */
		struct pollfd p = {.fd = k->arm_fd, .events = POLLIN};
		go = k->arm_fd;
		k->arm_fd = -1;
		if (go < 0 || poll(&p, 1, 0) != 0) {
			if (go >= 0)
				close(go);
			errno = ESRCH;
			return PW_ERR;
		}
		k->pid = k->arm_pid;
		*proc_start = k->arm_start;
	} else {
		k->pid = ls->launcher ? pw_launcher_launch(ls->launcher, l, proc_start, &go)
				      : pw_launch_start(l, proc_start, &go);
	}
	k->proc_start = *proc_start;
	k->watched = true; /* its end shows on its socket, before its exit */
	int rc = k->pid > 0 ? go_push(ls, go) : PW_ERR;
	if (k->pid > 0 && rc != PW_OK)
		close(go); /* its shim exits unstarted */
	k->end_fd = rc == PW_OK ? go : -1;
	k->end_sock = k->end_fd >= 0;
	if (k->pid <= 0)
		k->pid = 0;
	return rc;
}

/*
 * Arms task t's next try in a shim of the launcher (a kept one, else a
 * spare), which opens its log and waits: for prepare (l NULL) and the go
 * after the commit that starts it, or for its socket's close (it exits,
 * removing the log it made). Only with a launcher: forking the runner
 * ahead of need would cost more than it saves.
 */
static int local_arm(runner *r, rn_run *run, size_t t, const pw_launch *l)
{
	local_state *ls = state_of(r);
	rn_task *k = &run->tasks[t];
	if (!ls->launcher)
		return PW_ERR;
	k->arm_pid = pw_launcher_launch(ls->launcher, l, &k->arm_start, &k->arm_fd);
	if (k->arm_pid <= 0) {
		k->arm_fd = -1;
		return PW_ERR;
	}
	return PW_OK;
}

/* The pass committed: the shims started in it go, its ends are acked. */
static void local_committed(runner *r)
{
	local_state *ls = state_of(r);
	for (size_t i = 0; i < ls->n_go; i++)
		pw_launch_go_follow(ls->go_fds[i]);
	ls->n_go = 0;
	/* Ends committed: their shims write no status file (and may serve
	 * another try). */
	for (size_t i = 0; i < ls->n_ack; i++) {
		const ack *a = &ls->acks[i];
		pw_launcher_ack(ls->launcher, a->fd, a->pid, a->proc_start,
				(size_t)r->cfg.project->max_parallel_tasks);
	}
	ls->n_ack = 0;
}

/*
 * Closes the sockets of the shims started in the pass (they exit
 * unstarted) and of the unacked ends (their shims keep them: the status
 * file).
 */
static void local_abort(runner *r)
{
	local_state *ls = state_of(r);
	for (size_t i = 0; i < ls->n_go; i++) {
		for (size_t j = 0; j < r->fl.n_running; j++) {
			rn_task *k = &r->fl.procs[j].run->tasks[r->fl.procs[j].t];
			if (k->end_fd == ls->go_fds[i])
				k->end_fd = -1;
		}
		close(ls->go_fds[i]);
	}
	ls->n_go = 0;
	for (size_t i = 0; i < ls->n_ack; i++)
		close(ls->acks[i].fd);
	ls->n_ack = 0;
}

/* Signals the try's process group. */
static void local_signal(runner *r, rn_run *run, size_t t, int sig)
{
	pid_t pid = run->tasks[t].pid;
	if (pid > 0 && kill(-pid, sig) != 0 && errno != ESRCH)
		rn_error(r, "kill %d: %s", (int)pid, strerror(errno));
}

/* Whether a watched try has ended: its end_fd is readable, or it is gone. */
static bool watched_exited(const rn_task *k)
{
	if (k->end_fd >= 0) {
		struct pollfd p = {.fd = k->end_fd, .events = POLLIN};
		return poll(&p, 1, 0) > 0;
	}
	return kill(k->pid, 0) != 0 || pw_proc_start_time(k->pid) != k->proc_start;
}

/* Reports the running local try of a shim pid, if it is one of ours. */
static int report_pid(runner *r, pid_t pid)
{
	for (size_t i = 0; i < r->fl.n_running; i++) {
		rn_proc *p = &r->fl.procs[i];
		if (p->run->backend == &rn_local_backend && p->run->tasks[p->t].pid == pid)
			return rn_report_end(r, p->run, p->t);
	}
	return PW_OK;
}

/* Reaps exited children (shims forked without launcher, the launcher)
 * and reports the watched tries that ended. */
static int local_poll(runner *r, long long now)
{
	local_state *ls = state_of(r);
	pid_t pid;
	int status;
	(void)now;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (ls->launcher && pid == pw_launcher_pid(ls->launcher)) {
			rn_error(r, "the launcher exited; forking shims directly from now on");
			pw_launcher_close(ls->launcher);
			ls->launcher = NULL;
		} else if (report_pid(r, pid) != PW_OK) {
			return PW_ERR;
		}
	}
	for (size_t i = 0; i < r->fl.n_running; i++) {
		rn_proc *p = &r->fl.procs[i];
		rn_task *k = &p->run->tasks[p->t];
		if (p->run->backend == &rn_local_backend && k->watched && watched_exited(k) &&
		    rn_report_end(r, p->run, p->t) != PW_OK)
			return PW_ERR;
	}
	return PW_OK;
}

/* Forks spares while the runner sleeps, not while it commits. */
static void local_idle(runner *r, long long *next_wake)
{
	(void)next_wake;
	pw_launcher_refill(state_of(r)->launcher);
}

/* Whether the try's shim wrote its status file. */
static bool has_status(const rn_run *run, size_t t)
{
	char *path = rn_try_path(run, t, run->tasks[t].try_number, "status");
	bool found = path && access(path, F_OK) == 0;
	free(path);
	return found;
}

/*
 * Status file written: the try ended while no runner watched. Shim alive
 * with the recorded start time: adopt it (its end shows on its pidfd, or
 * by kill(pid, 0)). Otherwise: lost.
 */
static int local_recover(runner *r, rn_run *run, size_t t, long long now, bool *ended)
{
	rn_task *k = &run->tasks[t];
	pid_t pid = 0;
	long long proc_start = -1;
	(void)now;
	if (st_try_pid(r, run, t, &pid, &proc_start) == PW_ERR)
		return PW_ERR;
	bool alive = pid > 0 && proc_start >= 0 && pw_proc_start_time(pid) == proc_start;
	k->pid = pid;
	k->proc_start = proc_start;
	k->watched = true;
	k->end_fd = pid > 0 ? pw_pidfd_open(pid) : -1;
	k->end_sock = false;
	*ended = !alive || has_status(run, t);
	if (!*ended)
		rn_info(r, "task %s/%s/%s: adopted its running process %d", run->dag_id,
			run->run_id, run->dag->tasks[t].name, (int)pid);
	return PW_OK;
}

/* The end the shim sent on its socket, else its status file. */
static int local_result(runner *r, rn_run *run, size_t t, pw_try_result *res)
{
	const rn_task *k = &run->tasks[t];
	(void)r;
	int found = k->end_sock ? pw_launch_read_end(k->end_fd, res) : 1;
	if (found == 1) /* not on the socket: the file, if the shim wrote one */
		found = rn_try_status(run, t, res);
	return found;
}

/* Keeps the socket for the ack after the commit (an unacked shim writes
 * its status file). */
static void local_release(runner *r, rn_run *run, size_t t, bool reuse)
{
	rn_task *k = &run->tasks[t];
	pid_t keep = reuse ? k->pid : 0;
	if (k->end_fd >= 0 &&
	    (!k->end_sock || ack_push(state_of(r), k->end_fd, keep, k->proc_start) != PW_OK))
		close(k->end_fd);
	k->end_fd = -1;
	k->end_sock = false;
}

/* "pid N": the shim, which is also the try's process group. */
static void local_describe(const rn_run *run, size_t t, char *buf, size_t size)
{
	snprintf(buf, size, "pid %d", (int)run->tasks[t].pid);
}

const rn_backend rn_local_backend = {
	.type = "local",
	.signals_group = true,
	.open = local_open,
	.close = local_close,
	.prepare = local_prepare,
	.arm = local_arm,
	.committed = local_committed,
	.abort = local_abort,
	.signal = local_signal,
	.poll = local_poll,
	.idle = local_idle,
	.recover = local_recover,
	.result = local_result,
	.release = local_release,
	.describe = local_describe,
};

/*
 * launch.c - the shim that runs one try of a task, its status file, the
 * XCom file, and the task's environment. See launch.h.
 *
 * Process layout of one try:
 *
 *   launcher --fork--> shim (setsid; pid = pgid) --vfork+execve--> task
 *
 * The shim is a fork of the launcher (or of the runner), so it first drops
 * everything it inherited: every descriptor above 2 but its go socket (the
 * runner's database, its lock file and wake FIFO must not outlive the
 * runner in a shim), stdin/stdout/stderr (pointed at /dev/null), signal
 * handlers and the signal mask (pw_shim_detach: a spare does it once,
 * while it waits for its first try). Before go, while the runner commits
 * the try, it opens the log and looks the command up on PATH. It never
 * returns into the runner's code and ends with _exit(). It uses no stdio
 * stream; malloc only for a try's request, its line buffers, output a
 * full disk refused, /proc scans (proctree.c) and json-c's status, all
 * freed before a kept shim's next try (launch.h).
 *
 * The task is started with vfork(): the shim's memory is not copied a
 * second time, which matters when 10,000 short tasks are started. The
 * vfork child only calls system calls on data prepared beforehand (stack
 * buffers, no malloc) before execve or _exit.
 *
 * Last line: the shim remembers the last stdout line that holds anything
 * but white space, without its newline and a trailing '\r'. A line longer
 * than PW_LINE_MAX keeps its first PW_LINE_MAX bytes. Invalid UTF-8 in it
 * is replaced by U+FFFD so that it can become a JSON string.
 */
#include "interp.h"
#include "jsonnum.h"
#include "launch.h"
#include "strmap.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Longest last line kept, in bytes. */
#define PW_LINE_MAX (64 * 1024)
/* How long stdout is still drained after the task ended (background
 * children may hold it open). */
#define PW_DRAIN_MS 100
/* How often a shim reaps the orphans a running task leaves it. */
#define PW_ORPHAN_REAP_MS 1000
/* Output a full disk refused, kept in the shim until it has room. */
#define PW_PEND_MAX (4 * 1024 * 1024)
/* Escaped descendants get SIGKILL this long before the runner's SIGKILL
 * to the group (PW_KILL_GRACE_MS after its SIGTERM) ends the shim. */
#define PW_ESCAPED_KILL_EARLY_MS 1000
/* Poll interval for the task's end when pidfd_open is not available. */
#define PW_REAP_POLL_MS 50
/* Largest XCom file accepted, and largest status file read. */
#define PW_XCOM_MAX (1024 * 1024)
#define PW_STATUS_MAX (1024 * 1024)
/* PATH of execvp when the task's environment has none. */
#define PW_DEFAULT_PATH "/bin:/usr/bin"

/* --- small system-call helpers (safe in the shim and the vfork child) ---- */

int pw_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Writes the NULL-terminated list of strings as one message (best effort). */
static void write_msg(int fd, const char *const *parts)
{
	char buf[1024];
	size_t len = 0;
	for (; *parts; parts++) {
		size_t n = strlen(*parts);
		if (n > sizeof buf - 1 - len)
			n = sizeof buf - 1 - len;
		memcpy(buf + len, *parts, n);
		len += n;
	}
	buf[len++] = '\n';
	(void)pw_write_all(fd, buf, len);
}

/* The English description of errno e, without locale or allocation. */
static const char *err_text(int e)
{
	const char *s = strerrordesc_np(e);
	return s ? s : "unknown error";
}

/* Closes every descriptor from `from` up: close_range, else a loop. */
static void close_from(int from)
{
#ifdef SYS_close_range
	if (syscall(SYS_close_range, (unsigned)from, ~0U, 0) == 0)
		return;
#endif
	struct rlimit rl;
	long max = 1024;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		max = rl.rlim_cur > 65536 ? 65536 : (long)rl.rlim_cur;
	for (long fd = from; fd < max; fd++)
		(void)close((int)fd);
}

void pw_signals_reset(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			(void)sigaction(sig, &sa, NULL);
}

static void set_handler(int sig, void (*h)(int))
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = h;
	sigemptyset(&sa.sa_mask);
	(void)sigaction(sig, &sa, NULL);
}

static void unblock_all_signals(void)
{
	sigset_t none;
	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- the task (vfork child) ------------------------------------------------ */

/* What the vfork child needs, all prepared by the shim before vfork. */
typedef struct task_spec {
	const pw_launch *l;
	const char *path_env; /* PATH of the task's environment */
	const char *resolved; /* argv[0] found on PATH before go, or NULL */
	int out_w;            /* write end of the stdout pipe */
	int err_w;            /* write end of the stderr pipe */
} task_spec;

/*
 * execve with execvpe's PATH search, but over the PATH of the task's own
 * environment (glibc's execvpe searches the caller's PATH). Returns only on
 * failure, with errno set to the most telling error (EACCES over ENOENT).
 */
static void exec_search(const char *file, char *const *argv,
			char *const *env, const char *path)
{
	char buf[PATH_MAX];
	size_t flen = strlen(file);
	bool denied = false;

	if (strchr(file, '/') || !*file) {
		if (!*file)
			errno = ENOENT;
		else
			execve(file, argv, env);
		return;
	}
	for (const char *p = path;; p++) {
		const char *end = strchrnul(p, ':');
		size_t dlen = (size_t)(end - p);
		if (dlen + 1 + flen < sizeof buf) {
			memcpy(buf, p, dlen);
			size_t off = dlen;
			if (dlen > 0)
				buf[off++] = '/';
			memcpy(buf + off, file, flen + 1);
			execve(buf, argv, env);
			if (errno == EACCES)
				denied = true;
			else if (errno != ENOENT && errno != ENOTDIR &&
				 errno != ESTALE && errno != ENODEV &&
				 errno != ETIMEDOUT)
				return;
		}
		if (!*end)
			break;
		p = end;
	}
	errno = denied ? EACCES : ENOENT;
}

/*
 * Body of the vfork child: wires stdin (/dev/null, already fd 0 of the
 * shim), stdout (pipe) and stderr (log), enters the workdir, closes the
 * rest, restores signals and execs. On failure it says why on fd 2 and
 * exits 127. Never returns.
 */
static _Noreturn void task_child(const task_spec *ts)
{
	const pw_launch *l = ts->l;

	if (dup2(ts->out_w, 1) < 0 || dup2(ts->err_w, 2) < 0)
		_exit(127);
	if (chdir(l->workdir) != 0) {
		int e = errno;
		write_msg(2, (const char *const[]){"pipewright: cannot enter '",
			  l->workdir, "': ", err_text(e), NULL});
		_exit(127);
	}
	close_from(3);
	set_handler(SIGTERM, SIG_DFL);
	set_handler(SIGINT, SIG_DFL);
	set_handler(SIGHUP, SIG_DFL);
	unblock_all_signals();
	const char *what;
	if (l->argv) {
		what = l->argv[0];
		if (ts->resolved)
			execve(ts->resolved, l->argv, l->env);
		exec_search(what, l->argv, l->env, ts->path_env); /* exact errors */
	} else {
		char *sh_argv[] = {"sh", "-c", (char *)l->shell, NULL};
		what = "/bin/sh";
		execve("/bin/sh", sh_argv, l->env);
	}
	int e = errno;
	write_msg(2, (const char *const[]){"pipewright: cannot run '", what,
		  "': ", err_text(e), NULL});
	_exit(127);
}

/* --- the shim -------------------------------------------------------------- */

/* The shim's view of the task's output. */
typedef struct shim_out {
	int log;          /* log file, or -1 */
	int out, err;     /* read ends of the task's stdout and stderr; -1 once closed */
	char *cur, *last; /* line being read / last non-blank line */
	size_t cur_len, last_len;
	bool cur_blank;   /* cur holds only white space so far */
	bool have_last;
	bool out_open;    /* its output was still open when the task's end was sent */
	long long cap;    /* bytes of output the log keeps (max_log_bytes), 0: all */
	long long given;  /* bytes of output given to the log so far */
	long long cut;    /* bytes past the cap, not kept */
	char *pend;       /* output the log refused (disk full), kept for later */
	size_t pend_len;
	int pend_errno;   /* why the last write was short */
	long long lost;   /* output dropped: pend was full, or the log failed */
	bool mid_line;    /* the log does not end with a newline */
	long long term_at; /* when the shim got SIGTERM (a cancel, a timeout), or 0 */
	int passed;       /* signal last passed on to escaped processes, or 0 */
} shim_out;

/* Set by SIGTERM while a try runs (the shim ignores it otherwise). */
static volatile sig_atomic_t term_seen;

static void on_term(int sig)
{
	(void)sig;
	term_seen = 1;
}

static bool is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* Sleeps *delay ms, then doubles *delay up to max: waiting for disk space. */
static void backoff_sleep(long long *delay, long long max)
{
	struct timespec ts = {*delay / 1000, (*delay % 1000) * 1000000};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
	*delay = *delay * 2 > max ? max : *delay * 2;
}

/* Whether errno e means "the disk has no room now" (worth a retry). */
static bool disk_full(int e)
{
	return e == ENOSPC || e == EDQUOT;
}

/* Writes what fd takes of buf now. Returns the bytes written; errno when short. */
static size_t write_some(int fd, const char *buf, size_t len)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = write(fd, buf + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	return done;
}

/* Writes the output kept back earlier. Returns true when none is left. */
static bool pend_flush(shim_out *so)
{
	if (so->pend_len == 0)
		return true;
	size_t n = write_some(so->log, so->pend, so->pend_len);
	if (n < so->pend_len)
		so->pend_errno = errno;
	memmove(so->pend, so->pend + n, so->pend_len - n);
	so->pend_len -= n;
	return so->pend_len == 0;
}

/*
 * Keeps n bytes the log refused for a later write, up to PW_PEND_MAX in
 * all; beyond that, and after an error other than a full disk, they are
 * counted as lost.
 */
static void pend_add(shim_out *so, const char *buf, size_t n, int e)
{
	size_t take = 0;
	so->pend_errno = e;
	if (disk_full(e) && (so->pend || (so->pend = malloc(PW_PEND_MAX)))) {
		take = PW_PEND_MAX - so->pend_len;
		if (take > n)
			take = n;
		memcpy(so->pend + so->pend_len, buf, take);
		so->pend_len += take;
	}
	so->lost += (long long)(n - take);
}

/* Appends to the log behind whatever a full disk made it keep back. */
static void log_raw(shim_out *so, const char *buf, size_t n)
{
	if (n > 0)
		so->mid_line = buf[n - 1] != '\n';
	size_t w = pend_flush(so) ? write_some(so->log, buf, n) : 0;
	if (w < n)
		pend_add(so, buf + w, n - w, w == 0 && so->pend_len ? so->pend_errno : errno);
}

/* Appends task output to the log, up to the cap (the rest is counted in cut). */
static void log_output(shim_out *so, const char *buf, size_t n)
{
	if (so->log < 0)
		return;
	if (so->cap > 0 && so->given + (long long)n > so->cap) {
		size_t keep = so->given < so->cap ? (size_t)(so->cap - so->given) : 0;
		so->cut += (long long)(n - keep);
		n = keep;
	}
	so->given += (long long)n;
	if (n > 0)
		log_raw(so, buf, n);
}

/*
 * Writes what a full disk kept back, waiting (100 ms, doubling to 2 s) as
 * long as the disk stays full. The shim does so after it has handed the
 * task's end on, which a full disk must not hold up.
 */
static void pend_drain(shim_out *so)
{
	long long delay = 100;
	while (so->log >= 0 && !pend_flush(so)) {
		if (!disk_full(so->pend_errno)) {
			so->lost += (long long)so->pend_len;
			so->pend_len = 0;
			break;
		}
		backoff_sleep(&delay, 2000);
	}
}

/* Ends the current line: it becomes the last line unless it is blank. */
static void line_end(shim_out *so)
{
	if (!so->cur_blank) {
		size_t n = so->cur_len;
		if (n > 0 && so->cur[n - 1] == '\r')
			n--;
		char *t = so->last;
		so->last = so->cur;
		so->cur = t;
		so->last_len = n;
		so->have_last = true;
	}
	so->cur_len = 0;
	so->cur_blank = true;
}

/* Appends a piece of a line to cur (keeping at most PW_LINE_MAX bytes). */
static void line_add(shim_out *so, const char *p, size_t n)
{
	for (size_t i = 0; i < n && so->cur_blank; i++)
		if (!is_space((unsigned char)p[i]))
			so->cur_blank = false;
	size_t room = PW_LINE_MAX - so->cur_len;
	if (n > room)
		n = room;
	memcpy(so->cur + so->cur_len, p, n);
	so->cur_len += n;
}

/* Follows the lines of one chunk of stdout. */
static void shim_lines(shim_out *so, const char *buf, size_t n)
{
	const char *p = buf, *end = buf + n;
	while (so->cur && p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		line_add(so, p, (size_t)((nl ? nl : end) - p));
		if (!nl)
			break;
		line_end(so);
		p = nl + 1;
	}
}

/*
 * Reads what is available on *fd (the task's stdout when lines, else its
 * stderr) into the log. At end of file (or on a read error) closes *fd
 * and sets it to -1.
 */
static void shim_read(shim_out *so, int *fd, bool lines)
{
	char buf[16384];
	ssize_t n = read(*fd, buf, sizeof buf);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		(void)close(*fd);
		*fd = -1;
		return;
	}
	log_output(so, buf, (size_t)n);
	if (lines)
		shim_lines(so, buf, (size_t)n);
}

/* Appends "pipewright: " text "\n" to the log, past the cap. */
static void log_note(shim_out *so, const char *text)
{
	char line[1024];
	int n = snprintf(line, sizeof line, "%spipewright: %s\n",
			 so->mid_line ? "\n" : "", text);
	if (so->log >= 0 && n > 0)
		log_raw(so, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* Appends " <pid>" for each of d (at most 20) to buf of size (NUL-terminated). */
static void pids_text(const pw_procs *d, bool escaped, char *buf, size_t size)
{
	size_t len = strlen(buf), shown = 0;
	for (size_t i = 0; i < d->n && shown < 20 && len + 16 < size; i++) {
		if (escaped && d->v[i].pgid == getpid())
			continue;
		len += (size_t)snprintf(buf + len, size - len, " %ld", (long)d->v[i].pid);
		shown++;
	}
	if (shown == 20 && len + 5 < size)
		memcpy(buf + len, " ...", 5);
}

/*
 * A SIGTERM to the task's group (cancel, timeout) also reaches the shim,
 * which passes it on to its descendants that left the group (setsid
 * daemons: the subreaper keeps them below it), and SIGKILLs them just
 * before the runner's SIGKILL to the group (PW_KILL_GRACE_MS after the
 * SIGTERM) would end the shim, which could not reach them then.
 */
static void pass_signals(shim_out *so)
{
	if (term_seen && !so->term_at)
		so->term_at = now_ms();
	int sig = !so->term_at ? 0
		  : now_ms() >= so->term_at + PW_KILL_GRACE_MS - PW_ESCAPED_KILL_EARLY_MS
		  ? SIGKILL : SIGTERM;
	if (sig == 0 || sig == so->passed)
		return;
	so->passed = sig;
	pw_procs d;
	if (pw_descendants(getpid(), &d) != 0)
		return;
	size_t n = 0;
	for (size_t i = 0; i < d.n; i++)
		if (d.v[i].pgid != getpid() && kill(d.v[i].pid, sig) == 0)
			n++;
	if (n > 0) {
		char text[512];
		snprintf(text, sizeof text, "%s passed on to %zu process%s outside the "
			 "task's process group:", sig == SIGKILL ? "SIGKILL" : "SIGTERM",
			 n, n == 1 ? "" : "es");
		pids_text(&d, true, text, sizeof text);
		log_note(so, text);
	}
	pw_procs_free(&d);
}

/* waitpid that retries on EINTR. flags as for waitpid. */
static pid_t wait_eintr(pid_t pid, int *status, int flags)
{
	pid_t r;
	do
		r = waitpid(pid, status, flags);
	while (r < 0 && errno == EINTR);
	return r;
}

/* Whether the shim's last wait found it without any child: nothing can
 * become its child again before it starts the next task, so reap_orphans
 * need not ask the kernel again (two waits saved between a task's exit
 * and its end sent to the runner). */
static bool childless;

/*
 * Reaps the shim's exited children without blocking. For the task, puts
 * its wait status in *status (-1 if it cannot be waited for) and returns
 * true. The others are the task's orphans, which the kernel hands to the
 * shim (a child subreaper); unreaped, they would stay zombies until the
 * task ends.
 */
static bool reap_children(pid_t task, int *status)
{
	bool task_ended = false;
	int ws;
	pid_t w;
	while ((w = waitpid(-1, &ws, WNOHANG)) > 0 || (w < 0 && errno == EINTR))
		if (w == task) {
			*status = ws;
			task_ended = true;
		}
	childless = w < 0 && errno == ECHILD;
	if (w < 0 && errno == ECHILD && !task_ended) {
		*status = -1;   /* not ours to wait for any more */
		task_ended = true;
	}
	return task_ended;
}

/*
 * Copies the task's stdout and stderr into the log until the task has
 * ended and both reached end of file, or for at most PW_DRAIN_MS after the
 * task ended (what it left behind may keep them open: note_leftovers).
 * Follows the task with a pidfd, or by polling when pidfds are not
 * supported, reaps orphans meanwhile, and passes a SIGTERM on to escaped
 * descendants. Returns the task's wait status, or -1 if waiting failed.
 */
static int shim_follow(shim_out *so, pid_t task)
{
	int pidfd = pw_pidfd_open(task), status = 0;
	bool ended = false;
	long long deadline = 0;

	while (!ended || so->out >= 0 || so->err >= 0) {
		int timeout = -1;
		if (ended) {
			long long left = deadline - now_ms();
			if (left <= 0)
				break;
			timeout = (int)left;
		} else {
			timeout = pidfd < 0 || so->term_at ? PW_REAP_POLL_MS : PW_ORPHAN_REAP_MS;
		}
		struct pollfd fds[3] = {{.fd = so->out, .events = POLLIN},
					{.fd = so->err, .events = POLLIN},
					{.fd = ended ? -1 : pidfd, .events = POLLIN}};
		int r = poll(fds, 3, timeout);
		if (r < 0 && errno != EINTR)
			break;
		if (!ended)
			pass_signals(so);
		if (r > 0 && (fds[0].revents & (POLLIN | POLLHUP | POLLERR)))
			shim_read(so, &so->out, true);
		if (r > 0 && (fds[1].revents & (POLLIN | POLLHUP | POLLERR)))
			shim_read(so, &so->err, false);
		if (!ended && (r == 0 || pidfd < 0 || fds[2].revents) &&
		    reap_children(task, &status)) {
			ended = true;
			deadline = now_ms() + PW_DRAIN_MS;
		}
	}
	if (!ended && wait_eintr(task, &status, 0) < 0)
		status = -1;
	if (pidfd >= 0)
		close(pidfd);
	if (so->cur && so->cur_len > 0)
		line_end(so);
	so->out_open = so->out >= 0 || so->err >= 0;
	return status;
}

static bool reap_orphans(void);

/*
 * Says in the log what the task left behind when its process ended:
 * processes still running (they are left running, as Airflow leaves a
 * BashOperator's background jobs, but the shim serves no other try), and
 * whether they still hold its output (copied on by shim_copy).
 */
static void note_leftovers(shim_out *so)
{
	pw_procs d = {0};
	if (!so->out_open && reap_orphans())
		return; /* the usual case: nothing left, no /proc scan */
	if (pw_descendants(getpid(), &d) != 0)
		d.n = 0;
	if (d.n == 0 && !so->out_open)
		goto out;
	char text[768];
	if (d.n == 0)
		snprintf(text, sizeof text, "the task's process exited");
	else
		snprintf(text, sizeof text, "the task's process exited; left running: "
			 "%zu process%s it started (pids", d.n, d.n == 1 ? "" : "es");
	pids_text(&d, false, text, sizeof text);
	size_t len = strlen(text);
	snprintf(text + len, sizeof text - len, "%s%s", d.n ? ")" : "",
		 so->out_open ? "; its output is still open: what is written to it goes "
		 "on into this log until it is closed" : "");
	log_note(so, text);
out:
	pw_procs_free(&d);
}

/*
 * Copies what is still written to the task's output into the log (within
 * the cap, no more lines) until it is closed, or for ms at most (< 0: no
 * limit), reaping the shim's children as they exit. After the task's end
 * was handed on, its leftovers write there until they close it.
 */
static void shim_copy(shim_out *so, long long ms)
{
	long long until = now_ms() + ms;
	while (so->out >= 0 || so->err >= 0) {
		struct pollfd fds[2] = {{.fd = so->out, .events = POLLIN},
					{.fd = so->err, .events = POLLIN}};
		long long left = ms < 0 ? PW_ORPHAN_REAP_MS : until - now_ms();
		if (left <= 0)
			break;
		int r = poll(fds, 2, (int)(left < PW_ORPHAN_REAP_MS ? left : PW_ORPHAN_REAP_MS));
		if (r < 0 && errno != EINTR)
			break;
		if (r > 0 && (fds[0].revents & (POLLIN | POLLHUP | POLLERR)))
			shim_read(so, &so->out, false);
		if (r > 0 && (fds[1].revents & (POLLIN | POLLHUP | POLLERR)))
			shim_read(so, &so->err, false);
		int ignored;
		(void)reap_children(0, &ignored);
	}
}

/*
 * A try that was signalled (cancel, timeout) leaves nothing running: what
 * the task started gets until PW_ESCAPED_KILL_EARLY_MS before the runner's
 * SIGKILL to end after the SIGTERM passed on to it (output still copied),
 * then SIGKILL.
 */
static void stop_leftovers(shim_out *so)
{
	int ignored;
	while (so->term_at && !reap_children(0, &ignored)) {
		struct pollfd fds[2] = {{.fd = so->out, .events = POLLIN},
					{.fd = so->err, .events = POLLIN}};
		pass_signals(so);
		if (so->passed == SIGKILL) {
			pw_procs d;
			if (pw_descendants(getpid(), &d) == 0) {
				for (size_t i = 0; i < d.n; i++)
					(void)kill(d.v[i].pid, SIGKILL);
				pw_procs_free(&d);
			}
		}
		int r = poll(fds, 2, PW_REAP_POLL_MS);
		if (r > 0 && (fds[0].revents & (POLLIN | POLLHUP | POLLERR)))
			shim_read(so, &so->out, false);
		if (r > 0 && (fds[1].revents & (POLLIN | POLLHUP | POLLERR)))
			shim_read(so, &so->err, false);
	}
	if (so->term_at) { /* the rest of what they wrote */
		shim_copy(so, PW_DRAIN_MS);
		so->out_open = so->out >= 0 || so->err >= 0;
	}
}

/* The notes of the cap and of output a full disk made the shim drop. */
static void note_cut(shim_out *so)
{
	char text[256];
	if (so->cut > 0) {
		snprintf(text, sizeof text, "the log reached settings.max_log_bytes (%lld "
			 "bytes of output); %lld more bytes were not kept", so->cap, so->cut);
		log_note(so, text);
		so->cut = 0;
	}
	if (so->lost > 0) {
		snprintf(text, sizeof text, "%lld bytes of output were lost: %s", so->lost,
			 err_text(so->pend_errno));
		log_note(so, text);
		so->lost = 0;
	}
}

/* Length of the valid UTF-8 sequence at p (of n bytes), or 0 if invalid. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
	unsigned c = p[0];
	size_t len;
	unsigned min;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2, min = 0x80;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3, min = 0x800;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4, min = 0x10000;
	else
		return 0;
	if (n < len)
		return 0;
	unsigned cp = c & (0x3f >> (len - 1));
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* malloc'd copy of s (n bytes) with invalid UTF-8 replaced by U+FFFD. */
static char *utf8_clean(const char *s, size_t n, size_t *out_len)
{
	char *out = malloc(n * 3 + 1);
	size_t o = 0;
	if (!out)
		return NULL;
	for (size_t i = 0; i < n;) {
		size_t k = utf8_seq((const unsigned char *)s + i, n - i);
		if (k == 0) {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		} else {
			memcpy(out + o, s + i, k);
			o += k;
			i += k;
		}
	}
	out[o] = '\0';
	*out_len = o;
	return out;
}

/* Exit code and signal of wait status ws (-1: unknown, taken as 127). */
static void decode_status(int ws, int *code, int *sig)
{
	*code = 127;
	*sig = 0;
	if (ws != -1 && WIFEXITED(ws)) {
		*code = WEXITSTATUS(ws);
	} else if (ws != -1 && WIFSIGNALED(ws)) {
		*code = -1;
		*sig = WTERMSIG(ws);
	}
}

/*
 * The status JSON for wait status ws and the last line, with "reuse": true
 * when the shim offers to stay for another try. malloc'd, or NULL when out
 * of memory.
 */
static char *status_json(int ws, const shim_out *so, bool reuse)
{
	int code, sig;
	decode_status(ws, &code, &sig);
	json_object *o = json_object_new_object();
	json_object *line = NULL;
	char *res = NULL;
	if (!o)
		return NULL;
	if (so->have_last) {
		size_t n;
		char *clean = utf8_clean(so->last, so->last_len, &n);
		if (!clean)
			goto out;
		line = json_object_new_string_len(clean, (int)n);
		free(clean);
		if (!line)
			goto out;
	}
	if (json_object_object_add(o, "exit_code", json_object_new_int(code)) ||
	    json_object_object_add(o, "signal", json_object_new_int(sig)) ||
	    json_object_object_add(o, "last_line", line))
		goto out;
	line = NULL;
	if (reuse && json_object_object_add(o, "reuse", json_object_new_boolean(1)))
		goto out;
	const char *s = json_object_to_json_string_ext(
		o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (s)
		res = pw_asprintf("%s\n", s);
out:
	json_object_put(line);
	json_object_put(o);
	return res;
}

/*
 * Writes the status file atomically (<path>.tmp, then rename), for the
 * runner to find when it did not take the end over the socket. When the
 * JSON cannot be built, a status without the last line is written.
 * Returns 0 or -1.
 */
static int write_status(const char *path, const char *text)
{
	char tmp[PATH_MAX];
	if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
		return -1;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return -1;
	int w = pw_write_all(fd, text, strlen(text));
	if (close(fd) != 0 || w != 0 || rename(tmp, path) != 0) {
		int e = errno;
		(void)unlink(tmp);
		errno = e;
		return -1;
	}
	return 0;
}

/*
 * write_status, retried while the disk is full (100 ms, doubling to 5 s):
 * the shim, still alive, keeps the end until it is written, and a runner
 * that starts meanwhile adopts the shim and waits for it. Returns 0 or -1.
 */
static int keep_status(const char *path, const char *text)
{
	long long delay = 100;
	while (write_status(path, text) != 0) {
		if (!disk_full(errno))
			return -1;
		backoff_sleep(&delay, 5000);
	}
	return 0;
}

/*
 * Gives the status to the runner on the try's socket: the text (one line),
 * then waits for the runner's ack, which it sends once the end is
 * committed. Returns true when acked; false when the runner is gone (or
 * never listened): then the status must go to the file.
 */
static bool tell_runner(int sock, const char *text)
{
	size_t len = strlen(text);
	while (len > 0) {
		ssize_t n = send(sock, text, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		text += n;
		len -= (size_t)n;
	}
	/*
	 * poll, then read: a read(2) blocked on the socket would also wake up
	 * when the runner reads the end off it (the sender's side is told
	 * there is room again), and preempt the runner in the pass that ends
	 * the try. poll's wake-up asks for POLLIN only.
	 */
	struct pollfd pfd = {.fd = sock, .events = POLLIN};
	while (poll(&pfd, 1, -1) < 0 && errno == EINTR)
		;
	char ack;
	ssize_t n;
	while ((n = read(sock, &ack, 1)) < 0 && errno == EINTR)
		;
	return n == 1;
}

/*
 * Opens (creating) the try's log for appending, creating its folder when
 * missing; *created says whether the file is new, *dir_made whether its
 * folder is. Returns the fd or -1.
 */
static int open_log(const char *path, bool *created, bool *dir_made)
{
	int flags = O_WRONLY | O_APPEND | O_CLOEXEC;
	*dir_made = false;
	for (int tries = 0; tries < 2; tries++) {
		int fd = open(path, flags | O_CREAT | O_EXCL, 0640);
		*created = fd >= 0;
		if (fd < 0 && errno == EEXIST)
			fd = open(path, flags);
		if (fd >= 0 || errno != ENOENT || tries > 0)
			return fd;
		char dir[PATH_MAX];
		const char *slash = strrchr(path, '/');
		size_t n = slash ? (size_t)(slash - path) : 0;
		if (n == 0 || n >= sizeof dir)
			return -1;
		memcpy(dir, path, n);
		dir[n] = '\0';
		int made = mkdir(dir, 0755);
		if (made != 0 && errno != EEXIST)
			return -1;
		*dir_made = made == 0;
	}
	return -1;
}

/*
 * Removes what open_log made for a try that never started: the log, and
 * its folder when open_log made it (a task armed ahead that never ran
 * leaves nothing: docs/runner.md, "Group commit").
 */
static void unmake_log(const char *path, bool created, bool dir_made)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	size_t n = slash ? (size_t)(slash - path) : 0;
	if (created)
		(void)unlink(path);
	if (!dir_made || n == 0 || n >= sizeof dir)
		return;
	memcpy(dir, path, n);
	dir[n] = '\0';
	(void)rmdir(dir); /* fails, as it should, when something else is in it */
}

/*
 * open_log, retried while the disk is full (0.1 s, doubling to 5 s): a
 * try whose log cannot be made yet waits, as `running`, instead of
 * failing for want of space. Returns the fd, or -1 on another error.
 */
static int wait_for_log(const char *path)
{
	long long delay = 100;
	bool created, dir_made;
	int fd;
	while ((fd = open_log(path, &created, &dir_made)) < 0 && disk_full(errno)) {
		backoff_sleep(&delay, 5000);
	}
	return fd;
}

int pw_shim_detach(int go_r, bool clean)
{
	if (go_r >= 0 && go_r != 3 && (dup2(go_r, 3) != 3 || close(go_r) != 0))
		_exit(0); /* cannot wait for go: never start */
	close_from(go_r >= 0 ? 4 : 3);
	int null = open("/dev/null", O_RDWR);
	for (int fd = 0; fd < 3 && null >= 0; fd++)
		if (fd != null)
			(void)dup2(null, fd);
	if (null > 3)
		(void)close(null);
	if (clean)
		set_handler(SIGCHLD, SIG_DFL);
	else
		pw_signals_reset();
	set_handler(SIGTERM, SIG_IGN);
	set_handler(SIGINT, SIG_IGN);
	set_handler(SIGHUP, SIG_IGN);
	unblock_all_signals();
	return go_r >= 0 ? 3 : -1;
}

/*
 * Finds file on the absolute directories of path as exec_search would
 * (first regular file we may execute), into buf. Returns buf, or NULL
 * when file has a '/', a relative directory comes first, or a lookup
 * fails oddly: then the child searches itself, with its exact errors.
 */
static const char *resolve_path(const char *file, const char *path, char *buf, size_t size)
{
	size_t flen = strlen(file);
	struct stat sb;
	if (!*file || strchr(file, '/'))
		return NULL;
	for (const char *p = path;; p++) {
		const char *end = strchrnul(p, ':');
		size_t dlen = (size_t)(end - p);
		if (dlen == 0 || *p != '/' || dlen + 1 + flen >= size)
			return NULL;
		memcpy(buf, p, dlen);
		buf[dlen] = '/';
		memcpy(buf + dlen + 1, file, flen + 1);
		if (stat(buf, &sb) == 0) {
			if (S_ISREG(sb.st_mode) && access(buf, X_OK) == 0)
				return buf;
		} else if (errno != ENOENT && errno != ENOTDIR && errno != EACCES) {
			return NULL;
		}
		if (!*end)
			return NULL;
		p = end;
	}
}

/* The value of PATH in env, or the default search path. */
static const char *env_path(char *const *env)
{
	for (; env && *env; env++)
		if (strncmp(*env, "PATH=", 5) == 0)
			return *env + 5;
	return PW_DEFAULT_PATH;
}

/*
 * vfork()s the task; returns its pid or -1 (errno set). Kept apart so that
 * no variable of the caller lives across vfork.
 */
static __attribute__((noinline)) pid_t spawn_task(const task_spec *ts)
{
	childless = false; /* set before vfork: the child writes nothing */
	pid_t pid = vfork();
	if (pid == 0)
		task_child(ts);
	return pid;
}

/*
 * Waits for the runner's go byte on go_r (see pw_launch_start). Returns
 * false when the socket closed without one: the shim must exit unstarted.
 */
static bool shim_wait_go(int go_r)
{
	char go;
	ssize_t n;
	while ((n = read(go_r, &go, 1)) < 0 && errno == EINTR)
		;
	return n == 1;
}

/*
 * Reaps the shim's exited children: the task's orphans, which the kernel
 * hands to the shim when it is a child subreaper. Returns true when no
 * child is left: nothing the try started runs any more.
 */
static bool reap_orphans(void)
{
	int ignored;
	/* no child is pid 0: true only at ECHILD */
	return childless || reap_children(0, &ignored);
}

/*
 * The status text of wait status ws: status_json, or when out of memory
 * one without the last line, in buf. *heap is what to free.
 */
static const char *end_text(int ws, const shim_out *so, bool reuse, char *buf,
			    size_t size, char **heap)
{
	int code, sig;
	if ((*heap = status_json(ws, so, reuse)))
		return *heap;
	decode_status(ws, &code, &sig);
	snprintf(buf, size, "{\"exit_code\":%d,\"signal\":%d,\"last_line\":null%s}\n",
		 code, sig, reuse ? ",\"reuse\":true" : "");
	return buf;
}

void pw_shim_try(const pw_launch *l, int go_r, bool reuse)
{
	shim_out so = {.log = -1, .out = -1, .err = -1, .cur_blank = true,
		       .cap = l->max_log};
	int out[2] = {-1, -1}, err[2] = {-1, -1}, ws = -1;
	char resolved[PATH_MAX], fallback[128], *json;
	bool log_created = false, dir_made = false;

	/* Before go, too: the files, the pipes, the command's path. */
	const char *path_env = env_path(l->env);
	task_spec ts = {.l = l, .path_env = path_env,
			.resolved = l->argv ? resolve_path(l->argv[0], path_env, resolved,
							   sizeof resolved) : NULL};
	so.log = open_log(l->log_path, &log_created, &dir_made);
	bool full = so.log < 0 && disk_full(errno);
	int pipe_rc = so.log >= 0 && (pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) ? -1 : 0;
	int pipe_errno = errno;
	so.cur = malloc(PW_LINE_MAX); /* before go: nothing to do between go and vfork */
	so.last = malloc(PW_LINE_MAX);
	if (!so.cur || !so.last) {
		free(so.cur);
		free(so.last);
		so.cur = so.last = NULL; /* the log still gets everything */
	}
	if (go_r >= 0 && !shim_wait_go(go_r)) {
		/* Not started: leave nothing behind. */
		unmake_log(l->log_path, log_created, dir_made);
		_exit(0);
	}
	if (full) { /* the task starts once its log can be made */
		so.log = wait_for_log(l->log_path);
		pipe_rc = so.log >= 0 && (pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) ? -1 : 0;
		pipe_errno = errno;
	}
	if (so.log < 0)
		goto done;
	if (pipe_rc != 0) {
		write_msg(so.log, (const char *const[]){
			  "pipewright: cannot create a pipe: ",
			  err_text(pipe_errno), NULL});
		for (int i = 0; i < 2; i++) { /* the one that was made */
			if (out[i] >= 0)
				(void)close(out[i]);
			if (err[i] >= 0)
				(void)close(err[i]);
		}
		goto done;
	}
	ts.out_w = out[1];
	ts.err_w = err[1];
	term_seen = 0;
	set_handler(SIGTERM, on_term); /* passed on: pass_signals */
	pid_t task = spawn_task(&ts);
	int e = errno;
	(void)close(out[1]);
	(void)close(err[1]);
	so.out = out[0];
	so.err = err[0];
	if (task < 0) {
		write_msg(so.log, (const char *const[]){
			  "pipewright: cannot start the task: ", err_text(e),
			  NULL});
		goto done;
	}
	ws = shim_follow(&so, task);
	stop_leftovers(&so);
	note_leftovers(&so);
done:
	set_handler(SIGTERM, SIG_IGN);
	/* Another try only when this one left nothing running behind. */
	reuse = reuse && go_r >= 0 && !so.out_open && !so.pend_len && reap_orphans();
	const char *text = end_text(ws, &so, reuse, fallback, sizeof fallback, &json);
	bool told = go_r >= 0 && tell_runner(go_r, text);
	if (!told && reuse) { /* the file promises nothing */
		free(json);
		text = end_text(ws, &so, false, fallback, sizeof fallback, &json);
	}
	int rc = told ? 0 : keep_status(l->status_path, text);
	free(json);
	shim_copy(&so, -1); /* what the leftovers still write */
	pend_drain(&so);
	note_cut(&so);
	pend_drain(&so);
	if (so.log >= 0)
		(void)close(so.log);
	free(so.cur);
	free(so.last);
	free(so.pend);
	if (told && reuse)
		return;
	_exit(rc == 0 ? 0 : 1);
}

_Noreturn void pw_shim_main(const pw_launch *l, int go_r, int go_w)
{
	if (go_w >= 0)
		(void)close(go_w);
	/* What the task leaves behind stays below the shim (note_leftovers). */
	(void)prctl(PR_SET_CHILD_SUBREAPER, 1);
	pw_shim_try(l, pw_shim_detach(go_r, false), false);
	_exit(0); /* not reached: without reuse pw_shim_try exits */
}

pid_t pw_fork_session(void)
{
	int ready[2];
	char byte;
	if (pipe2(ready, O_CLOEXEC) != 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		(void)close(ready[0]);
		(void)setsid();
		(void)close(ready[1]); /* EOF: the parent may go on */
		return 0;
	}
	int saved = errno;
	(void)close(ready[1]);
	while (pid > 0 && read(ready[0], &byte, 1) < 0 && errno == EINTR)
		;
	(void)close(ready[0]);
	errno = saved;
	return pid;
}

pid_t pw_launch_start(const pw_launch *l, long long *proc_start, int *go_fd)
{
	int go[2];
	if (!l || !l->workdir || !l->log_path || !l->status_path ||
	    !l->env || (!l->argv && !l->shell) ||
	    (l->argv && !l->argv[0])) {
		errno = EINVAL;
		return -1;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, go) != 0)
		return -1;
	pid_t pid = pw_fork_session();
	if (pid == 0)
		pw_shim_main(l, go[0], go[1]);
	int saved = errno;
	(void)close(go[0]);
	if (pid < 0) {
		(void)close(go[1]);
		errno = saved;
		return -1;
	}
	if (proc_start)
		*proc_start = pw_proc_start_time(pid);
	*go_fd = go[1];
	return pid;
}

void pw_launch_go_follow(int go_fd)
{
	ssize_t n;
	while ((n = send(go_fd, "g", 1, MSG_NOSIGNAL)) < 0 && errno == EINTR)
		;
}

void pw_launch_go(int go_fd)
{
	pw_launch_go_follow(go_fd);
	(void)close(go_fd);
}

/* --- reading files --------------------------------------------------------- */

/*
 * Reads a whole file of at most max bytes into *buf (malloc'd, NUL added)
 * and *len. Returns 0, 1 when it does not exist, 2 when it is larger than
 * max, or -1 on another error (errno set).
 */
static int read_file(const char *path, size_t max, char **buf, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t cap = 4096, n = 0;
	char *b = NULL;
	int rc = -1;

	*buf = NULL;
	*len = 0;
	if (fd < 0)
		return errno == ENOENT ? 1 : -1;
	for (;;) {
		if (n + 1 >= cap || !b) {
			if (b)
				cap *= 2;
			char *nb = realloc(b, cap);
			if (!nb)
				goto out;
			b = nb;
		}
		ssize_t r = read(fd, b + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			goto out;
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > max) {
			rc = 2;
			goto out;
		}
	}
	b[n] = '\0';
	*buf = b;
	*len = n;
	b = NULL;
	rc = 0;
out:
	if (rc == -1) {
		int e = errno;
		close(fd);
		errno = e;
	} else {
		close(fd);
	}
	free(b);
	return rc;
}

/* Whether s (n bytes) is only JSON white space. */
static bool json_blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
			return false;
	return true;
}

/* Whether v holds a NaN or infinite number anywhere (json-c accepts them). */
static bool has_nonfinite(json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_double: {
		/* 1e400 is a JSON number (kept as written); NaN is not */
		const char *text = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
		return !isfinite(json_object_get_double(v)) &&
		       !(text && pw_json_number_text(text, strlen(text)));
	}
	case json_type_array:
		for (size_t i = 0; i < json_object_array_length(v); i++)
			if (has_nonfinite(json_object_array_get_idx(v, i)))
				return true;
		return false;
	case json_type_object: {
		json_object_object_foreach(v, key, val) {
			(void)key;
			if (has_nonfinite(val))
				return true;
		}
		return false;
	}
	default:
		return false;
	}
}

/*
 * Parses s (n bytes, NUL-terminated) as exactly one JSON value, with
 * nothing but white space after it and valid UTF-8. Returns the value, or NULL with *why
 * set to a static description.
 */
static json_object *parse_one(const char *s, size_t n, const char **why,
			      size_t *at)
{
	json_tokener *tok = json_tokener_new();
	json_object *v = NULL;

	*why = "out of memory";
	*at = 0;
	if (!tok)
		return NULL;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
				    JSON_TOKENER_VALIDATE_UTF8);
	const char *nul = memchr(s, '\0', n);
	if (nul) {
		*why = "it holds a NUL byte";
		*at = (size_t)(nul - s);
		goto out;
	}
	/* The terminating NUL is passed too, so that a bare number ends. */
	v = json_tokener_parse_ex(tok, s, (int)n + 1);
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	size_t end = json_tokener_get_parse_end(tok);
	if (end > n)
		end = n;
	if (!v && jerr == json_tokener_continue)
		*why = "unexpected end of data";
	else if (!v)
		*why = json_tokener_error_desc(jerr);
	else if (!json_blank(s + end, n - end))
		*why = "there is text after the JSON value";
	else if (has_nonfinite(v))
		*why = "NaN and Infinity are not JSON numbers";
	else if (pw_json_keep_numbers(&v, s, n) != 0)
		*why = "out of memory";
	else
		goto out;
	*at = end;
	json_object_put(v);
	v = NULL;
out:
	json_tokener_free(tok);
	return v;
}

/* Reads an int member; returns 0 or -1 when missing or not an integer. */
static int get_int(json_object *o, const char *key, int *out)
{
	json_object *v;
	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_int))
		return -1;
	int64_t x = json_object_get_int64(v);
	if (x < INT_MIN || x > INT_MAX)
		return -1;
	*out = (int)x;
	return 0;
}

/* Parses status text (NUL-terminated) into *out. Returns 0 or -1. */
static int parse_status(const char *buf, size_t len, pw_try_result *out)
{
	const char *why;
	size_t at;
	json_object *o, *line;
	int rc = -1;

	o = parse_one(buf, len, &why, &at);
	if (!o || !json_object_is_type(o, json_type_object) ||
	    get_int(o, "exit_code", &out->exit_code) != 0 ||
	    get_int(o, "signal", &out->signal) != 0)
		goto out;
	out->reuse = json_object_object_get_ex(o, "reuse", &line) &&
		     json_object_is_type(line, json_type_boolean) &&
		     json_object_get_boolean(line);
	if (json_object_object_get_ex(o, "last_line", &line) &&
	    !json_object_is_type(line, json_type_null)) {
		if (!json_object_is_type(line, json_type_string) ||
		    !(out->last_line = strdup(json_object_get_string(line))))
			goto out;
	}
	rc = 0;
out:
	if (rc != 0)
		pw_try_result_free(out);
	json_object_put(o);
	return rc;
}

int pw_launch_read_status(const char *status_path, pw_try_result *out)
{
	char *buf;
	size_t len;

	memset(out, 0, sizeof *out);
	int r = read_file(status_path, PW_STATUS_MAX, &buf, &len);
	if (r != 0)
		return r == 1 ? 1 : -1;
	int rc = parse_status(buf, len, out);
	free(buf);
	return rc;
}

int pw_launch_read_end(int sock, pw_try_result *out)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	int rc = -1;

	memset(out, 0, sizeof *out);
	while (buf) {
		if (n + 1 == cap) {
			char *grown = cap < PW_STATUS_MAX ? realloc(buf, cap * 2) : NULL;
			if (!grown)
				break;
			buf = grown;
			cap *= 2;
		}
		ssize_t r = read(sock, buf + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r > 0 && !memchr(buf + n, '\n', (size_t)r)) {
			n += (size_t)r;
			continue;
		}
		if (r > 0)
			n += (size_t)r;
		buf[n] = '\0';
		rc = r < 0 ? -1 : n == 0 ? 1 : parse_status(buf, n, out);
		break;
	}
	free(buf);
	return rc;
}

void pw_ack_end(int sock)
{
	ssize_t ignored = send(sock, "a", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)ignored;
	(void)close(sock);
}

void pw_try_result_free(pw_try_result *r)
{
	if (!r)
		return;
	free(r->last_line);
	r->last_line = NULL;
}

int pw_xcom_read(const char *path, json_object **out, char **err)
{
	char *buf = NULL;
	size_t len, at;
	const char *why;
	json_object *v = NULL;
	int rc = -1;

	*out = NULL;
	*err = NULL;
	int r = read_file(path, PW_XCOM_MAX, &buf, &len);
	if (r == 1 || (r == 0 && json_blank(buf, len))) {
		rc = 0;
	} else if (r == 2) {
		*err = pw_asprintf("XCom file is larger than 1 MiB");
	} else if (r < 0) {
		*err = pw_asprintf("cannot read the XCom file: %s",
				   err_text(errno));
	} else if (!(v = parse_one(buf, len, &why, &at))) {
		*err = pw_asprintf("XCom file is not valid JSON: %s (at byte "
				   "%zu)", why, at);
	} else if (!json_object_is_type(v, json_type_object)) {
		*err = pw_asprintf("XCom file is not a JSON object (it holds "
				   "a JSON %s)",
				   json_type_to_name(json_object_get_type(v)));
	} else {
		*out = v;
		v = NULL;
		rc = 0;
	}
	json_object_put(v);
	free(buf);
	return rc;
}

/* --- processes ------------------------------------------------------------- */

long long pw_proc_start_time(pid_t pid)
{
	char path[64], buf[2048];
	ssize_t n;

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	do
		n = read(fd, buf, sizeof buf - 1);
	while (n < 0 && errno == EINTR);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* comm (field 2) may hold spaces and ')': fields 3.. follow the last
	 * ')'. Field 22 is the 20th after it. */
	char *p = strrchr(buf, ')');
	if (!p)
		return -1;
	p++;
	for (int field = 3; field < 22; field++) {
		p = strchr(p + 1, ' ');
		if (!p)
			return -1;
	}
	char *end;
	errno = 0;
	long long v = strtoll(p + 1, &end, 10);
	if (errno || end == p + 1 || (*end != ' ' && *end != '\n' && *end))
		return -1;
	return v;
}

int pw_pidfd_open(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (int)syscall(SYS_pidfd_open, pid, 0);
#else
	(void)pid;
	errno = ENOSYS;
	return -1;
#endif
}

/* --- the task's environment ------------------------------------------------ */

/* Environment being built: entries in order, and name -> index. */
typedef struct env_builder {
	pw_strv *out;
	pw_strmap index; /* NAME, borrowed from its entry in out -> its index */
} env_builder;

/*
 * Adds "NAME=value" (entry, malloc'd, taken over), replacing an earlier
 * entry of the same name in place. namelen is the length of NAME.
 * Returns 0 or -1 (out of memory).
 */
static int env_put(env_builder *b, char *entry, size_t namelen)
{
	pw_strv *out = b->out;
	bool created;
	size_t *idx = NULL;

	if (!entry)
		return -1;
	if (pw_grow(&out->v, out->n, &out->cap, sizeof *out->v, 64) != 0 ||
	    !(idx = pw_strmap_ref(&b->index, entry, namelen, &created))) {
		free(entry);
		return -1;
	}
	if (created) {
		*idx = out->n;
		out->v[out->n++] = entry;
		return 0;
	}
	/* The map's key lives in the entry replaced: it moves to the new one
	 * (the same bytes, so the same slot). */
	pw_strmap_ent *slot = (pw_strmap_ent *)(void *)((char *)idx -
							offsetof(pw_strmap_ent, val));
	assert(slot->len == namelen && memcmp(slot->key, entry, namelen) == 0);
	free(out->v[*idx]);
	out->v[*idx] = entry;
	slot->key = entry;
	return 0;
}

/* Adds name=value. A NULL value adds nothing. Returns 0 or -1. */
static int env_set(env_builder *b, const char *name, const char *value)
{
	if (!value)
		return 0;
	return env_put(b, pw_asprintf("%s=%s", name, value), strlen(name));
}

/* "PIPEWRIGHT_<kind>_<NAME>" for dataset name: upper-cased, others '_'. */
static char *dataset_var(const char *kind, const char *name)
{
	char *v = pw_asprintf("PIPEWRIGHT_%s_%s", kind, name);
	if (!v)
		return NULL;
	for (char *p = v + strlen("PIPEWRIGHT_") + strlen(kind) + 1; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c >= 'a' && c <= 'z')
			*p = (char)(c - 'a' + 'A');
		else if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			   c == '_'))
			*p = '_';
	}
	return v;
}

static bool is_params(const char *name)
{
	return strncmp(name, "params:", 7) == 0 ||
	       strcmp(name, "parameters") == 0;
}

/*
 * Path of input `name`: its load path, or its save path (this run's
 * version) when this run writes it and load_versions does not pin it.
 * NULL with *oom false for a dataset without a filepath.
 */
static char *input_path(const pw_task_env *in, const char *name, bool *oom)
{
	const pw_catalog_view *cat = in->catalog;
	json_object *v;
	bool pinned = cat->load_versions &&
		json_object_object_get_ex(cat->load_versions, name, &v) &&
		json_object_is_type(v, json_type_string);
	if (!pinned && in->run_outputs &&
	    json_object_object_get_ex(in->run_outputs, name, NULL))
		return pw_dataset_save_path(cat, name, in->run_id, oom);
	return pw_dataset_load_path(cat, name, in->run_id, oom);
}

/* Adds PIPEWRIGHT_<kind>_<NAME> for each dataset of names with a path. */
static int env_datasets(env_builder *b, const pw_task_env *in,
			const pw_strv *names, bool output)
{
	for (size_t i = 0; i < names->n; i++) {
		const char *name = names->v[i];
		bool oom = false;
		if (is_params(name))
			continue;
		char *path = output ? pw_dataset_save_path(in->catalog, name,
							    in->run_id, &oom)
				    : input_path(in, name, &oom);
		if (!path) {
			if (oom)
				return -1;
			continue;
		}
		char *var = dataset_var(output ? "OUTPUT" : "INPUT", name);
		int rc = var ? env_set(b, var, path) : -1;
		free(var);
		free(path);
		if (rc != 0)
			return -1;
	}
	return 0;
}

/* PIPEWRIGHT_PARAM_<NAME> for each "params:<name>" input params defines. */
static int env_params(env_builder *b, const pw_task_env *in)
{
	const pw_strv *names = &in->task->inputs;
	for (size_t i = 0; in->params && i < names->n; i++) {
		bool found = false;
		if (strncmp(names->v[i], "params:", 7) != 0)
			continue;
		json_object *v = pw_json_path_get(in->params, names->v[i] + 7, &found);
		if (!found)
			continue;
		const char *text = json_object_is_type(v, json_type_string)
			? json_object_get_string(v)
			: json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN |
							    JSON_C_TO_STRING_NOSLASHESCAPE);
		char *var = dataset_var("PARAM", names->v[i] + 7);
		int rc = var && text ? env_set(b, var, text) : -1;
		free(var);
		if (rc != 0)
			return -1;
	}
	return 0;
}

/* base, the PIPEWRIGHT_* variables, datasets, parameters, then the task's env. */
static int env_fill(env_builder *b, const pw_task_env *in)
{
	char try_s[24];
	const pw_task *t = in->task;

	for (char *const *e = in->base; e && *e; e++) {
		const char *eq = strchr(*e, '=');
		if (eq && eq != *e &&
		    env_put(b, strdup(*e), (size_t)(eq - *e)) != 0)
			return -1;
	}
	snprintf(try_s, sizeof try_s, "%d", in->try_number);
	if (env_set(b, "PIPEWRIGHT_DAG_ID", in->dag_id) ||
	    env_set(b, "PIPEWRIGHT_RUN_ID", in->run_id) ||
	    env_set(b, "PIPEWRIGHT_TASK_ID", t ? t->name : NULL) ||
	    env_set(b, "PIPEWRIGHT_TRY_NUMBER", try_s) ||
	    env_set(b, "PIPEWRIGHT_PARAMS", in->params_path) ||
	    env_set(b, "PIPEWRIGHT_XCOM", in->xcom_path))
		return -1;
	if (!t)
		return 0;
	if (in->catalog && (env_datasets(b, in, &t->inputs, false) ||
			    env_datasets(b, in, &t->outputs, true)))
		return -1;
	if (env_params(b, in) != 0)
		return -1;
	if (!t->env)
		return 0;
	json_object_object_foreach(t->env, key, val) {
		if (env_set(b, key, json_object_get_string(val)) != 0)
			return -1;
	}
	return 0;
}

int pw_task_env_build(const pw_task_env *in, pw_strv *out)
{
	env_builder b = {.out = out};
	int rc = -1;

	if (pw_strmap_init(&b.index, 64) == 0)
		rc = env_fill(&b, in);
	pw_strmap_free(&b.index);
	if (rc != 0)
		pw_strv_free(out);
	return rc;
}

char **pw_env_vector(const pw_strv *sv)
{
	char **v = malloc((sv->n + 1) * sizeof *v);
	if (!v)
		return NULL;
	for (size_t i = 0; i < sv->n; i++)
		v[i] = sv->v[i];
	v[sv->n] = NULL;
	return v;
}

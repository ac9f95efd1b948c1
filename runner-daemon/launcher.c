/*
 * launcher.c - the small process that forks shims for the runner (see
 * launch.h), ahead of need: each shim starts as a spare that waits for its
 * try, so no fork lies between a try's end and the start of the next.
 *
 *   runner -> launcher   "s", with the spare's end of a new socket as
 *                        SCM_RIGHTS (SOCK_SEQPACKET, one message each)
 *   launcher -> runner   {pid, errno}: the spare's pid, or 0 and why not;
 *                        answers come in the order of the requests
 *   runner -> spare      the try, on the spare's socket: a header, then
 *                        the strings workdir, log_path, status_path, then
 *                        the shell string or the argv strings, then the
 *                        environment, each NUL-terminated. The spare is
 *                        now the try's shim; the socket carries go and
 *                        the end as launch.h describes.
 *   runner -> kept shim  the next try, the same way, after the ack of an
 *                        end in which the shim offered reuse.
 *
 * The launcher ignores SIGCHLD, so the kernel reaps its shims; the runner
 * keeps its end of each try's socket, which becomes readable when the
 * shim has sent the status or is gone, and its end of each kept shim's.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "launch.h"

/* Largest request: environments are a few KiB; this leaves ample room. */
#define REQUEST_MAX (1024 * 1024)

typedef struct request_head {
	uint32_t n_argv;   /* 0: a shell command follows instead */
	uint32_t n_env;
	uint32_t len;      /* bytes of strings after the header */
	int64_t max_log;   /* pw_launch.max_log */
} request_head;

typedef struct reply {
	int32_t pid;
	int32_t err;
} reply;

/* Appends s and its NUL to buf at *len (buf has room: sized beforehand). */
static void put_string(char *buf, size_t *len, const char *s)
{
	size_t n = strlen(s) + 1;
	memcpy(buf + *len, s, n);
	*len += n;
}

static size_t strings_size(char *const *v, uint32_t *count)
{
	size_t size = 0;
	*count = 0;
	for (; v && *v; v++, (*count)++)
		size += strlen(*v) + 1;
	return size;
}

/* Serializes l into a malloc'd message; NULL when out of memory or too big. */
static char *encode(const pw_launch *l, size_t *size)
{
	request_head h = {.max_log = l->max_log};
	size_t strings = strlen(l->workdir) + strlen(l->log_path) + strlen(l->status_path) + 3;
	strings += l->argv ? strings_size(l->argv, &h.n_argv) : strlen(l->shell) + 1;
	strings += strings_size(l->env, &h.n_env);
	if (strings > REQUEST_MAX)
		return NULL;
	h.len = (uint32_t)strings;
	char *buf = malloc(sizeof h + strings);
	size_t len = sizeof h;
	if (!buf)
		return NULL;
	memcpy(buf, &h, sizeof h);
	put_string(buf, &len, l->workdir);
	put_string(buf, &len, l->log_path);
	put_string(buf, &len, l->status_path);
	if (l->argv)
		for (char *const *a = l->argv; *a; a++)
			put_string(buf, &len, *a);
	else
		put_string(buf, &len, l->shell);
	for (char *const *e = l->env; *e; e++)
		put_string(buf, &len, *e);
	*size = len;
	return buf;
}

/*
 * Splits n NUL-terminated strings off *p (bounded by end) into a new
 * NULL-terminated array. NULL when the message is malformed or OOM.
 */
static char **take_strings(const char **p, const char *end, uint32_t n)
{
	char **v = calloc((size_t)n + 1, sizeof *v);
	for (uint32_t i = 0; v && i < n; i++) {
		const char *nul = memchr(*p, '\0', (size_t)(end - *p));
		if (!nul) {
			free(v);
			return NULL;
		}
		v[i] = (char *)*p;
		*p = nul + 1;
	}
	return v;
}

/* Decodes a request into l (pointing into msg). Returns 0 or -1. */
static int decode(const char *msg, size_t size, pw_launch *l, char ***argv, char ***env)
{
	request_head h;
	if (size < sizeof h)
		return -1;
	memcpy(&h, msg, sizeof h);
	const char *p = msg + sizeof h, *end = msg + size;
	if (h.len != size - sizeof h || end[-1] != '\0')
		return -1;
	char **fixed = take_strings(&p, end, h.n_argv ? 3 : 4);
	if (!fixed)
		return -1;
	*argv = h.n_argv ? take_strings(&p, end, h.n_argv) : NULL;
	*env = take_strings(&p, end, h.n_env);
	*l = (pw_launch){.workdir = fixed[0], .log_path = fixed[1], .status_path = fixed[2],
			 .shell = h.n_argv ? NULL : fixed[3], .argv = *argv, .env = *env,
			 .max_log = h.max_log};
	free(fixed);
	return (h.n_argv && !*argv) || !*env ? -1 : 0;
}

/* Reads exactly len bytes. Returns 0, or -1 at EOF or on error. */
static int read_full(int fd, void *buf, size_t len)
{
	char *p = buf;
	while (len > 0) {
		ssize_t n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * A spare shim: detaches once, then waits for a try on go_r and runs it,
 * and again after each try that allows reuse (pw_shim_try). A closed
 * socket (the runner took no try from it, or is gone) ends it.
 */
static _Noreturn void spare_main(int go_r)
{
	/* The task's orphans become ours: how a try is known to be over. */
	bool reuse = prctl(PR_SET_CHILD_SUBREAPER, 1) == 0;
	go_r = pw_shim_detach(go_r, true);
	for (;;) {
		request_head h;
		pw_launch l;
		char **argv = NULL, **env = NULL;
		if (read_full(go_r, &h, sizeof h) != 0 || h.len > REQUEST_MAX)
			_exit(0);
		char *msg = malloc(sizeof h + h.len);
		if (!msg)
			_exit(0);
		memcpy(msg, &h, sizeof h);
		if (read_full(go_r, msg + sizeof h, h.len) != 0 ||
		    decode(msg, sizeof h + h.len, &l, &argv, &env) != 0)
			_exit(0);
		pw_shim_try(&l, go_r, reuse);
		free(argv);
		free(env);
		free(msg);
	}
}

/* Receives one request's go fd. Returns > 0, 0 at EOF, -1 on error. */
static ssize_t receive(int sock, int *go_r)
{
	char control[CMSG_SPACE(sizeof(int))], byte;
	struct iovec iov = {&byte, 1};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = control, .msg_controllen = sizeof control};
	ssize_t n;
	*go_r = -1;
	while ((n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
		;
	struct cmsghdr *c = n > 0 ? CMSG_FIRSTHDR(&msg) : NULL;
	if (c && c->cmsg_type == SCM_RIGHTS)
		memcpy(go_r, CMSG_DATA(c), sizeof *go_r);
	return n;
}

/*
 * Serves one request: forks a spare shim on go_r and answers with its
 * pid, once the shim leads its own process group (pw_fork_session).
 */
static void serve(int sock, int go_r)
{
	reply rep = {0, EINVAL};
	if (go_r >= 0) {
		pid_t pid = pw_fork_session();
		if (pid == 0) {
			close(sock); /* the runner must see EOF when the launcher goes */
			spare_main(go_r);
		}
		rep = (reply){pid > 0 ? pid : 0, pid > 0 ? 0 : errno};
		close(go_r);
	}
	ssize_t ignored = send(sock, &rep, sizeof rep, MSG_NOSIGNAL);
	(void)ignored;
}

/* The launcher's life: serve requests until the runner goes away. */
static _Noreturn void launcher_main(int sock)
{
	struct sigaction ign = {.sa_handler = SIG_IGN};
	sigemptyset(&ign.sa_mask);
	pw_signals_reset(); /* once here, so that each shim need not */
	sigaction(SIGCHLD, &ign, NULL);  /* the kernel reaps the shims */
	sigaction(SIGTERM, &ign, NULL);  /* the runner's group may get it */
	sigaction(SIGINT, &ign, NULL);
	for (;;) {
		int go_r;
		if (receive(sock, &go_r) <= 0)
			_exit(0);
		serve(sock, go_r);
	}
}

/* --- the runner's side ------------------------------------------------------ */

/* Spare shims kept ready: enough for a burst of ends at parallelism 2. */
#define SPARES 2

/* A shim back from an acked try, waiting for another. */
typedef struct kept_shim {
	int fd;               /* the runner's end of its socket */
	pid_t pid;
	long long proc_start;
} kept_shim;

struct pw_launcher {
	int sock;             /* SOCK_SEQPACKET to the launcher */
	pid_t pid;            /* the launcher's */
	size_t n_spares;      /* requested, oldest first; replies come in order */
	int spare_fd[SPARES]; /* the runner's end of each spare's socket */
	kept_shim *kept;      /* oldest first */
	size_t n_kept, cap_kept;
};

pw_launcher *pw_launcher_start(void)
{
	int sv[2];
	pw_launcher *lr = calloc(1, sizeof *lr);
	if (!lr || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
		free(lr);
		return NULL;
	}
	lr->pid = fork();
	if (lr->pid == 0) {
		close(sv[0]);
		launcher_main(sv[1]);
	}
	close(sv[1]);
	lr->sock = sv[0];
	if (lr->pid < 0) {
		close(sv[0]);
		free(lr);
		return NULL;
	}
	return lr;
}

pid_t pw_launcher_pid(const pw_launcher *lr)
{
	return lr->pid;
}

void pw_launcher_close(pw_launcher *lr)
{
	if (!lr)
		return;
	for (size_t i = 0; i < lr->n_spares; i++)
		close(lr->spare_fd[i]); /* each spare exits unstarted */
	for (size_t i = 0; i < lr->n_kept; i++)
		close(lr->kept[i].fd); /* and each kept shim */
	close(lr->sock); /* the launcher exits; running shims go on */
	free(lr->kept);
	free(lr);
}

/* Asks the launcher for one more spare shim. Returns 0 or -1 (errno). */
static int request_spare(pw_launcher *lr)
{
	int go[2];
	char control[CMSG_SPACE(sizeof(int))] = {0};
	struct iovec iov = {"s", 1};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1,
			   .msg_control = control, .msg_controllen = sizeof control};
	assert(lr->n_spares < SPARES);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, go) != 0)
		return -1;
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &go[0], sizeof go[0]);
	ssize_t n;
	while ((n = sendmsg(lr->sock, &m, MSG_NOSIGNAL)) < 0 && errno == EINTR)
		;
	int saved = errno;
	close(go[0]);
	if (n != 1) {
		close(go[1]);
		errno = n < 0 ? saved : EIO;
		return -1;
	}
	lr->spare_fd[lr->n_spares++] = go[1];
	return 0;
}

/*
 * Takes the oldest spare (asking for one first if none is left): waits
 * for the launcher's answer about it.
 * Returns its socket and sets *pid (> 0), or returns -1 (errno).
 */
static int take_spare(pw_launcher *lr, pid_t *pid)
{
	reply rep = {0, EIO};
	ssize_t n;
	if (lr->n_spares == 0 && request_spare(lr) != 0)
		return -1;
	int fd = lr->spare_fd[0];
	memmove(lr->spare_fd, lr->spare_fd + 1, --lr->n_spares * sizeof *lr->spare_fd);
	while ((n = recv(lr->sock, &rep, sizeof rep, 0)) < 0 && errno == EINTR)
		;
	if (n != sizeof rep || rep.pid <= 0) {
		close(fd);
		errno = rep.err ? rep.err : EIO;
		return -1;
	}
	*pid = rep.pid;
	return fd;
}

pid_t pw_launcher_launch(pw_launcher *lr, const pw_launch *l, long long *proc_start, int *go_fd)
{
	size_t size = 0;
	pid_t pid = -1;
	char *msg = encode(l, &size);
	if (!msg) {
		errno = ENOMEM;
		return -1;
	}
	/* A kept shim may have been killed meanwhile (its write fails): then
	 * the next one. The newest first: its pages are the warmest. */
	while (pid < 0 && lr->n_kept > 0) {
		kept_shim k = lr->kept[--lr->n_kept];
		if (pw_write_all(k.fd, msg, size) == 0) {
			pid = k.pid;
			*proc_start = k.proc_start;
			*go_fd = k.fd;
		} else {
			close(k.fd);
		}
	}
	/* A spare may have died meanwhile too: then one more. */
	for (int attempt = 0; attempt < 2 && pid < 0; attempt++) {
		int fd = take_spare(lr, &pid);
		if (fd < 0)
			break;
		if (pw_write_all(fd, msg, size) == 0) {
			*proc_start = pw_proc_start_time(pid);
			*go_fd = fd;
		} else {
			close(fd);
			pid = -1;
		}
	}
	free(msg);
	return pid;
}

void pw_launcher_ack(pw_launcher *lr, int sock, pid_t pid, long long proc_start, size_t max)
{
	if (!lr || pid <= 0 || lr->n_kept >= max) {
		pw_ack_end(sock); /* the shim exits */
		return;
	}
	if (pw_grow(&lr->kept, lr->n_kept, &lr->cap_kept, sizeof *lr->kept, 8) != 0) {
		pw_ack_end(sock);
		return;
	}
	ssize_t n;
	while ((n = send(sock, "a", 1, MSG_NOSIGNAL | MSG_DONTWAIT)) < 0 && errno == EINTR)
		;
	if (n != 1) { /* gone: its end is committed all the same */
		close(sock);
		return;
	}
	lr->kept[lr->n_kept++] = (kept_shim){sock, pid, proc_start};
}

void pw_launcher_refill(pw_launcher *lr)
{
	int saved = errno;
	while (lr && lr->n_spares < SPARES && request_spare(lr) == 0)
		;
	errno = saved;
}

/*
 * launcher.c - the small process that forks shims for the runner (see
 * launch.h). The runner and the launcher talk over a SOCK_SEQPACKET pair:
 *
 *   runner -> launcher   one message per try: a header, then the strings
 *                        workdir, log_path, status_path, then the shell
 *                        string or the argv strings, then the environment,
 *                        each NUL-terminated; the shim's end of the try's
 *                        socket (go, then the end) rides along as SCM_RIGHTS
 *   launcher -> runner   {pid, errno}: the shim's pid, or 0 and why not
 *
 * The launcher ignores SIGCHLD, so the kernel reaps its shims; the runner
 * keeps its end of each try's socket, which becomes readable when the
 * shim has written the status or is gone.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
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
	request_head h = {0};
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
			 .shell = h.n_argv ? NULL : fixed[3], .argv = *argv, .env = *env};
	free(fixed);
	return (h.n_argv && !*argv) || !*env ? -1 : 0;
}

/* Receives one request and its go fd. Returns bytes, 0 at EOF, -1 on error. */
static ssize_t receive(int sock, char *buf, size_t cap, int *go_r)
{
	char control[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {buf, cap};
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

/* Serves one request: forks its shim and answers with the pid. */
static void serve(int sock, const char *msg, size_t size, int go_r)
{
	pw_launch l;
	char **argv = NULL, **env = NULL;
	reply rep = {0, EINVAL};
	if (go_r >= 0 && decode(msg, size, &l, &argv, &env) == 0) {
		pid_t pid = fork();
		if (pid == 0)
			pw_shim_main(&l, go_r, -1, true);
		rep = (reply){pid > 0 ? pid : 0, pid > 0 ? 0 : errno};
	}
	if (go_r >= 0)
		close(go_r);
	free(argv);
	free(env);
	ssize_t ignored = send(sock, &rep, sizeof rep, MSG_NOSIGNAL);
	(void)ignored;
}

/* The launcher's life: serve requests until the runner goes away. */
static _Noreturn void launcher_main(int sock)
{
	static char buf[sizeof(request_head) + REQUEST_MAX];
	struct sigaction ign = {.sa_handler = SIG_IGN};
	sigemptyset(&ign.sa_mask);
	pw_signals_reset(); /* once here, so that each shim need not */
	sigaction(SIGCHLD, &ign, NULL);  /* the kernel reaps the shims */
	sigaction(SIGTERM, &ign, NULL);  /* the runner's group may get it */
	sigaction(SIGINT, &ign, NULL);
	for (;;) {
		int go_r;
		ssize_t n = receive(sock, buf, sizeof buf, &go_r);
		if (n <= 0)
			_exit(0);
		serve(sock, buf, (size_t)n, go_r);
	}
}

int pw_launcher_start(pid_t *pid)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
		return -1;
	*pid = fork();
	if (*pid == 0) {
		close(sv[0]);
		launcher_main(sv[1]);
	}
	close(sv[1]);
	if (*pid < 0) {
		close(sv[0]);
		return -1;
	}
	return sv[0];
}

/* Sends one request with go_r attached. Returns 0 or -1 (errno). */
static int send_request(int sock, const char *msg, size_t size, int go_r)
{
	char control[CMSG_SPACE(sizeof(int))] = {0};
	struct iovec iov = {(void *)msg, size};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1,
			   .msg_control = control, .msg_controllen = sizeof control};
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &go_r, sizeof go_r);
	ssize_t n;
	while ((n = sendmsg(sock, &m, MSG_NOSIGNAL)) < 0 && errno == EINTR)
		;
	return n == (ssize_t)size ? 0 : -1;
}

pid_t pw_launcher_launch(int sock, const pw_launch *l, long long *proc_start, int *go_fd)
{
	size_t size = 0;
	int go[2] = {-1, -1};
	reply rep = {0, EIO};
	char *msg = encode(l, &size);
	if (!msg || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, go) != 0 ||
	    send_request(sock, msg, size, go[0]) != 0)
		goto fail;
	ssize_t n;
	while ((n = recv(sock, &rep, sizeof rep, 0)) < 0 && errno == EINTR)
		;
	if (n != sizeof rep || rep.pid <= 0)
		goto fail;
	free(msg);
	close(go[0]);
	*proc_start = pw_proc_start_time(rep.pid);
	*go_fd = go[1];
	return rep.pid;
fail:
	free(msg);
	if (go[0] >= 0)
		close(go[0]);
	if (go[1] >= 0)
		close(go[1]);
	errno = rep.err ? rep.err : EIO;
	return -1;
}

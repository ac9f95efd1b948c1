/*
 * test_fcgi_socket.c - `pipewright.fcgi --socket 127.0.0.1:PORT` against
 * hostile local clients, with a small FastCGI client of its own: silent
 * (half-open) connections free their thread after the read timeout, so
 * they cannot block every thread; FCGI_WEB_SERVER_ADDRS is honoured (a
 * connection from another address gets no answer); a TCP socket without
 * it draws a loud warning.
 */
#include "harness.h"
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static hr_project *P;
static pid_t fcgi_pid = -1;
static int fcgi_port;
static char errlog[512];

/* Connects to 127.0.0.1:port with a 30 s receive timeout; -1 on failure. */
static int dial(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct timeval tv = {.tv_sec = 30};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Appends one FastCGI record (version 1, request id 1) to buf at *n. */
static void record(unsigned char *buf, size_t *n, int type, const void *content, size_t len)
{
	unsigned char h[8] = {1, (unsigned char)type, 0, 1, (unsigned char)(len >> 8),
			      (unsigned char)len, 0, 0};
	memcpy(buf + *n, h, 8);
	memcpy(buf + *n + 8, content, len);
	*n += 8 + len;
}

/* Appends a name-value pair (both under 128 bytes) to p at *n. */
static void pair(unsigned char *p, size_t *n, const char *name, const char *value)
{
	size_t nl = strlen(name), vl = strlen(value);
	p[(*n)++] = (unsigned char)nl;
	p[(*n)++] = (unsigned char)vl;
	memcpy(p + *n, name, nl);
	memcpy(p + *n + nl, value, vl);
	*n += nl + vl;
}

/*
 * GET path over one FastCGI connection; returns everything the server
 * sent before it closed (malloc'd, NUL bytes as '.'; "" when it sent
 * nothing), or NULL when nothing came within the 30 s receive timeout.
 */
static char *fcgi_get(int port, const char *path)
{
	static const unsigned char begin[8] = {0, 1, 0, 0, 0, 0, 0, 0};   /* responder */
	unsigned char params[1024], req[2048];
	size_t np = 0, n = 0, got = 0, cap = 1 << 16;
	int fd = dial(port);
	assert_true(fd >= 0);
	pair(params, &np, "REQUEST_METHOD", "GET");
	pair(params, &np, "PATH_INFO", path);
	pair(params, &np, "SCRIPT_NAME", "");
	pair(params, &np, "QUERY_STRING", "");
	pair(params, &np, "SERVER_PROTOCOL", "HTTP/1.1");
	record(req, &n, 1, begin, sizeof begin);
	record(req, &n, 4, params, np);
	record(req, &n, 4, "", 0);
	record(req, &n, 5, "", 0);
	assert_int_equal(write(fd, req, n), (ssize_t)n);
	char *out = malloc(cap + 1);
	assert_non_null(out);
	for (;;) {
		ssize_t r = read(fd, out + got, cap - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == ECONNRESET)
			break;   /* closed with our request unread */
		if (r < 0) {   /* timed out: no answer */
			free(out);
			out = NULL;
			break;
		}
		if (r == 0 || (got += (size_t)r) == cap)
			break;
	}
	if (out) {   /* record headers hold NUL bytes: make it one searchable string */
		for (size_t i = 0; i < got; i++)
			if (!out[i])
				out[i] = '.';
		out[got] = '\0';
	}
	close(fd);
	return out;
}

/* Starts pipewright.fcgi --socket 127.0.0.1:PORT with extra environment. */
static void start_fcgi(int threads, const char *web_server_addrs)
{
	char exe[512], sock[64], th[16];
	snprintf(exe, sizeof exe, "%s/fcgi/pipewright.fcgi", ht_builddir());
	fcgi_port = ht_free_port();
	snprintf(sock, sizeof sock, "127.0.0.1:%d", fcgi_port);
	snprintf(th, sizeof th, "%d", threads);
	snprintf(errlog, sizeof errlog, "%s/fcgi.err", P->dir);
	fcgi_pid = fork();
	assert_true(fcgi_pid >= 0);
	if (fcgi_pid == 0) {
		if (!freopen(errlog, "w", stderr))
			_exit(127);
		setenv("PIPEWRIGHT_PROJECT_PATH", P->dir, 1);
		setenv("PIPEWRIGHT_FCGI_READ_TIMEOUT_SECONDS", "1", 1);
		if (web_server_addrs)
			setenv("FCGI_WEB_SERVER_ADDRS", web_server_addrs, 1);
		else
			unsetenv("FCGI_WEB_SERVER_ADDRS");
		execl(exe, exe, "--socket", sock, "--threads", th, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 200 && !ht_port_answers(fcgi_port); i++)
		usleep(50 * 1000);
	assert_true(ht_port_answers(fcgi_port));
}

static void stop_fcgi(void)
{
	if (fcgi_pid > 0) {   /* threads stuck in a read would never let it stop */
		kill(fcgi_pid, SIGTERM);
		for (int i = 0; i < 100 && waitpid(fcgi_pid, NULL, WNOHANG) == 0; i++)
			usleep(100 * 1000);
		if (waitpid(fcgi_pid, NULL, WNOHANG) == 0) {
			fprintf(stderr, "pipewright.fcgi did not stop on SIGTERM: killed\n");
			kill(fcgi_pid, SIGKILL);
			waitpid(fcgi_pid, NULL, 0);
		}
	}
	fcgi_pid = -1;
}

static int setup(void **state)
{
	(void)state;
	P = hr_project_new(1);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	stop_fcgi();
	char *log = th_read(errlog);
	if (log)
		fprintf(stderr, "---- pipewright.fcgi stderr ----\n%s---- end ----\n", log);
	free(log);
	hr_project_free(P);
	return 0;
}

/*
 * Twice as many silent connections as threads: without a read timeout
 * every thread would wait on one for ever and /health never answer.
 */
static void test_silent_clients(void **state)
{
	(void)state;
	int silent[8];
	start_fcgi(4, NULL);
	for (size_t i = 0; i < 8; i++)
		assert_true((silent[i] = dial(fcgi_port)) >= 0);
	char *out = fcgi_get(fcgi_port, "/health");
	if (!out || !strstr(out, "\"status\":\"healthy\""))
		fail_msg("/health behind 8 silent connections: %s", out ? out : "(no answer)");
	free(out);
	for (size_t i = 0; i < 8; i++)
		close(silent[i]);
	/* an idle accept() timing out is no failure: the server still answers */
	sleep(2);
	out = fcgi_get(fcgi_port, "/health");
	if (!out || !strstr(out, "\"status\":\"healthy\""))
		fail_msg("/health after an idle while: %s", out ? out : "(no answer)");
	free(out);
	char *log = th_read(errlog);
	if (!strstr(log, "WARNING: listening on TCP"))
		fail_msg("no warning about the TCP socket: %s", log);
	free(log);
}

/* FCGI_WEB_SERVER_ADDRS: connections from other addresses get nothing. */
static void test_web_server_addrs(void **state)
{
	(void)state;
	start_fcgi(2, "127.0.0.2");
	char *out = fcgi_get(fcgi_port, "/health");
	if (!out || *out)
		fail_msg("a client outside FCGI_WEB_SERVER_ADDRS was answered: %s",
			 out ? out : "(no answer, connection left open)");
	free(out);
	stop_fcgi();
	start_fcgi(2, "127.0.0.2,127.0.0.1");
	out = fcgi_get(fcgi_port, "/health");
	if (!out || !strstr(out, "\"status\":\"healthy\""))
		fail_msg("a listed client: %s", out ? out : "(no answer)");
	free(out);
	char *log = th_read(errlog);
	if (strstr(log, "WARNING"))
		fail_msg("a warning although FCGI_WEB_SERVER_ADDRS is set: %s", log);
	free(log);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_silent_clients, setup, teardown),
		cmocka_unit_test_setup_teardown(test_web_server_addrs, setup, teardown),
	};
	return cmocka_run_group_tests_name("fcgi_socket", tests, NULL, NULL);
}

/*
 * sse.c - state change -> SSE client has it, as bench/api measures it.
 *
 *     sse PORT PATH DATABASE DAG_ID STREAMS COUNT
 *
 * Opens STREAMS connections to 127.0.0.1:PORT, each a plain HTTP/1.0
 * "GET PATH" with "Accept: text/event-stream" (HTTP/1.0, so the web server
 * does not chunk the stream). When an answer is not text/event-stream (the
 * server only has the JSON page), prints "SSE: not available in this build"
 * and exits with status 3.
 *
 * After one unmeasured change (the helper's first transaction prepares
 * its statements), COUNT times: notes its own microsecond clock, flips DAG_ID's pause
 * flag through pw_store_set_paused (one transaction that writes the
 * dag.updated event, as the API's PATCH does), and waits (up to 5 s) until
 * every stream has received one more "event: dag.updated" message. Each
 * stream's delay is a sample: COUNT x STREAMS samples in all. 20 ms pause
 * between changes.
 *
 * Prints "change I: last stream after X ms" per change, and
 * "p50_ms X p99_ms X max_ms X n N timeouts N" on its last line.
 * Exit status 1 on any error. Built by bench/api against the build tree's
 * src/libpipewright.a, with no other library than the store's.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "store.h"

#define MAX_STREAMS 256
#define MARK "event: dag.updated"

typedef struct stream {
	int fd;
	char carry[64];   /* the tail of the last read, for a split MARK */
	size_t carry_len;
	long long seen;   /* MARK messages received */
} stream;

static long long now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return x < y ? -1 : x > y;
}

static long long pct(const long long *v, int n, int p)
{
	int k = (p * n + 99) / 100;
	return v[k < 1 ? 0 : k - 1];
}

/* Counts MARK in carry + buf[0..n) and keeps a new carry. */
static void feed(stream *s, const char *buf, size_t n)
{
	char tmp[64 + 65536];
	size_t len = s->carry_len + n;

	memcpy(tmp, s->carry, s->carry_len);
	memcpy(tmp + s->carry_len, buf, n);
	tmp[len] = '\0';
	const char *p = tmp, *last_end = tmp;
	while ((p = strstr(p, MARK)) != NULL) {
		s->seen++;
		p += strlen(MARK);
		last_end = p;
	}
	/* Keep what could be the start of a split MARK, not a counted one. */
	size_t keep = strlen(MARK) - 1;
	const char *from = tmp + len > last_end + keep ? tmp + len - keep : last_end;
	s->carry_len = (size_t)(tmp + len - from);
	memcpy(s->carry, from, s->carry_len);
}

/*
 * Connects and reads the response head (up to 5 s). Returns 0 streaming,
 * 3 when the answer is not an event stream, -1 on error. Body bytes that
 * came with the head are fed.
 */
static int open_stream(stream *s, int port, const char *path)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	char req[1024], buf[65536];
	size_t got = 0;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (s->fd < 0 || connect(s->fd, (struct sockaddr *)&a, sizeof a) != 0) {
		fprintf(stderr, "sse: connect: %s\n", strerror(errno));
		return -1;
	}
	int n = snprintf(req, sizeof req,
			 "GET %s HTTP/1.0\r\nHost: 127.0.0.1:%d\r\n"
			 "Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n",
			 path, port);
	if (write(s->fd, req, (size_t)n) != n)
		return -1;
	long long end = now_us() + 5000000;
	char *eoh = NULL;
	while (!eoh) {
		struct pollfd p = {s->fd, POLLIN, 0};
		int left = (int)((end - now_us()) / 1000);
		if (left <= 0 || poll(&p, 1, left) <= 0) {
			fprintf(stderr, "sse: no response head within 5 s\n");
			return -1;
		}
		ssize_t r = read(s->fd, buf + got, sizeof buf - 1 - got);
		if (r <= 0) {
			buf[got] = '\0';
			break;   /* closed: a complete non-streaming answer */
		}
		got += (size_t)r;
		buf[got] = '\0';
		eoh = strstr(buf, "\r\n\r\n");
		if (got == sizeof buf - 1)
			break;
	}
	/* The Content-Type header of the head. */
	const char *ct = NULL;
	for (const char *p = buf; p && *p; p = strstr(p, "\r\n")) {
		if (*p == '\r')
			p += 2;
		if (strncasecmp(p, "Content-Type:", 13) == 0) {
			ct = p + 13;
			break;
		}
		if (eoh && p >= eoh)
			break;
	}
	while (ct && *ct == ' ')
		ct++;
	if (!eoh || !ct || strncasecmp(ct, "text/event-stream", 17) != 0) {
		const char *nl = ct ? strstr(ct, "\r\n") : NULL;
		fprintf(stderr, "sse: answer's Content-Type: %.*s\n",
			ct ? (int)(nl ? nl - ct : (long)strlen(ct)) : 6, ct ? ct : "(none)");
		return 3;
	}
	feed(s, eoh + 4, got - (size_t)(eoh + 4 - buf));
	return 0;
}

/*
 * Reads every stream until each has seen want messages: 0, or -1 after
 * timeout_ms or when a stream closes.
 */
static int wait_all(stream *st, int nstreams, long long want, int timeout_ms)
{
	struct pollfd pf[MAX_STREAMS];
	char buf[65536];
	long long end = now_us() + timeout_ms * 1000LL;

	for (;;) {
		int np = 0, left = 0;
		for (int k = 0; k < nstreams; k++) {
			pf[k] = (struct pollfd){.fd = st[k].seen >= want ? -1 : st[k].fd,
						.events = POLLIN};
			left += st[k].seen < want;
			np++;
		}
		int wait_ms = (int)((end - now_us()) / 1000);
		if (left == 0)
			return 0;
		if (wait_ms <= 0 || (poll(pf, (nfds_t)np, wait_ms) < 0 && errno != EINTR))
			return -1;
		for (int k = 0; k < nstreams; k++) {
			if (!(pf[k].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			ssize_t got = read(st[k].fd, buf, sizeof buf);
			if (got <= 0)
				return -1;
			feed(&st[k], buf, (size_t)got);
		}
	}
}

int main(int argc, char **argv)
{
	if (argc != 7) {
		fprintf(stderr, "usage: %s PORT PATH DATABASE DAG_ID STREAMS COUNT\n", argv[0]);
		return 2;
	}
	int port = atoi(argv[1]);
	const char *path = argv[2], *dbpath = argv[3], *dag = argv[4];
	int nstreams = atoi(argv[5]), count = atoi(argv[6]);
	if (nstreams < 1 || nstreams > MAX_STREAMS || count < 1) {
		fprintf(stderr, "sse: STREAMS must be 1..%d, COUNT >= 1\n", MAX_STREAMS);
		return 2;
	}

	static stream st[MAX_STREAMS];
	for (int i = 0; i < nstreams; i++) {
		int rc = open_stream(&st[i], port, path);
		if (rc == 3) {
			printf("SSE: not available in this build\n");
			return 3;
		}
		if (rc != 0)
			return 1;
	}
	/* "Response headers are flushed at once"; give the handlers a moment
	 * to reach their tail loop before the first change. */
	sleep_ms(200);

	pw_store *s;
	char *err = NULL;
	if (pw_store_open(dbpath, &s, &err) != PW_OK) {
		fprintf(stderr, "sse: %s\n", err ? err : "cannot open the database");
		return 1;
	}
	/*
	 * One change that is not measured: the helper's first transaction
	 * prepares its statements and reads the pages it writes, which is
	 * the writer's cost, not the delivery's.
	 */
	if (pw_store_set_paused(s, dag, false) != PW_OK ||
	    wait_all(st, nstreams, 1, 5000) != 0) {
		fprintf(stderr, "sse: the unmeasured first change did not reach every stream\n");
		return 1;
	}
	sleep_ms(20);
	for (int i = 0; i < nstreams; i++)
		st[i].seen = 0;

	long long *lat = calloc((size_t)count * (size_t)nstreams, sizeof *lat);
	if (!lat)
		return 1;
	int n = 0, timeouts = 0;
	struct pollfd pf[MAX_STREAMS];
	char buf[65536];
	for (int i = 0; i < count; i++) {
		long long want = i + 1;
		int done[MAX_STREAMS] = {0}, left = nstreams;
		long long t0 = now_us();
		if (pw_store_set_paused(s, dag, (i & 1) == 0) != PW_OK) {
			fprintf(stderr, "sse: pw_store_set_paused failed\n");
			return 1;
		}
		long long end = t0 + 5000000;
		for (int k = 0; k < nstreams; k++)
			if (st[k].seen >= want) {   /* already there (cannot be earlier) */
				lat[n++] = 0;
				done[k] = 1;
				left--;
			}
		while (left > 0) {
			int wait_ms = (int)((end - now_us()) / 1000);
			if (wait_ms <= 0)
				break;
			int np = 0;
			for (int k = 0; k < nstreams; k++) {
				pf[k].fd = done[k] ? -1 : st[k].fd;
				pf[k].events = POLLIN;
				pf[k].revents = 0;
				np++;
			}
			int r = poll(pf, (nfds_t)np, wait_ms);
			if (r < 0 && errno != EINTR) {
				perror("sse: poll");
				return 1;
			}
			long long t = now_us();
			for (int k = 0; k < nstreams && r > 0; k++) {
				if (!(pf[k].revents & (POLLIN | POLLHUP | POLLERR)))
					continue;
				ssize_t got = read(st[k].fd, buf, sizeof buf);
				if (got <= 0) {
					fprintf(stderr, "sse: stream %d closed by the server "
						"(after %lld events)\n", k, st[k].seen);
					return 1;
				}
				feed(&st[k], buf, (size_t)got);
				if (st[k].seen >= want) {
					lat[n++] = t - t0;
					done[k] = 1;
					left--;
				}
			}
		}
		printf("change %d: last stream after %.2f ms\n", i,
		       (left > 0 ? 5000000 : lat[n - 1]) / 1000.0);
		if (left > 0) {
			timeouts += left;
			fprintf(stderr, "sse: change %d: %d streams got nothing within 5 s\n", i,
				left);
			/* Resynchronise: those streams are one behind now. */
			for (int k = 0; k < nstreams; k++)
				if (st[k].seen < want)
					st[k].seen = want;
		}
		sleep_ms(20);
	}
	pw_store_close(s);

	if (n == 0) {
		printf("p50_ms - p99_ms - max_ms - n 0 timeouts %d\n", timeouts);
		return 1;
	}
	qsort(lat, (size_t)n, sizeof *lat, cmp_ll);
	printf("p50_ms %.2f p99_ms %.2f max_ms %.2f n %d timeouts %d\n", pct(lat, n, 50) / 1000.0,
	       pct(lat, n, 99) / 1000.0, lat[n - 1] / 1000.0, n, timeouts);
	return 0;
}

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
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"
#include "stream.h"

#define MARK "event: dag.updated"

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
		int rc = (st[i].mark = MARK, stream_open(&st[i], port, path));
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
	    stream_wait_all(st, nstreams, 1, 5000) != 0) {
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
				stream_feed(&st[k], buf, (size_t)got);
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

/*
 * writes.c - triggers under load, as bench/api measures them.
 *
 *     writes PORT TRIGGER_PATH EVENTS_PATH STREAMS CLIENTS TOTAL SOLO
 *
 * Opens STREAMS event streams (stream.h) on EVENTS_PATH, which should ask
 * for run.state events only (trying again for up to 30 s while the server
 * answers 503), and keeps reading them in a thread of their own. Then POSTs "{}" to TRIGGER_PATH (HTTP/1.1, one kept-alive
 * connection per client), timing each request from its write to the last
 * byte of its answer:
 *   - "solo": one client, SOLO triggers one after the other (the baseline);
 *   - "load": CLIENTS clients at once, TOTAL triggers in all, each client
 *     taking the next one as soon as its previous answer is in.
 * Every answer must be 201 with a run_id no other answer had. Afterwards
 * every stream must receive exactly SOLO + TOTAL "event: run.state"
 * messages (it waits up to 10 s for them, then 0.5 s more for extras).
 *
 * Prints "solo|load p50_ms X p99_ms X max_ms X per_s X n N", then
 * "streams N min X max X expected X". Exit status 1 when an answer is not
 * 201, a run_id repeats, or a stream lost or repeated an event; 3 when the
 * events path is not an event stream.
 */
#define _GNU_SOURCE   /* strcasestr */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "stream.h"

#define RUN_ID_MAX 64

static int port;
static const char *trigger_path;

/* One phase: its requests, their latencies and the run ids answered. */
typedef struct phase {
	int total;
	atomic_int next;        /* the next request to send */
	long long *lat;         /* µs, by request */
	char (*run_id)[RUN_ID_MAX];
	atomic_int failed;
} phase;

/* A connection to 127.0.0.1:port, or -1. */
static int connect_local(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		fprintf(stderr, "writes: connect: %s\n", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

/*
 * Sends one trigger on fd and reads its answer (Content-Length framed).
 * Returns the HTTP status (the run id copied into run_id), or -1.
 */
static int trigger_once(int fd, char run_id[RUN_ID_MAX])
{
	char req[512], buf[16384];
	size_t got = 0;
	int n = snprintf(req, sizeof req,
			 "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
			 "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
			 trigger_path, port);

	if (write(fd, req, (size_t)n) != n)
		return -1;
	char *eoh = NULL;
	long long len = -1;
	for (;;) {
		ssize_t r = read(fd, buf + got, sizeof buf - 1 - got);
		if (r <= 0)
			return -1;
		got += (size_t)r;
		buf[got] = '\0';
		if (!eoh && (eoh = strstr(buf, "\r\n\r\n")) != NULL) {
			const char *cl = strcasestr(buf, "\r\nContent-Length:");
			if (!cl || cl > eoh)
				return -1;
			len = atoll(cl + 17);
		}
		if (eoh && (long long)(got - (size_t)(eoh + 4 - buf)) >= len)
			break;
		if (got == sizeof buf - 1)
			return -1;
	}
	int status = atoi(buf + 9);   /* "HTTP/1.1 201 ..." */
	const char *id = strstr(eoh, "\"run_id\":\"");
	run_id[0] = '\0';
	if (id) {
		id += 10;
		size_t k = strcspn(id, "\"");
		snprintf(run_id, RUN_ID_MAX, "%.*s", (int)(k < RUN_ID_MAX ? k : RUN_ID_MAX - 1), id);
	}
	return status;
}

/* A client: takes requests of the phase until none is left. */
static void *client(void *arg)
{
	phase *ph = arg;
	int fd = connect_local();

	for (int i; fd >= 0 && (i = atomic_fetch_add(&ph->next, 1)) < ph->total;) {
		long long t0 = now_us();
		int status = trigger_once(fd, ph->run_id[i]);
		ph->lat[i] = now_us() - t0;
		if (status != 201) {
			if (atomic_fetch_add(&ph->failed, 1) < 5)
				fprintf(stderr, "writes: request %d answered %d\n", i, status);
			if (status < 0) {   /* the connection is gone: a new one */
				close(fd);
				fd = connect_local();
			}
		}
	}
	if (fd >= 0)
		close(fd);
	else
		atomic_fetch_add(&ph->failed, 1);
	return NULL;
}

/* Runs a phase with nclients clients and prints its line. 0 or -1. */
static int run_phase(const char *name, phase *ph, int nclients)
{
	pthread_t tid[MAX_STREAMS];
	int started = 0;

	ph->lat = calloc((size_t)ph->total, sizeof *ph->lat);
	ph->run_id = calloc((size_t)ph->total, sizeof *ph->run_id);
	if (!ph->lat || !ph->run_id)
		return -1;
	long long t0 = now_us();
	for (; started < nclients; started++)
		if (pthread_create(&tid[started], NULL, client, ph) != 0)
			break;
	for (int k = 0; k < started; k++)
		pthread_join(tid[k], NULL);
	long long wall = now_us() - t0;
	if (started == 0)
		return -1;
	long long *sorted = malloc((size_t)ph->total * sizeof *sorted);
	if (!sorted)
		return -1;
	memcpy(sorted, ph->lat, (size_t)ph->total * sizeof *sorted);
	qsort(sorted, (size_t)ph->total, sizeof *sorted, cmp_ll);
	printf("%s p50_ms %.2f p99_ms %.2f max_ms %.2f per_s %.0f n %d failed %d\n", name,
	       pct(sorted, ph->total, 50) / 1000.0, pct(sorted, ph->total, 99) / 1000.0,
	       sorted[ph->total - 1] / 1000.0, ph->total * 1e6 / (double)wall, ph->total,
	       atomic_load(&ph->failed));
	fflush(stdout);
	free(sorted);
	return atomic_load(&ph->failed) ? -1 : 0;
}

/* The streams' reader: reads until told how many to expect and has them. */
static struct {
	stream *st;
	int n;
	atomic_llong want;     /* 0 until the triggers are done */
	atomic_llong deadline; /* µs */
} rd;

static void *reader(void *arg)
{
	struct pollfd pf[MAX_STREAMS];
	char buf[65536];
	long long all_since = 0;

	(void)arg;
	for (;;) {
		for (int k = 0; k < rd.n; k++)
			pf[k] = (struct pollfd){.fd = rd.st[k].fd, .events = POLLIN};
		if (poll(pf, (nfds_t)rd.n, 50) < 0 && errno != EINTR)
			return NULL;
		for (int k = 0; k < rd.n; k++) {
			if (!(pf[k].revents & (POLLIN | POLLHUP | POLLERR)) || rd.st[k].fd < 0)
				continue;
			ssize_t got = read(rd.st[k].fd, buf, sizeof buf);
			if (got <= 0) {
				fprintf(stderr, "writes: stream %d closed after %lld events\n", k,
					rd.st[k].seen);
				close(rd.st[k].fd);
				rd.st[k].fd = -1;
				continue;
			}
			stream_feed(&rd.st[k], buf, (size_t)got);
		}
		long long want = atomic_load(&rd.want), now = now_us();
		if (want == 0)
			continue;
		int all = 1;
		for (int k = 0; k < rd.n; k++)
			all &= rd.st[k].seen >= want;
		if (all && !all_since)
			all_since = now;
		if ((all_since && now - all_since > 500000) || now > atomic_load(&rd.deadline))
			return NULL;
	}
}

/* 0 when the run ids of both phases are all different, else -1. */
static int ids_unique(phase *a, phase *b)
{
	int n = a->total + b->total, rc = 0;
	char (*ids)[RUN_ID_MAX] = malloc((size_t)n * sizeof *ids);
	if (!ids)
		return -1;
	memcpy(ids, a->run_id, (size_t)a->total * sizeof *ids);
	memcpy(ids + a->total, b->run_id, (size_t)b->total * sizeof *ids);
	qsort(ids, (size_t)n, sizeof *ids, (int (*)(const void *, const void *))strcmp);
	for (int i = 0; i < n && rc == 0; i++)
		if (!ids[i][0] || (i > 0 && strcmp(ids[i], ids[i - 1]) == 0)) {
			fprintf(stderr, "writes: run id '%s' %s\n", ids[i],
				ids[i][0] ? "answered twice" : "missing");
			rc = -1;
		}
	free(ids);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc != 8) {
		fprintf(stderr, "usage: %s PORT TRIGGER_PATH EVENTS_PATH STREAMS CLIENTS TOTAL SOLO\n",
			argv[0]);
		return 2;
	}
	port = atoi(argv[1]);
	trigger_path = argv[2];
	const char *events_path = argv[3];
	int nstreams = atoi(argv[4]), nclients = atoi(argv[5]);
	phase solo = {.total = atoi(argv[7])}, load = {.total = atoi(argv[6])};
	if (nstreams < 0 || nstreams > MAX_STREAMS || nclients < 1 || nclients > MAX_STREAMS ||
	    solo.total < 1 || load.total < 1) {
		fprintf(stderr, "writes: STREAMS 0..%d, CLIENTS 1..%d, TOTAL and SOLO >= 1\n",
			MAX_STREAMS, MAX_STREAMS);
		return 2;
	}

	static stream st[MAX_STREAMS];
	for (int i = 0; i < nstreams; i++) {
		st[i].mark = "event: run.state";
		/* A 503: the streams of an earlier client still hold their slots
		 * until the server notices them gone (at a keep-alive). */
		int rc;
		for (long long end = now_us() + 30000000;
		     (rc = stream_open(&st[i], port, events_path)) == 4 && now_us() < end;)
			sleep_ms(500);
		if (rc != 0)
			return rc == 3 ? 3 : 1;
	}
	sleep_ms(200);   /* the streams' handlers reach their tail loop */
	rd.st = st;
	rd.n = nstreams;
	pthread_t rtid;
	if (nstreams > 0 && pthread_create(&rtid, NULL, reader, NULL) != 0)
		return 1;

	int rc = run_phase("solo", &solo, 1);
	if (run_phase("load", &load, nclients) != 0)
		rc = -1;
	if (ids_unique(&solo, &load) != 0)
		rc = -1;
	long long want = solo.total + load.total;
	if (nstreams > 0) {
		atomic_store(&rd.deadline, now_us() + 10000000);
		atomic_store(&rd.want, want);
		pthread_join(rtid, NULL);
		long long lo = st[0].seen, hi = st[0].seen;
		for (int k = 1; k < nstreams; k++) {
			lo = st[k].seen < lo ? st[k].seen : lo;
			hi = st[k].seen > hi ? st[k].seen : hi;
		}
		printf("streams %d min %lld max %lld expected %lld\n", nstreams, lo, hi, want);
		if (lo != want || hi != want)
			rc = -1;
	}
	free(solo.lat);
	free(solo.run_id);
	free(load.lat);
	free(load.run_id);
	return rc == 0 ? 0 : 1;
}

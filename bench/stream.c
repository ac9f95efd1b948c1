/* stream.c - see stream.h. */
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

#include "stream.h"


long long now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return x < y ? -1 : x > y;
}

long long pct(const long long *v, int n, int p)
{
	int k = (p * n + 99) / 100;
	return v[k < 1 ? 0 : k - 1];
}

/* Counts s->mark in carry + buf[0..n) and keeps a new carry. */
void stream_feed(stream *s, const char *buf, size_t n)
{
	char tmp[64 + 65536];

	size_t len = s->carry_len + n;

	memcpy(tmp, s->carry, s->carry_len);
	memcpy(tmp + s->carry_len, buf, n);
	tmp[len] = '\0';
	const char *p = tmp, *last_end = tmp;
	while ((p = strstr(p, s->mark)) != NULL) {
		s->seen++;
		p += strlen(s->mark);
		last_end = p;
	}
	/* Keep what could be the start of a split s->mark, not a counted one. */
	size_t keep = strlen(s->mark) - 1;
	const char *from = tmp + len > last_end + keep ? tmp + len - keep : last_end;
	s->carry_len = (size_t)(tmp + len - from);
	memcpy(s->carry, from, s->carry_len);
}

/*
 * Connects and reads the response head (up to 5 s). Returns 0 streaming,
 * 3 when the answer is not an event stream, -1 on error. Body bytes that
 * came with the head are fed.
 */
int stream_open(stream *s, int port, const char *path)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	char req[1024], buf[65536];
	size_t got = 0;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (s->fd < 0 || connect(s->fd, (struct sockaddr *)&a, sizeof a) != 0) {
		fprintf(stderr, "stream: connect: %s\n", strerror(errno));
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
			fprintf(stderr, "stream: no response head within 5 s\n");
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
		fprintf(stderr, "stream: answer %.*s, Content-Type: %.*s: %.200s\n",
			(int)strcspn(buf, "\r\n"), buf,
			ct ? (int)(nl ? nl - ct : (long)strlen(ct)) : 6, ct ? ct : "(none)",
			eoh ? eoh + 4 : "");
		close(s->fd);
		return strncmp(buf + 8, " 503", 4) == 0 ? 4 : 3;
	}
	stream_feed(s, eoh + 4, got - (size_t)(eoh + 4 - buf));
	return 0;
}

/*
 * Reads every stream until each has seen want messages: 0, or -1 after
 * timeout_ms or when a stream closes.
 */
int stream_wait_all(stream *st, int nstreams, long long want, int timeout_ms)
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
			stream_feed(&st[k], buf, (size_t)got);
		}
	}
}


/*
 * stream.h - what bench/sse.c and bench/writes.c share: a clock, sorted
 * percentiles, and plain HTTP/1.0 event streams that count one kind of
 * message ("event: NAME") as it arrives.
 */
#ifndef PW_BENCH_STREAM_H
#define PW_BENCH_STREAM_H

#include <stddef.h>

#define MAX_STREAMS 256

typedef struct stream {
	int fd;
	const char *mark; /* the line counted, e.g. "event: run.state" (< 64 bytes) */
	char carry[64];   /* the tail of the last read, for a split mark */
	size_t carry_len;
	long long seen;   /* mark lines received */
} stream;

/* The monotonic clock in microseconds. */
long long now_us(void);
void sleep_ms(long ms);
/* qsort comparator of long longs, and the p-th percentile of sorted v[0..n). */
int cmp_ll(const void *a, const void *b);
long long pct(const long long *v, int n, int p);

/* Counts s->mark in what was carried + buf[0..n). */
void stream_feed(stream *s, const char *buf, size_t n);
/*
 * Connects to 127.0.0.1:port, asks for path with Accept: text/event-stream
 * and reads the head (up to 5 s). Returns 0 streaming, 3 when the answer
 * is not an event stream, 4 when it is a 503 (no free stream), -1 on error.
 */
int stream_open(stream *s, int port, const char *path);
/* Reads until each stream has seen want marks: 0, or -1 (timeout, closed). */
int stream_wait_all(stream *st, int nstreams, long long want, int timeout_ms);

#endif

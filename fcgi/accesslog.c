/*
 * accesslog.c - the request log: one line per request on stderr.
 *
 * A FastCGI server collects the lines of all its threads in one buffer,
 * and a flusher thread writes them out FLUSH_MS after the first line of a
 * batch: a busy server writes its log a few times a second, not once per
 * request (lighttpd's mod_accesslog buffers its own log the same way). A
 * line for an answer of 500 or more, or a buffer half full, is written
 * at once, with the lines before it. Without pw_log_start (plain CGI, one
 * request per process) every line is written when it is logged.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core.h"

/* The longest a logged line waits for its write, in milliseconds. */
#define FLUSH_MS 100

static struct {
	pthread_mutex_t lock;
	pthread_cond_t wake;      /* a first line, or the stop */
	pthread_t flusher;
	bool started, stopping;
	size_t len;
	char buf[16384];
} log_ = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

/* Writes all of buf to stderr; errors are ignored (nowhere to report). */
static void write_stderr(const char *buf, size_t n)
{
	while (n > 0) {
		ssize_t w = write(STDERR_FILENO, buf, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		buf += w;
		n -= (size_t)w;
	}
}

/* Writes the buffered lines. Called with the lock held. */
static void flush_locked(void)
{
	write_stderr(log_.buf, log_.len);
	log_.len = 0;
}

/* The flusher: waits for a first line, lets FLUSH_MS pass, writes. */
static void *flusher_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&log_.lock);
	while (!log_.stopping) {
		if (log_.len == 0) {
			pthread_cond_wait(&log_.wake, &log_.lock);
			continue;
		}
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += FLUSH_MS * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		while (!log_.stopping &&
		       pthread_cond_timedwait(&log_.wake, &log_.lock, &until) == 0)
			;
		flush_locked();
	}
	flush_locked();
	pthread_mutex_unlock(&log_.lock);
	return NULL;
}

int pw_log_start(void)
{
	pthread_mutex_lock(&log_.lock);
	log_.stopping = false;
	log_.started = pthread_create(&log_.flusher, NULL, flusher_main, NULL) == 0;
	pthread_mutex_unlock(&log_.lock);
	return log_.started ? 0 : -1;
}

void pw_log_stop(void)
{
	pthread_mutex_lock(&log_.lock);
	bool started = log_.started;
	log_.stopping = true;
	log_.started = false;
	pthread_cond_broadcast(&log_.wake);
	pthread_mutex_unlock(&log_.lock);
	if (started)
		pthread_join(log_.flusher, NULL);
}

void pw_log_line(const char *line, size_t n, bool urgent)
{
	pthread_mutex_lock(&log_.lock);
	if (!log_.started || n > sizeof log_.buf / 2) {
		flush_locked();
		write_stderr(line, n);
		pthread_mutex_unlock(&log_.lock);
		return;
	}
	assert(log_.len <= sizeof log_.buf / 2);   /* so line fits */
	bool first = log_.len == 0;
	memcpy(log_.buf + log_.len, line, n);
	log_.len += n;
	if (urgent || log_.len > sizeof log_.buf / 2)
		flush_locked();
	else if (first)
		pthread_cond_signal(&log_.wake);
	pthread_mutex_unlock(&log_.lock);
}

/*
 * logfollow.c - GET .../tasks/:task_id/logs?follow=true: the log of one
 * try as one long-lived text/plain answer.
 *
 * The try is fixed when the request starts (?try_number=, else the latest
 * one). The answer starts at byte ?offset= of the file (default: 0, or
 * the last LOG_MAX bytes of a larger file, with X-Log-Omitted-Bytes as
 * without follow), writes what the file holds, then every FOLLOW_TICK_MS
 * (sooner when the database watcher sees a commit) writes the bytes
 * appended since, flushing each chunk. It ends when the try has ended
 * (any state but pending, queued and running) and the file is drained,
 * when the client leaves, the server stops, or after the event stream's
 * bound (PIPEWRIGHT_SSE_MAX_SECONDS); the client then asks again with
 * offset = the bytes it has. A task without any try answers an empty log
 * at once. It takes one of the long-request slots of the event streams
 * (events_slot_take): 503 with Retry-After when none is free.
 *
 * The state is read before the file each tick, so the bytes a try wrote
 * before it ended are always sent before the answer ends. A file that
 * does not exist yet reads as empty until it does.
 */
#include "api.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FOLLOW_TICK_MS 250          /* file checks while nothing commits */
#define FOLLOW_CHUNK (64 * 1024)    /* bytes per write */
#define LOG_MAX (8LL * 1024 * 1024) /* as tasks.c: a larger file starts at its tail */

static const char try_sql[] =
	"SELECT try_number, state, log_path FROM task_tries"
	" WHERE run_pk = ?1 AND task_id = ?2 AND (?3 = 0 OR try_number = ?3)"
	" ORDER BY try_number DESC LIMIT 1";

/* One follow's state. */
typedef struct follow {
	pw_req *req;
	long long pk;
	const char *task_id;
	int try_number;       /* 0 until the first look */
	bool ended;           /* the try has ended */
	char *path;           /* the log path (NULL: none yet) */
	const char *refused;  /* why the log may not be read, or NULL */
	int fd;               /* the open log, or -1 */
	long long pos;        /* the next byte to send */
	char buf[FOLLOW_CHUNK];
} follow;

static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool state_ended(const char *s)
{
	return s && strcmp(s, "pending") && strcmp(s, "queued") && strcmp(s, "running");
}

/*
 * Reads the try's state and log path into f. Returns GO, 1 when the task
 * has no try (or not the one asked for, answered 404 then when asked),
 * or FAILED (logged).
 */
static int look(follow *f)
{
	sqlite3_stmt *st = pw_store_stmt(pw_req_store(f->req), try_sql);
	int step, rc = FAILED;

	if (!st)
		return FAILED;
	sqlite3_bind_int64(st, 1, f->pk);
	sqlite3_bind_text(st, 2, f->task_id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, f->try_number);
	step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		const char *p = (const char *)sqlite3_column_text(st, 2);
		f->try_number = sqlite3_column_int(st, 0);
		f->ended = state_ended((const char *)sqlite3_column_text(st, 1));
		rc = GO;
		if (p && !f->path && !(f->path = strdup(p)))
			rc = FAILED;
	} else if (step == SQLITE_DONE) {
		rc = 1;
	} else {
		fprintf(stderr, "pipewright: api: log follow: %s\n",
			sqlite3_errmsg(pw_store_db(pw_req_store(f->req))));
	}
	api_stmt_done(st);
	return rc;
}

/*
 * Opens the log when it exists (api_log_open's checks); 0, or -1 when it
 * is refused (f->refused says why).
 */
static int open_log(follow *f)
{
	const pw_project *proj = pw_req_project(f->req);

	if (f->fd >= 0 || !f->path)
		return 0;
	f->fd = api_log_open(f->path, proj ? proj->logs_dir : NULL, &f->refused);
	return f->refused ? -1 : 0;
}

/* Sends the bytes from f->pos to the file's end. 0, or -1 (end the answer). */
static int drain(follow *f)
{
	if (open_log(f) != 0)
		return -1;
	while (f->fd >= 0) {
		ssize_t n = pread(f->fd, f->buf, sizeof f->buf, (off_t)f->pos);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		if (pw_stream_write(f->req, f->buf, (size_t)n) != 0 ||
		    pw_stream_flush(f->req) != 0)
			return -1;
		f->pos += n;
	}
	return 0;
}

/* Sleeps ms at most: woken by a commit (efd) or the client's end. */
static void follow_wait(pw_req *req, int efd, long long ms)
{
	struct pollfd p[2];
	int n = 0, cfd = pw_stream_fd(req);

	if (efd >= 0)
		p[n++] = (struct pollfd){.fd = efd, .events = POLLIN};
	if (cfd >= 0)
		p[n++] = (struct pollfd){.fd = cfd, .events = POLLRDHUP};
	if (poll(p, (nfds_t)n, ms < 0 ? 0 : (int)ms) > 0 && efd >= 0 && p[0].revents)
		dbwatch_drain(efd);
}

/* Writes the log as it grows until the try ended, or the bound. */
static void follow_loop(follow *f)
{
	long long deadline = mono_ms() + events_stream_max_ms();
	int efd = dbwatch_join(sqlite3_db_filename(pw_store_db(pw_req_store(f->req)), "main"));

	for (;;) {
		/* A zero-length write does no I/O: it tells a stopping server. */
		if (pw_stream_write(f->req, "", 0) != 0 || pw_stream_gone(f->req))
			break;
		if (look(f) != GO || drain(f) != 0 || f->ended)
			break;
		long long now = mono_ms();
		if (now >= deadline)
			break;
		follow_wait(f->req, efd, deadline - now < FOLLOW_TICK_MS ? deadline - now
									   : FOLLOW_TICK_MS);
	}
	dbwatch_leave(efd);
}

/*
 * Where an answer without ?offset= starts: the last LOG_MAX bytes of a
 * larger file (the header X-Log-Omitted-Bytes says how many are left out).
 */
static int default_start(follow *f)
{
	struct stat sb;
	char hdr[32];

	if (open_log(f) != 0 || f->fd < 0 || fstat(f->fd, &sb) != 0 || sb.st_size <= LOG_MAX)
		return 0;
	f->pos = (long long)sb.st_size - LOG_MAX;
	snprintf(hdr, sizeof hdr, "%lld", f->pos);
	return pw_reply_header(f->req, "X-Log-Omitted-Bytes", hdr);
}

int logs_follow(pw_req *req, long long pk, const char *task_id, int try_number,
		long long offset)
{
	static const char type[] = "text/plain; charset=utf-8";
	follow *f = calloc(1, sizeof *f);
	int rc = FAILED, found;

	if (!f)
		return FAILED;
	*f = (follow){.req = req, .pk = pk, .task_id = task_id,
		      .try_number = try_number, .fd = -1, .pos = offset < 0 ? 0 : offset};
	found = look(f);
	if (found == 1 && try_number) {
		rc = pw_reply_error(req, 404, "task '%s' has no try %d", task_id, try_number);
		goto out;
	}
	if (found == 1) {  /* no try yet: the empty log, as without follow */
		rc = pw_reply_raw(req, 200, type, "", 0);
		goto out;
	}
	if (found != GO)
		goto out;
	if (!events_slot_take(req)) {
		rc = 0;
		goto out;
	}
	if (open_log(f) != 0) {  /* as tasks.c on w/hostile: 403 */
		rc = f->refused ? pw_reply_error(req, 403, "%s", f->refused) : -1;
		goto give;
	}
	if ((offset >= 0 || default_start(f) == 0) &&
	    pw_reply_header(req, "Cache-Control", "no-cache") == 0 &&
	    pw_reply_header(req, "X-Accel-Buffering", "no") == 0 &&
	    pw_stream_begin(req, 200, type) == 0) {
		rc = 0;
		follow_loop(f);
	}
give:
	events_slot_give();
out:
	if (f->fd >= 0)
		close(f->fd);
	free(f->path);
	free(f);
	return rc;
}

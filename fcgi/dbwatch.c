/*
 * dbwatch.c - one thread per process that notices commits to the database
 * and wakes the event streams waiting on them (events.c), so that a state
 * change reaches an SSE client within a few milliseconds and an idle
 * stream sleeps until its keep-alive.
 *
 * The thread watches the database's folder with inotify (IN_MODIFY of the
 * database file and of its -wal file: every commit, by any process on
 * this machine, writes the WAL). An inotify event is only a hint: the
 * commit is visible to readers a moment after its last WAL write, when
 * the writer updates the WAL index. So on each event the thread compares
 * PRAGMA data_version on its own connection with the last one seen and
 * wakes the waiters only when it changed; when it did not, it looks again
 * after 1, 4, 16 and 64 ms (a commit caught between its write and its
 * index update is not missed; a checkpoint costs these few looks).
 *
 * Fallback: while streams wait, the thread also checks data_version every
 * PIPEWRIGHT_SSE_FALLBACK_MS (default 1000; 0 turns the fallback off)
 * without any event. That covers writers that inotify does not see (a
 * runner on another machine writing through a network file system) and a
 * kernel without inotify (then the fallback is all there is). With no
 * stream waiting, the thread sleeps in poll() without a timeout.
 *
 * Waiters share one eventfd, written once on every change and on
 * dbwatch_stop, so waking 32 streams is one system call. Each waiter
 * holds an epoll descriptor with that eventfd in it, edge-triggered: it
 * becomes readable at each write (the eventfd's counter is never read; at
 * one write per commit it cannot reach its 2^64 limit) and dbwatch_drain
 * takes the edge off. A stream polls its epoll descriptor together with
 * its FastCGI connection. The watcher serves one database per process
 * (the first one a stream joins with); a stream on another one gets -1
 * and polls.
 */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "api.h"

#define DEFAULT_FALLBACK_MS 1000
#define FIRST_RECHECK_MS 1      /* after an event that changed nothing */
#define LAST_RECHECK_MS 64      /* ... times 4 each time, up to this */

static struct {
	pthread_mutex_t lock;   /* guards everything below but the thread's own */
	bool started, stopped;
	pthread_t tid;
	char *path;             /* the database */
	int ctl_fd;             /* eventfd: look at `stopped` and the timeout */
	int wake_fd;            /* eventfd: written once per change, never read */
	size_t n;               /* waiters */
	int fallback_ms;
} w = {.lock = PTHREAD_MUTEX_INITIALIZER, .ctl_fd = -1, .wake_fd = -1};

/* Writes 1 to an eventfd (a full counter is still readable: ignored). */
static void poke(int fd)
{
	uint64_t one = 1;
	ssize_t rc = write(fd, &one, sizeof one);
	(void)rc;
}

/* Wakes every waiter: one write to the eventfd in all their epolls. */
static void wake_all(void)
{
	pthread_mutex_lock(&w.lock);
	if (w.n > 0)
		poke(w.wake_fd);
	pthread_mutex_unlock(&w.lock);
}

/* Whether any stream waits. */
static bool waiters(void)
{
	pthread_mutex_lock(&w.lock);
	bool any = w.n > 0;
	pthread_mutex_unlock(&w.lock);
	return any;
}

/* The fallback interval while waiters exist; -1 (none) otherwise. */
static int idle_timeout(void)
{
	return waiters() && w.fallback_ms > 0 ? w.fallback_ms : -1;
}

/* The fallback interval from the environment: 0..3600000 ms. */
static int fallback_ms(void)
{
	const char *s = getenv("PIPEWRIGHT_SSE_FALLBACK_MS");
	char *end = NULL;
	long v;

	if (!s || !*s)
		return DEFAULT_FALLBACK_MS;
	errno = 0;
	v = strtol(s, &end, 10);
	if (*end || errno || v < 0 || v > 3600000) {
		fprintf(stderr, "pipewright.fcgi: PIPEWRIGHT_SSE_FALLBACK_MS=%s is not "
				"0..3600000; using %d\n", s, DEFAULT_FALLBACK_MS);
		return DEFAULT_FALLBACK_MS;
	}
	return (int)v;
}

/* --- the watcher's view of the database ------------------------------------------ */

typedef struct watch {
	sqlite3 *db;            /* NULL until (re)opened */
	int ino;                /* inotify descriptor, -1 without */
	const char *base;       /* the database's file name in its folder */
	size_t base_len;
	long long seen;         /* data_version last seen, -1 before */
} watch;

/* Opens the watcher's connection (read-only use, small cache). */
static int watch_open(watch *wt)
{
	if (wt->db)
		return 0;
	if (sqlite3_open_v2(w.path, &wt->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK ||
	    sqlite3_busy_timeout(wt->db, 1000) != SQLITE_OK ||
	    sqlite3_exec(wt->db, "PRAGMA cache_size = 1", NULL, NULL, NULL) != SQLITE_OK) {
		fprintf(stderr, "pipewright.fcgi: events: cannot open %s to watch it: %s\n",
			w.path, wt->db ? sqlite3_errmsg(wt->db) : "out of memory");
		sqlite3_close(wt->db);
		wt->db = NULL;
		return -1;
	}
	return 0;
}

/*
 * Whether data_version moved since the last look. A connection that
 * fails is closed (reopened at the next look) and counts as a change, so
 * that the streams look for themselves.
 */
static bool changed(watch *wt)
{
	sqlite3_stmt *q = NULL;
	long long v = -1;

	if (watch_open(wt) != 0)
		return true;
	if (sqlite3_prepare_v2(wt->db, "PRAGMA data_version", -1, &q, NULL) == SQLITE_OK &&
	    sqlite3_step(q) == SQLITE_ROW)
		v = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	if (v < 0) {
		sqlite3_close(wt->db);
		wt->db = NULL;
		return true;
	}
	if (v == wt->seen)
		return false;
	wt->seen = v;
	return true;
}

/* Sets up inotify on the database's folder; -1 (logged) when it cannot. */
static int watch_inotify(watch *wt)
{
	char *dir = strdup(w.path);
	char *slash = dir ? strrchr(dir, '/') : NULL;
	int fd = -1;

	wt->base = strrchr(w.path, '/') ? strrchr(w.path, '/') + 1 : w.path;
	wt->base_len = strlen(wt->base);
	if (!dir)
		goto out;
	if (slash)
		*(slash == dir ? slash + 1 : slash) = '\0';
	fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (fd >= 0 && inotify_add_watch(fd, slash ? dir : ".",
					   IN_MODIFY | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO) < 0) {
		close(fd);
		fd = -1;
	}
out:
	if (fd < 0)
		fprintf(stderr, "pipewright.fcgi: events: no inotify on %s (%s); streams "
				"see changes within PIPEWRIGHT_SSE_FALLBACK_MS\n",
			w.path, strerror(errno));
	free(dir);
	return fd;
}

#define TOUCHED 1    /* the database or its WAL was written */
#define REPLACED 2   /* the database file was created, moved or deleted */

/* Reads the pending inotify events: TOUCHED and REPLACED, or 0. */
static int database_touched(watch *wt)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	int hit = 0;
	ssize_t n;

	while ((n = read(wt->ino, buf, sizeof buf)) > 0) {
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			bool ours = ev->len && strncmp(ev->name, wt->base, wt->base_len) == 0;
			if (ours && ev->name[wt->base_len] == '\0')
				hit |= ev->mask & IN_MODIFY ? TOUCHED : REPLACED;
			else if (ours && !strcmp(ev->name + wt->base_len, "-wal"))
				hit |= TOUCHED;
			if (ev->mask & IN_Q_OVERFLOW)
				hit |= TOUCHED;
			p += sizeof *ev + ev->len;
		}
	}
	return hit;
}

/* Whether dbwatch_stop was called; drains the control eventfd. */
static bool stop_asked(void)
{
	uint64_t v;
	ssize_t rc = read(w.ctl_fd, &v, sizeof v);
	(void)rc;
	pthread_mutex_lock(&w.lock);
	bool stop = w.stopped;
	pthread_mutex_unlock(&w.lock);
	return stop;
}

/*
 * The thread: waits for hints (or the fallback interval), confirms them
 * with data_version, wakes the waiters. A replaced database file gets a
 * new connection and wakes them too.
 */
static void *watch_main(void *arg)
{
	watch wt = {.ino = -1, .seen = -1};
	int recheck = 0;   /* ms until the next look after a fruitless event; 0: none */

	(void)arg;
	wt.ino = watch_inotify(&wt);
	(void)changed(&wt);   /* the starting point */
	events_tail_refresh(wt.db);
	for (;;) {
		struct pollfd p[2] = {{.fd = w.ctl_fd, .events = POLLIN},
				      {.fd = wt.ino, .events = POLLIN}};
		int n = poll(p, wt.ino >= 0 ? 2 : 1, recheck ? recheck : idle_timeout());
		if (n < 0 && errno != EINTR)
			break;
		if (n > 0 && p[0].revents) {
			if (stop_asked())
				break;
			continue;   /* a first waiter: the timeout changed */
		}
		int hint = n > 0 && p[1].revents ? database_touched(&wt) : 0;
		if (n > 0 && !hint && !recheck)
			continue;   /* another file of the folder */
		if (!waiters() && !(hint & REPLACED)) {
			recheck = 0;   /* nobody to wake: the next waiter reads anyway */
			continue;
		}
		if (hint & REPLACED) {
			sqlite3_close(wt.db);
			wt.db = NULL;
			wt.seen = -1;
			events_tail_reset();
		}
		if (changed(&wt)) {
			events_tail_refresh(wt.db);
			wake_all();
			recheck = 0;
		} else if (hint) {
			recheck = FIRST_RECHECK_MS;
		} else if (recheck) {
			recheck = recheck * 4 > LAST_RECHECK_MS ? 0 : recheck * 4;
		}
	}
	if (wt.ino >= 0)
		close(wt.ino);
	sqlite3_close(wt.db);
	events_tail_reset();
	return NULL;
}

/* --- waiters ---------------------------------------------------------------------- */

/* Starts the thread on path (under the lock). 0 or -1 (logged). */
static int start(const char *path)
{
	w.path = strdup(path);
	w.ctl_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w.wake_fd < 0)
		w.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	w.fallback_ms = fallback_ms();
	if (!w.path || w.ctl_fd < 0 || w.wake_fd < 0 ||
	    pthread_create(&w.tid, NULL, watch_main, NULL) != 0) {
		fprintf(stderr, "pipewright.fcgi: events: cannot start the database watcher: %s\n",
			strerror(errno));
		free(w.path);
		w.path = NULL;
		if (w.ctl_fd >= 0)
			close(w.ctl_fd);
		w.ctl_fd = -1;
		return -1;
	}
	w.started = true;
	return 0;
}

/* Closes the shared eventfd once the watcher stopped and nobody waits (under the lock). */
static void close_wake_fd(void)
{
	if (w.stopped && w.n == 0 && w.wake_fd >= 0) {
		close(w.wake_fd);
		w.wake_fd = -1;
	}
}

int dbwatch_join(const char *db_path)
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLET};
	int fd = -1;

	if (!db_path || !*db_path)
		return -1;
	pthread_mutex_lock(&w.lock);
	if (w.stopped || (!w.started && start(db_path) != 0) || strcmp(w.path, db_path) != 0)
		goto out;
	fd = epoll_create1(EPOLL_CLOEXEC);
	if (fd >= 0 && epoll_ctl(fd, EPOLL_CTL_ADD, w.wake_fd, &ev) != 0) {
		close(fd);
		fd = -1;
	}
	if (fd >= 0 && ++w.n == 1)
		poke(w.ctl_fd);   /* the fallback interval starts */
out:
	pthread_mutex_unlock(&w.lock);
	return fd;
}

void dbwatch_leave(int fd)
{
	if (fd < 0)
		return;
	pthread_mutex_lock(&w.lock);
	assert(w.n > 0);
	w.n--;
	close_wake_fd();
	pthread_mutex_unlock(&w.lock);
	close(fd);
}

void dbwatch_drain(int fd)
{
	struct epoll_event ev;
	int rc = epoll_wait(fd, &ev, 1, 0);
	(void)rc;
}

void dbwatch_stop(void)
{
	pthread_mutex_lock(&w.lock);
	bool join = w.started;
	w.stopped = true;
	w.started = false;
	if (w.n > 0)
		poke(w.wake_fd);
	if (join)
		poke(w.ctl_fd);
	pthread_mutex_unlock(&w.lock);
	if (!join)
		return;
	pthread_join(w.tid, NULL);
	pthread_mutex_lock(&w.lock);
	close(w.ctl_fd);
	w.ctl_fd = -1;
	free(w.path);
	w.path = NULL;
	close_wake_fd();
	pthread_mutex_unlock(&w.lock);
}

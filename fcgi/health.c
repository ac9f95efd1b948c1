/*
 * health.c - GET /api/v1/health and GET /api/v1/version.
 *
 * Health: {status, database: {status, error?}, runner: {status,
 * last_heartbeat, pid, host}, uptime_s}.
 *   healthy     the database answers and the runner beat less than
 *               RUNNER_FRESH_MS ago (it beats every 2 s) and, when it ran
 *               on this host, its pid is still alive; or, with
 *               settings.runner: cron, at most RUNNER_CRON_FRESH_MS ago
 *               (pipewright-runner --once leaves its last heartbeat and
 *               exits, so its pid is not checked);
 *   degraded    the database answers, the runner is stale, absent or down
 *               (its process on this host is gone: killed, crashed or
 *               stopped; the API still works: reads answer, triggers queue);
 *   unhealthy   the database does not answer: HTTP 503, same body.
 * uptime_s is the age of this server process (0 for each plain CGI call).
 *
 * Each thread reuses the runner row it read last (not an error) for up to
 * RUNNER_CACHE_MS while the database's WAL file looks the same to fstat(2)
 * (inode, size, mtime): every commit, a heartbeat included, writes to it,
 * so a row is read again after any change. At worst (a commit within the
 * same clock tick that leaves the size alone, after a WAL reset) a change
 * shows RUNNER_CACHE_MS late. A database without a WAL file is read every
 * time.
 *
 * The file-system checks (the database and the logs folder on a writable,
 * not full file system, and writable by this user: statvfs(2) and
 * access(2) of each) are done by one request and a clean result stands
 * for every thread for FS_OK_MS (100 ms): under load that is one look per
 * 100 ms instead of five system calls a request. A fault found is not
 * reused: health looks again at the next request, so a fault shows at
 * most FS_OK_MS late and its end at once. A deleted or replaced database
 * is noticed before every request (pw_req_store_check), not here.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "api.h"
#include "strmap.h"

/* A heartbeat younger than this means the runner is running. */
#define RUNNER_FRESH_MS 10000
/*
 * With settings.runner: cron, `pipewright-runner --once` runs from cron
 * (every minute, say) and leaves its last heartbeat: fresh for this long.
 */
#define RUNNER_CRON_FRESH_MS 150000
/* How long a thread reuses a runner row at most (heartbeat every 2 s). */
#define RUNNER_CACHE_MS 1000

/* CLOCK_MONOTONIC at process start, set before main (no first-use race). */
static struct timespec started;

__attribute__((constructor)) static void note_start(void)
{
	clock_gettime(CLOCK_MONOTONIC, &started);
}

/* Seconds since the process started. */
static long long uptime_s(void)
{
	struct timespec now;

	if (clock_gettime(CLOCK_MONOTONIC, &now) != 0)
		return 0;
	return (long long)(now.tv_sec - started.tv_sec);
}

/* The runner's row as read from the database. */
typedef struct runner_row {
	bool found;         /* a row with a heartbeat */
	long long pid;      /* 0: NULL */
	char host[256];     /* "" : NULL */
	long long heartbeat;
} runner_row;

/* What stat(2) says of a WAL file: it changes with every commit. */
typedef struct wal_sig {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
} wal_sig;

/* A thread's last runner row, and where and when it was read. */
typedef struct runner_cache {
	const pw_store *store;   /* NULL: empty */
	uint64_t path_hash;      /* of the store's database path */
	long long read_ms;       /* CLOCK_MONOTONIC */
	wal_sig wal;
	runner_row row;
} runner_cache;

static _Thread_local runner_cache cache;

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Reads the runner row. Returns GO, or FAILED with the database's
 * message in err (errlen bytes): the database does not answer.
 */
static int runner_read(pw_req *req, runner_row *r, char *err, size_t errlen)
{
	static const char sql[] =
		"SELECT pid, host, last_heartbeat FROM runner"
		" WHERE id = 1 AND last_heartbeat IS NOT NULL";
	pw_store *store = pw_req_store(req);
	sqlite3_stmt *q = store ? pw_store_stmt(store, sql) : NULL;

	if (!q) {
		snprintf(err, errlen, "%s", store ? sqlite3_errmsg(pw_store_db(store))
						  : pw_req_store_problem());
		return FAILED;
	}
	int step = sqlite3_step(q);
	if (step == SQLITE_ROW) {
		const char *host = (const char *)sqlite3_column_text(q, 1);
		r->found = true;
		r->pid = sqlite3_column_int64(q, 0);
		snprintf(r->host, sizeof r->host, "%s", host ? host : "");
		r->heartbeat = sqlite3_column_int64(q, 2);
	} else if (step != SQLITE_DONE) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(pw_store_db(store)));
	}
	sqlite3_reset(q);
	return step == SQLITE_ROW || step == SQLITE_DONE ? GO : FAILED;
}

/* Less free space than this where the database lives counts as full. */
#define DISK_FULL_BYTES (64 * 1024)

/*
 * Whether path (the database, or the logs folder) can be written: its file
 * system is writable and not full, and access(2) allows it. Returns 0, or
 * -1 with the reason in err. Two system calls, no write.
 */
static int writable(const char *path, const char *what, char *err, size_t errlen)
{
	struct statvfs vfs;

	if (statvfs(path, &vfs) != 0) {
		snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
		return -1;
	}
	if (vfs.f_flag & ST_RDONLY) {
		snprintf(err, errlen, "%s %s is on a read-only file system", what, path);
		return -1;
	}
	if ((unsigned long long)vfs.f_bavail * vfs.f_frsize < DISK_FULL_BYTES) {
		snprintf(err, errlen, "the disk holding %s %s is full (%llu bytes free)", what,
			 path, (unsigned long long)vfs.f_bavail * vfs.f_frsize);
		return -1;
	}
	if (access(path, W_OK) != 0) {
		snprintf(err, errlen, "%s %s is not writable: %s", what, path, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * How long a clean look at the file systems (the database and the logs
 * folder writable, not full) stands for the process: a fault appears at
 * most this late, a recovery at once (faults are looked at every time).
 */
#define FS_OK_MS 100

/* The last clean look: for which paths (FNV-1a of both) and when. */
static struct {
	pthread_mutex_t lock;
	uint64_t key;        /* 0: none yet */
	long long at_ms;     /* CLOCK_MONOTONIC */
} fs_ok = {PTHREAD_MUTEX_INITIALIZER, 0, 0};

/*
 * The file-system checks of health: writable(database) unless *db_rc
 * already says FAILED (then err says why), and writable(logs folder) when
 * it exists (a folder not made yet is the runner's to create). Sets
 * *db_rc to FAILED (with err) on a fault, and *logs_rc (0, or -1 with
 * logs_err). A clean result is reused for FS_OK_MS by every thread.
 */
static void fs_check(const pw_project *p, int *db_rc, char *err, size_t errlen,
		     int *logs_rc, char *logs_err, size_t logs_errlen)
{
	uint64_t key = pw_fnv1a_str(pw_fnv1a_str(PW_FNV1A_INIT, p->database),
				    p->logs_dir ? p->logs_dir : "");
	long long now = mono_ms();

	key += !key;   /* 0 means none */
	pthread_mutex_lock(&fs_ok.lock);
	bool fresh = fs_ok.key == key && now - fs_ok.at_ms < FS_OK_MS;
	pthread_mutex_unlock(&fs_ok.lock);
	*logs_rc = 0;
	if (fresh)
		return;
	bool db_looked = *db_rc == GO;
	if (db_looked && writable(p->database, "the database", err, errlen) != 0)
		*db_rc = FAILED;
	if (p->logs_dir && access(p->logs_dir, F_OK) == 0)
		*logs_rc = writable(p->logs_dir, "the logs folder", logs_err, logs_errlen);
	if (db_looked && *db_rc == GO && *logs_rc == 0) {
		pthread_mutex_lock(&fs_ok.lock);
		fs_ok.key = key;
		fs_ok.at_ms = now;
		pthread_mutex_unlock(&fs_ok.lock);
	}
}

/* "logs": {status: "ok"} or {status: "error", error}. */
static void logs_text(api_text *t, int rc, const char *err)
{
	if (rc == 0) {
		API_TEXT_LIT(t, ",\"logs\":{\"status\":\"ok\"}");
		return;
	}
	API_TEXT_LIT(t, ",\"logs\":{\"status\":\"error\",\"error\":");
	api_text_str(t, err);
	API_TEXT_LIT(t, "}");
}

/* "database": {status: "ok"} or {status: "error", error}. */
static void database_text(api_text *t, int db_rc, const char *err)
{
	if (db_rc == GO) {
		API_TEXT_LIT(t, ",\"database\":{\"status\":\"ok\"}");
		return;
	}
	API_TEXT_LIT(t, ",\"database\":{\"status\":\"error\",\"error\":");
	api_text_str(t, err);
	API_TEXT_LIT(t, "}");
}

static char this_host[HOST_NAME_MAX + 1];   /* "" when unknown */
static pthread_once_t this_host_once = PTHREAD_ONCE_INIT;

/* Reads the host name once per process (health is asked often). */
static void this_host_read(void)
{
	if (gethostname(this_host, sizeof this_host - 1) != 0)
		this_host[0] = '\0';
}

/*
 * Whether the runner of r ran on this host and its process is gone: a
 * kill -9 shows at once, not RUNNER_FRESH_MS later. EPERM (another
 * user's process) counts as alive.
 */
static bool runner_gone(const runner_row *r)
{
	pthread_once(&this_host_once, this_host_read);
	if (r->pid <= 0 || r->pid > INT_MAX || !r->host[0] || !this_host[0] ||
	    strcmp(this_host, r->host) != 0)
		return false;
	return kill((pid_t)r->pid, 0) != 0 && errno == ESRCH;
}

/* Whether settings.runner is cron: a runner that runs now and then. */
static bool cron_mode(const pw_req *req)
{
	json_object *mode = NULL;
	json_object_object_get_ex(pw_req_project(req)->settings, "runner", &mode);
	return mode && strcmp(json_object_get_string(mode), "cron") == 0;
}

/* How old a heartbeat may be for the runner to count as running. */
static long long fresh_ms(const pw_req *req)
{
	return cron_mode(req) ? RUNNER_CRON_FRESH_MS : RUNNER_FRESH_MS;
}

/* The runner's status word for r, seen at now (ms). */
static const char *runner_status(const pw_req *req, const runner_row *r, long long now)
{
	if (!r->found)
		return "absent";
	if (!cron_mode(req) && runner_gone(r))
		return "down";
	return now - r->heartbeat <= fresh_ms(req) ? "running" : "stale";
}

/*
 * One open descriptor of the WAL file, shared by the threads, so that a
 * request's look at it is an fstat(2), without a path lookup. Reopened
 * when it is for another database, or when the file is gone (SQLite
 * removes the WAL when the last connection closes). The lock also keeps
 * a thread from looking at a descriptor another one is replacing.
 */
static struct {
	pthread_mutex_t lock;
	int fd;
	uint64_t path_hash;
} wal_file = {PTHREAD_MUTEX_INITIALIZER, -1, 0};

/*
 * The signature of the WAL file of db (whose path hashes to hash).
 * Returns 0, or -1 when there is none.
 */
static int wal_stat(const char *db, uint64_t hash, wal_sig *sig)
{
	char path[4096];
	struct stat st;
	int rc = -1;

	pthread_mutex_lock(&wal_file.lock);
	/* One fstat(2) a request: the same look tells a removed file. */
	bool kept = wal_file.fd >= 0 && wal_file.path_hash == hash &&
		    fstat(wal_file.fd, &st) == 0 && st.st_nlink > 0;
	if (!kept && wal_file.fd >= 0) {
		close(wal_file.fd);
		wal_file.fd = -1;
	}
	if (!kept && snprintf(path, sizeof path, "%s-wal", db) < (int)sizeof path) {
		wal_file.fd = open(path, O_RDONLY | O_CLOEXEC);
		wal_file.path_hash = hash;
		kept = wal_file.fd >= 0 && fstat(wal_file.fd, &st) == 0;
	}
	if (kept) {
		*sig = (wal_sig){st.st_dev, st.st_ino, st.st_size, st.st_mtim};
		rc = 0;
	}
	pthread_mutex_unlock(&wal_file.lock);
	return rc;
}

static bool wal_same(const wal_sig *a, const wal_sig *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/*
 * The runner row (see the top): the thread's cached one while it is for
 * the same database, younger than RUNNER_CACHE_MS and the WAL file is
 * unchanged, else runner_read's (then cached unless an error).
 */
static int runner_get(pw_req *req, runner_row *r, char *err, size_t errlen)
{
	pw_store *store = pw_req_store(req);
	long long mono = mono_ms();
	/* the path's FNV-1a tells a reopened connection to another database */
	uint64_t hash = store ? pw_fnv1a_str(PW_FNV1A_INIT, pw_store_path(store)) : 0;
	wal_sig wal;

	/* Before the read: a commit after the stat is seen at the next one. */
	bool have_wal = store && wal_stat(pw_store_path(store), hash, &wal) == 0;
	if (have_wal && cache.store == store && mono - cache.read_ms < RUNNER_CACHE_MS &&
	    wal_same(&cache.wal, &wal) && cache.path_hash == hash) {
		*r = cache.row;
		return GO;
	}
	cache.store = NULL;
	int rc = runner_read(req, r, err, errlen);
	if (rc == GO && have_wal)
		cache = (runner_cache){store, hash, mono, wal, *r};
	return rc;
}

/*
 * "runner": {status (runner_status's word), last_heartbeat (ISO or null),
 * pid (or null), host (when known)}.
 */
static void runner_text(api_text *t, const runner_row *r, const char *status)
{
	API_TEXT_LIT(t, ",\"runner\":{\"status\":");
	api_text_str(t, status);
	API_TEXT_LIT(t, ",\"last_heartbeat\":");
	if (r->found) {
		char iso[32];
		pw_format_iso(r->heartbeat, iso);
		api_text_str(t, iso);
	} else {
		API_TEXT_LIT(t, "null");
	}
	API_TEXT_LIT(t, ",\"pid\":");
	if (r->pid > 0)
		api_text_int(t, r->pid);
	else
		API_TEXT_LIT(t, "null");
	if (r->host[0]) {
		API_TEXT_LIT(t, ",\"host\":");
		api_text_str(t, r->host);
	}
	API_TEXT_LIT(t, "}");
}

int health_get(pw_req *req)
{
	runner_row r = {0};
	char err[512] = "";
	long long now = pw_now_ms();
	char logs_err[512] = "";
	const pw_project *p = pw_req_project(req);
	int db_rc = runner_get(req, &r, err, sizeof err), logs_rc;
	/* The runner writes task logs there: tasks cannot run, the API can. */
	fs_check(p, &db_rc, err, sizeof err, &logs_rc, logs_err, sizeof logs_err);
	const char *runner = runner_status(req, &r, now);
	const char *status = db_rc != GO ? "unhealthy"
			     : strcmp(runner, "running") == 0 && logs_rc == 0 ? "healthy"
			     : "degraded";
	api_text t;

	api_text_init(&t);
	API_TEXT_LIT(&t, "{\"data\":{\"status\":");
	api_text_str(&t, status);
	database_text(&t, db_rc, err);
	runner_text(&t, &r, runner);
	logs_text(&t, logs_rc, logs_err);
	API_TEXT_LIT(&t, ",\"uptime_s\":");
	api_text_int(&t, uptime_s());
	API_TEXT_LIT(&t, "},\"meta\":{}}");
	return api_text_reply(req, db_rc == GO ? 200 : 503, &t);
}

int api_runner_up(pw_req *req, long long *age_ms)
{
	runner_row r = {0};
	char err[256];
	long long now = pw_now_ms();
	if (runner_get(req, &r, err, sizeof err) != GO)
		return -1;
	*age_ms = r.found ? now - r.heartbeat : -1;
	return strcmp(runner_status(req, &r, now), "running") == 0;
}

int version_get(pw_req *req)
{
	api_text t;

	api_text_init(&t);
	API_TEXT_LIT(&t, "{\"data\":{\"version\":");
	api_text_str(&t, PACKAGE_VERSION);
	API_TEXT_LIT(&t, ",\"api_version\":\"v1\"},\"meta\":{}}");
	return api_text_reply(req, 200, &t);
}

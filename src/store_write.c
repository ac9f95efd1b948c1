/*
 * store_write.c - the writes that belong to no other module: events,
 * queued runs, the runner's heartbeat, seeding pools and DAG rows,
 * commands and pause flags for the runner (and waking it), and pruning
 * events. Like every other module it prepares its statements through
 * pw_store_stmt; store_impl.h gives it the store's transaction units and
 * error logging. See store.h.
 */
#include "store_impl.h"

#include <assert.h>
#include <fcntl.h>
#include <json-c/printbuf.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* --- events and queued runs ------------------------------------------------- */

/* Adds key: string to obj. Returns 0, or -1 when out of memory. */
static int add_string(json_object *obj, const char *key, const char *v)
{
	json_object *j = json_object_new_string(v);
	if (!j)
		return -1;
	if (json_object_object_add(obj, key, j) != 0) {
		json_object_put(j);
		return -1;
	}
	return 0;
}

/* Appends ,"key": (no comma before the first). Returns 0 or -1 (out of memory). */
static int put_key(struct printbuf *pb, int *n, const char *key)
{
	if ((*n)++ && printbuf_strappend(pb, ",") < 0)
		return -1;
	return pw_json_quote(pb, key) || printbuf_strappend(pb, ":") < 0 ? -1 : 0;
}

/* Appends a JSON value, serialised as json-c does. 0 or -1. */
static int put_value(struct printbuf *pb, json_object *v)
{
	const char *text = json_object_to_json_string_ext(
		v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	return text && printbuf_memappend(pb, text, (int)strlen(text)) >= 0 ? 0 : -1;
}

/*
 * Writes the data of an event (see pw_store_add_event) into pb as one-line
 * JSON, byte for byte what json-c printed for the object built field by
 * field: the fields present, in this order, then extra's keys; a key of
 * extra that is a present field replaces that field's value in place.
 * Written directly: building and freeing a json-c object cost as much as
 * the INSERT, three times on each step of a chain. Returns 0, or -1
 * (logged) when out of memory or extra is not an object.
 */
static int put_event_data(struct printbuf *pb, const pw_event *ev, long long now)
{
	char ts[32], try_number[16];
	const struct {
		const char *key;
		bool present;
		const char *text; /* the value, quoted unless raw; NULL: null */
		bool raw;
	} f[] = {
		{"dag_id", ev->dag_id, ev->dag_id, false},
		{"run_id", ev->run_id, ev->run_id, false},
		{"task_id", ev->task_id, ev->task_id, false},
		{"state", ev->state, ev->state, false},
		{"previous_state", ev->previous_state || ev->state, ev->previous_state, false},
		{"try_number", ev->task_id, try_number, true},
		{"ts", true, ts, false},
	};
	const size_t n_f = sizeof f / sizeof f[0];
	json_object *v;
	int n = 0;

	if (ev->extra && !json_object_is_type(ev->extra, json_type_object)) {
		store_log_error("event extra data is not an object");
		return -1;
	}
	pw_format_iso(now, ts);
	snprintf(try_number, sizeof try_number, "%d", ev->try_number);
	if (printbuf_strappend(pb, "{") < 0)
		goto oom;
	for (size_t i = 0; i < n_f; i++) {
		if (!f[i].present)
			continue;
		if (put_key(pb, &n, f[i].key))
			goto oom;
		if (ev->extra && json_object_object_get_ex(ev->extra, f[i].key, &v)) {
			if (put_value(pb, v))
				goto oom;
		} else if (f[i].raw ? printbuf_memappend(pb, f[i].text,
							 (int)strlen(f[i].text)) < 0
				    : pw_json_quote(pb, f[i].text) != 0) {
			goto oom;
		}
	}
	if (ev->extra) {
		json_object_object_foreach(ev->extra, key, val) {
			size_t i = 0;
			while (i < n_f && !(f[i].present && strcmp(key, f[i].key) == 0))
				i++;
			if (i == n_f && (put_key(pb, &n, key) || put_value(pb, val)))
				goto oom;
		}
	}
	if (printbuf_strappend(pb, "}") < 0)
		goto oom;
	return 0;

oom:
	store_log_error("out of memory");
	return -1;
}

/*
 * Inserts the event row: columns type, dag_id, run_id, task_id, data
 * (one-line JSON) and created_at. The caller holds a transaction, so that
 * the event commits with the change it describes.
 */
long long pw_store_add_event(pw_store *s, const pw_event *ev)
{
	static const char sql[] =
		"INSERT INTO events(type, dag_id, run_id, task_id, data, created_at)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
	long long now = pw_now_ms();
	long long id = PW_ERR;
	sqlite3_stmt *st = NULL;
	struct printbuf *data = printbuf_new();

	assert(!sqlite3_get_autocommit(pw_store_db(s)) && "events need a transaction");
	if (!data) {
		store_log_error("out of memory");
		goto out;
	}
	if (put_event_data(data, ev, now) != 0)
		goto out;
	const char *text = data->buf;
	st = pw_store_stmt(s, sql);
	if (!st)
		goto out;
	pw_store_bind_text(st, 1, ev->type);
	pw_store_bind_text(st, 2, ev->dag_id);
	pw_store_bind_text(st, 3, ev->run_id);
	pw_store_bind_text(st, 4, ev->task_id);
	pw_store_bind_text(st, 5, text);
	sqlite3_bind_int64(st, 6, now);
	if (store_stmt_run(s, st) == PW_OK)
		id = sqlite3_last_insert_rowid(pw_store_db(s));
out:
	if (data)
		printbuf_free(data);
	return id;
}

/* Whether dag_id has a run run_id: 1, 0, or PW_ERR (logged). */
static int run_exists(pw_store *s, const char *dag_id, const char *run_id)
{
	static const char sql[] =
		"SELECT 1 FROM runs WHERE dag_id = ?1 AND run_id = ?2";
	int rc;
	sqlite3_stmt *st = pw_store_stmt(s, sql);
	if (!st)
		return PW_ERR;
	pw_store_bind_text(st, 1, dag_id);
	pw_store_bind_text(st, 2, run_id);
	switch (sqlite3_step(st)) {
	case SQLITE_ROW:
		rc = 1;
		break;
	case SQLITE_DONE:
		rc = 0;
		break;
	default:
		rc = store_log_db_error(pw_store_db(s));
		break;
	}
	store_stmt_done(st);
	return rc;
}

/*
 * Picks a free generated id for the DAG into buf (>= 48 bytes): the
 * queued_at time, then with -2, -3, ... Must run inside the transaction
 * that inserts the run. Returns PW_OK or PW_ERR.
 */
static int generate_run_id(pw_store *s, const char *dag_id, long long queued_at,
			   char *buf, size_t size)
{
	char base[32];

	pw_format_run_id(queued_at, base);
	snprintf(buf, size, "%s", base);
	for (int n = 2;; n++) {
		int taken = run_exists(s, dag_id, buf);
		if (taken != 1)
			return taken == 0 ? PW_OK : PW_ERR;
		if (n == INT_MAX)
			return store_log_error("no free run id");
		snprintf(buf, size, "%s-%d", base, n);
	}
}

/*
 * Inserts the run as 'queued' with its run.state event (state queued,
 * previous_state null, plus run_type) in one transaction, or in a savepoint
 * of the caller's. conf and options default to {}; run_type NULL means
 * "manual"; queued_at 0 means now. Nothing else is validated.
 */
int pw_store_insert_run(pw_store *s, const pw_run_new *run, char **run_id_out)
{
	static const char sql[] =
		"INSERT INTO runs(dag_id, run_id, state, run_type, conf, options,"
		" triggered_by, queued_at, logical_date)"
		" VALUES (?1, ?2, 'queued', ?3, ?4, ?5, ?6, ?7, ?8)";
	char gen[48];
	const char *run_id = run->run_id;
	const char *run_type = run->run_type ? run->run_type : "manual";
	long long queued_at = run->queued_at ? run->queued_at : pw_now_ms();
	const int flags = JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE;
	json_object *extra = NULL;
	sqlite3_stmt *st = NULL;
	int nested = 0, in_tx = 0, rc = PW_ERR;

	if (run_id_out)
		*run_id_out = NULL;
	/* Serialized before the transaction; the strings live in the objects. */
	const char *conf = run->conf
		? json_object_to_json_string_ext(run->conf, flags) : "{}";
	const char *options = run->options
		? json_object_to_json_string_ext(run->options, flags) : "{}";
	extra = json_object_new_object();
	if (!conf || !options || !extra ||
	    add_string(extra, "run_type", run_type)) {
		store_log_error("out of memory");
		goto out;
	}

	if (store_unit_begin(s, &nested) != PW_OK)
		goto out;
	in_tx = 1;
	if (run_id) {
		int taken = run_exists(s, run->dag_id, run_id);
		if (taken != 0) {
			rc = taken == 1 ? PW_CONFLICT : PW_ERR;
			goto out;
		}
	} else {
		if (generate_run_id(s, run->dag_id, queued_at, gen,
				    sizeof gen) != PW_OK)
			goto out;
		run_id = gen;
	}

	st = pw_store_stmt(s, sql);
	if (!st)
		goto out;
	pw_store_bind_text(st, 1, run->dag_id);
	pw_store_bind_text(st, 2, run_id);
	pw_store_bind_text(st, 3, run_type);
	pw_store_bind_text(st, 4, conf);
	pw_store_bind_text(st, 5, options);
	pw_store_bind_text(st, 6, run->triggered_by);
	sqlite3_bind_int64(st, 7, queued_at);
	sqlite3_bind_int64(st, 8, run->logical_date ? run->logical_date : queued_at);
	if (store_stmt_run(s, st) != PW_OK)
		goto out;

	pw_event ev = {
		.type = "run.state",
		.dag_id = run->dag_id,
		.run_id = run_id,
		.state = "queued",
		.extra = extra,
	};
	if (pw_store_add_event(s, &ev) < 0)
		goto out;
	if (run_id_out && !(*run_id_out = strdup(run_id))) {
		store_log_error("out of memory");
		goto out;
	}
	if (store_unit_commit(s, nested) != PW_OK)
		goto out;
	in_tx = 0;
	rc = PW_OK;
	if (!nested)
		pw_store_wake(s);
out:
	if (in_tx)
		store_unit_rollback(s, nested);
	if (rc != PW_OK && run_id_out) {
		free(*run_id_out);
		*run_id_out = NULL;
	}
	json_object_put(extra);
	return rc;
}

/* --- the runner's heartbeat; seeding pools and DAG rows -------------------- */

/*
 * Upserts the single runner row. started_at is kept while the same pid on
 * the same host keeps beating; a new pid (or host) starts it afresh.
 */
int pw_store_heartbeat(pw_store *s, int pid, const char *host, long long now)
{
	static const char sql[] =
		"INSERT INTO runner(id, pid, host, started_at, last_heartbeat)"
		" VALUES (1, ?1, ?2, ?3, ?3)"
		" ON CONFLICT(id) DO UPDATE SET"
		"  started_at = CASE WHEN runner.pid IS excluded.pid"
		"   AND runner.host IS excluded.host"
		"   AND runner.started_at IS NOT NULL"
		"   THEN runner.started_at ELSE excluded.started_at END,"
		"  pid = excluded.pid, host = excluded.host,"
		"  last_heartbeat = excluded.last_heartbeat";
	sqlite3_stmt *st = pw_store_stmt(s, sql);
	if (!st)
		return PW_ERR;
	sqlite3_bind_int(st, 1, pid);
	pw_store_bind_text(st, 2, host);
	sqlite3_bind_int64(st, 3, now);
	return store_stmt_run(s, st);
}

/*
 * Checks one pool definition: {"slots": int >= 0, "description"?: string
 * or null}. Returns PW_OK, or PW_ERR with a logged message.
 */
static int check_pool(const char *name, json_object *def)
{
	json_object *slots = NULL, *desc = NULL;
	const char *why = NULL;

	if (!*name)
		why = "is not a valid pool name";
	else if (!json_object_is_type(def, json_type_object))
		why = "must be an object";
	else if (!json_object_object_get_ex(def, "slots", &slots) ||
		 !json_object_is_type(slots, json_type_int))
		why = "needs an integer \"slots\"";
	else if (json_object_get_int64(slots) < 0 ||
		 json_object_get_int64(slots) > INT_MAX)
		why = "has \"slots\" out of range";
	else if (json_object_object_get_ex(def, "description", &desc) && desc &&
		 !json_object_is_type(desc, json_type_string))
		why = "has a \"description\" that is not a string";
	if (!why)
		return PW_OK;
	fprintf(stderr, "pipewright: store: pool '%s' %s\n", name, why);
	return PW_ERR;
}

/*
 * Inserts the pools the table does not have, all or none: every definition
 * is checked first, then inserted with ON CONFLICT DO NOTHING in one
 * transaction (or a savepoint of the caller's). NULL pools is nothing to do.
 */
int pw_store_seed_pools(pw_store *s, json_object *pools)
{
	static const char sql[] =
		"INSERT INTO pools(name, slots, description) VALUES (?1, ?2, ?3)"
		" ON CONFLICT(name) DO NOTHING";
	int nested = 0, rc = PW_ERR;

	if (!pools)
		return PW_OK;
	if (!json_object_is_type(pools, json_type_object))
		return store_log_error("pools must be an object of name -> "
				       "{\"slots\", \"description\"}");
	json_object_object_foreach(pools, name, def) {
		if (check_pool(name, def) != PW_OK)
			return PW_ERR;
	}

	if (store_unit_begin(s, &nested) != PW_OK)
		return PW_ERR;
	sqlite3_stmt *st = pw_store_stmt(s, sql);
	if (!st)
		goto out;
	json_object_object_foreach(pools, pname, pdef) {
		json_object *slots = NULL, *desc = NULL;
		json_object_object_get_ex(pdef, "slots", &slots);
		json_object_object_get_ex(pdef, "description", &desc);
		pw_store_bind_text(st, 1, pname);
		sqlite3_bind_int64(st, 2, json_object_get_int64(slots));
		pw_store_bind_text(st, 3, desc ? json_object_get_string(desc) : "");
		if (store_stmt_run(s, st) != PW_OK)
			goto out;
	}
	if (store_unit_commit(s, nested) != PW_OK)
		goto out;
	rc = PW_OK;
out:
	if (rc != PW_OK)
		store_unit_rollback(s, nested);
	return rc;
}

/* Inserts the DAG's row unless it exists; updated_at is set on a new row. */
int pw_store_seed_dag(pw_store *s, const char *dag_id, int initially_paused)
{
	static const char sql[] =
		"INSERT INTO dags(dag_id, is_paused, updated_at) VALUES (?1, ?2, ?3)"
		" ON CONFLICT(dag_id) DO NOTHING";
	sqlite3_stmt *st = pw_store_stmt(s, sql);
	if (!st)
		return PW_ERR;
	pw_store_bind_text(st, 1, dag_id);
	sqlite3_bind_int(st, 2, initially_paused ? 1 : 0);
	sqlite3_bind_int64(st, 3, pw_now_ms());
	return store_stmt_run(s, st);
}


/* --- intent: commands, pause flags; waking the runner ------------------- */

void pw_store_wake(pw_store *s)
{
	char *fifo = pw_asprintf("%s.wake", pw_store_path(s));
	if (!fifo)
		return;
	/* ENXIO: no runner has the FIFO open; ENOENT: none ever made it. */
	int fd = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd >= 0) {
		/* A full FIFO already holds a wake-up: EAGAIN is fine too. */
		ssize_t ignored = write(fd, "w", 1);
		(void)ignored;
		close(fd);
	}
	free(fifo);
}

int pw_store_request(pw_store *s, const char *dag_id, const char *run_id,
		     const char *kind)
{
	return pw_store_command(s, dag_id, run_id, kind, NULL);
}

int pw_store_command(pw_store *s, const char *dag_id, const char *run_id,
		     const char *kind, json_object *args)
{
	static const char sql[] =
		"INSERT INTO commands(kind, run_pk, created_at, args)"
		" SELECT ?1, id, ?2, ?5 FROM runs WHERE dag_id = ?3 AND run_id = ?4";
	const char *text = args ? json_object_to_json_string_ext(args,
			JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE) : NULL;
	sqlite3_stmt *st = pw_store_stmt(s, sql);
	if (!st || (args && !text))
		return PW_ERR;
	pw_store_bind_text(st, 1, kind);
	sqlite3_bind_int64(st, 2, pw_now_ms());
	pw_store_bind_text(st, 3, dag_id);
	pw_store_bind_text(st, 4, run_id);
	pw_store_bind_text(st, 5, text);
	int rc = store_stmt_run(s, st);
	if (rc == PW_OK && sqlite3_changes(pw_store_db(s)) == 0)
		return PW_NOTFOUND;
	if (rc == PW_OK)
		pw_store_wake(s);
	return rc;
}

int pw_store_set_paused(pw_store *s, const char *dag_id, int paused)
{
	static const char sql[] =
		"INSERT INTO dags(dag_id, is_paused, updated_at) VALUES (?1, ?2, ?3)"
		" ON CONFLICT(dag_id) DO UPDATE SET is_paused = excluded.is_paused,"
		"  updated_at = excluded.updated_at";
	int nested = 0;
	json_object *extra = json_object_new_object();
	if (!extra || json_object_object_add(extra, "is_paused",
					     json_object_new_boolean(paused)) != 0) {
		json_object_put(extra);
		return store_log_error("out of memory");
	}
	pw_event ev = {.type = "dag.updated", .dag_id = dag_id, .extra = extra};
	sqlite3_stmt *st = pw_store_stmt(s, sql);
	int rc = st ? store_unit_begin(s, &nested) : PW_ERR;
	if (rc == PW_OK) {
		pw_store_bind_text(st, 1, dag_id);
		sqlite3_bind_int(st, 2, paused ? 1 : 0);
		sqlite3_bind_int64(st, 3, pw_now_ms());
		rc = store_stmt_run(s, st);
		if (rc == PW_OK && pw_store_add_event(s, &ev) < 0)
			rc = PW_ERR;
		if (rc == PW_OK)
			rc = store_unit_commit(s, nested);
		if (rc != PW_OK)
			store_unit_rollback(s, nested);
	}
	json_object_put(extra);
	if (rc == PW_OK && !nested)
		pw_store_wake(s);
	return rc;
}

/* --- pruning events ----------------------------------------------------------- */

/* Events deleted per write transaction by pw_store_prune_events. */
#define PRUNE_BATCH 5000

/*
 * The first column of a one-row query, with ?1 bound to *arg when arg is
 * non-NULL, into *out (dflt when there is no row or it is NULL). Returns
 * PW_OK or PW_ERR (logged).
 */
static int query_int(pw_store *s, const char *sql, const long long *arg, long long dflt,
		     long long *out)
{
	sqlite3_stmt *st = pw_store_stmt(s, sql);
	int rc;

	*out = dflt;
	if (!st)
		return PW_ERR;
	if (arg && sqlite3_bind_int64(st, 1, *arg) != SQLITE_OK) {
		store_stmt_done(st);
		return store_log_db_error(pw_store_db(s));
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		*out = sqlite3_column_int64(st, 0);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		store_log_db_error(pw_store_db(s));
	store_stmt_done(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? PW_OK : PW_ERR;
}

int pw_store_prune_events(pw_store *s, long long older_than_ms, long long keep_max)
{
	static const char max_sql[] = "SELECT max(id) FROM events";
	static const char min_sql[] = "SELECT min(id) FROM events";
	/*
	 * The oldest event young enough to keep: created_at grows with id, so
	 * the walk in id order stops there, having seen only what goes.
	 */
	static const char young_sql[] =
		"SELECT id FROM events WHERE created_at >= ?1 ORDER BY id LIMIT 1";
	static const char delete_sql[] = "DELETE FROM events WHERE id <= ?1";
	long long max_id, cut = 0, lo, deleted = 0;

	assert(sqlite3_get_autocommit(pw_store_db(s)) &&
	       "pruning runs its own transactions");
	if (query_int(s, max_sql, NULL, 0, &max_id) != PW_OK)
		return PW_ERR;
	/* Everything with id <= cut goes. */
	if (keep_max >= 0 && max_id - keep_max > cut)
		cut = max_id - keep_max;
	if (older_than_ms >= 0) {
		long long cutoff = pw_now_ms() - older_than_ms, young;
		if (query_int(s, young_sql, &cutoff, max_id + 1, &young) != PW_OK)
			return PW_ERR;
		if (young - 1 > cut)
			cut = young - 1;
	}
	/* Oldest first, PRUNE_BATCH ids per statement (its own transaction). */
	while (cut > 0) {
		if (query_int(s, min_sql, NULL, cut + 1, &lo) != PW_OK)
			return PW_ERR;
		if (lo > cut)
			break;
		long long hi = cut - lo >= PRUNE_BATCH ? lo + PRUNE_BATCH - 1 : cut;
		sqlite3_stmt *st = pw_store_stmt(s, delete_sql);
		if (!st)
			return PW_ERR;
		sqlite3_bind_int64(st, 1, hi);
		if (store_stmt_run(s, st) != PW_OK)
			return PW_ERR;
		deleted += sqlite3_changes(pw_store_db(s));
	}
	return deleted > INT_MAX ? INT_MAX : (int)deleted;
}


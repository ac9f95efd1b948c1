/* test_store.c - the SQLite store against real files in a scratch folder. */
#include "testhelp.h"

#include <json-c/json.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store.h"
#include "txn.h"
#include "util.h"

/* 2024-01-01T00:00:00.000Z */
#define JAN1 1704067200000LL

typedef struct fixture {
	char *dir;
	char *path;  /* dir/pw.db */
	pw_store *s;
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	char *err = NULL;

	assert_non_null(f);
	f->dir = th_mkdtemp();
	f->path = pw_path_join(f->dir, "pw.db");
	assert_non_null(f->path);
	assert_int_equal(pw_store_open(f->path, &f->s, &err), PW_OK);
	assert_null(err);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	pw_store_close(f->s);
	free(f->path);
	th_rmtree(f->dir);
	free(f);
	return 0;
}

/* Closes and opens the fixture's store again. */
static void reopen(fixture *f)
{
	char *err = NULL;
	pw_store_close(f->s);
	f->s = NULL;
	assert_int_equal(pw_store_open(f->path, &f->s, &err), PW_OK);
	assert_null(err);
}

/* Runs SQL that must succeed. */
static void exec_ok(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg ? msg : "?");
}

/* The first column of the first row of sql (one optional text parameter). */
static long long query_int(sqlite3 *db, const char *sql, const char *param)
{
	sqlite3_stmt *st = NULL;
	long long v;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	if (param)
		sqlite3_bind_text(st, 1, param, -1, SQLITE_TRANSIENT);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* Same, as a malloc'd string (NULL for SQL NULL). */
static char *query_text(sqlite3 *db, const char *sql, const char *param)
{
	sqlite3_stmt *st = NULL;
	char *v = NULL;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	if (param)
		sqlite3_bind_text(st, 1, param, -1, SQLITE_TRANSIENT);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	if (sqlite3_column_type(st, 0) != SQLITE_NULL) {
		v = strdup((const char *)sqlite3_column_text(st, 0));
		assert_non_null(v);
	}
	sqlite3_finalize(st);
	return v;
}

/* Appends one event in its own transaction; returns its id. */
static long long add_event(pw_store *s, const pw_event *ev)
{
	assert_int_equal(pw_store_begin(s), PW_OK);
	long long id = pw_store_add_event(s, ev);
	assert_true(id > 0);
	assert_int_equal(pw_store_commit(s), PW_OK);
	return id;
}

/* The parsed data of event id (the caller puts it). */
static json_object *event_json(pw_store *s, long long id)
{
	char sql[96];
	snprintf(sql, sizeof sql, "SELECT data FROM events WHERE id = %lld", id);
	char *text = query_text(pw_store_db(s), sql, NULL);
	assert_non_null(text);
	assert_null(strchr(text, '\n'));
	json_object *j = json_tokener_parse(text);
	assert_non_null(j);
	free(text);
	return j;
}

/* The string field key of obj, or NULL when absent or not a string. */
static const char *jstr(json_object *obj, const char *key)
{
	json_object *v = NULL;
	if (!json_object_object_get_ex(obj, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static int jhas(json_object *obj, const char *key)
{
	return json_object_object_get_ex(obj, key, NULL);
}

/* ---- migrations ------------------------------------------------------ */

static void test_migrate_fresh(void **state)
{
	fixture *f = *state;
	sqlite3 *db = pw_store_db(f->s);
	static const char *const tables[] = {
		"dags", "runs", "task_instances", "task_tries", "xcom",
		"commands", "pools", "events", "runner",
	};

	assert_true(pw_store_latest_version() >= 1);
	assert_int_equal(pw_store_schema_version(f->s), pw_store_latest_version());
	for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++)
		assert_int_equal(query_int(db, "SELECT count(*) FROM sqlite_master"
					   " WHERE type = 'table' AND name = ?1",
					   tables[i]), 1);
	assert_int_equal(query_int(db, "SELECT slots FROM pools"
				   " WHERE name = 'default_pool'", NULL), 128);
	char *desc = query_text(db, "SELECT description FROM pools"
				" WHERE name = 'default_pool'", NULL);
	assert_string_equal(desc, "Default pool");
	free(desc);
	char *mode = query_text(db, "PRAGMA journal_mode", NULL);
	assert_string_equal(mode, "wal");
	free(mode);
	assert_int_equal(sqlite3_exec(db, "DELETE FROM pools", NULL, NULL, NULL),
			 SQLITE_CONSTRAINT);
	assert_int_equal(query_int(db, "SELECT count(*) FROM pools", NULL), 1);
	assert_int_equal(query_int(db, "PRAGMA foreign_keys", NULL), 1);
	assert_int_equal(query_int(db, "PRAGMA synchronous", NULL), 1);
	assert_int_equal(query_int(db, "PRAGMA integrity_check = 1", NULL), 0);
	assert_int_equal(query_int(db, "SELECT count(*) FROM pragma_foreign_key_check",
				   NULL), 0);
}

static void test_reopen_idempotent(void **state)
{
	fixture *f = *state;

	exec_ok(pw_store_db(f->s),
		"UPDATE pools SET slots = 7 WHERE name = 'default_pool'");
	reopen(f);
	reopen(f);
	sqlite3 *db = pw_store_db(f->s);
	assert_int_equal(pw_store_schema_version(f->s), pw_store_latest_version());
	assert_int_equal(query_int(db, "SELECT count(*) FROM pools", NULL), 1);
	assert_int_equal(query_int(db, "SELECT slots FROM pools"
				   " WHERE name = 'default_pool'", NULL), 7);
	char *mode = query_text(db, "PRAGMA journal_mode", NULL);
	assert_string_equal(mode, "wal");
	free(mode);
}

static void test_open_newer_schema_refused(void **state)
{
	fixture *f = *state;
	char sql[64], *err = NULL;
	pw_store *s2 = NULL;

	snprintf(sql, sizeof sql, "PRAGMA user_version = %d",
		 pw_store_latest_version() + 1);
	exec_ok(pw_store_db(f->s), sql);
	assert_int_equal(pw_store_open(f->path, &s2, &err), PW_ERR);
	assert_null(s2);
	assert_non_null(err);
	assert_non_null(strstr(err, "newer"));
	free(err);
}

static void test_open_missing_folder(void **state)
{
	fixture *f = *state;
	char *path = pw_path_join(f->dir, "nope/pw.db"), *err = NULL;
	pw_store *s2 = NULL;

	assert_int_equal(pw_store_open(path, &s2, &err), PW_ERR);
	assert_null(s2);
	assert_non_null(err);
	assert_non_null(strstr(err, path));
	free(err);
	free(path);
}

/*
 * Migration 7 rebuilds task_instances and task_tries: applied again to a
 * file with rows (user_version set back to 6), it keeps every row and
 * column, and the state CHECK still refuses an unknown state.
 */
static void test_migration_7_keeps_rows(void **state)
{
	fixture *f = *state;
	sqlite3 *db = pw_store_db(f->s);

	exec_ok(db, "INSERT INTO runs(id, dag_id, run_id, state, run_type, queued_at)"
		" VALUES (1, 'd', 'r', 'running', 'manual', 5)");
	exec_ok(db, "INSERT INTO task_instances(run_pk, task_id, state, try_number,"
		" max_tries, pool, pool_slots, started_at, ended_at, exit_code, next_try_at)"
		" VALUES (1, 'a', 'up_for_retry', 1, 3, 'p', 2, 10, 11, 7, 12),"
		" (1, 'b', 'pending', 0, 1, 'default_pool', 1, NULL, NULL, NULL, NULL)");
	exec_ok(db, "INSERT INTO task_tries(run_pk, task_id, try_number, state, started_at,"
		" ended_at, exit_code, pid, reason, log_path, external_id, proc_start)"
		" VALUES (1, 'a', 1, 'failed', 10, 11, 7, 99, 'why', '/l', 'j1', 42)");
	exec_ok(db, "PRAGMA user_version = 6");
	reopen(f);
	db = pw_store_db(f->s);
	assert_int_equal(pw_store_schema_version(f->s), pw_store_latest_version());
	assert_int_equal(query_int(db, "SELECT count(*) FROM task_instances WHERE"
				   " run_pk = 1 AND task_id = 'a' AND state = 'up_for_retry'"
				   " AND try_number = 1 AND max_tries = 3 AND pool = 'p'"
				   " AND pool_slots = 2 AND started_at = 10 AND ended_at = 11"
				   " AND exit_code = 7 AND next_try_at = 12", NULL), 1);
	assert_int_equal(query_int(db, "SELECT count(*) FROM task_instances", NULL), 2);
	assert_int_equal(query_int(db, "SELECT count(*) FROM task_tries WHERE"
				   " run_pk = 1 AND task_id = 'a' AND try_number = 1"
				   " AND state = 'failed' AND started_at = 10 AND ended_at = 11"
				   " AND exit_code = 7 AND pid = 99 AND reason = 'why'"
				   " AND log_path = '/l' AND external_id = 'j1'"
				   " AND proc_start = 42", NULL), 1);
	assert_int_equal(sqlite3_exec(db, "UPDATE task_instances SET state = 'bogus'",
				      NULL, NULL, NULL), SQLITE_CONSTRAINT);
	assert_int_equal(sqlite3_exec(db, "UPDATE task_tries SET state = 'bogus'",
				      NULL, NULL, NULL), SQLITE_CONSTRAINT);
	assert_int_equal(query_int(db, "SELECT count(*) FROM sqlite_master"
				   " WHERE name = 'task_instances_state_pool'", NULL), 1);
	assert_int_equal(query_int(db, "PRAGMA integrity_check = 1", NULL), 0);
	assert_int_equal(query_int(db, "SELECT count(*) FROM pragma_foreign_key_check",
				   NULL), 0);
	/* deleting the run still deletes its instances and tries */
	exec_ok(db, "DELETE FROM runs WHERE id = 1");
	assert_int_equal(query_int(db, "SELECT (SELECT count(*) FROM task_instances)"
				   " + (SELECT count(*) FROM task_tries)", NULL), 0);
}

/* A migration that fails leaves nothing behind and names itself. */
static void test_failed_migration_rolls_back(void **state)
{
	fixture *f = *state;
	char *path = pw_path_join(f->dir, "clash.db"), *err = NULL;
	sqlite3 *raw = NULL;
	pw_store *s2 = NULL;

	assert_int_equal(sqlite3_open(path, &raw), SQLITE_OK);
	exec_ok(raw, "CREATE TABLE events (x)");
	assert_int_equal(sqlite3_close(raw), SQLITE_OK);
	assert_int_equal(pw_store_open(path, &s2, &err), PW_ERR);
	assert_null(s2);
	assert_non_null(strstr(err, "migration 1"));
	assert_non_null(strstr(err, "events"));
	free(err);
	assert_int_equal(sqlite3_open(path, &raw), SQLITE_OK);
	assert_int_equal(query_int(raw, "PRAGMA user_version", NULL), 0);
	assert_int_equal(query_int(raw, "SELECT count(*) FROM sqlite_master"
				   " WHERE name IN ('runs', 'pools')", NULL), 0);
	assert_int_equal(sqlite3_close(raw), SQLITE_OK);
	free(path);
}

/* Several processes open one fresh file at once: one schema, one pool. */
static void test_concurrent_first_open(void **state)
{
	fixture *f = *state;
	enum { N = 4 };
	int go[2];
	pid_t pids[N];
	char *path = pw_path_join(f->dir, "fresh.db");

	assert_non_null(path);
	/* no SQLite connection may cross a fork */
	pw_store_close(f->s);
	f->s = NULL;
	assert_int_equal(pipe(go), 0);
	fflush(NULL);
	for (int i = 0; i < N; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			char c, *err = NULL;
			pw_store *s = NULL;
			close(go[1]);
			if (read(go[0], &c, 1) != 0)
				_exit(3);
			int rc = pw_store_open(path, &s, &err);
			if (rc != PW_OK)
				fprintf(stderr, "child: %s\n", err);
			free(err);
			pw_store_close(s);
			_exit(rc == PW_OK ? 0 : 1);
		}
	}
	close(go[0]);
	close(go[1]);  /* releases every child at once */
	int failed = 0;
	for (int i = 0; i < N; i++) {  /* reap them all before judging */
		int status = 0;
		if (waitpid(pids[i], &status, 0) != pids[i] ||
		    !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			failed++;
	}
	assert_int_equal(failed, 0);

	pw_store *s = NULL;
	char *err = NULL;
	assert_int_equal(pw_store_open(path, &s, &err), PW_OK);
	assert_int_equal(pw_store_schema_version(s), pw_store_latest_version());
	assert_int_equal(query_int(pw_store_db(s), "SELECT count(*) FROM pools",
				   NULL), 1);
	pw_store_close(s);
	free(path);
}

/* ---- events ------------------------------------------------------------ */

static void test_event_ids_two_connections(void **state)
{
	fixture *f = *state;
	pw_store *other = NULL;
	char *err = NULL;
	pw_event ev = { .type = "dag.updated", .dag_id = "d" };
	long long last = 0;

	assert_int_equal(pw_store_open(f->path, &other, &err), PW_OK);
	for (int i = 0; i < 10; i++) {
		long long id = add_event(i % 2 ? other : f->s, &ev);
		assert_true(id > last);
		last = id;
	}
	pw_store_close(other);
	assert_int_equal(query_int(pw_store_db(f->s),
				   "SELECT count(*) FROM events", NULL), 10);
}

static void test_event_ids_never_reused(void **state)
{
	fixture *f = *state;
	pw_event ev = { .type = "pool.updated" };
	long long last = 0;

	for (int i = 0; i < 5; i++)
		last = add_event(f->s, &ev);
	reopen(f);
	long long id = add_event(f->s, &ev);
	assert_true(id > last);
	last = id;

	/* prune the newest rows: their ids must not come back */
	exec_ok(pw_store_db(f->s), "DELETE FROM events WHERE id >= 3");
	id = add_event(f->s, &ev);
	assert_true(id > last);
	last = id;
	exec_ok(pw_store_db(f->s), "DELETE FROM events");
	reopen(f);
	id = add_event(f->s, &ev);
	assert_true(id > last);
}

static void test_event_data(void **state)
{
	fixture *f = *state;
	json_object *extra = json_tokener_parse("{\"exit_code\": 3, \"a/b\": [1]}");
	pw_event ev = {
		.type = "task.state", .dag_id = "etl", .run_id = "r/1",
		.task_id = "load", .state = "failed",
		.previous_state = "running", .try_number = 2, .extra = extra,
	};
	long long before = pw_now_ms();
	long long id = add_event(f->s, &ev);
	json_object *j = event_json(f->s, id);
	sqlite3 *db = pw_store_db(f->s);
	char sql[128];

	assert_string_equal(jstr(j, "dag_id"), "etl");
	assert_string_equal(jstr(j, "run_id"), "r/1");
	assert_string_equal(jstr(j, "task_id"), "load");
	assert_string_equal(jstr(j, "state"), "failed");
	assert_string_equal(jstr(j, "previous_state"), "running");
	json_object *v = NULL;
	assert_true(json_object_object_get_ex(j, "try_number", &v));
	assert_true(json_object_is_type(v, json_type_int));
	assert_int_equal(json_object_get_int(v), 2);
	assert_true(json_object_object_get_ex(j, "exit_code", &v));
	assert_int_equal(json_object_get_int(v), 3);
	assert_true(json_object_object_get_ex(j, "a/b", &v));
	assert_true(json_object_is_type(v, json_type_array));
	long long ts = 0;
	assert_non_null(jstr(j, "ts"));
	assert_int_equal(pw_parse_iso(jstr(j, "ts"), &ts), 0);
	assert_true(ts >= before && ts <= pw_now_ms());
	assert_int_equal(json_object_object_length(j), 9);
	json_object_put(j);

	/* the columns beside data */
	snprintf(sql, sizeof sql, "SELECT type || '|' || dag_id || '|' || run_id"
		 " || '|' || task_id FROM events WHERE id = %lld", id);
	char *cols = query_text(db, sql, NULL);
	assert_string_equal(cols, "task.state|etl|r/1|load");
	free(cols);
	snprintf(sql, sizeof sql, "SELECT created_at FROM events WHERE id = %lld",
		 id);
	assert_int_equal(query_int(db, sql, NULL), ts);
	/* the object stays the caller's */
	assert_int_equal(json_object_put(extra), 1);

	/* a state with no previous state: previous_state is null */
	pw_event first = { .type = "run.state", .dag_id = "etl", .run_id = "r2",
			   .state = "queued" };
	j = event_json(f->s, add_event(f->s, &first));
	assert_true(json_object_object_get_ex(j, "previous_state", &v));
	assert_null(v);
	assert_false(jhas(j, "try_number"));
	assert_false(jhas(j, "task_id"));
	json_object_put(j);

	/* no state at all: neither key */
	pw_event bare = { .type = "pool.updated",
			  .extra = json_tokener_parse("{\"name\": \"p\"}") };
	id = add_event(f->s, &bare);
	json_object_put(bare.extra);
	j = event_json(f->s, id);
	assert_false(jhas(j, "state"));
	assert_false(jhas(j, "previous_state"));
	assert_false(jhas(j, "dag_id"));
	assert_string_equal(jstr(j, "name"), "p");
	assert_non_null(jstr(j, "ts"));
	assert_int_equal(json_object_object_length(j), 2);
	json_object_put(j);
	snprintf(sql, sizeof sql, "SELECT dag_id FROM events WHERE id = %lld", id);
	assert_null(query_text(db, sql, NULL));
}

/*
 * The data text is byte for byte what json-c prints for the object built
 * field by field (how it was written before put_event_data): escapes in
 * strings and keys, null previous_state, extra's keys after the fields and
 * an extra key that is a field replacing it in place.
 */
static void test_event_data_as_json_c(void **state)
{
	fixture *f = *state;
	json_object *extra = json_tokener_parse(
		"{\"exit_code\": 3, \"state\": \"x\\\"y\", \"k\\n/\\u0001\": {\"a\": [1, null, 2.5]}}");
	pw_event evs[] = {
		{.type = "task.state", .dag_id = "d\"q/\\", .run_id = "r\t\x01\x7f\xc3\xa9",
		 .task_id = "t", .state = "failed", .previous_state = "running",
		 .try_number = -7, .extra = extra},
		{.type = "run.state", .dag_id = "d", .run_id = "r", .state = "queued"},
		{.type = "pool.updated", .extra = extra},
	};
	char sql[96];

	for (size_t e = 0; e < sizeof evs / sizeof evs[0]; e++) {
		const pw_event *ev = &evs[e];
		long long id = add_event(f->s, ev);
		snprintf(sql, sizeof sql, "SELECT data FROM events WHERE id = %lld", id);
		char *text = query_text(pw_store_db(f->s), sql, NULL);
		json_object *stored = json_tokener_parse(text);
		json_object *ts = NULL;
		assert_true(json_object_object_get_ex(stored, "ts", &ts));

		json_object *o = json_object_new_object();
		if (ev->dag_id)
			json_object_object_add(o, "dag_id", json_object_new_string(ev->dag_id));
		if (ev->run_id)
			json_object_object_add(o, "run_id", json_object_new_string(ev->run_id));
		if (ev->task_id)
			json_object_object_add(o, "task_id", json_object_new_string(ev->task_id));
		if (ev->state)
			json_object_object_add(o, "state", json_object_new_string(ev->state));
		if (ev->previous_state)
			json_object_object_add(o, "previous_state",
					       json_object_new_string(ev->previous_state));
		else if (ev->state)
			json_object_object_add(o, "previous_state", NULL);
		if (ev->task_id)
			json_object_object_add(o, "try_number", json_object_new_int(ev->try_number));
		json_object_object_add(o, "ts", json_object_get(ts));
		if (ev->extra) {
			json_object_object_foreach(ev->extra, key, val)
				json_object_object_add(o, key, json_object_get(val));
		}
		assert_string_equal(text, json_object_to_json_string_ext(
			o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
		json_object_put(stored);
		free(text);
	}
	json_object_put(extra);
}

/* ---- runs -------------------------------------------------------------- */

static long long count_events(pw_store *s)
{
	return query_int(pw_store_db(s), "SELECT count(*) FROM events", NULL);
}

static void test_insert_run_generated_ids(void **state)
{
	fixture *f = *state;
	json_object *conf = json_tokener_parse("{\"n\": 3, \"p\": \"a/b\"}");
	pw_run_new run = {
		.dag_id = "etl", .run_type = "scheduled", .conf = conf,
		.triggered_by = "alice", .queued_at = JAN1,
	};
	char *id = NULL;
	sqlite3 *db = pw_store_db(f->s);

	assert_int_equal(pw_store_insert_run(f->s, &run, &id), PW_OK);
	assert_string_equal(id, "2024-01-01T00.00.00.000Z");
	free(id);
	assert_int_equal(pw_store_insert_run(f->s, &run, &id), PW_OK);
	assert_string_equal(id, "2024-01-01T00.00.00.000Z-2");
	free(id);
	assert_int_equal(pw_store_insert_run(f->s, &run, &id), PW_OK);
	assert_string_equal(id, "2024-01-01T00.00.00.000Z-3");
	free(id);
	/* another DAG has its own ids */
	run.dag_id = "other";
	assert_int_equal(pw_store_insert_run(f->s, &run, &id), PW_OK);
	assert_string_equal(id, "2024-01-01T00.00.00.000Z");
	free(id);
	json_object_put(conf);

	/* the row */
	assert_int_equal(query_int(db, "SELECT count(*) FROM runs WHERE dag_id ="
				   " 'etl' AND state = 'queued'", NULL), 3);
	char *row = query_text(db, "SELECT run_type || '|' || conf || '|' ||"
			       " options || '|' || triggered_by || '|' ||"
			       " queued_at || '|' || coalesce(started_at, 'N')"
			       " FROM runs WHERE run_id = ?1 AND dag_id = 'etl'",
			       "2024-01-01T00.00.00.000Z-2");
	assert_string_equal(row, "scheduled|{\"n\":3,\"p\":\"a/b\"}|{}|alice|"
			    "1704067200000|N");
	free(row);

	/* one event per run, in order */
	assert_int_equal(count_events(f->s), 4);
	long long last = query_int(db, "SELECT max(id) FROM events WHERE"
				   " dag_id = 'etl'", NULL);
	json_object *j = event_json(f->s, last);
	json_object *v = NULL;
	assert_string_equal(jstr(j, "dag_id"), "etl");
	assert_string_equal(jstr(j, "run_id"), "2024-01-01T00.00.00.000Z-3");
	assert_string_equal(jstr(j, "state"), "queued");
	assert_true(json_object_object_get_ex(j, "previous_state", &v));
	assert_null(v);
	assert_string_equal(jstr(j, "run_type"), "scheduled");
	json_object_put(j);
	char *type = query_text(db, "SELECT type FROM events WHERE run_id = ?1"
				" AND dag_id = 'etl'", "2024-01-01T00.00.00.000Z-3");
	assert_string_equal(type, "run.state");
	free(type);
}

static void test_insert_run_defaults(void **state)
{
	fixture *f = *state;
	pw_run_new run = { .dag_id = "d", .run_type = "manual" };
	long long before = pw_now_ms();
	char *id = NULL;

	assert_int_equal(pw_store_insert_run(f->s, &run, &id), PW_OK);
	long long at = query_int(pw_store_db(f->s), "SELECT queued_at FROM runs"
				 " WHERE run_id = ?1", id);
	assert_true(at >= before && at <= pw_now_ms());
	char buf[32];
	pw_format_run_id(at, buf);
	assert_string_equal(id, buf);
	free(id);
	char *row = query_text(pw_store_db(f->s), "SELECT conf || options ||"
			       " coalesce(triggered_by, 'N') FROM runs", NULL);
	assert_string_equal(row, "{}{}N");
	free(row);
	/* run_id_out may be NULL */
	assert_int_equal(pw_store_insert_run(f->s, &run, NULL), PW_OK);
	assert_int_equal(query_int(pw_store_db(f->s), "SELECT count(*) FROM runs",
				   NULL), 2);
}

static void test_insert_run_conflict(void **state)
{
	fixture *f = *state;
	pw_run_new run = { .dag_id = "etl", .run_id = "nightly", .run_type =
			   "manual", .queued_at = JAN1 };
	char *id = NULL;

	assert_int_equal(pw_store_insert_run(f->s, &run, &id), PW_OK);
	assert_string_equal(id, "nightly");
	free(id);
	assert_int_equal(count_events(f->s), 1);
	id = (char *)"junk";
	assert_int_equal(pw_store_insert_run(f->s, &run, &id), PW_CONFLICT);
	assert_null(id);
	assert_int_equal(count_events(f->s), 1);
	assert_int_equal(query_int(pw_store_db(f->s), "SELECT count(*) FROM runs",
				   NULL), 1);
	assert_true(sqlite3_get_autocommit(pw_store_db(f->s)));
	/* the same id in another DAG is fine */
	run.dag_id = "other";
	assert_int_equal(pw_store_insert_run(f->s, &run, NULL), PW_OK);
	assert_int_equal(count_events(f->s), 2);
	/* a generated id does not collide with an explicit one */
	run.run_id = "2024-01-01T00.00.00.000Z";
	assert_int_equal(pw_store_insert_run(f->s, &run, NULL), PW_OK);
	run.run_id = NULL;
	assert_int_equal(pw_store_insert_run(f->s, &run, &id), PW_OK);
	assert_string_equal(id, "2024-01-01T00.00.00.000Z-2");
	free(id);
}

/* The run and its event commit together or not at all. */
static void test_insert_run_atomic(void **state)
{
	fixture *f = *state;
	sqlite3 *db = pw_store_db(f->s);
	pw_run_new run = { .dag_id = "etl", .run_type = "manual" };
	char *id = NULL;

	exec_ok(db, "CREATE TEMP TRIGGER no_events BEFORE INSERT ON main.events"
		" BEGIN SELECT RAISE(ABORT, 'injected failure'); END");
	assert_int_equal(pw_store_insert_run(f->s, &run, &id), PW_ERR);
	assert_null(id);
	assert_true(sqlite3_get_autocommit(db));
	assert_int_equal(query_int(db, "SELECT count(*) FROM runs", NULL), 0);
	assert_int_equal(count_events(f->s), 0);
	exec_ok(db, "DROP TRIGGER temp.no_events");
	assert_int_equal(pw_store_insert_run(f->s, &run, NULL), PW_OK);
	assert_int_equal(query_int(db, "SELECT count(*) FROM runs", NULL), 1);
	assert_int_equal(count_events(f->s), 1);
}

/*
 * The error of a failed write outlives its rollback (a handler's reply
 * tells a 503 fault from a 500 by it), until the next transaction.
 */
static void test_errcode_outlives_rollback(void **state)
{
	fixture *f = *state;
	sqlite3 *db = pw_store_db(f->s);
	pw_run_new run = { .dag_id = "etl", .run_type = "manual" };

	assert_int_equal(pw_store_errcode(f->s), SQLITE_OK);
	exec_ok(db, "CREATE TEMP TRIGGER no_events BEFORE INSERT ON main.events"
		" BEGIN SELECT RAISE(ABORT, 'injected failure'); END");
	assert_int_equal(pw_store_insert_run(f->s, &run, NULL), PW_ERR);
	assert_true(sqlite3_get_autocommit(db));
	assert_int_equal(pw_store_errcode(f->s) & 0xff, SQLITE_CONSTRAINT);
	exec_ok(db, "DROP TRIGGER temp.no_events");
	assert_int_equal(pw_store_begin(f->s), PW_OK);
	assert_int_equal(pw_store_errcode(f->s), SQLITE_OK);
	assert_int_equal(pw_store_commit(f->s), PW_OK);
}

/* Inside a caller's transaction the insert is a savepoint of it. */
static void test_insert_run_nested(void **state)
{
	fixture *f = *state;
	sqlite3 *db = pw_store_db(f->s);
	pw_run_new run = { .dag_id = "etl", .run_id = "a", .run_type = "manual" };

	assert_int_equal(pw_store_insert_run(f->s, &run, NULL), PW_OK);
	assert_int_equal(pw_store_begin(f->s), PW_OK);
	assert_int_equal(pw_store_insert_run(f->s, &run, NULL), PW_CONFLICT);
	assert_false(sqlite3_get_autocommit(db));  /* still the caller's */
	run.run_id = "b";
	assert_int_equal(pw_store_insert_run(f->s, &run, NULL), PW_OK);
	assert_false(sqlite3_get_autocommit(db));
	pw_store_rollback(f->s);
	assert_int_equal(query_int(db, "SELECT count(*) FROM runs", NULL), 1);
	assert_int_equal(count_events(f->s), 1);

	assert_int_equal(pw_store_begin(f->s), PW_OK);
	assert_int_equal(pw_store_insert_run(f->s, &run, NULL), PW_OK);
	assert_int_equal(pw_store_commit(f->s), PW_OK);
	assert_int_equal(query_int(db, "SELECT count(*) FROM runs", NULL), 2);
	assert_int_equal(count_events(f->s), 2);
}

/* ---- the write queue (src/txn.h) ---------------------------------------- */

enum { QUEUE_THREADS = 4, QUEUE_RUNS = 25 };  /* few: a wait stays far below 5 s under valgrind */

/* One writer thread: its own connection, QUEUE_RUNS runs in two ways. */
static void *queue_writer(void *arg)
{
	const char *path = arg;
	pw_store *s = NULL;
	char *err = NULL;
	long failed = 0;

	if (pw_store_open_existing(path, &s, &err) != PW_OK) {
		fprintf(stderr, "writer: %s\n", err);
		free(err);
		return (void *)1L;
	}
	for (int i = 0; i < QUEUE_RUNS; i++) {
		pw_run_new run = { .dag_id = "d", .run_type = "manual" };
		if (i % 2) {   /* the store's own transaction */
			failed += pw_store_insert_run(s, &run, NULL) != PW_OK;
		} else {       /* a caller's, as the API's trigger has it */
			int rc = pw_store_begin(s);
			if (rc == PW_OK)
				rc = pw_store_insert_run(s, &run, NULL);
			if (rc == PW_OK)
				rc = pw_store_commit(s);
			if (rc != PW_OK)
				pw_store_rollback(s);
			failed += rc != PW_OK;
		}
	}
	pw_store_close(s);
	return (void *)failed;
}

/*
 * Threads writing at once with the queue on: every run and event is there
 * once, and the turn is free again afterwards (none kept by a commit,
 * a rollback or a close).
 */
static void test_write_queue_threads(void **state)
{
	fixture *f = *state;
	pthread_t tid[QUEUE_THREADS];
	long failed = 0;

	pw_store_set_write_queue(true);
	for (int i = 0; i < QUEUE_THREADS; i++)
		assert_int_equal(pthread_create(&tid[i], NULL, queue_writer, f->path), 0);
	for (int i = 0; i < QUEUE_THREADS; i++) {
		void *r = NULL;
		assert_int_equal(pthread_join(tid[i], &r), 0);
		failed += (long)r;
	}
	pw_store_set_write_queue(false);
	assert_int_equal(failed, 0);
	sqlite3 *db = pw_store_db(f->s);
	assert_int_equal(query_int(db, "SELECT count(DISTINCT run_id) FROM runs", NULL),
			 QUEUE_THREADS * QUEUE_RUNS);
	assert_int_equal(query_int(db, "SELECT count(DISTINCT run_id) FROM events"
				   " WHERE type = 'run.state'", NULL),
			 QUEUE_THREADS * QUEUE_RUNS);
	assert_int_equal(count_events(f->s), QUEUE_THREADS * QUEUE_RUNS);
	assert_int_equal(pw_txn_enter(NULL), 0);
	pw_txn_leave();
}

/*
 * A transaction that waits longer than the busy timeout for its turn
 * fails as SQLite's own wait does: SQLITE_BUSY (which the API answers
 * 503), with neither the transaction nor the turn left open. Takes the
 * busy timeout (5 s).
 */
static void test_write_queue_timeout(void **state)
{
	fixture *f = *state;
	pw_store *other = NULL;
	char *err = NULL;

	assert_int_equal(pw_store_open(f->path, &other, &err), PW_OK);
	pw_store_set_write_queue(true);
	assert_int_equal(pw_store_begin(f->s), PW_OK);
	assert_int_equal(pw_store_begin(other), PW_ERR);
	assert_int_equal(sqlite3_errcode(pw_store_db(other)) & 0xff, SQLITE_BUSY);
	assert_true(sqlite3_get_autocommit(pw_store_db(other)));
	assert_int_equal(pw_store_commit(f->s), PW_OK);
	/* the turn went back with the commit */
	assert_int_equal(pw_store_begin(other), PW_OK);
	pw_store_rollback(other);
	assert_int_equal(pw_txn_enter(NULL), 0);
	pw_txn_leave();
	pw_store_set_write_queue(false);
	pw_store_close(other);
}

/* ---- group commit (src/writer.c) ---------------------------------------- */

enum { BATCH_THREADS = 8 };

/* A closure's work: run "g-N" (or the taken one), kept or given up. */
typedef struct batch_job {
	const char *path;
	int n;
	int rc;
	atomic_int *ready;
} batch_job;

/* Inserts the job's run; every third gives its insert up (PW_CONFLICT). */
static int batch_write(pw_store *w, void *arg)
{
	batch_job *j = arg;
	char id[16];
	snprintf(id, sizeof id, "g-%d", j->n);
	pw_run_new run = {.dag_id = "d", .run_id = j->n == 4 ? "taken" : id};
	int rc = pw_store_insert_run(w, &run, NULL);
	return rc == PW_OK && j->n % 3 == 1 ? PW_CONFLICT : rc;
}

/* One thread: its own connection, one pw_store_write. */
static void *batch_writer(void *arg)
{
	batch_job *j = arg;
	pw_store *s = NULL;
	char *err = NULL;

	if (pw_store_open_existing(j->path, &s, &err) != PW_OK) {
		fprintf(stderr, "writer: %s\n", err);
		free(err);
		return NULL;
	}
	atomic_fetch_add(j->ready, 1);
	j->rc = pw_store_write(s, batch_write, j);
	pw_store_close(s);
	return NULL;
}

/*
 * Closures of many threads, queued while another connection holds the
 * write turn so that they meet in one batch: the ones that fail (a taken
 * run_id, a closure giving its writes up) lose only their own writes and
 * get their own result; the others are committed with their events.
 */
static void test_group_commit_batch(void **state)
{
	fixture *f = *state;
	pthread_t tid[BATCH_THREADS];
	batch_job job[BATCH_THREADS];
	atomic_int ready = 0;
	int kept = 0;

	assert_int_equal(pw_store_insert_run(f->s, &(pw_run_new){.dag_id = "d",
		.run_id = "taken"}, NULL), PW_OK);
	pw_store_set_write_queue(true);
	assert_int_equal(pw_store_begin(f->s), PW_OK);   /* holds the turn */
	for (int i = 0; i < BATCH_THREADS; i++) {
		job[i] = (batch_job){.path = f->path, .n = i, .rc = 1, .ready = &ready};
		assert_int_equal(pthread_create(&tid[i], NULL, batch_writer, &job[i]), 0);
	}
	while (atomic_load(&ready) < BATCH_THREADS)
		usleep(1000);
	usleep(100 * 1000);   /* they queue (one batch likely; not asserted) */
	assert_int_equal(pw_store_commit(f->s), PW_OK);
	for (int i = 0; i < BATCH_THREADS; i++)
		assert_int_equal(pthread_join(tid[i], NULL), 0);
	pw_store_set_write_queue(false);
	pw_store_writer_close();

	sqlite3 *db = pw_store_db(f->s);
	for (int i = 0; i < BATCH_THREADS; i++) {
		char id[16];
		snprintf(id, sizeof id, "g-%d", i);
		bool fails = i == 4 || i % 3 == 1;
		assert_int_equal(job[i].rc, fails ? PW_CONFLICT : PW_OK);
		assert_int_equal(query_int(db, "SELECT count(*) FROM runs WHERE run_id = ?1", id),
				 fails ? 0 : 1);
		kept += !fails;
	}
	assert_int_equal(query_int(db, "SELECT count(*) FROM runs", NULL), kept + 1);
	assert_int_equal(count_events(f->s), kept + 1);
	assert_int_equal(pw_txn_enter(NULL), 0);   /* the turn is free */
	pw_txn_leave();
}

/* ---- runner, pools, DAGs --------------------------------------------- */

static void test_heartbeat(void **state)
{
	fixture *f = *state;
	sqlite3 *db = pw_store_db(f->s);
	const char *row_sql = "SELECT pid || '|' || host || '|' || started_at ||"
			      " '|' || last_heartbeat FROM runner";

	assert_int_equal(pw_store_heartbeat(f->s, 42, "h1", 1000), PW_OK);
	assert_int_equal(pw_store_heartbeat(f->s, 42, "h1", 2000), PW_OK);
	char *row = query_text(db, row_sql, NULL);
	assert_string_equal(row, "42|h1|1000|2000");
	free(row);
	/* a new runner process starts afresh */
	assert_int_equal(pw_store_heartbeat(f->s, 43, "h1", 3000), PW_OK);
	row = query_text(db, row_sql, NULL);
	assert_string_equal(row, "43|h1|3000|3000");
	free(row);
	assert_int_equal(pw_store_heartbeat(f->s, 43, "h1", 4000), PW_OK);
	row = query_text(db, row_sql, NULL);
	assert_string_equal(row, "43|h1|3000|4000");
	free(row);
	assert_int_equal(query_int(db, "SELECT count(*) FROM runner", NULL), 1);
}

static void test_seed_pools(void **state)
{
	fixture *f = *state;
	sqlite3 *db = pw_store_db(f->s);
	json_object *pools = json_tokener_parse(
		"{\"gpu\": {\"slots\": 2, \"description\": \"GPUs\"},"
		" \"io\": {\"slots\": 0},"
		" \"default_pool\": {\"slots\": 5, \"description\": \"x\"}}");

	assert_int_equal(pw_store_seed_pools(f->s, pools), PW_OK);
	assert_int_equal(query_int(db, "SELECT slots FROM pools WHERE name ="
				   " 'default_pool'", NULL), 128);
	char *row = query_text(db, "SELECT group_concat(name || ':' || slots ||"
			       " ':' || description, ',') FROM (SELECT * FROM"
			       " pools ORDER BY name)", NULL);
	assert_string_equal(row, "default_pool:128:Default pool,gpu:2:GPUs,io:0:");
	free(row);

	/* the API's change sticks */
	exec_ok(db, "UPDATE pools SET slots = 9 WHERE name = 'gpu'");
	assert_int_equal(pw_store_seed_pools(f->s, pools), PW_OK);
	assert_int_equal(query_int(db, "SELECT slots FROM pools WHERE name = 'gpu'",
				   NULL), 9);
	assert_int_equal(query_int(db, "SELECT count(*) FROM pools", NULL), 3);
	json_object_put(pools);
	assert_int_equal(pw_store_seed_pools(f->s, NULL), PW_OK);
}

static void test_seed_pools_bad_shapes(void **state)
{
	fixture *f = *state;
	static const char *const bad[] = {
		"[]",
		"{\"new\": {\"slots\": 1}, \"p\": 3}",
		"{\"new\": {\"slots\": 1}, \"p\": {}}",
		"{\"new\": {\"slots\": 1}, \"p\": {\"slots\": \"2\"}}",
		"{\"new\": {\"slots\": 1}, \"p\": {\"slots\": 1.5}}",
		"{\"new\": {\"slots\": 1}, \"p\": {\"slots\": -1}}",
		"{\"new\": {\"slots\": 1}, \"p\": {\"slots\": 4294967296}}",
		"{\"new\": {\"slots\": 1}, \"p\": {\"slots\": 1, \"description\": 2}}",
		"{\"new\": {\"slots\": 1}, \"\": {\"slots\": 1}}",
	};

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		json_object *pools = json_tokener_parse(bad[i]);
		assert_non_null(pools);
		assert_int_equal(pw_store_seed_pools(f->s, pools), PW_ERR);
		json_object_put(pools);
	}
	/* all or nothing: "new" was never created */
	assert_int_equal(query_int(pw_store_db(f->s), "SELECT count(*) FROM pools",
				   NULL), 1);
	assert_true(sqlite3_get_autocommit(pw_store_db(f->s)));
}

static void test_seed_dag(void **state)
{
	fixture *f = *state;
	sqlite3 *db = pw_store_db(f->s);
	const char *sql = "SELECT is_paused FROM dags WHERE dag_id = ?1";

	assert_int_equal(pw_store_seed_dag(f->s, "a", 1), PW_OK);
	assert_int_equal(pw_store_seed_dag(f->s, "b", 0), PW_OK);
	assert_int_equal(query_int(db, sql, "a"), 1);
	assert_int_equal(query_int(db, sql, "b"), 0);
	exec_ok(db, "UPDATE dags SET is_paused = 0 WHERE dag_id = 'a'");
	assert_int_equal(pw_store_seed_dag(f->s, "a", 1), PW_OK);
	assert_int_equal(pw_store_seed_dag(f->s, "b", 1), PW_OK);
	assert_int_equal(query_int(db, sql, "a"), 0);
	assert_int_equal(query_int(db, sql, "b"), 0);
	assert_int_equal(query_int(db, "SELECT count(*) FROM dags", NULL), 2);
	assert_true(query_int(db, "SELECT updated_at FROM dags WHERE dag_id = ?1",
			      "a") > 0);
}

/* ---- query plans with many runs ---------------------------------------- */

/*
 * Checks that sql reads runs through an index and needs no sorter: no
 * plain "SCAN runs" (full table) and no temp B-tree.
 */
static void assert_indexed(sqlite3 *db, const char *sql)
{
	char eqp[1024];
	sqlite3_stmt *st = NULL;
	int searched = 0;

	snprintf(eqp, sizeof eqp, "EXPLAIN QUERY PLAN %s", sql);
	if (sqlite3_prepare_v2(db, eqp, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *detail = (const char *)sqlite3_column_text(st, 3);
		if (strstr(detail, "TEMP B-TREE") ||
		    (strstr(detail, "SCAN") && !strstr(detail, "INDEX")))
			fail_msg("%s\n  plan: %s", sql, detail);
		if (strstr(detail, "runs USING") && strstr(detail, "INDEX"))
			searched = 1;
	}
	sqlite3_finalize(st);
	if (!searched)
		fail_msg("%s\n  uses no index on runs", sql);
}

static void test_run_queries_use_indexes(void **state)
{
	fixture *f = *state;
	sqlite3 *db = pw_store_db(f->s);
	enum { N = 100000 };

	/*
	 * 100k runs over 4 DAGs and every run state, inserted by SQLite itself
	 * in one transaction. This test is about query plans, not durability:
	 * a bigger page cache and no fsync for this connection keep it quick.
	 */
	exec_ok(db, "PRAGMA cache_size = -32000; PRAGMA synchronous = OFF");
	assert_int_equal(pw_store_begin(f->s), PW_OK);
	exec_ok(db,
		"WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n"
		"  WHERE i < 99999),"
		" r(i, dag, st, q) AS (SELECT i,"
		"  CASE i % 4 WHEN 0 THEN 'etl' WHEN 1 THEN 'report'"
		"   WHEN 2 THEN 'ml' ELSE 'backfill' END,"
		"  CASE i % 7 WHEN 3 THEN 'failed' WHEN 4 THEN 'cancelled'"
		"   WHEN 5 THEN 'running' WHEN 6 THEN 'queued' ELSE 'success' END,"
		"  1704067200000 + i * 1000 FROM n)"
		" INSERT INTO runs(dag_id, run_id, state, run_type, queued_at,"
		"  started_at, ended_at)"
		" SELECT dag, printf('r%06d', i), st, 'scheduled', q,"
		"  CASE WHEN st = 'queued' THEN NULL ELSE q + 10 END,"
		"  CASE WHEN st IN ('queued', 'running') THEN NULL ELSE q + 500 END"
		" FROM r");
	assert_int_equal(pw_store_commit(f->s), PW_OK);
	assert_int_equal(query_int(db, "SELECT count(*) FROM runs", NULL), N);

	const char *cols = "SELECT id, dag_id, run_id, state, run_type, conf,"
			   " queued_at, started_at, ended_at FROM runs";
	static const char *const wheres[] = {
		"WHERE dag_id = ?1 AND state IN ('success', 'failed')"
		" ORDER BY queued_at DESC LIMIT ?2 OFFSET ?3",
		"WHERE dag_id = ?1 AND state IN ('failed')"
		" ORDER BY queued_at DESC LIMIT ?2 OFFSET ?3",
		"WHERE dag_id = ?1 ORDER BY ended_at LIMIT ?2 OFFSET ?3",
		"WHERE dag_id = ?1 ORDER BY ended_at DESC LIMIT ?2 OFFSET ?3",
		"WHERE dag_id = ?1 ORDER BY started_at LIMIT ?2 OFFSET ?3",
		"WHERE dag_id = ?1 ORDER BY queued_at LIMIT ?2 OFFSET ?3",
		"WHERE dag_id = ?1 AND queued_at >= ?4 AND queued_at <= ?5"
		" ORDER BY queued_at DESC LIMIT ?2 OFFSET ?3",
		"WHERE dag_id = ?1 AND state IN ('success', 'cancelled')"
		" AND queued_at >= ?4 AND queued_at <= ?5"
		" ORDER BY queued_at LIMIT ?2 OFFSET ?3",
		"WHERE dag_id = ?1 AND state IN ('success', 'failed')"
		" ORDER BY started_at DESC LIMIT ?2 OFFSET ?3",
		/* the runner: queue order, running runs */
		"WHERE state = 'queued' ORDER BY queued_at, id",
		"WHERE state = 'running'",
		"WHERE dag_id = ?1 AND state = 'running'",
	};
	for (size_t i = 0; i < sizeof wheres / sizeof wheres[0]; i++) {
		char sql[768];
		snprintf(sql, sizeof sql, "%s %s", cols, wheres[i]);
		assert_indexed(db, sql);
	}
	/* counts by state */
	assert_indexed(db, "SELECT count(*) FROM runs WHERE dag_id = ?1"
		       " AND state IN ('success', 'failed')");
	assert_indexed(db, "SELECT state, count(*) FROM runs WHERE dag_id = ?1"
		       " GROUP BY state");
	assert_indexed(db, "SELECT state, count(*) FROM runs GROUP BY state");
	assert_int_equal(query_int(db, "SELECT count(*) FROM runs WHERE dag_id ="
				   " ?1 AND state = 'failed'", "etl"), 3571);
	assert_int_equal(query_int(db, "SELECT count(*) FROM runs WHERE state ="
				   " 'failed'", NULL), 14286);
}

/*
 * run_counts (migration 4) always equals a GROUP BY over runs: through
 * inserts, state changes (and updates that keep the state) and deletes.
 */
static void test_run_counts_follow_runs(void **state)
{
	fixture *f = *state;
	sqlite3 *db = pw_store_db(f->s);
	static const char mismatch[] =
		"SELECT count(*) FROM (SELECT dag_id, state, count(*) AS n FROM runs"
		" GROUP BY dag_id, state) r FULL OUTER JOIN"
		" (SELECT * FROM run_counts WHERE n > 0) c USING (dag_id, state)"
		" WHERE r.n IS NOT c.n";
	for (int i = 0; i < 30; i++) {
		char id[16];
		snprintf(id, sizeof id, "r%d", i);
		pw_run_new run = {.dag_id = i % 3 ? "a" : "b", .run_id = id, .queued_at = 1000 + i};
		assert_int_equal(pw_store_insert_run(f->s, &run, NULL), PW_OK);
	}
	assert_int_equal(query_int(db, mismatch, NULL), 0);
	assert_int_equal(query_int(db, "SELECT n FROM run_counts WHERE dag_id = 'a'"
				       " AND state = 'queued'", NULL), 20);
	assert_int_equal(sqlite3_exec(db,
		"UPDATE runs SET state = 'running' WHERE id % 2 = 0;"
		"UPDATE runs SET state = 'success' WHERE id % 4 = 0;"
		"UPDATE runs SET ended_at = 5 WHERE state = 'success';"
		"DELETE FROM runs WHERE id % 5 = 0;", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(query_int(db, mismatch, NULL), 0);
	assert_int_equal(query_int(db, "SELECT sum(n) FROM run_counts", NULL),
			 query_int(db, "SELECT count(*) FROM runs", NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_run_counts_follow_runs),
		T(test_migrate_fresh),
		T(test_reopen_idempotent),
		T(test_open_newer_schema_refused),
		T(test_open_missing_folder),
		T(test_migration_7_keeps_rows),
		T(test_failed_migration_rolls_back),
		T(test_concurrent_first_open),
		T(test_event_ids_two_connections),
		T(test_event_ids_never_reused),
		T(test_event_data),
		T(test_event_data_as_json_c),
		T(test_insert_run_generated_ids),
		T(test_insert_run_defaults),
		T(test_insert_run_conflict),
		T(test_insert_run_atomic),
		T(test_errcode_outlives_rollback),
		T(test_insert_run_nested),
		T(test_write_queue_threads),
		T(test_write_queue_timeout),
	T(test_group_commit_batch),
		T(test_heartbeat),
		T(test_seed_pools),
		T(test_seed_pools_bad_shapes),
		T(test_seed_dag),
		T(test_run_queries_use_indexes),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

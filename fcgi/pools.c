/*
 * pools.c - /api/v1/pools: list, read, create, change and delete pools.
 *
 * A pool object is {name, slots, occupied_slots, running_slots,
 * queued_slots, open_slots, description}:
 *   running_slots   sum of pool_slots of the pool's running task instances;
 *   queued_slots    the same for its queued ones. Our `queued` state means
 *                   "ready, waiting for a slot", so these are the slots
 *                   asked for, not held;
 *   occupied_slots  = running_slots (only running tasks hold slots,
 *                   DESIGN.md section 4);
 *   open_slots      slots - occupied_slots, clamped at 0: when slots were
 *                   lowered below what running tasks hold, none is open
 *                   (occupied_slots > slots shows the overcommit).
 * Usage comes from one GROUP BY over the task_instances(state, pool,
 * pool_slots) index.
 *
 * Pools are configuration, so handlers write them: each change is one
 * transaction with its pool.updated event, then the runner is woken (tasks
 * may be waiting for the pool).
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "api.h"

/* --- JSON building -------------------------------------------------------- */

/* --- reading pools ---------------------------------------------------------- */

/* The usage of pools by running and queued task instances, per pool. */
#define USAGE_SQL(filter)                                                      \
	"SELECT p.name, p.slots, p.description,"                               \
	" COALESCE(u.running, 0), COALESCE(u.queued, 0)"                       \
	" FROM pools p LEFT JOIN ("                                            \
	"  SELECT pool,"                                                       \
	"   SUM(CASE state WHEN 'running' THEN pool_slots ELSE 0 END) AS running," \
	"   SUM(CASE state WHEN 'queued' THEN pool_slots ELSE 0 END) AS queued"  \
	"  FROM task_instances WHERE state IN ('running', 'queued') " filter   \
	"  GROUP BY pool) u ON u.pool = p.name "

/* A page of pools in name order: ?1 limit, ?2 offset, ?3 after this name (or NULL). */
static const char page_sql[] = USAGE_SQL("")
	"WHERE ?3 IS NULL OR p.name > ?3 ORDER BY p.name LIMIT ?1 OFFSET ?2";
/* One pool: ?3 name (with limit 1 and offset 0, to share the binding). */
static const char one_sql[] = USAGE_SQL("AND pool = ?3")
	"WHERE p.name = ?3 LIMIT ?1 OFFSET ?2";

/* Column i of the current row as text; "" for NULL. */
static const char *col_text(sqlite3_stmt *q, int i)
{
	const char *t = (const char *)sqlite3_column_text(q, i);
	return t ? t : "";
}

/* The object of the current row of a USAGE_SQL statement, or NULL (OOM). */
static json_object *pool_object(sqlite3_stmt *q)
{
	long long slots = sqlite3_column_int64(q, 1);
	long long running = sqlite3_column_int64(q, 3);
	long long queued = sqlite3_column_int64(q, 4);
	json_object *o = json_object_new_object();

	if (o && (pw_json_put(o, "name", json_object_new_string(col_text(q, 0))) ||
		  pw_json_put_int(o, "slots", slots) ||
		  pw_json_put_int(o, "occupied_slots", running) ||
		  pw_json_put_int(o, "running_slots", running) ||
		  pw_json_put_int(o, "queued_slots", queued) ||
		  pw_json_put_int(o, "open_slots", slots > running ? slots - running : 0) ||
		  pw_json_put(o, "description", json_object_new_string(col_text(q, 2))))) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/*
 * Runs a USAGE_SQL statement (page_sql with limit and offset, or one_sql
 * with name) and appends a pool object per row to data. GO or FAILED.
 */
static int pools_query(pw_req *req, const char *sql, int limit, long long offset,
		       const char *name, json_object *data)
{
	pw_store *store = pw_req_store(req);
	sqlite3_stmt *q = store ? pw_store_stmt(store, sql) : NULL;

	if (!q)
		return FAILED;
	if (sqlite3_bind_int(q, 1, limit) == SQLITE_OK &&
	    sqlite3_bind_int64(q, 2, offset) == SQLITE_OK &&
	    (!name || sqlite3_bind_text(q, 3, name, -1, SQLITE_STATIC) == SQLITE_OK))
		return api_rows(req, q, pool_object, data);
	api_stmt_done(q);
	return api_db_error(req);
}

/* The number of pools into *n. GO or FAILED. */
static int pools_count(pw_req *req, long long *n)
{
	static const char sql[] = "SELECT COUNT(*) FROM pools";
	pw_store *store = pw_req_store(req);
	sqlite3_stmt *q = store ? pw_store_stmt(store, sql) : NULL;

	if (!q)
		return FAILED;
	int step = sqlite3_step(q);
	*n = step == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
	if (step != SQLITE_ROW)
		fprintf(stderr, "pipewright: pools: %s\n",
			sqlite3_errmsg(pw_store_db(store)));
	sqlite3_reset(q);
	return step == SQLITE_ROW ? GO : FAILED;
}

/*
 * Answers status with the pool name's object, as the list shows it; 404
 * when there is no such pool (any more). GO or FAILED.
 */
static int reply_pool(pw_req *req, int status, const char *name)
{
	json_object *data = json_object_new_array();

	if (!data || pools_query(req, one_sql, 1, 0, name, data) != GO) {
		json_object_put(data);
		return FAILED;
	}
	json_object *pool = json_object_get(json_object_array_get_idx(data, 0));
	json_object_put(data);
	if (!pool)
		return pw_reply_error(req, 404, "pool '%s' not found", name);
	return pw_reply_data(req, status, pool, NULL);
}

int pools_list(pw_req *req)
{
	json_object *data = NULL, *meta = NULL;
	api_page pg = {0};
	long long total = 0;
	int rc = FAILED;

	if (api_page_parse(req, "pools", true, &pg) != GO)
		return ANSWERED;
	data = json_object_new_array();
	if (!data || pools_count(req, &total) != GO ||
	    pools_query(req, page_sql, pg.limit + 1, pg.offset, pg.skey, data) != GO ||
	    api_page_trim(&pg, data, "name") != GO)
		goto out;
	meta = api_page_meta(total, &pg);
	if (!meta)
		goto out;
	rc = pw_reply_data(req, 200, data, meta);
	data = meta = NULL;
out:
	json_object_put(data);
	json_object_put(meta);
	api_page_free(&pg);
	return rc;
}

/* The pool of the :name parameter, or NULL after answering 404. */
static const char *name_or_404(pw_req *req)
{
	const char *name = pw_req_param(req, "name");

	if (name && pw_valid_pool_name(name))
		return name;
	pw_reply_error(req, 404, "pool not found");
	return NULL;
}

/* GET -> 200 with the pool, the object the list shows for it. */
int pools_get(pw_req *req)
{
	const char *name = name_or_404(req);

	return name ? reply_pool(req, 200, name) : 0;
}

/* --- changing pools ------------------------------------------------------------ */

/* What a change writes; slots < 0 and description NULL mean "unchanged". */
typedef struct pool_change {
	const char *name;
	long long slots;
	const char *description;
	bool deleted;
} pool_change;

/*
 * Statements of the changes: ?1 name, then (insert, update) ?2 slots and
 * ?3 description, NULL when unchanged.
 */
static const char insert_sql[] =
	"INSERT INTO pools(name, slots, description) VALUES (?1, ?2, COALESCE(?3, ''))"
	" ON CONFLICT(name) DO NOTHING";
static const char update_sql[] =
	"UPDATE pools SET slots = COALESCE(?2, slots),"
	" description = COALESCE(?3, description) WHERE name = ?1";
static const char delete_sql[] = "DELETE FROM pools WHERE name = ?1";
static const char values_sql[] =
	"SELECT slots, description FROM pools WHERE name = ?1";

/* Binds c to a change statement (as many parameters as it has). */
static int change_bind(sqlite3_stmt *q, const pool_change *c)
{
	int n = sqlite3_bind_parameter_count(q);

	if (sqlite3_bind_text(q, 1, c->name, -1, SQLITE_STATIC) != SQLITE_OK)
		return FAILED;
	if (n >= 2 && c->slots >= 0 && sqlite3_bind_int64(q, 2, c->slots) != SQLITE_OK)
		return FAILED;
	if (n >= 3 && c->description &&
	    sqlite3_bind_text(q, 3, c->description, -1, SQLITE_STATIC) != SQLITE_OK)
		return FAILED;
	return GO;
}

/*
 * Runs one change statement. Returns PW_OK, PW_NOTFOUND (no row changed:
 * the pool exists already for an insert, is missing otherwise) or PW_ERR.
 */
static int change_run(pw_store *store, const char *sql, const pool_change *c)
{
	sqlite3_stmt *q = pw_store_stmt(store, sql);
	int step = SQLITE_ERROR;

	if (!q)
		return PW_ERR;
	if (change_bind(q, c) == GO)
		step = sqlite3_step(q);
	if (step != SQLITE_DONE)
		fprintf(stderr, "pipewright: pools: %s\n",
			sqlite3_errmsg(pw_store_db(store)));
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	if (step != SQLITE_DONE)
		return PW_ERR;
	return sqlite3_changes(pw_store_db(store)) > 0 ? PW_OK : PW_NOTFOUND;
}

/* Adds the pool's slots and description as its row now holds them. */
static int put_values(pw_store *store, json_object *o, const char *name)
{
	sqlite3_stmt *q = pw_store_stmt(store, values_sql);
	int rc = FAILED;

	if (!q)
		return FAILED;
	if (sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC) == SQLITE_OK &&
	    sqlite3_step(q) == SQLITE_ROW &&
	    pw_json_put_int(o, "slots", sqlite3_column_int64(q, 0)) == 0 &&
	    pw_json_put(o, "description", json_object_new_string(col_text(q, 1))) == 0)
		rc = GO;
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	return rc;
}

/*
 * The event's extra data: {pool, deleted: true}, or {pool, slots,
 * description} as the row now holds them. NULL on error (logged).
 */
static json_object *event_extra(pw_store *store, const pool_change *c)
{
	json_object *o = json_object_new_object();

	if (!o || pw_json_put(o, "pool", json_object_new_string(c->name)) != 0 ||
	    (c->deleted ? pw_json_put(o, "deleted", json_object_new_boolean(1)) != 0
			: put_values(store, o, c->name) != GO)) {
		fprintf(stderr, "pipewright: pools: cannot build the event of '%s'\n",
			c->name);
		json_object_put(o);
		return NULL;
	}
	return o;
}

/*
 * Applies a change (sql) in one transaction with its pool.updated event and
 * wakes the runner after the commit. Returns PW_OK, PW_NOTFOUND (nothing
 * changed; nothing written) or PW_ERR.
 */
static int pool_write(pw_req *req, const char *sql, const pool_change *c)
{
	pw_store *store = pw_req_store(req);
	json_object *extra = NULL;
	int rc;

	if (!store || pw_store_begin(store) != PW_OK)
		return PW_ERR;
	rc = change_run(store, sql, c);
	if (rc == PW_OK && !(extra = event_extra(store, c)))
		rc = PW_ERR;
	if (rc == PW_OK) {
		pw_event ev = {.type = "pool.updated", .extra = extra};
		if (pw_store_add_event(store, &ev) < 0)
			rc = PW_ERR;
	}
	if (rc == PW_OK)
		rc = pw_store_commit(store);
	json_object_put(extra);
	if (rc != PW_OK) {
		pw_store_rollback(store);
		return rc;
	}
	pw_store_wake(store);
	return PW_OK;
}

/*
 * Reads {slots?, description?} of a checked body into c. GO, or
 * ANSWERED (400) for slots above INT_MAX.
 */
static int change_from_body(pw_req *req, json_object *body, pool_change *c)
{
	json_object *v = NULL;

	c->slots = -1;
	c->description = NULL;
	if (json_object_object_get_ex(body, "slots", &v) && v) {
		c->slots = json_object_get_int64(v);
		if (c->slots > INT_MAX) {
			pw_reply_error(req, 400, "slots must be at most %d", INT_MAX);
			return ANSWERED;
		}
	}
	if (json_object_object_get_ex(body, "description", &v) && v)
		c->description = json_object_get_string(v);
	return GO;
}

/*
 * Answers a pool_write result: ok_status with the pool, missing_status
 * (409 for a create, 404 otherwise) with its message. GO or FAILED (PW_ERR).
 */
static int reply_write(pw_req *req, int rc, int ok_status, int missing_status,
		       const char *name)
{
	if (rc == PW_OK)
		return reply_pool(req, ok_status, name);
	if (rc != PW_NOTFOUND)
		return FAILED;
	return pw_reply_error(req, missing_status, "pool '%s' %s", name,
			      missing_status == 409 ? "already exists" : "not found");
}

/* POST {name, slots, description?} -> 201 with the pool; 409 if it exists. */
int pools_create(pw_req *req)
{
	static const pw_field fields[] = {
		{"name", PW_F_ID, true},
		{"slots", PW_F_INT, true},
		{"description", PW_F_STRING, false},
	};
	json_object *body = pw_req_json(req), *name = NULL; /* owned by req */
	pool_change c = {0};

	if (!body ||
	    pw_req_check_body(req, body, fields, sizeof fields / sizeof *fields) != 0 ||
	    change_from_body(req, body, &c) != GO)
		return ANSWERED;
	json_object_object_get_ex(body, "name", &name);
	c.name = json_object_get_string(name);
	return reply_write(req, pool_write(req, insert_sql, &c), 201, 409, c.name);
}

/* PATCH {slots?, description?} (at least one) -> 200 with the pool. */
int pools_patch(pw_req *req)
{
	static const pw_field fields[] = {
		{"slots", PW_F_INT, false},
		{"description", PW_F_STRING, false},
	};
	const char *name = name_or_404(req);
	json_object *body = name ? pw_req_json(req) : NULL; /* owned by req */
	pool_change c = {.name = name};

	if (!body ||
	    pw_req_check_body(req, body, fields, sizeof fields / sizeof *fields) != 0 ||
	    change_from_body(req, body, &c) != GO)
		return ANSWERED;
	if (c.slots < 0 && !c.description)
		return pw_reply_error(req, 400, "give slots, description or both");
	return reply_write(req, pool_write(req, update_sql, &c), 200, 404, name);
}

/* DELETE -> 204; default_pool -> 400 (the store's trigger refuses it too). */
int pools_delete(pw_req *req)
{
	const char *name = name_or_404(req);
	pool_change c = {.name = name, .slots = -1, .deleted = true};

	if (!name)
		return ANSWERED;
	if (strcmp(name, "default_pool") == 0)
		return pw_reply_error(req, 400, "default_pool cannot be deleted");
	switch (pool_write(req, delete_sql, &c)) {
	case PW_OK:
		return pw_reply_empty(req, 204);
	case PW_NOTFOUND:
		return pw_reply_error(req, 404, "pool '%s' not found", name);
	default:
		return FAILED;
	}
}

/*
 * test_paging.c - a large DAG through the API (issue 14): a generated
 * chain of BIG tasks, one run of it claimed by a real runner (its tasks
 * wait in a pool that does not exist, so none runs), and a real lighttpd
 * with pipewright.fcgi. The DAG's detail, the run's detail and the run's
 * task-instance list each answer one bounded page (never BIG objects),
 * and following meta.next_cursor (or offset) yields every task exactly
 * once, in order. The graph of such a DAG is refused with 400. Nothing is
 * timed: waits poll up to a deadline.
 */
#include "fixture.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BIG 5000
#define PAGE_MAX 1000            /* API_DETAIL_LIMIT, the most a page holds */
#define BODY_MAX (1024 * 1024)   /* no answer comes near it */


/* The YAML of a chain t1 <- t2 <- ... <- tBIG whose tasks need pool "nowhere". */
static char *big_dag(void)
{
	size_t cap = (size_t)BIG * 64 + 128, n = 0;
	char *y = malloc(cap);
	assert_non_null(y);
	n += (size_t)snprintf(y + n, cap - n, "defaults: {pool: nowhere}\ntasks:\n");
	for (int i = 1; i <= BIG; i++) {
		n += (size_t)snprintf(y + n, cap - n, "  - id: t%d\n    command: \"true\"\n", i);
		if (i > 1)
			n += (size_t)snprintf(y + n, cap - n, "    upstream: [t%d]\n", i - 1);
	}
	return y;
}

static int group_setup(void **state)
{
	(void)state;
	P = hr_project_new(2);
	char *y = big_dag();
	hr_dag(P, "big", y);
	free(y);
	fx_start(NULL, true);
	return 0;
}

/* Asserts a bounded page: at most limit items, a body under BODY_MAX. */
static json_object *page_items(ht_resp *r, const char *path, long long limit)
{
	json_object *data = ht_ok(r, 200);
	json_object *items = path ? ht_arr(data, path) : data;
	if (r->body_len >= BODY_MAX)
		ht_fail(r, "an answer over 1 MiB");
	if ((long long)json_object_array_length(items) > limit)
		ht_fail(r, "more items than the limit");
	if (ht_int(r->json, "meta.total") != BIG || ht_int(r->json, "meta.limit") != limit)
		ht_fail(r, "meta.total is every task, meta.limit the page's limit");
	return items;
}

/* Checks that items continue t<*next>, t<*next + 1>, ... and advances *next. */
static void expect_in_order(ht_resp *r, json_object *items, int *next, bool edges)
{
	char want[32];
	for (size_t i = 0; i < json_object_array_length(items); i++, (*next)++) {
		json_object *it = json_object_array_get_idx(items, i);
		snprintf(want, sizeof want, "t%d", *next);
		if (strcmp(ht_str(it, "task_id"), want) != 0)
			ht_fail(r, want);
		if (!edges)
			continue;
		size_t n_up = json_object_array_length(ht_arr(it, "upstream"));
		size_t n_down = json_object_array_length(ht_arr(it, "downstream"));
		if (n_up != (*next > 1) || n_down != (*next < BIG))
			ht_fail(r, "a chain task has one upstream and one downstream task");
	}
}

/*
 * Follows meta.next_cursor from the first page of path (query: the first
 * page's, e.g. "" or "limit=300") to the end; every task comes once, in
 * order. items_path: where the list is in data (NULL: data itself).
 */
static void walk_cursor(const char *path, const char *query, long long limit,
			const char *items_path, bool edges)
{
	int next = 1, pages = 0;
	char *cursor = NULL;
	for (;;) {
		ht_resp *r = cursor ? fx_getf("%s?%s%scursor=%s", path, query, *query ? "&" : "", cursor)
				    : fx_getf("%s%s%s", path, *query ? "?" : "", query);
		json_object *items = page_items(r, items_path, limit);
		if (json_object_array_length(items) == 0)
			ht_fail(r, "an empty page before the end");
		expect_in_order(r, items, &next, edges);
		pages++;
		free(cursor);
		cursor = NULL;
		json_object *nc = ht_at(r->json, "meta.next_cursor");
		if (nc)
			cursor = strdup(json_object_get_string(nc));
		else if (next != BIG + 1)
			ht_fail(r, "next_cursor null before the last task");
		ht_resp_free(r);
		if (!cursor)
			break;
	}
	if (pages != (BIG + limit - 1) / limit)
		fail_msg("%s?%s: %d pages, not %lld", path, query, pages,
			 (BIG + limit - 1) / limit);
}

static void test_dag_detail_pages(void **state)
{
	(void)state;
	/* The default page is API_DETAIL_LIMIT tasks; the cursor walks all. */
	walk_cursor("/api/v1/dags/big", "", PAGE_MAX, "tasks", true);
	walk_cursor("/api/v1/dags/big", "limit=700", 700, "tasks", true);

	/* offset: the last few, no next page. */
	ht_resp *r = fx_getf("/api/v1/dags/big?offset=%d", BIG - 3);
	json_object *items = page_items(r, "tasks", PAGE_MAX);
	int next = BIG - 2;
	expect_in_order(r, items, &next, true);
	if (next != BIG + 1 || ht_at(r->json, "meta.next_cursor"))
		ht_fail(r, "offset=BIG-3: the last 3 tasks, next_cursor null");
	ht_resp_free(r);

	r = fx_getf("/api/v1/dags/big?offset=%d", BIG);
	if (json_object_array_length(page_items(r, "tasks", PAGE_MAX)) != 0 ||
	    ht_at(r->json, "meta.next_cursor"))
		ht_fail(r, "offset=BIG: no task, next_cursor null");
	ht_resp_free(r);
	r = fx_getf("/api/v1/dags/big?limit=1001");
	ht_err(r, 400);
	ht_resp_free(r);
	r = fx_getf("/api/v1/dags/big?cursor=bogus");
	ht_err(r, 400);
	ht_resp_free(r);

	/* Graphviz is not asked to lay out BIG nodes. */
	r = fx_getf("/api/v1/dags/big/graph");
	ht_err(r, 400);
	ht_resp_free(r);
	hr_pass(P);
}

/* Waits until the runner has claimed the run: its BIG task instances exist. */
static void wait_claimed(void)
{
	for (int waited = 0;; waited += 50) {
		ht_resp *r = fx_getf("/api/v1/dags/big/runs/r1?limit=1");
		json_object *total = r->status == 200 ? ht_at(r->json, "meta.total") : NULL;
		bool done = total && json_object_get_int64(total) == BIG;
		if (!done && waited > 6 * HR_WAIT_MS)
			ht_fail(r, "the runner did not claim the run");
		ht_resp_free(r);
		if (done)
			return;
		hr_sleep_ms(50);
	}
}

static void test_run_pages(void **state)
{
	(void)state;
	ht_resp *r = ht_send(S, "POST", "/api/v1/dags/big/runs", "{\"run_id\": \"r1\"}");
	ht_ok(r, 201);
	ht_resp_free(r);
	wait_claimed();

	/* The run's detail: its task instances paged, the same cursors as /tasks. */
	walk_cursor("/api/v1/dags/big/runs/r1", "", PAGE_MAX, "task_instances", false);
	walk_cursor("/api/v1/dags/big/runs/r1/tasks", "limit=1000", PAGE_MAX, NULL, false);
	walk_cursor("/api/v1/dags/big/runs/r1/tasks", "", 100, NULL, false);

	/* A cursor of the list continues in the detail, and back. */
	r = fx_getf("/api/v1/dags/big/runs/r1/tasks?limit=2");
	json_object *nc = ht_at(r->json, "meta.next_cursor");
	if (!nc)
		ht_fail(r, "a next_cursor after 2 of BIG");
	char *cursor = strdup(json_object_get_string(nc));
	ht_resp_free(r);
	r = fx_getf("/api/v1/dags/big/runs/r1?limit=2&cursor=%s", cursor);
	json_object *items = page_items(r, "task_instances", 2);
	int next = 3;
	expect_in_order(r, items, &next, false);
	ht_resp_free(r);
	free(cursor);

	r = fx_getf("/api/v1/dags/big/runs/r1?limit=0");
	ht_err(r, 400);
	ht_resp_free(r);
	hr_pass(P);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dag_detail_pages),
		cmocka_unit_test(test_run_pages),
	};
	return cmocka_run_group_tests_name("paging", tests, group_setup, fx_group_teardown);
}

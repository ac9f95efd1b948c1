/*
 * test_writes.c - triggers under load through a real lighttpd and one
 * pipewright.fcgi of 16 threads (group commit, src/writer.c): 32 client
 * threads trigger 20 runs each at once, some with their own run_ids, some
 * with generated ones, and some with run_ids every thread tries. Every
 * 201 is a run stored exactly once with its run.state event, every other
 * try of a shared run_id is a 409, and nothing else is answered or lost.
 * No runner: the runs stay queued. Nothing is timed.
 */
#include "fixture.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLIENTS 32
#define TRIGGERS 20
#define SHARED (TRIGGERS / 5)   /* run_ids every client tries: "dup-0".. */

/* One client's answers: the status and the run_id a 201 named. */
typedef struct client {
	pthread_t tid;
	int n;
	long status[TRIGGERS];
	char run_id[TRIGGERS][64];
	char asked[TRIGGERS][64];   /* the run_id sent, "" for none */
	char error[600];            /* a transport failure, or "" */
} client;

static int group_setup(void **state)
{
	(void)state;
	P = hr_project_new(2);
	hr_dag(P, "hello", "tasks:\n  - id: t\n    command: \"true\"\n");
	fx_start(&(ht_opts){.threads = 16}, false);
	return 0;
}

/*
 * Trigger i of client c: every fifth a shared run_id, every fifth (from
 * the first) a generated one, the others c's own.
 */
static void ask_id(int c, int i, char *out, size_t size)
{
	if (i % 5 == 4)
		snprintf(out, size, "dup-%d", i / 5);
	else if (i % 5 == 0)
		out[0] = '\0';
	else
		snprintf(out, size, "w-%d-%d", c, i);
}

static void *trigger_all(void *arg)
{
	client *cl = arg;
	char body[128];

	for (int i = 0; i < TRIGGERS; i++) {
		ask_id(cl->n, i, cl->asked[i], sizeof cl->asked[i]);
		if (cl->asked[i][0])
			snprintf(body, sizeof body, "{\"run_id\": \"%s\"}", cl->asked[i]);
		else
			snprintf(body, sizeof body, "{}");
		ht_resp *r = ht_send_from_thread(S, "POST", "/api/v1/dags/hello/runs", body,
						 cl->error, sizeof cl->error);
		if (!r)
			return NULL; /* the test's thread fails with cl->error */
		cl->status[i] = r->status;
		json_object *id = r->json ? ht_at(r->json, "data.run_id") : NULL;
		if (r->status == 201 && id)
			snprintf(cl->run_id[i], sizeof cl->run_id[i], "%s",
				 json_object_get_string(id));
		ht_resp_free(r);
	}
	return NULL;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_many_triggers_at_once(void **state)
{
	(void)state;
	static client cl[CLIENTS];
	static char *made[CLIENTS * TRIGGERS];
	int n_made = 0, n_conflict = 0, shared_made[SHARED] = {0};

	for (int c = 0; c < CLIENTS; c++) {
		cl[c].n = c;
		assert_int_equal(pthread_create(&cl[c].tid, NULL, trigger_all, &cl[c]), 0);
	}
	for (int c = 0; c < CLIENTS; c++)
		assert_int_equal(pthread_join(cl[c].tid, NULL), 0);
	for (int c = 0; c < CLIENTS; c++)
		if (cl[c].error[0])
			fail_msg("client %d: %s", c, cl[c].error);

	for (int c = 0; c < CLIENTS; c++) {
		for (int i = 0; i < TRIGGERS; i++) {
			const char *asked = cl[c].asked[i];
			bool shared = strncmp(asked, "dup-", 4) == 0;
			if (cl[c].status[i] == 409 && shared) {
				n_conflict++;
				continue;
			}
			if (cl[c].status[i] != 201)
				fail_msg("client %d trigger %d (run_id '%s'): %ld", c, i, asked,
					 cl[c].status[i]);
			assert_true(cl[c].run_id[i][0]);
			if (asked[0])
				assert_string_equal(cl[c].run_id[i], asked);
			if (shared)
				shared_made[asked[4] - '0']++;
			made[n_made++] = cl[c].run_id[i];
		}
	}
	/* Each shared run_id was made once; its other tries were 409s. */
	for (int k = 0; k < SHARED; k++)
		assert_int_equal(shared_made[k], 1);
	assert_int_equal(n_conflict, SHARED * (CLIENTS - 1));
	assert_int_equal(n_made, CLIENTS * TRIGGERS - SHARED * (CLIENTS - 1));

	/* Every 201 named a distinct run, stored exactly once, and no other. */
	qsort(made, (size_t)n_made, sizeof *made, cmp_str);
	for (int k = 1; k < n_made; k++)
		if (strcmp(made[k - 1], made[k]) == 0)
			fail_msg("run '%s' answered 201 twice", made[k]);
	for (int k = 0; k < n_made; k++)
		assert_int_equal(hr_sql_int(P, 0, "SELECT count(*) FROM runs WHERE dag_id = 'hello'"
					    " AND run_id = ?1", "s", made[k]), 1);
	assert_int_equal(hr_sql_int(P, -1, "SELECT count(*) FROM runs", ""), n_made);
	assert_int_equal(hr_sql_int(P, -1, "SELECT count(*) FROM events WHERE type = 'run.state'"
				    " AND json_extract(data, '$.state') = 'queued'", ""), n_made);
	assert_int_equal(hr_sql_int(P, -1, "SELECT count(DISTINCT run_id) FROM events"
				    " WHERE type = 'run.state'", ""), n_made);
	passed = true;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_many_triggers_at_once, fx_setup, fx_teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, fx_group_teardown);
}

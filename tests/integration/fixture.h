/*
 * fixture.h - the set-up the API test files share: one project (the
 * file's DAGs), one lighttpd with pipewright.fcgi behind it and, for
 * most, one runner, for the whole group of tests. Each test sets passed
 * last; the teardown of one that did not prints the server's and the
 * runners' logs.
 *
 * A file's group setup makes P (hr_project_new and its DAGs), then calls
 * fx_start; it runs its tests with fx_setup and fx_teardown and ends the
 * group with fx_group_teardown.
 */
#ifndef PW_FIXTURE_H
#define PW_FIXTURE_H

#include <stdbool.h>

#include "harness.h"
#include "http.h"

extern hr_project *P;   /* the group's project */
extern ht_server *S;    /* its web server */
extern bool passed;     /* the current test reached its end */

/* Starts S on P (opts may be NULL) and, when runner, a runner of P. */
void fx_start(const ht_opts *opts, bool runner);
/* A GET from S of a printf-formatted path (up to 2 KiB). */
ht_resp *fx_getf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* cmocka group teardown: stops S, frees P (and its runners). */
int fx_group_teardown(void **state);
/* cmocka test setup: passed = false. */
int fx_setup(void **state);
/* cmocka test teardown: the logs of S and P unless passed. */
int fx_teardown(void **state);

#endif

/*
 * fixture.c - the set-up the API test files share (see fixture.h).
 */
#include "fixture.h"

#include <stdarg.h>
#include <stdio.h>

hr_project *P;
ht_server *S;
bool passed;

void fx_start(const ht_opts *opts, bool runner)
{
	assert_non_null(P);
	S = ht_start(P->dir, opts);
	if (runner)
		hr_runner_start(P, NULL);
}

ht_resp *fx_getf(const char *fmt, ...)
{
	char path[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(path, sizeof path, fmt, ap);
	va_end(ap);
	return ht_get(S, path);
}

int fx_group_teardown(void **state)
{
	(void)state;
	ht_stop(S);
	S = NULL;
	hr_pass(P); /* a failed test printed the logs already */
	hr_project_free(P);
	P = NULL;
	return 0;
}

int fx_setup(void **state)
{
	(void)state;
	passed = false;
	return 0;
}

int fx_teardown(void **state)
{
	(void)state;
	if (!passed) {
		ht_dump_logs(S);
		hr_dump_logs(P);
	}
	return 0;
}

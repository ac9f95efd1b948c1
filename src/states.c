/*
 * states.c - the names of run and task instance states (states.h).
 */
#include "states.h"

#include <string.h>

const char *const run_state_names[RUN_NSTATES] = {
	[RUN_QUEUED] = "queued",
	[RUN_RUNNING] = "running",
	[RUN_SUCCESS] = "success",
	[RUN_FAILED] = "failed",
	[RUN_CANCELLED] = "cancelled",
};

const char *const ti_state_names[TI_NSTATES] = {
	[TI_PENDING] = "pending",
	[TI_QUEUED] = "queued",
	[TI_RUNNING] = "running",
	[TI_SUCCESS] = "success",
	[TI_FAILED] = "failed",
	[TI_UP_FOR_RETRY] = "up_for_retry",
	[TI_UPSTREAM_FAILED] = "upstream_failed",
	[TI_SKIPPED] = "skipped",
	[TI_CANCELLED] = "cancelled",
};

/* Index of name in names[n], or -1. */
static int parse(const char *const *names, int n, const char *name)
{
	for (int i = 0; name && i < n; i++)
		if (strcmp(names[i], name) == 0)
			return i;
	return -1;
}

int run_state_parse(const char *name)
{
	return parse(run_state_names, RUN_NSTATES, name);
}

int ti_state_parse(const char *name)
{
	return parse(ti_state_names, TI_NSTATES, name);
}

bool run_state_is_final(run_state s)
{
	return s == RUN_SUCCESS || s == RUN_FAILED || s == RUN_CANCELLED;
}

bool ti_state_is_final(ti_state s)
{
	return s == TI_SUCCESS || s == TI_FAILED || s == TI_UPSTREAM_FAILED ||
	       s == TI_SKIPPED || s == TI_CANCELLED;
}

/*
 * states.h - the vocabulary of execution state (DESIGN.md section 4): the
 * states of runs and of task instances, their names as stored and sent,
 * and their parsing. Shared by the runner and the FastCGI handlers.
 */
#ifndef PW_STATES_H
#define PW_STATES_H

#include <stdbool.h>

/* Run states; names in run_state_names. */
typedef enum run_state {
	RUN_QUEUED,
	RUN_RUNNING,
	RUN_SUCCESS,
	RUN_FAILED,
	RUN_CANCELLED,
	RUN_NSTATES
} run_state;

/* Task instance states; names in ti_state_names. */
typedef enum ti_state {
	TI_PENDING,
	TI_QUEUED,
	TI_RUNNING,
	TI_SUCCESS,
	TI_FAILED,
	TI_UP_FOR_RETRY,
	TI_UPSTREAM_FAILED,
	TI_SKIPPED,
	TI_CANCELLED,
	TI_NSTATES
} ti_state;

extern const char *const run_state_names[RUN_NSTATES];
extern const char *const ti_state_names[TI_NSTATES];

/* The state named name (NULL allowed), or -1. */
int run_state_parse(const char *name);
int ti_state_parse(const char *name);

/* success failed cancelled */
bool run_state_is_final(run_state s);
/* success failed upstream_failed skipped cancelled */
bool ti_state_is_final(ti_state s);

#endif

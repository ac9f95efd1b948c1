/*
 * cron.h - 5-field cron expressions and their next fire time, in UTC.
 *
 * Fields: minute hour day-of-month month day-of-week, each a '*', a number,
 * a range a-b, a step (*\/n, a-b/n, a/n), or a comma list of those; months
 * and weekdays also by name (JAN..DEC, SUN..SAT, any case); day-of-week 7 is
 * Sunday like 0. As in Vixie cron, when both day fields are restricted (not
 * '*'), a day matches if EITHER matches. Macros: @hourly @daily @midnight
 * @weekly @monthly @yearly @annually.
 */
#ifndef PW_CRON_H
#define PW_CRON_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

typedef struct pw_cron {
	uint64_t minutes;  /* bit m set: minute m (0..59) */
	uint32_t hours;    /* 0..23 */
	uint32_t mdays;    /* 1..31 */
	uint16_t months;   /* 1..12 */
	uint8_t wdays;     /* 0..6, Sunday = 0 */
	bool mday_star;    /* day-of-month field was '*' (or a '*' step) */
	bool wday_star;
} pw_cron;

/*
 * Parses expr. Returns 0, or -1 with a message such as
 * "invalid cron expression '61 * * * *': minute 61 out of range 0-59"
 * written into err (errlen bytes, always NUL-terminated).
 */
int pw_cron_parse(const char *expr, pw_cron *out, char *err, size_t errlen);

/*
 * The first fire time strictly after `after` (seconds since the epoch, UTC),
 * at a whole minute. Returns -1 when the expression can never fire (e.g.
 * "0 0 30 2 *") within the next eight years.
 */
int64_t pw_cron_next(const pw_cron *cron, int64_t after);

#endif

/* fuzz_cron.c - libFuzzer target for cron parsing and next fire times. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cron.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *expr = malloc(size + 1);
	char err[256];
	pw_cron cron;
	if (!expr)
		return 0;
	memcpy(expr, data, size);
	expr[size] = '\0';
	if (pw_cron_parse(expr, &cron, err, sizeof err) == 0)
		pw_cron_next(&cron, 1700000000);
	free(expr);
	return 0;
}

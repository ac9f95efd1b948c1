#!/bin/sh
# quality.check_balance: species_counts has at least
# params:min_rows_per_species rows for every species.
set -eu
. "$(dirname "$0")/lib.sh"

counts=${PIPEWRIGHT_INPUT_SPECIES_COUNTS:?run this task through pipewright}
min=$(param min_rows_per_species 1)

awk -F, -v min="$min" '
	NR == 1 { next }
	$2 + 0 < min + 0 { printf "%s: %d rows, fewer than %d\n", $1, $2, min > "/dev/stderr"; bad++ }
	END {
		if (bad) exit 1
		printf "balanced: every species has at least %d rows\n", min
	}' "$counts"

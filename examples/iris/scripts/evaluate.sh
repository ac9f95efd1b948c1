#!/bin/sh
# evaluate: model, X_test -> metrics. Each test row is given the species of
# the nearest centroid; accuracy = the fraction given the right species.
# The metrics also go to XCom, and the accuracy is the last line printed
# (XCom return_value). Fails when accuracy < params:min_accuracy.
set -eu
. "$(dirname "$0")/lib.sh"

model=${PIPEWRIGHT_INPUT_MODEL:?run this task through pipewright}
test=${PIPEWRIGHT_INPUT_X_TEST:?}
metrics=${PIPEWRIGHT_OUTPUT_METRICS:?}
min_accuracy=$(param min_accuracy 0)
out_dir "$metrics"

awk -F, '
	FNR == 1 { next }                       # the header of each file
	NR == FNR { k++; species[k] = $1; for (i = 1; i <= 4; i++) c[k, i] = $(i + 1); next }
	NF == 5 {
		best = 0
		for (j = 1; j <= k; j++) {
			d = 0
			for (i = 1; i <= 4; i++) d += ($i - c[j, i]) * ($i - c[j, i])
			if (!best || d < best_d) { best = j; best_d = d }
		}
		n++
		if (species[best] == $5) ok++
	}
	END {
		if (!n) { print "no test rows" > "/dev/stderr"; exit 1 }
		printf "{\"accuracy\": %.4f, \"n_test\": %d, \"n_correct\": %d}\n", ok / n, n, ok
	}' "$model" "$test" > "$metrics"

# Push the metrics as XCom entries (accuracy, n_test, n_correct).
if [ -n "${PIPEWRIGHT_XCOM:-}" ]; then cp "$metrics" "$PIPEWRIGHT_XCOM"; fi

accuracy=$(json_get "$metrics" accuracy)
if awk -v a="$accuracy" -v m="$min_accuracy" 'BEGIN { exit !(a + 0 < m + 0) }'; then
	echo "accuracy $accuracy is below min_accuracy $min_accuracy" >&2
	exit 1
fi
echo "$accuracy"

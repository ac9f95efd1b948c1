#!/bin/sh
# report: metrics -> report, a short text report titled params:report_title.
set -eu
. "$(dirname "$0")/lib.sh"

metrics=${PIPEWRIGHT_INPUT_METRICS:?run this task through pipewright}
report=${PIPEWRIGHT_OUTPUT_REPORT:?}
title=$(param report_title "Iris model")
out_dir "$report"

{
	printf '%s\n' "$title"
	printf '%s\n' "$title" | sed 's/./=/g'
	echo "run:      ${PIPEWRIGHT_RUN_ID:-manual}"
	echo "accuracy: $(json_get "$metrics" accuracy)" \
	     "($(json_get "$metrics" n_correct) of $(json_get "$metrics" n_test) test rows)"
} > "$report"

cat "$report"

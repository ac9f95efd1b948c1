#!/bin/sh
# split_data: example_iris_data -> X_train, X_test.
# Every k-th row goes to the test set, k = round(1 / test_size), shifted by
# random_state: the split is the same on every run.
set -eu
. "$(dirname "$0")/lib.sh"

src=${PIPEWRIGHT_INPUT_EXAMPLE_IRIS_DATA:?run this task through pipewright}
train=${PIPEWRIGHT_OUTPUT_X_TRAIN:?}
test=${PIPEWRIGHT_OUTPUT_X_TEST:?}
test_size=$(param test_size 0.2)
random_state=$(param random_state 0)
out_dir "$train" "$test"

awk -F, -v ts="$test_size" -v rs="$random_state" -v train="$train" -v test="$test" '
	NR == 1 {
		if (ts + 0 <= 0 || ts + 0 >= 1) { print "test_size must be in (0, 1): " ts > "/dev/stderr"; exit 1 }
		k = int(1 / ts + 0.5)
		print > train; print > test
		next
	}
	NF == 0 { next }
	(NR - 1 + rs) % k == 0 { print > test; n_test++; next }
	{ print > train; n_train++ }
	END { if (k) printf "split: %d train rows, %d test rows (every %dth row)\n", n_train, n_test, k }
' "$src"

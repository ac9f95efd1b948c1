#!/bin/sh
# quality.check_schema: example_iris_data has the expected header, five
# fields per row, and four positive numbers before the species.
set -eu
. "$(dirname "$0")/lib.sh"

data=${PIPEWRIGHT_INPUT_EXAMPLE_IRIS_DATA:?run this task through pipewright}

awk -F, '
	NR == 1 {
		if ($0 != "sepal_length,sepal_width,petal_length,petal_width,species") {
			print "unexpected header: " $0 > "/dev/stderr"; bad++
		}
		next
	}
	NF == 0 { next }
	NF != 5 { printf "line %d: %d fields, expected 5\n", NR, NF > "/dev/stderr"; bad++; next }
	{
		for (i = 1; i <= 4; i++)
			if ($i !~ /^[0-9]+(\.[0-9]+)?$/ || $i + 0 <= 0) {
				printf "line %d: field %d is not a positive number: %s\n", NR, i, $i > "/dev/stderr"
				bad++
			}
		rows++
	}
	END {
		if (bad) { printf "%d problem(s)\n", bad > "/dev/stderr"; exit 1 }
		printf "schema ok: %d rows\n", rows
	}' "$data"

#!/bin/sh
# quality.count_species: example_iris_data -> species_counts (species,n_rows).
set -eu
. "$(dirname "$0")/lib.sh"

data=${PIPEWRIGHT_INPUT_EXAMPLE_IRIS_DATA:?run this task through pipewright}
counts=${PIPEWRIGHT_OUTPUT_SPECIES_COUNTS:?}
out_dir "$counts"

{
	echo "species,n_rows"
	awk -F, 'NR > 1 && NF == 5 { n[$5]++ } END { for (s in n) print s "," n[s] }' "$data" | sort
} > "$counts"

echo "$(($(wc -l < "$counts") - 1)) species"

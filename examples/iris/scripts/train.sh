#!/bin/sh
# train: X_train -> model. A nearest-centroid "model": the mean of each of
# the four features per species, one CSV row per species.
set -eu
. "$(dirname "$0")/lib.sh"

train=${PIPEWRIGHT_INPUT_X_TRAIN:?run this task through pipewright}
model=${PIPEWRIGHT_OUTPUT_MODEL:?}
out_dir "$model"

{
	echo "species,sepal_length,sepal_width,petal_length,petal_width,n_rows"
	awk -F, '
		NR == 1 || NF != 5 { next }
		{ n[$5]++; for (i = 1; i <= 4; i++) sum[$5, i] += $i }
		END {
			for (s in n)
				printf "%s,%.4f,%.4f,%.4f,%.4f,%d\n", s,
				       sum[s, 1] / n[s], sum[s, 2] / n[s],
				       sum[s, 3] / n[s], sum[s, 4] / n[s], n[s]
		}' "$train" | sort
} > "$model"

echo "model: $(($(wc -l < "$model") - 1)) centroids in $model"

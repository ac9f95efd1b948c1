#!/bin/sh
# layers.sh - the runner's layers (runner-daemon/runner.h, docs/runner.md
# "Layers"): a file of runner-daemon/ may use the functions and data of
# its own layer and of the layers below it, never of one above. Read from
# the built objects with nm: what each one uses (undefined symbols) against
# what each one defines. And the process layer does not include runner.h.
set -eu

src="${PW_SRCDIR:-.}"
objs="${PW_BUILDDIR:-.}/runner-daemon"

# file layer, bottom (1) to top (6)
layers='launch 1
launcher 1
proctree 1
state 2
checkpoint 2
walvfs 2
backend 3
local 3
slurm 3
executor 4
scheduler 5
recovery 5
main 6'

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

# defs: "symbol file" for every global symbol a runner object defines.
echo "$layers" | while read -r file layer; do
	obj=$(ls "$objs"/*-"$file".o 2>/dev/null | head -1)
	if [ -z "$obj" ]; then
		echo "layers.sh: no object for $file.c under $objs" >&2
		exit 1
	fi
	nm -g --defined-only "$obj" | awk -v f="$file" 'NF == 3 { print $3, f }' >>"$tmp/defs"
	nm -u "$obj" | awk -v f="$file" '{ print $NF, f }' >>"$tmp/uses"
done

# uses joined with defs: "user definer" pairs across files.
awk 'NR == FNR { def[$1] = $2; next }
     ($1 in def) && def[$1] != $2 { print $2, def[$1], $1 }' \
	"$tmp/defs" "$tmp/uses" >"$tmp/calls"

echo "$layers" >"$tmp/layers"
awk 'NR == FNR { layer[$1] = $2; next }
     layer[$1] < layer[$2] {
	printf "layers.sh: %s.c (layer %d) uses %s of %s.c (layer %d), above it\n",
	       $1, layer[$1], $3, $2, layer[$2]
	bad = 1
     }
     END { exit bad }' "$tmp/layers" "$tmp/calls" || fail=1

for f in launch.c launcher.c proctree.c launch.h checkpoint.c checkpoint.h walvfs.c walvfs.h; do
	if grep -q '#include "runner.h"' "$src/runner-daemon/$f"; then
		echo "layers.sh: runner-daemon/$f includes runner.h" >&2
		fail=1
	fi
done

[ "$fail" = 0 ] && echo "layers.sh: $(wc -l <"$tmp/calls") uses across runner files, all downward or within a layer"
exit $fail

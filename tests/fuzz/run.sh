#!/bin/sh
# run.sh - builds the fuzz targets with clang's libFuzzer, AddressSanitizer
# and UndefinedBehaviorSanitizer, and runs each for SECONDS (default 60) on
# a copy of its committed seed corpus (tests/fuzz/corpus/<target>/; what a
# run finds beyond the seeds is thrown away). Not part of make check; CI
# runs it (.ci/run). Needs clang (Debian: clang) and the -dev packages of
# the build; a configured build folder for config.h (PW_BUILDDIR, default
# build).
#
#   tests/fuzz/run.sh [SECONDS [TARGET...]]
#
# FUZZ_RUNS=N runs each target for N executions instead (the long runs of
# tests/fuzz/README.md); FUZZ_TIMEOUT (default 10) is the seconds one input
# may take.
#
# Targets: doc dag cron interp request. A crash stops the script with status 1,
# leaving the crashing input (crash-*) in the folder it prints. Inputs in
# tests/fuzz/regress/<target>/ (what earlier runs found, fixed since) are
# run once each first, not mutated: they are slow by nature.
set -eu
cd "$(dirname "$0")/../.."
seconds=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-doc dag cron interp request}
builddir=${PW_BUILDDIR:-build}
[ -f "$builddir/config.h" ] || { echo "run.sh: no $builddir/config.h: configure first"; exit 2; }
out=$(mktemp -d)
flags="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
	-D_GNU_SOURCE -Isrc -Ifcgi -I$builddir
	$(pkg-config --cflags json-c yaml-0.1 sqlite3 libgvc)"
libs="$(pkg-config --libs json-c yaml-0.1 sqlite3 libgvc libcgraph) -lfcgi -lpthread -lm"
lib="src/util.c src/strmap.c src/doc.c src/jsonnum.c src/interp.c src/dag.c src/dag_fields.c src/dag_graph.c src/slice.c src/cron.c"
# the request target: libpipewright's sources as Makefile.am lists them
# (a file added there is fuzzed too) and the fcgi library, all but main.c
full="$(sed -n '/^src_libpipewright_a_SOURCES/,/^$/p' Makefile.am | tr ' \\\t' '\n\n\n' | grep '\.c$')
	$(ls fcgi/*.c | grep -v fcgi/main.c)"
# The request target works on a copy of the example project, on tmpfs
# (/dev/shm) when there is one: most inputs commit to its database.
shm=""
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
	shm=$(mktemp -d -p /dev/shm pwfuzz.XXXXXX)
	trap 'rm -rf "$shm"' EXIT
fi
project=${shm:-$out}/project
cp -R examples/iris "$project"
chmod -R u+w "$project"
rm -rf "$project/var"
export PIPEWRIGHT_PROJECT_PATH="$project"
status=0
for target in $targets; do
	srcs=$lib
	[ "$target" = request ] && srcs=$full
	# shellcheck disable=SC2086
	clang $flags -o "$out/fuzz_$target" "tests/fuzz/fuzz_$target.c" $srcs $libs
	mkdir -p "$out/corpus_$target"
	[ -d "tests/fuzz/corpus/$target" ] && cp tests/fuzz/corpus/"$target"/* "$out/corpus_$target/"
	st=0
	if [ -d "tests/fuzz/regress/$target" ]; then
		echo "== fuzz_$target on tests/fuzz/regress/$target"
		"$out/fuzz_$target" -timeout=10 tests/fuzz/regress/"$target"/* \
			>"$out/regress_$target.log" 2>&1 || st=$?
		if [ "$st" -ne 0 ]; then
			tail -n 60 "$out/regress_$target.log"
			echo "fuzz_$target failed on a regression input (status $st)"
			status=1
			continue
		fi
	fi
	echo "== fuzz_$target for ${FUZZ_RUNS:-$seconds s} ${FUZZ_RUNS:+runs}"
	limit="-max_total_time=$seconds"
	[ -n "${FUZZ_RUNS:-}" ] && limit="-runs=$FUZZ_RUNS"
	(cd "$out" && "./fuzz_$target" "$limit" -max_len=4096 \
		-timeout="${FUZZ_TIMEOUT:-10}" -print_final_stats=1 "corpus_$target" >"fuzz_$target.log" 2>&1) ||
		st=$?
	grep -a -E '^stat::number_of_executed_units|^Done|ERROR|SUMMARY' "$out/fuzz_$target.log" |
		tail -n 5
	if [ "$st" -ne 0 ]; then
		tail -n 60 "$out/fuzz_$target.log"
		echo "fuzz_$target failed (status $st): inputs and log kept in $out"
		status=1
	fi
done
[ "$status" -eq 0 ] && rm -rf "$out"
exit "$status"

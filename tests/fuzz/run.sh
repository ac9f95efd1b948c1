#!/bin/sh
# run.sh - builds the fuzz targets with clang's libFuzzer, AddressSanitizer
# and UndefinedBehaviorSanitizer, and runs each for SECONDS (default 60).
# On demand only (not part of make check):
#
#   tests/fuzz/run.sh [SECONDS]
#
# Needs clang (Debian: clang) and the -dev packages of the build.
set -eu
cd "$(dirname "$0")/../.."
seconds=${1:-60}
out=$(mktemp -d)
flags="-g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Isrc
	$(pkg-config --cflags json-c yaml-0.1)"
libs="$(pkg-config --libs json-c yaml-0.1) -lm"
lib="src/util.c src/doc.c src/jsonnum.c src/interp.c src/dag.c src/slice.c src/cron.c"
for target in doc dag cron interp; do
	# shellcheck disable=SC2086
	clang $flags -o "$out/fuzz_$target" "tests/fuzz/fuzz_$target.c" $lib $libs
	mkdir -p "$out/corpus_$target"
	echo "== fuzz_$target for $seconds s"
	"$out/fuzz_$target" -max_total_time="$seconds" -max_len=4096 "$out/corpus_$target" \
		2>&1 | tail -n 3
done
rm -rf "$out"

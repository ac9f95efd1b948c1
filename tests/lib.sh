# tests/lib.sh - what the shell tests share. Source it after setting tmp
# (a scratch folder): `. "$src/tests/lib.sh"`.
#
#   check NAME COMMAND...   runs COMMAND (output to $tmp/out): "ok - NAME",
#                           or "not ok - NAME" and the output, indented
#   wait_for SECONDS CMD... retries CMD every 0.2 s until it succeeds;
#                           fails after SECONDS
#   finish SUITE            prints the counts; fails when a check failed

passed=0
failed=0

check() {
	name=$1
	shift
	if "$@" >"$tmp/out" 2>&1; then
		passed=$((passed + 1))
		echo "ok - $name"
	else
		failed=$((failed + 1))
		echo "not ok - $name"
		sed 's/^/# /' "$tmp/out"
	fi
}

wait_for() {
	tries=$(($1 * 5))
	shift
	while ! "$@" >/dev/null 2>&1; do
		tries=$((tries - 1))
		[ "$tries" -gt 0 ] || return 1
		sleep 0.2
	done
}

finish() {
	echo "$1: $passed passed, $failed failed"
	[ "$failed" -eq 0 ]
}

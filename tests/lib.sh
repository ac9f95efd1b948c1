# tests/lib.sh - what the shell tests share. Source it after setting tmp
# (a scratch folder): `. "$src/tests/lib.sh"`.
#
#   check NAME COMMAND...   runs COMMAND (output to $tmp/out): "ok - NAME",
#                           or "not ok - NAME" and the output, indented
#   wait_for SECONDS CMD... retries CMD every 0.2 s until it succeeds;
#                           fails after SECONDS
#   finish SUITE            prints the counts; fails when a check failed
#   free_port               a loopback port nothing answers on

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

# free_port: prints a loopback port that nothing answers on (curl cannot
# connect), or fails.
free_port() {
	for p in 18701 18733 18767 18799 18831 18861 18897 18931 18969 18993 19027 19061; do
		st=0
		curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$p/" || st=$?
		if [ "$st" -eq 7 ]; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

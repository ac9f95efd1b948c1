#!/bin/sh
# server_start.sh - `pipewright server start` as a user runs it: lighttpd
# and the runner come up on a free port, /health answers, a triggered run
# succeeds, Ctrl-C (SIGINT) stops everything with status 0; a busy port
# and bad options are refused. Every wait is bounded.
set -eu

bin="${PW_BUILDDIR:-.}/src/pipewright"
src="${PW_SRCDIR:-.}"
tmp=$(mktemp -d)
server=""
cleanup() {
	[ -n "$server" ] && kill -TERM "$server" 2>/dev/null || :
	rm -rf "$tmp"
}
trap cleanup EXIT
. "$src/tests/lib.sh"

command -v curl >/dev/null || { echo "server_start: curl not found"; exit 77; }
lighttpd=$(command -v lighttpd || ls /usr/sbin/lighttpd /usr/local/sbin/lighttpd 2>/dev/null | head -1) ||
	:
[ -n "$lighttpd" ] || { echo "server_start: lighttpd not found"; exit 77; }

cp -R "$src/examples/iris" "$tmp/iris"
chmod -R u+w "$tmp/iris"
rm -rf "$tmp/iris/var"

# A port nothing answers on (curl cannot connect: exit 7).
port=""
for p in 18700 18731 18763 18797 18829 18863 18899 18933 18967 18991; do
	st=0
	curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$p/" || st=$?
	if [ "$st" -eq 7 ]; then
		port=$p
		break
	fi
done
[ -n "$port" ] || { echo "server_start: no free port"; exit 99; }
url="http://127.0.0.1:$port"


alive() { kill -0 "$1" 2>/dev/null; }
gone() { ! alive "$1"; }

"$bin" server start --project "$tmp/iris" --port "$port" >"$tmp/server.out" 2>"$tmp/server.err" &
server=$!

starts_and_prints_url() {
	wait_for 20 grep -q '^pipewright: serving ' "$tmp/server.out" ||
		{ cat "$tmp/server.out" "$tmp/server.err"; return 1; }
	grep "^pipewright: serving $tmp/iris at $url/ (lighttpd pid [0-9]*, runner pid [0-9]*)" \
		"$tmp/server.out"
}

health_is_healthy() {
	# healthy once the runner's first heartbeat is in
	wait_for 20 sh -c "curl -sf --max-time 5 '$url/health' | grep -q '\"status\":\"healthy\"'" ||
		{ curl -s --max-time 5 "$url/health"; return 1; }
}

trigger_runs_to_success() {
	curl -sf --max-time 10 -X POST -H 'Content-Type: application/json' \
		-d '{"run_id": "from-test"}' "$url/api/v1/dags/hello/runs" >"$tmp/post" ||
		{ cat "$tmp/post"; return 1; }
	grep -q '"state":"queued"' "$tmp/post" || return 1
	wait_for 30 sh -c "curl -sf --max-time 5 '$url/api/v1/dags/hello/runs/from-test' |
		grep -q '\"state\":\"success\"'" ||
		{ curl -s --max-time 5 "$url/api/v1/dags/hello/runs/from-test"; return 1; }
}

# lighttpd refuses a POST without Content-Length itself (411): the answer
# still carries the JSON envelope; with Content-Length: 0 the POST reaches
# the handler (a 404 for a run that does not exist, in the envelope too).
no_length_is_json() {
	curl -s --max-time 10 -X POST -D "$tmp/h411" -o "$tmp/b411" \
		"$url/api/v1/dags/hello/runs/nope/retry" || return 1
	cat "$tmp/h411" "$tmp/b411"; echo
	grep -q '^HTTP/1.1 411' "$tmp/h411" && grep -qi '^Content-Type: application/json' "$tmp/h411" &&
		grep -q '"code":"length_required"' "$tmp/b411" || return 1
	curl -s --max-time 10 -X POST -H 'Content-Length: 0' -D "$tmp/h0" -o "$tmp/b0" \
		"$url/api/v1/dags/hello/runs/nope/retry" || return 1
	cat "$tmp/h0" "$tmp/b0"; echo
	grep -q '^HTTP/1.1 404' "$tmp/h0" && grep -q '"code":"not_found"' "$tmp/b0" || return 1
	# a trigger with an empty body works
	curl -s --max-time 10 -X POST -H 'Content-Length: 0' -o "$tmp/t0" -w '%{http_code}' \
		"$url/api/v1/dags/hello/runs" >"$tmp/t0s" || return 1
	cat "$tmp/t0s" "$tmp/t0"; echo
	[ "$(cat "$tmp/t0s")" = 201 ]
}

# 1,500 connections that send half a request line and stop: with
# lighttpd's defaults it stops accepting at about 1,365 and /health times
# out; the generated config takes more connections. (bash for /dev/tcp.)
slow_clients_leave_health() {
	command -v bash >/dev/null || { echo "no bash: skipped"; return 0; }
	bash -c '
		ulimit -n 4096 2>/dev/null || { echo "cannot raise the fd limit: skipped"; exit 0; }
		for i in $(seq 1500); do
			exec {fd}<>"/dev/tcp/127.0.0.1/$1" || exit 1
			printf "GET /health HTTP/1.1\r\n" >&"$fd"
		done
		code=$(curl -s -o /dev/null --max-time 20 -w "%{http_code}" "http://127.0.0.1:$1/health")
		echo "/health behind 1500 slow connections: $code"
		[ "$code" = 200 ]' slow "$port"
}

sigint_stops_everything() {
	pids=$(sed -n 's/.*(lighttpd pid \([0-9]*\), runner pid \([0-9]*\)).*/\1 \2/p' \
		"$tmp/server.out")
	[ -n "$pids" ] || return 1
	kill -INT "$server"
	st=0
	wait_for 20 gone "$server" || { echo "still running after 20 s"; return 1; }
	wait "$server" || st=$?
	server=""
	echo "exit status $st"
	[ "$st" -eq 0 ] || { cat "$tmp/server.err"; return 1; }
	for pid in $pids; do
		wait_for 5 gone "$pid" || { echo "pid $pid still alive"; return 1; }
	done
	st=0
	curl -s -o /dev/null --max-time 2 "$url/health" || st=$?
	[ "$st" -eq 7 ]
}

busy_port_refused() {
	# nc may be missing: lighttpd itself keeps the port busy.
	cat >"$tmp/busy.conf" <<CONF
server.document-root = "$tmp"
server.bind = "127.0.0.1"
server.port = $port
CONF
	"$lighttpd" -D -f "$tmp/busy.conf" &
	busy=$!
	wait_for 10 curl -s -o /dev/null --max-time 2 "$url/" || { kill "$busy"; return 1; }
	st=0
	timeout 20 "$bin" server start --project "$tmp/iris" --port "$port" \
		>"$tmp/busy.out" 2>"$tmp/busy.err" || st=$?
	# A host beyond loopback is allowed with a warning (and busy here too).
	st2=0
	timeout 20 "$bin" server start --project "$tmp/iris" --host 0.0.0.0 --port "$port" \
		>"$tmp/busy.out" 2>"$tmp/busy2.err" || st2=$?
	kill "$busy"
	wait "$busy" || :
	cat "$tmp/busy.err" "$tmp/busy2.err"
	[ "$st" -eq 1 ] && grep -q "cannot listen on 127.0.0.1:$port: Address already in use" \
		"$tmp/busy.err" && [ "$st2" -eq 1 ] &&
		grep -q "warning: .*no authentication" "$tmp/busy2.err"
}

dead_lighttpd_stops_runner() {
	"$bin" server start --project "$tmp/iris" --port "$port" >"$tmp/dead.out" \
		2>"$tmp/dead.err" &
	server=$!
	wait_for 20 grep -q '^pipewright: serving ' "$tmp/dead.out" ||
		{ cat "$tmp/dead.out" "$tmp/dead.err"; return 1; }
	set -- $(sed -n 's/.*(lighttpd pid \([0-9]*\), runner pid \([0-9]*\)).*/\1 \2/p' \
		"$tmp/dead.out")
	kill -KILL "$1"
	wait_for 20 gone "$server" || { echo "still running after 20 s"; return 1; }
	# its pipewright.fcgi must not outlive it
	fcgi=$(readlink -f "${PW_BUILDDIR:-.}/fcgi/pipewright.fcgi")
	for d in /proc/[0-9]*; do
		if [ "$(readlink "$d/exe" 2>/dev/null)" = "$fcgi" ] &&
			tr '\0' '\n' <"$d/environ" 2>/dev/null |
			grep -qx "PIPEWRIGHT_PROJECT_PATH=$tmp/iris"; then
			wait_for 5 gone "${d#/proc/}" || { echo "orphan fcgi ${d#/proc/}"; return 1; }
		fi
	done
	st=0
	wait "$server" || st=$?
	server=""
	cat "$tmp/dead.err"
	wait_for 5 gone "$2" || { echo "runner $2 still alive"; return 1; }
	[ "$st" -ne 0 ] && grep -q '^pipewright: lighttpd was killed by signal 9' "$tmp/dead.err"
}

bad_options_refused() {
	for args in "--port 0" "--port 65536" "--port http" "--host example.com" \
		"--host ::1"; do
		st=0
		# shellcheck disable=SC2086 # args are words
		timeout 10 "$bin" server start --project "$tmp/iris" $args 2>"$tmp/err" || st=$?
		[ "$st" -eq 1 ] || { echo "$args: status $st"; return 1; }
	done
	st=0
	timeout 10 "$bin" server stop 2>/dev/null || st=$?
	[ "$st" -eq 2 ] || return 1
	st=0
	timeout 10 "$bin" validate --port 1 2>/dev/null || st=$?
	[ "$st" -eq 2 ]
}

missing_project_refused() {
	st=0
	timeout 10 "$bin" server start --project "$tmp/nowhere" --port "$port" 2>"$tmp/err" ||
		st=$?
	cat "$tmp/err"
	[ "$st" -eq 1 ] && grep -q nowhere "$tmp/err"
}

check "server start prints its URL and pids" starts_and_prints_url
check "/health answers healthy" health_is_healthy
check "a triggered run of hello succeeds" trigger_runs_to_success
check "a POST without Content-Length gets 411 in the JSON envelope" no_length_is_json
check "/health answers behind 1500 slow connections" slow_clients_leave_health
check "SIGINT stops lighttpd and the runner, exit 0" sigint_stops_everything
check "a busy port is refused with a message" busy_port_refused
check "when lighttpd dies the runner is stopped, exit non-zero" dead_lighttpd_stops_runner
check "bad host, port and sub-command are refused" bad_options_refused
check "a project that cannot be loaded is refused" missing_project_refused

finish server_start

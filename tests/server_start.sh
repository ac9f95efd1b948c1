#!/bin/sh
# server_start.sh - `pipewright server start` as a user runs it: lighttpd
# and the runner come up on a free port, /health answers, a triggered run
# succeeds; it supervises: a runner or lighttpd killed with SIGKILL comes
# back (health says the runner is down meanwhile); SIGTERM and Ctrl-C
# (SIGINT) stop everything with status 0, leaving no process, socket or
# runtime folder; a busy port and bad options are refused. Every wait is
# bounded.
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

# The runtime folder goes under $tmp/rt: what is left there after a stop
# is a leak.
mkdir "$tmp/rt"
TMPDIR="$tmp/rt" "$bin" server start --project "$tmp/iris" --port "$port" \
	>"$tmp/server.out" 2>"$tmp/server.err" &
server=$!
fcgi=$(readlink -f "${PW_BUILDDIR:-.}/fcgi/pipewright.fcgi")

# "STATUS PID" of the runner as /api/v1/health says.
health_runner() {
	curl -s --max-time 5 "$url/api/v1/health" |
		sed -n 's/.*"runner":{"status":"\([a-z]*\)"[^}]*"pid":\([0-9]*\).*/\1 \2/p'
}

# The pids of the pipewright.fcgi processes serving $tmp/iris.
fcgi_pids() {
	for d in /proc/[0-9]*; do
		if [ "$(readlink "$d/exe" 2>/dev/null)" = "$fcgi" ] &&
			tr '\0' '\n' <"$d/environ" 2>/dev/null |
			grep -qx "PIPEWRIGHT_PROJECT_PATH=$tmp/iris"; then
			echo "${d#/proc/}"
		fi
	done
}

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

# /ui/, /docs, /openapi.json from the build tree's www; / redirects to /ui/.
serves_www() {
	www=${PW_BUILDDIR:-.}/www
	for pair in "ui/:ui/index.html" "docs:docs/index.html" "docs/:docs/index.html" \
		"openapi.json:openapi.json" "docs/vendor/swagger-ui-bundle.js:docs/vendor/swagger-ui-bundle.js"; do
		curl -sf --max-time 10 -o "$tmp/static" "$url/${pair%%:*}" &&
			cmp "$tmp/static" "$www/${pair#*:}" || { echo "/${pair%%:*} differs"; return 1; }
	done
	curl -s --max-time 10 -o /dev/null -w '%{http_code} %{redirect_url}\n' "$url/" >"$tmp/redir"
	cat "$tmp/redir"
	grep -qx "30[12] $url/ui/" "$tmp/redir"
}

# PIPEWRIGHT_WWW names another www folder; the API is still there.
www_env_overrides() {
	mkdir -p "$tmp/www2/docs" "$tmp/www2/ui"
	echo "docs of www2" >"$tmp/www2/docs/index.html"
	echo "ui of www2" >"$tmp/www2/ui/index.html"
	PIPEWRIGHT_WWW="$tmp/www2" "$bin" server start --project "$tmp/iris" --port "$port" \
		>"$tmp/www2.out" 2>"$tmp/www2.err" &
	server=$!
	wait_for 20 grep -q '^pipewright: serving ' "$tmp/www2.out" ||
		{ cat "$tmp/www2.out" "$tmp/www2.err"; return 1; }
	ok=0
	[ "$(curl -s --max-time 10 "$url/docs")" = "docs of www2" ] &&
		[ "$(curl -s --max-time 10 "$url/ui/")" = "ui of www2" ] &&
		curl -sf --max-time 10 "$url/api/v1/version" | grep -q '"api_version":"v1"' || ok=1
	kill -INT "$server"
	wait_for 20 gone "$server" || ok=1
	wait "$server" || :
	server=""
	return $ok
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

# Health says "down" for killed, or the runner came back as another pid.
down_or_back() {
	set -- "$1" $(health_runner)
	[ "$2" = down ] && [ "$3" = "$1" ] && return 0
	[ "$2" = running ] && [ "$3" != "$1" ]
}

runner_killed_comes_back() {
	# Between the kill and the restart (1 s, then 2, then 4) health must
	# say down; should a busy machine miss one window, the next is longer.
	seen_down=""
	for try in 1 2 3; do
		wait_for 20 sh -c "curl -sf --max-time 5 '$url/api/v1/health' |
			grep -q '\"status\":\"healthy\"'" || { echo "not healthy"; return 1; }
		set -- $(health_runner)
		killed=$2
		kill -KILL "$killed"
		wait_for 10 gone "$killed" || { echo "runner $killed survived SIGKILL"; return 1; }
		# lighttpd goes on serving
		curl -sf --max-time 5 "$url/health" || { echo "/health does not answer"; return 1; }
		wait_for 20 down_or_back "$killed" || { health_runner; return 1; }
		set -- $(health_runner)
		if [ "$1" = down ]; then
			seen_down=$killed
			break
		fi
	done
	[ -n "$seen_down" ] || { echo "health never said down"; return 1; }
	echo "health: runner $seen_down down"
	# it comes back as a new process, and works
	wait_for 40 sh -c "curl -sf --max-time 5 '$url/api/v1/health' |
		grep -q '\"runner\":{\"status\":\"running\"'" || { health_runner; return 1; }
	set -- $(health_runner)
	[ "$2" != "$seen_down" ] && alive "$2" || { echo "runner pid $2"; return 1; }
	grep "^pipewright: the runner was killed by signal 9 (Killed); starting it again in 1 s" \
		"$tmp/server.err" || return 1
	grep "^pipewright: the runner started again (pid $2)" "$tmp/server.err" || return 1
	curl -sf --max-time 10 -X POST -H 'Content-Type: application/json' \
		-d '{"run_id": "after-kill"}' "$url/api/v1/dags/hello/runs" >/dev/null || return 1
	wait_for 30 sh -c "curl -sf --max-time 5 '$url/api/v1/dags/hello/runs/after-kill' |
		grep -q '\"state\":\"success\"'" ||
		{ curl -s --max-time 5 "$url/api/v1/dags/hello/runs/after-kill"; return 1; }
	alive "$server"
}

lighttpd_killed_comes_back() {
	web=$(sed -n 's/.*(lighttpd pid \([0-9]*\),.*/\1/p' "$tmp/server.out")
	old_fcgi=$(fcgi_pids)
	[ -n "$web" ] && [ -n "$old_fcgi" ] || { echo "lighttpd $web fcgi $old_fcgi"; return 1; }
	kill -KILL "$web"
	wait_for 10 gone "$web" || return 1
	# its pipewright.fcgi must not outlive it
	for pid in $old_fcgi; do
		wait_for 10 gone "$pid" || { echo "orphan fcgi $pid"; return 1; }
	done
	wait_for 20 grep -q '^pipewright: lighttpd started again (pid [0-9]*)' "$tmp/server.err" ||
		{ cat "$tmp/server.err"; return 1; }
	grep '^pipewright: lighttpd was killed by signal 9 (Killed); starting it again in 1 s' \
		"$tmp/server.err" || return 1
	new=$(sed -n 's/^pipewright: lighttpd started again (pid \([0-9]*\))/\1/p' \
		"$tmp/server.err")
	[ "$new" != "$web" ] && alive "$new" || return 1
	wait_for 20 sh -c "curl -sf --max-time 5 '$url/api/v1/health' |
		grep -q '\"status\":\"healthy\"'" || { curl -s --max-time 5 "$url/api/v1/health"; return 1; }
	curl -sf --max-time 5 "$url/api/v1/dags/hello/runs/after-kill" | grep -q '"state":"success"'
}

# Stops the server at $1 (pid) with signal $2; checks that exit status is 0
# and that nothing is left: no child, no pipewright.fcgi, no runtime folder.
stops_leaving_nothing() {
	stop_pid=$1
	pids="$(cat /proc/"$stop_pid"/task/*/children) $(fcgi_pids | tr '\n' ' ')"
	echo "children: $pids"
	[ -n "$(ls "$tmp/rt")" ] || { echo "no runtime folder in $tmp/rt"; return 1; }
	kill "-$2" "$stop_pid"
	st=0
	wait_for 20 gone "$stop_pid" || { echo "still running after 20 s"; return 1; }
	wait "$stop_pid" || st=$?
	echo "exit status $st"
	[ "$st" -eq 0 ] || return 1
	for pid in $pids; do
		gone "$pid" || { echo "pid $pid still alive"; return 1; }
	done
	[ -z "$(fcgi_pids)" ] || { echo "pipewright.fcgi left: $(fcgi_pids)"; return 1; }
	[ -z "$(ls "$tmp/rt")" ] || { echo "left in the runtime folder:"; ls -R "$tmp/rt"; return 1; }
	st=0
	curl -s -o /dev/null --max-time 2 "$url/health" || st=$?
	[ "$st" -eq 7 ]
}

sigterm_stops_everything() {
	stops_leaving_nothing "$server" TERM || { cat "$tmp/server.err"; return 1; }
	server=""
	grep -q '^pipewright: stopped' "$tmp/server.out"
}

sigint_stops_everything() {
	TMPDIR="$tmp/rt" "$bin" server start --project "$tmp/iris" --port "$port" \
		>"$tmp/int.out" 2>"$tmp/int.err" &
	server=$!
	wait_for 20 grep -q '^pipewright: serving ' "$tmp/int.out" ||
		{ cat "$tmp/int.out" "$tmp/int.err"; return 1; }
	wait_for 20 sh -c "curl -sf --max-time 5 '$url/api/v1/health' >/dev/null" || return 1
	stops_leaving_nothing "$server" INT || { cat "$tmp/int.err"; return 1; }
	server=""
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

# 10,000 event streams asked for at once (tests/sseflood.c): the ones
# the FastCGI server has no thread for get its JSON 503 with Retry-After,
# never lighttpd's HTML page, and /health answers 200 meanwhile.
stream_flood_gets_json_503s() {
	flood="${PW_BUILDDIR:-.}/tests/sseflood"
	[ -x "$flood" ] || { echo "$flood not built (make check builds it)"; return 1; }
	st=0
	"$flood" "$url" 10000 || st=$?
	[ "$st" -eq 77 ] && return 0
	[ "$st" -eq 0 ] || return 1
	# lighttpd never found its backend full
	! grep -E 'overloaded|dropped after accept' "$tmp/server.err"
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
check "/ui/, /docs, /openapi.json are served, / redirects to /ui/" serves_www
check "a triggered run of hello succeeds" trigger_runs_to_success
check "a POST without Content-Length gets 411 in the JSON envelope" no_length_is_json
check "/health answers behind 1500 slow connections" slow_clients_leave_health
check "10000 stream attempts get JSON 503s, /health answers meanwhile" \
	stream_flood_gets_json_503s
check "a runner killed by SIGKILL: health says down, it comes back, runs work" \
	runner_killed_comes_back
check "lighttpd killed by SIGKILL comes back, its pipewright.fcgi does not linger" \
	lighttpd_killed_comes_back
check "SIGTERM stops everything, exit 0, nothing left behind" sigterm_stops_everything
check "SIGINT stops everything, exit 0, nothing left behind" sigint_stops_everything
check "a busy port is refused with a message" busy_port_refused
check "bad host, port and sub-command are refused" bad_options_refused
check "a project that cannot be loaded is refused" missing_project_refused
check "PIPEWRIGHT_WWW replaces the www folder" www_env_overrides

finish server_start

#!/bin/sh
# db_faults.sh - the API's side of database faults, each made for real
# against `pipewright server start` (lighttpd, pipewright.fcgi, the runner):
#   - locked longer than the busy timeout (a sqlite3 holds BEGIN IMMEDIATE):
#     writes answer 503 `unavailable` with Retry-After, reads answer;
#   - disk full (a small tmpfs, filled): 503 with Retry-After, health says
#     the disk is full;
#   - database moved away and back: the runner halts saying so (no crash
#     loop), health is unhealthy; once it is back everything goes on;
#   - database deleted: health unhealthy naming it, requests 503, the API
#     does not create a new one, the runner halts saying so; the restarted
#     runner creates it, and the API opens it by itself;
#   - database replaced: the API opens the new file; the runner says so and
#     exits, and its supervisor starts it again on the new file;
#   - read-only database or logs folder (read-only bind mounts; as plain
#     CGI): 503 and a clear health report.
# After each: PRAGMA integrity_check is ok, nothing lost or duplicated, and
# the service works again once the fault is gone, with nobody restarting
# it. The tmpfs and bind mounts need root: without, those checks are
# skipped with a message. Every wait is bounded.
set -eu

bin="${PW_BUILDDIR:-.}/src/pipewright"
fcgi="${PW_BUILDDIR:-.}/fcgi/pipewright.fcgi"
src="${PW_SRCDIR:-.}"
tmp=$(mktemp -d)
server=""
holder=""
mnt="$tmp/mnt"
mounted=""
cleanup() {
	[ -n "$holder" ] && kill "$holder" 2>/dev/null || :
	if [ -n "$server" ]; then
		kill -TERM "$server" 2>/dev/null || :
		wait "$server" 2>/dev/null || :
	fi
	for m in $mounted; do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || :
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
. "$src/tests/lib.sh"

command -v curl >/dev/null || { echo "db_faults: curl not found"; exit 77; }
command -v sqlite3 >/dev/null || { echo "db_faults: sqlite3 not found"; exit 77; }
command -v lighttpd >/dev/null || [ -x /usr/sbin/lighttpd ] ||
	{ echo "db_faults: lighttpd not found"; exit 77; }

# The project lives on a 16 MB tmpfs when we may mount one (disk full).
mkdir "$mnt"
if [ "$(id -u)" -eq 0 ] && mount -t tmpfs -o size=16m,mode=0755 tmpfs "$mnt" 2>"$tmp/mount.err"
then
	mounted="$mnt"
else
	echo "# db_faults: cannot mount a tmpfs ($(cat "$tmp/mount.err" 2>/dev/null)):" \
		"the disk-full and read-only checks are skipped"
fi
cp -R "$src/examples/iris" "$mnt/iris"
chmod -R u+w "$mnt/iris"
rm -rf "$mnt/iris/var"
db="$mnt/iris/var/pipewright.db"

port=""
for p in 18711 18743 18777 18809 18841 18877 18911 18943 18979 18999; do
	st=0
	curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$p/" || st=$?
	if [ "$st" -eq 7 ]; then
		port=$p
		break
	fi
done
[ -n "$port" ] || { echo "db_faults: no free port"; exit 99; }
url="http://127.0.0.1:$port"

alive() { kill -0 "$1" 2>/dev/null; }
gone() { ! alive "$1"; }

"$bin" server start --project "$mnt/iris" --port "$port" >"$tmp/server.out" \
	2>"$tmp/server.err" &
server=$!

# get PATH / post_run RUN_ID: the answer's head in $tmp/head, body in $tmp/body.
get() {
	curl -s --max-time 30 -D "$tmp/head" -o "$tmp/body" "$url$1" || return 1
	tr -d '\r' <"$tmp/head" >"$tmp/h" && mv "$tmp/h" "$tmp/head"
}
post_run() {
	curl -s --max-time 30 -D "$tmp/head" -o "$tmp/body" -X POST \
		-H 'Content-Type: application/json' -d "{\"run_id\": \"$1\"}" \
		"$url/api/v1/dags/hello/runs" || return 1
	tr -d '\r' <"$tmp/head" >"$tmp/h" && mv "$tmp/h" "$tmp/head"
}
status_is() { head -1 "$tmp/head" | grep -q "^HTTP/[0-9.]* $1 "; }
unavailable() {
	status_is 503 && grep -qi '^Retry-After: [0-9]' "$tmp/head" &&
		grep -q '^{"data":null,"error":{"code":"unavailable","message":"' "$tmp/body"
}
show() { head -1 "$tmp/head"; cat "$tmp/body"; echo; }
healthy() { curl -sf --max-time 5 "$url/api/v1/health" | grep -q '"status":"healthy"'; }
# health_shows PATTERN: health's body (in $tmp/body) matches. A clean look at
# the file systems stands for 100 ms (fcgi/health.c), so a fault made just
# now is retried for briefly.
health_shows() { get /api/v1/health && grep -q "$1" "$tmp/body"; }
run_succeeded() {
	curl -sf --max-time 5 "$url/api/v1/dags/hello/runs/$1" | grep -q '"state":"success"'
}
# The database is sound and holds the run exactly once.
sound_with_run() {
	[ "$(sqlite3 "$db" 'PRAGMA integrity_check')" = ok ] || return 1
	n=$(sqlite3 "$db" "SELECT count(*) FROM runs WHERE dag_id = 'hello' AND run_id = '$1'")
	[ "$n" -eq 1 ] || { echo "run $1 is there $n times"; return 1; }
}
# A write that succeeds (201) and a run that then succeeds.
works_again() {
	post_run "$1" && status_is 201 || { show; return 1; }
	wait_for 60 run_succeeded "$1" || { get "/api/v1/dags/hello/runs/$1"; show; return 1; }
	sound_with_run "$1"
}

starts() {
	wait_for 20 grep -q '^pipewright: serving ' "$tmp/server.out" ||
		{ cat "$tmp/server.out" "$tmp/server.err"; return 1; }
	wait_for 20 healthy
}

locked_writes_503_reads_answer() {
	mkfifo "$tmp/sql"
	sqlite3 "$db" <"$tmp/sql" >"$tmp/holder.out" 2>&1 &
	holder=$!
	exec 3>"$tmp/sql"
	echo 'BEGIN IMMEDIATE;' >&3
	echo "SELECT 'holding';" >&3
	wait_for 10 grep -q holding "$tmp/holder.out" || { cat "$tmp/holder.out"; return 1; }
	# locked for sure: another writer cannot begin
	! sqlite3 -cmd '.timeout 0' "$db" 'BEGIN IMMEDIATE; ROLLBACK;' 2>/dev/null || return 1
	post_run locked && unavailable || { show; return 1; }
	show
	get /api/v1/dags && status_is 200 || { show; return 1; }
	get /api/v1/dags/hello/runs && status_is 200 || { show; return 1; }
	echo 'ROLLBACK;' >&3
	exec 3>&-
	wait_for 10 gone "$holder" || return 1
	holder=""
	n=$(sqlite3 "$db" "SELECT count(*) FROM runs WHERE run_id = 'locked'")
	[ "$n" -eq 0 ] || { echo "the refused run was stored"; return 1; }
	works_again locked
}

disk_full_503_health_says() {
	[ -n "$mounted" ] || { echo "skipped: no tmpfs (not root, or mount failed)"; return 0; }
	# An empty WAL first, so that any write needs new space.
	sqlite3 "$db" 'PRAGMA wal_checkpoint(TRUNCATE);' >/dev/null
	dd if=/dev/zero of="$mnt/fill" bs=64k >/dev/null 2>&1 || :
	post_run full && unavailable || { show; rm -f "$mnt/fill"; return 1; }
	show
	wait_for 2 health_shows '"status":"unhealthy"' || :
	show
	status_is 503 && grep -q '"status":"unhealthy"' "$tmp/body" &&
		grep -q '"database":{"status":"error","error":"the disk holding the database .* is full' \
			"$tmp/body" || { rm -f "$mnt/fill"; return 1; }
	rm -f "$mnt/fill"
	wait_for 60 healthy || { curl -s "$url/api/v1/health"; return 1; }
	works_again full
}

runner_says() { grep -q "^pipewright-runner: .* error $1" "$tmp/server.err"; }

moved_away_halts_runner_until_back() {
	runner=$(curl -sf --max-time 5 "$url/api/v1/health" | sed -n 's/.*"pid":\([0-9]*\).*/\1/p')
	restarts=$(grep -c 'starting it again' "$tmp/server.err" || :)
	mv "$db" "$db.away"
	wait_for 10 runner_says "the database file was deleted ($db): claiming and starting nothing" ||
		{ cat "$tmp/server.err"; mv "$db.away" "$db"; return 1; }
	get /api/v1/health && status_is 503 && grep -q '"status":"unhealthy"' "$tmp/body" ||
		{ show; mv "$db.away" "$db"; return 1; }
	post_run away && unavailable || { show; mv "$db.away" "$db"; return 1; }
	# it waits, logging once, rather than ending
	sleep 3
	alive "$runner" && [ "$(grep -c 'claiming and starting nothing' "$tmp/server.err")" -eq 1 ] &&
		[ "$(grep -c 'starting it again' "$tmp/server.err" || :)" -eq "$restarts" ] ||
		{ cat "$tmp/server.err"; mv "$db.away" "$db"; return 1; }
	mv "$db.away" "$db"
	wait_for 10 grep -q "info the database file is back ($db): going on" "$tmp/server.err" ||
		{ cat "$tmp/server.err"; return 1; }
	wait_for 30 healthy || { curl -s "$url/api/v1/health"; return 1; }
	[ "$(curl -sf --max-time 5 "$url/api/v1/health" |
		sed -n 's/.*"pid":\([0-9]*\).*/\1/p')" = "$runner" ] || return 1
	works_again away
}

deleted_503_until_recreated() {
	runner=$(curl -sf --max-time 5 "$url/api/v1/health" | sed -n 's/.*"pid":\([0-9]*\).*/\1/p')
	rm -f "$db" "$db-wal" "$db-shm"
	wait_for 10 runner_says "the database file was deleted ($db): claiming and starting nothing" ||
		{ cat "$tmp/server.err"; return 1; }
	get /api/v1/dags && unavailable || { show; return 1; }
	show
	get /api/v1/health && status_is 503 && grep -q '"status":"unhealthy"' "$tmp/body" &&
		grep -q 'deleted\|no database yet' "$tmp/body" || { show; return 1; }
	post_run deleted && unavailable || { show; return 1; }
	[ ! -e "$db" ] || { echo "the API created a database"; return 1; }
	# The runner creates it when it starts again (here: its supervisor restarts it).
	kill -KILL "$runner"
	wait_for 60 healthy || { curl -s "$url/api/v1/health"; return 1; }
	grep -q 'opened again' "$tmp/server.err" || { cat "$tmp/server.err"; return 1; }
	works_again deleted
}

replaced_is_reopened() {
	sqlite3 "$db" ".backup '$tmp/copy.db'"
	sqlite3 "$tmp/copy.db" "INSERT INTO pools(name, slots) VALUES ('restored', 3)"
	cp "$tmp/copy.db" "$mnt/iris/var/new.db"
	mv "$mnt/iris/var/new.db" "$db"
	rm -f "$db-wal" "$db-shm"
	wait_for 10 sh -c "curl -sf --max-time 5 '$url/api/v1/pools/restored' | grep -q '\"slots\":3'" ||
		{ get /api/v1/pools/restored; show; return 1; }
	grep 'the database file was replaced' "$tmp/server.err" || return 1
	# the runner had the old file: it ends, and server start starts it again
	wait_for 10 runner_says "the database file was replaced ($db): this runner stops" ||
		{ cat "$tmp/server.err"; return 1; }
	wait_for 20 grep -q '^pipewright: the runner exited with status 1; starting it again' \
		"$tmp/server.err" || { cat "$tmp/server.err"; return 1; }
	wait_for 60 healthy || { curl -s "$url/api/v1/health"; return 1; }
	works_again replaced
}

read_only_logs_no_crash_loop() {
	[ -n "$mounted" ] || { echo "skipped: no bind mounts (not root, or mount failed)"; return 0; }
	logs="$mnt/iris/var/logs"
	mkdir -p "$logs"
	runner=$(curl -sf --max-time 5 "$url/api/v1/health" | sed -n 's/.*"pid":\([0-9]*\).*/\1/p')
	restarts=$(grep -c 'starting it again' "$tmp/server.err" || :)
	mount --bind "$logs" "$logs" && mounted="$logs $mounted" &&
		mount -o remount,bind,ro "$logs" || return 1
	wait_for 2 health_shows '"logs":{"status":"error"' || :
	show
	grep -q '"status":"degraded"' "$tmp/body" &&
		grep -q '"logs":{"status":"error","error":"the logs folder .* read-only' "$tmp/body" ||
		return 1
	post_run rologs && status_is 201 || { show; return 1; }
	wait_for 30 sh -c "curl -sf --max-time 5 '$url/api/v1/dags/hello/runs/rologs' |
		grep -q '\"state\":\"failed\"'" || return 1
	get /api/v1/dags/hello/runs/rologs
	show
	grep -q 'Read-only file system' "$tmp/body" || return 1
	# the same runner: it did not die over it
	alive "$runner" && [ "$(grep -c 'starting it again' "$tmp/server.err")" = "$restarts" ] ||
		{ echo "runner $runner"; return 1; }
	umount "$logs"
	mounted="$mnt"
	wait_for 20 healthy || return 1
	works_again rologs-after
}

# req VAR=VALUE...: one plain CGI request to the project, answer in $tmp/cgi.
cgi() {
	env -i PIPEWRIGHT_PROJECT_PATH="$mnt/iris" GATEWAY_INTERFACE=CGI/1.1 \
		SCRIPT_NAME=/pipewright.fcgi \
		${ASAN_OPTIONS+ASAN_OPTIONS="$ASAN_OPTIONS"} \
		${UBSAN_OPTIONS+UBSAN_OPTIONS="$UBSAN_OPTIONS"} \
		"$@" "$fcgi" <"$tmp/cgibody" >"$tmp/cgi" 2>"$tmp/cgi.err"
	tr -d '\r' <"$tmp/cgi" >"$tmp/c" && mv "$tmp/c" "$tmp/cgi"
}

read_only_reported() {
	[ -n "$mounted" ] || { echo "skipped: no bind mounts (not root, or mount failed)"; return 0; }
	# Stopped first: a read-only database is found when it is opened.
	kill -TERM "$server"
	wait_for 20 gone "$server" || return 1
	wait "$server" || :
	server=""
	var="$mnt/iris/var"
	logs="$var/logs"
	mkdir -p "$logs"
	mount --bind "$var" "$var" && mounted="$var $mounted" &&
		mount -o remount,bind,ro "$var" || { echo "cannot bind-mount $var read-only"; return 1; }
	printf '{"run_id": "ro"}' >"$tmp/cgibody"
	cgi REQUEST_METHOD=POST PATH_INFO=/api/v1/dags/hello/runs \
		CONTENT_TYPE=application/json CONTENT_LENGTH=16
	cat "$tmp/cgi" "$tmp/cgi.err"
	grep -q '^Status: 503 ' "$tmp/cgi" && grep -qi '^Retry-After: [0-9]' "$tmp/cgi" &&
		grep -q '"code":"unavailable"' "$tmp/cgi" || return 1
	: >"$tmp/cgibody"
	cgi REQUEST_METHOD=GET PATH_INFO=/api/v1/health
	cat "$tmp/cgi"
	grep -q '"status":"unhealthy"' "$tmp/cgi" &&
		grep -q '"database":{"status":"error","error":"[^"]*read-only' "$tmp/cgi" ||
		return 1
	umount "$var"
	mounted="$mnt"
	# only the logs folder read-only: the API works, health says degraded
	mount --bind "$logs" "$logs" && mounted="$logs $mounted" &&
		mount -o remount,bind,ro "$logs" || return 1
	cgi REQUEST_METHOD=GET PATH_INFO=/api/v1/health
	cat "$tmp/cgi"
	grep -q '"status":"degraded"' "$tmp/cgi" &&
		grep -q '"logs":{"status":"error","error":"the logs folder .* read-only' "$tmp/cgi" ||
		return 1
	umount "$logs"
	mounted="$mnt"
	[ "$(sqlite3 "$db" 'PRAGMA integrity_check')" = ok ] || return 1
	printf '{"run_id": "ro"}' >"$tmp/cgibody"
	cgi REQUEST_METHOD=POST PATH_INFO=/api/v1/dags/hello/runs \
		CONTENT_TYPE=application/json CONTENT_LENGTH=16
	grep -q '^Status: 201 ' "$tmp/cgi" || { cat "$tmp/cgi"; return 1; }
	sound_with_run ro
}

check "server start serves the project, healthy" starts
check "locked past the busy timeout: writes 503 + Retry-After, reads answer, then recovers" \
	locked_writes_503_reads_answer
check "disk full: 503 + Retry-After, health names it, then recovers" disk_full_503_health_says
check "database moved away and back: the runner halts, then goes on by itself" \
	moved_away_halts_runner_until_back
check "database deleted: 503 and unhealthy, not recreated by the API; reopened once the runner makes it" \
	deleted_503_until_recreated
check "database replaced: the API opens the new file, the runner restarts on it" \
	replaced_is_reopened
check "read-only logs folder: health degraded, the run fails saying why, no crash loop" \
	read_only_logs_no_crash_loop
check "read-only database or logs folder: 503 and a clear health report" read_only_reported
echo "# server log:"
sed 's/^/#   /' "$tmp/server.err"

finish db_faults

#!/bin/sh
# metrics.sh - GET /metrics and health in cron mode, through pipewright.fcgi
# as plain CGI (the request in the environment) after real runs by
# `pipewright-runner --once`: the Prometheus text passes `promtool check
# metrics` (Debian's prometheus package; skipped without it), carries the
# series of DESIGN.md section 8 and no run ids, and has no
# pipewright_http_requests_total under CGI. With settings.runner: cron,
# health stays healthy while the last heartbeat is at most 150 s old, and
# is degraded after; in daemon mode 100 s is stale already. Heartbeat ages
# are set in the database with sqlite3, not waited for.
set -eu

fcgi="${PW_BUILDDIR:-.}/fcgi/pipewright.fcgi"
runner="${PW_BUILDDIR:-.}/runner-daemon/pipewright-runner"
cli="${PW_BUILDDIR:-.}/src/pipewright"
src="${PW_SRCDIR:-.}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$src/tests/lib.sh"

for p in daemon cron; do
	cp -R "$src/examples/iris" "$tmp/$p"
	chmod -R u+w "$tmp/$p"
	rm -rf "$tmp/$p/var"
done
printf '  runner: cron\n' >>"$tmp/cron/pipewright.yml"

# get PROJECT PATH: the body of a CGI GET (headers dropped) on stdout.
get() {
	env -i PIPEWRIGHT_PROJECT_PATH="$tmp/$1" GATEWAY_INTERFACE=CGI/1.1 \
		REQUEST_METHOD=GET PATH_INFO="$2" SCRIPT_NAME=/pipewright.fcgi \
		${ASAN_OPTIONS+ASAN_OPTIONS="$ASAN_OPTIONS"} \
		${UBSAN_OPTIONS+UBSAN_OPTIONS="$UBSAN_OPTIONS"} \
		"$fcgi" </dev/null | tr -d '\r' | sed '1,/^$/d'
}

# Runs: two of hello, one failing iris_training, through the CLI and --once.
"$cli" run -p hello --project "$tmp/daemon" >/dev/null 2>&1
"$cli" run -p hello --project "$tmp/daemon" >/dev/null 2>&1
"$cli" run -p iris_training --params min_accuracy=0.999 --project "$tmp/daemon" >/dev/null 2>&1 || :
get daemon /metrics >"$tmp/metrics"

promtool_passes() {
	command -v promtool >/dev/null || { echo "no promtool: skipped"; return 0; }
	promtool check metrics <"$tmp/metrics"
}

has_the_series() {
	for s in 'pipewright_build_info{version="[0-9.]*"} 1' \
		'pipewright_dag_runs{dag_id="hello",state="success"} 2' \
		'pipewright_dag_runs{dag_id="iris_training",state="failed"} 1' \
		'pipewright_dag_runs{dag_id="hello",state="queued"} 0' \
		'pipewright_task_instances{state="success"} [0-9]' \
		'pipewright_task_instances{state="failed"} 1' \
		'pipewright_dag_run_duration_seconds_count{dag_id="hello"} 2' \
		'pipewright_dag_run_duration_seconds_sum{dag_id="hello"} [0-9.]*' \
		'pipewright_queue_depth 0' \
		'pipewright_pool_slots{pool="default_pool",state="total"} 128' \
		'pipewright_pool_slots{pool="training",state="open"} 1' \
		'pipewright_runner_heartbeat_age_seconds [0-9.]*' \
		'pipewright_runner_up [01]' \
		'# TYPE pipewright_dag_run_duration_seconds summary'; do
		grep -q "^$s\$" "$tmp/metrics" || { echo "missing: $s"; return 1; }
	done
}

no_run_ids_no_http_counts_under_cgi() {
	! grep -q 'run_id\|T[0-9][0-9]\.[0-9][0-9]' "$tmp/metrics" &&
		! grep -q pipewright_http_requests_total "$tmp/metrics"
}

# set_heartbeat PROJECT SECONDS_AGO
set_heartbeat() {
	sqlite3 "$tmp/$1/var/pipewright.db" \
		"UPDATE runner SET last_heartbeat = CAST(strftime('%s','now') AS INTEGER) * 1000 - $2 * 1000 WHERE id = 1"
}

cron_health() {
	"$runner" --project "$tmp/cron" --once 2>/dev/null &&
		get cron /api/v1/health | grep -q '"status":"healthy"' &&
		set_heartbeat cron 100 && get cron /api/v1/health | grep -q '"status":"healthy"' &&
		get cron /metrics | grep -q '^pipewright_runner_up 1$' &&
		set_heartbeat cron 200 && get cron /api/v1/health | grep -q '"status":"degraded"' &&
		get cron /metrics | grep -q '^pipewright_runner_up 0$'
}

daemon_health_is_stricter() {
	set_heartbeat daemon 100 && get daemon /api/v1/health | grep -q '"status":"degraded"' &&
		get daemon /api/v1/health | grep -qE '"runner":{"status":"(stale|down)"'
}

bad_runner_setting_refused() {
	cp -R "$tmp/daemon" "$tmp/bad"
	printf '  runner: sometimes\n' >>"$tmp/bad/pipewright.yml"
	! "$cli" validate --project "$tmp/bad" 2>"$tmp/err" && grep -q 'daemon or cron' "$tmp/err"
}

command -v sqlite3 >/dev/null || { echo "metrics: sqlite3 not found"; exit 77; }
check "promtool check metrics passes" promtool_passes
check "the series of DESIGN.md section 8" has_the_series
check "no run ids in labels; no request counts under CGI" no_run_ids_no_http_counts_under_cgi
check "cron mode: healthy up to 150 s, degraded after" cron_health
check "daemon mode: 100 s is stale" daemon_health_is_stricter
check "settings.runner other than daemon|cron is refused" bad_runner_setting_refused
finish metrics

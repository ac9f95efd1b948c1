#!/bin/sh
# cgi.sh - runs pipewright.fcgi as a plain CGI program, the way a web
# server does: the request in environment variables, the body on stdin, the
# answer (Status line, headers, blank line, body) on stdout. Checks the
# server core: routing, envelopes, status codes, bodies, paging, CORS and
# roles. Only grep and sed look at the output.
#
# PW_CGI_WRAPPER (e.g. "valgrind -q --leak-check=full --error-exitcode=9")
# runs every request under a wrapper.
set -eu

bin="${PW_BUILDDIR:-.}/fcgi/pipewright.fcgi"
src="${PW_SRCDIR:-.}"
wrapper="${PW_CGI_WRAPPER:-}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0

# Three copies of the example project: plain, with CORS, with roles.
for p in plain cors roles; do
	cp -R "$src/examples/iris" "$tmp/$p"
	chmod -R u+w "$tmp/$p"
	rm -rf "$tmp/$p/var"
done
printf '  cors_origins: ["https://ok.example"]\n' >>"$tmp/cors/pipewright.yml"
printf '  roles: {alice: read, olga: operate, bob: admin}\n' >>"$tmp/roles/pipewright.yml"

# req PROJECT METHOD PATH [VAR=VALUE...]: one request; the body comes from
# $tmp/body when it exists. Headers go to $tmp/head (without CRs), the body
# to $tmp/resp, the log to $tmp/err.
req() {
	project=$1 method=$2 path=$3
	shift 3
	input=/dev/null
	[ -f "$tmp/body" ] && input="$tmp/body"
	env -i PIPEWRIGHT_PROJECT_PATH="$tmp/$project" GATEWAY_INTERFACE=CGI/1.1 \
		REQUEST_METHOD="$method" PATH_INFO="$path" SCRIPT_NAME=/pipewright.fcgi \
		${ASAN_OPTIONS+ASAN_OPTIONS="$ASAN_OPTIONS"} \
		${UBSAN_OPTIONS+UBSAN_OPTIONS="$UBSAN_OPTIONS"} \
		"$@" $wrapper "$bin" <"$input" >"$tmp/out" 2>"$tmp/err" || return 1
	tr -d '\r' <"$tmp/out" >"$tmp/all"
	sed -n '1,/^$/p' "$tmp/all" >"$tmp/head"
	sed '1,/^$/d' "$tmp/all" >"$tmp/resp"
}

# body TEXT: the next requests send TEXT (printf format) as their body.
body() {
	printf "$1" >"$tmp/body"
}

status_is() { grep -q "^Status: $1 " "$tmp/head"; }
header_has() { grep -qi "^$1" "$tmp/head"; }
body_has() { grep -q -- "$1" "$tmp/resp"; }
# error_is STATUS CODE: the status line and the error envelope
error_is() {
	status_is "$1" && body_has '^{"data":null,"error":{"code":"'"$2"'","message":"'
}

check() { # check NAME FUNCTION: counts a pass when FUNCTION succeeds
	name=$1
	shift
	rm -f "$tmp/body"
	if "$@" >"$tmp/log" 2>&1; then
		passed=$((passed + 1))
		echo "ok - $name"
	else
		failed=$((failed + 1))
		echo "not ok - $name"
		sed 's/^/# /' "$tmp/log" "$tmp/all" "$tmp/err" 2>/dev/null || true
	fi
}

version() {
	req plain GET /api/v1/version && status_is 200 &&
		header_has 'Content-Type: application/json' &&
		body_has '"api_version":"v1"' && body_has '"meta":{}'
}

prefix_mount() {
	req plain GET /api/v1/version SCRIPT_NAME=/pipewright && status_is 200 &&
		body_has '"api_version":"v1"'
}

request_uri_without_path_info() {
	req plain GET "" SCRIPT_NAME=/pipewright REQUEST_URI='/pipewright/api/v1/version?x=1' &&
		status_is 200 && body_has '"api_version":"v1"'
}

log_line() {
	req plain GET /api/v1/version REMOTE_USER=eve &&
		grep -q '^pipewright.fcgi: GET /api/v1/version 200 [0-9]*ms user=eve$' "$tmp/err" &&
		req plain GET /nowhere &&
		grep -q '^pipewright.fcgi: GET /nowhere 404 [0-9]*ms user=-$' "$tmp/err"
}

# Bytes that are not UTF-8, control characters and backslashes are logged
# as \xNN; UTF-8 is kept.
log_line_escaped() {
	req plain GET "$(printf '/a\377b\tc\\d/\303\251')" &&
		grep -q '^pipewright.fcgi: GET /a\\xffb\\x09c\\x5cd/'"$(printf '\303\251')"' 404 [0-9]*ms user=-$' \
			"$tmp/err"
}

unknown_path_404() {
	req plain GET /api/v1/nothing-here && error_is 404 not_found &&
		req plain GET /api/v1/version/extra && error_is 404 not_found &&
		req plain GET /api/v1/dags/ && error_is 404 not_found &&
		req plain GET /api/v1//runs && error_is 404 not_found
}

wrong_method_405() {
	req plain PUT /api/v1/pools && error_is 405 method_not_allowed &&
		header_has 'Allow: GET, POST$' &&
		req plain DELETE /api/v1/version && error_is 405 method_not_allowed &&
		header_has 'Allow: GET$'
}

not_json_415() {
	body '{"name":"p1","slots":2}'
	req plain POST /api/v1/pools CONTENT_TYPE=text/plain CONTENT_LENGTH=23 &&
		error_is 415 unsupported_media_type &&
		req plain POST /api/v1/pools CONTENT_LENGTH=23 &&
		error_is 415 unsupported_media_type &&
		req plain POST /api/v1/pools CONTENT_TYPE=application/jsonx CONTENT_LENGTH=23 &&
		error_is 415 unsupported_media_type
}

json_with_charset() {
	body '{"name":"p1","slots":2}'
	req plain POST /api/v1/pools CONTENT_TYPE='application/json; charset=utf-8' \
		CONTENT_LENGTH=23 && status_is 201
}

too_large_413() {
	body '{}'
	req plain POST /api/v1/pools CONTENT_TYPE=application/json CONTENT_LENGTH=1048577 &&
		error_is 413 payload_too_large &&
		req plain POST /api/v1/pools CONTENT_TYPE=application/json CONTENT_LENGTH=99999999999 &&
		error_is 413 payload_too_large
}

bad_content_length_400() {
	body '{}'
	req plain POST /api/v1/pools CONTENT_TYPE=application/json CONTENT_LENGTH=abc &&
		error_is 400 bad_request &&
		req plain POST /api/v1/pools CONTENT_TYPE=application/json CONTENT_LENGTH=10 &&
		error_is 400 bad_request && body_has 'shorter than Content-Length'
}

bad_json_400() {
	body '{"name": '
	req plain POST /api/v1/pools CONTENT_TYPE=application/json CONTENT_LENGTH=9 &&
		error_is 400 bad_request && body_has 'malformed JSON' &&
		body '{"name": "a"} x' &&
		req plain POST /api/v1/pools CONTENT_TYPE=application/json CONTENT_LENGTH=15 &&
		error_is 400 bad_request &&
		body '[1, 2]' &&
		req plain POST /api/v1/pools CONTENT_TYPE=application/json CONTENT_LENGTH=6 &&
		error_is 400 bad_request && body_has 'JSON object' &&
		req plain POST /api/v1/pools CONTENT_TYPE=application/json CONTENT_LENGTH=0 &&
		error_is 400 bad_request
}

schema_400() {
	body '{"name":"p2","slots":3,"colour":"red"}'
	req plain POST /api/v1/pools CONTENT_TYPE=application/json CONTENT_LENGTH=38 &&
		error_is 400 bad_request && body_has "unknown field 'colour'" &&
		body '{"name":"p2","slots":"3"}' &&
		req plain POST /api/v1/pools CONTENT_TYPE=application/json CONTENT_LENGTH=25 &&
		error_is 400 bad_request && body_has "field 'slots' must be" &&
		body '{"slots":3}' &&
		req plain POST /api/v1/pools CONTENT_TYPE=application/json CONTENT_LENGTH=11 &&
		error_is 400 bad_request && body_has "field 'name' is required"
}

paging() {
	req plain GET /api/v1/dags QUERY_STRING='limit=1&offset=1' && status_is 200 &&
		body_has '"meta":{"total":3,"limit":1,"offset":1,"next_cursor":"[A-Za-z0-9_-]*"}' || return 1
	# the last DAG by the cursor of the second
	cur=$(grep -o '"next_cursor":"[^"]*"' "$tmp/resp" | cut -d'"' -f4)
	req plain GET /api/v1/dags QUERY_STRING="limit=1&cursor=$cur" && status_is 200 &&
		body_has '"meta":{"total":3,"limit":1,"offset":0,"next_cursor":null}' &&
		req plain GET /api/v1/dags QUERY_STRING="cursor=$cur&offset=1" &&
		error_is 400 bad_request &&
		req plain GET /api/v1/dags && body_has '"limit":100,"offset":0' &&
		req plain GET /api/v1/dags QUERY_STRING='limit=2&limit=7' &&
		body_has '"limit":2,' || return 1
	for q in limit=0 limit=1001 limit=abc limit= limit=-1 limit=1.5 offset=-1 offset=x \
		offset=99999999999999999999 cursor= cursor=x cursor=%00; do
		req plain GET /api/v1/dags QUERY_STRING="$q" && error_is 400 bad_request || {
			echo "query $q"
			return 1
		}
	done
}

malformed_query_400() {
	req plain GET /api/v1/dags QUERY_STRING='tags=%zz' && error_is 400 bad_request &&
		req plain GET /api/v1/dags QUERY_STRING='limit=%3' && error_is 400 bad_request &&
		req plain GET /api/v1/dags QUERY_STRING='limit=%31' && status_is 200 &&
		body_has '"limit":1,'
}

path_params() {
	req plain GET /api/v1/dags/hello && status_is 200 && body_has '"dag_id":"hello"' &&
		req plain GET /api/v1/dags/h%65llo && status_is 200 &&
		body_has '"dag_id":"hello"' &&
		req plain GET /api/v1/dags/no_such_dag && error_is 404 not_found &&
		req plain GET /api/v1/dags/%zz && error_is 404 not_found
}

cors_preflight_allowed() {
	req cors OPTIONS /api/v1/pools HTTP_ORIGIN=https://ok.example \
		HTTP_ACCESS_CONTROL_REQUEST_METHOD=POST && status_is 204 &&
		header_has 'Access-Control-Allow-Origin: https://ok.example$' &&
		header_has 'Access-Control-Allow-Methods: GET, POST' &&
		header_has 'Access-Control-Allow-Headers: .*Content-Type' &&
		header_has 'Vary: Origin' && ! grep -q . "$tmp/resp"
}

cors_preflight_denied() {
	req cors OPTIONS /api/v1/pools HTTP_ORIGIN=https://evil.example && status_is 204 &&
		! header_has 'Access-Control-Allow' &&
		req plain OPTIONS /api/v1/pools HTTP_ORIGIN=https://ok.example && status_is 204 &&
		! header_has 'Access-Control-Allow' &&
		req cors OPTIONS /api/v1/nowhere HTTP_ORIGIN=https://ok.example &&
		error_is 404 not_found
}

cors_on_answers() {
	req cors GET /api/v1/version HTTP_ORIGIN=https://ok.example && status_is 200 &&
		header_has 'Access-Control-Allow-Origin: https://ok.example$' &&
		header_has 'Vary: Origin' &&
		req cors GET /api/v1/nowhere HTTP_ORIGIN=https://ok.example &&
		error_is 404 not_found &&
		header_has 'Access-Control-Allow-Origin: https://ok.example$' &&
		req cors GET /api/v1/version HTTP_ORIGIN=https://evil.example && status_is 200 &&
		! header_has 'Access-Control-Allow-Origin' &&
		req plain GET /api/v1/version HTTP_ORIGIN=https://ok.example &&
		! header_has 'Access-Control-Allow-Origin'
}

roles() {
	req roles GET /api/v1/dags && error_is 401 unauthorized &&
		header_has 'WWW-Authenticate: Basic realm="pipewright"' &&
		req roles GET /api/v1/dags REMOTE_USER=carol && error_is 403 forbidden &&
		req roles GET /api/v1/dags REMOTE_USER=alice && status_is 200 &&
		req roles GET /api/v1/dags REMOTE_USER=bob && status_is 200 &&
		body '{"name":"p3","slots":1}' &&
		req roles POST /api/v1/pools REMOTE_USER=alice CONTENT_TYPE=application/json \
			CONTENT_LENGTH=23 && error_is 403 forbidden &&
		req roles POST /api/v1/pools REMOTE_USER=olga CONTENT_TYPE=application/json \
			CONTENT_LENGTH=23 && error_is 403 forbidden &&
		req roles POST /api/v1/pools REMOTE_USER=bob CONTENT_TYPE=application/json \
			CONTENT_LENGTH=23 && status_is 201
}

# Health checks and the version answer anyone, as in Airflow and Kedro.
roles_public_routes() {
	req roles GET /health && status_is 200 && body_has '"status":"healthy"' &&
		req roles GET /api/v1/health && status_is 200 &&
		req roles GET /api/v1/version && status_is 200 &&
		req roles GET /api/v1/version REMOTE_USER=carol && status_is 200 &&
		req roles GET /snapshot && error_is 401 unauthorized
}

no_roles_everything_allowed() {
	body '{"name":"p4","slots":1}'
	req plain POST /api/v1/pools CONTENT_TYPE=application/json CONTENT_LENGTH=23 &&
		status_is 201
}

missing_project_500() {
	env -i PIPEWRIGHT_PROJECT_PATH="$tmp/none" GATEWAY_INTERFACE=CGI/1.1 \
		REQUEST_METHOD=GET PATH_INFO=/api/v1/version \
		$wrapper "$bin" </dev/null >"$tmp/out" 2>"$tmp/err" && return 1
	tr -d '\r' <"$tmp/out" >"$tmp/all"
	sed -n '1,/^$/p' "$tmp/all" >"$tmp/head"
	sed '1,/^$/d' "$tmp/all" >"$tmp/resp"
	error_is 500 internal && grep -q 'pipewright.fcgi: ' "$tmp/err"
}

cgi_ignores_arguments() {
	env -i PIPEWRIGHT_PROJECT_PATH="$tmp/plain" GATEWAY_INTERFACE=CGI/1.1 \
		REQUEST_METHOD=GET PATH_INFO=/api/v1/version QUERY_STRING=--project+/ \
		$wrapper "$bin" --project / </dev/null >"$tmp/out" 2>"$tmp/err" &&
		grep -q '^Status: 200 ' "$tmp/out"
}

# events_as ACCEPT TYPE: GET /api/v1/events with that Accept header answers
# TYPE (a stream ends after a second here)
events_as() {
	req plain GET /api/v1/events HTTP_ACCEPT="$1" PIPEWRIGHT_SSE_MAX_SECONDS=1 &&
		status_is 200 && header_has "Content-Type: $2"
}

# GET /api/v1/me: 401 without a user when roles are set; the user's role
# and what it may do otherwise.
me_per_role() {
	req roles GET /api/v1/me && error_is 401 unauthorized &&
		req roles GET /api/v1/me REMOTE_USER=olga && status_is 200 &&
		body_has '"user":"olga","role":"operate","can":{"read":true,"operate":true,"admin":false}' &&
		req roles GET /api/v1/me REMOTE_USER=mallory && status_is 200 &&
		body_has '"role":null,"can":{"read":false,"operate":false,"admin":false}' &&
		req plain GET /api/v1/me && status_is 200 &&
		body_has '"user":null,"role":null,"can":{"read":true,"operate":true,"admin":true}'
}

accept_negotiation() {
	events_as 'text/event-stream' text/event-stream &&
		events_as 'application/json;q=0.5, TEXT/EVENT-STREAM' text/event-stream &&
		events_as 'text/event-stream; q=0.1, application/json' application/json &&
		events_as 'text/event-stream;q=0' application/json &&
		events_as 'text/*, */*' application/json &&
		events_as 'application/*;q=0.9, text/event-stream;q=0.8' application/json
}

# A fresh install: the API never creates the database. Until the runner
# (or `pipewright db migrate`) has, it answers 503 saying so, and health
# says unhealthy; then it answers.
cli="${PW_BUILDDIR:-.}/src/pipewright"
fresh_install() {
	req plain GET /api/v1/dags && error_is 503 unavailable &&
		header_has 'Retry-After: ' && body_has 'no database yet' &&
		body_has 'pipewright db migrate' || return 1
	req plain GET /api/v1/health && status_is 503 && body_has '"status":"unhealthy"' &&
		body_has 'no database yet' || return 1
	[ ! -e "$tmp/plain/var/pipewright.db" ] || { echo "the API created the database"; return 1; }
	"$cli" db migrate --project "$tmp/plain" | grep -q 'pipewright.db: schema version [0-9]' ||
		return 1
	req plain GET /api/v1/dags && status_is 200
}
check "a fresh install: 503 until the database exists, then 200" fresh_install
for p in plain cors roles; do
	"$cli" db migrate --project "$tmp/$p" >/dev/null
done
check "GET /api/v1/version" version
check "a prefix mount (SCRIPT_NAME) routes on PATH_INFO" prefix_mount
check "REQUEST_URI when there is no PATH_INFO" request_uri_without_path_info
check "one log line per request on stderr" log_line
check "log lines are text whatever the request path holds" log_line_escaped
check "an unknown path is a 404 envelope" unknown_path_404
check "a wrong method is a 405 with Allow" wrong_method_405
check "a body that is not application/json is a 415" not_json_415
check "application/json with a charset is JSON" json_with_charset
check "a body over the limit is a 413" too_large_413
check "a bad or short Content-Length is a 400" bad_content_length_400
check "malformed JSON and non-objects are 400" bad_json_400
check "unknown, mistyped and missing fields are 400" schema_400
check "limit and offset, and bad values of them" paging
check "malformed percent-encoding in the query is a 400" malformed_query_400
check "path parameters are decoded and checked" path_params
check "CORS preflight from an allowed origin" cors_preflight_allowed
check "CORS preflight from other origins" cors_preflight_denied
check "CORS headers on every answer to an allowed origin" cors_on_answers
check "roles: 401 without a user, 403 below the route's role" roles
check "roles: health and version need no user" roles_public_routes
check "no roles mapping: everything allowed" no_roles_everything_allowed
check "me: the user, role and can per role; 401 without a user" me_per_role
check "no project: a 500 envelope, even as CGI" missing_project_500
check "arguments of a CGI request are ignored" cgi_ignores_arguments
check "events: Accept and its q-values choose stream or page" accept_negotiation

echo "cgi: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

# ---------------------------------------------------------------------------
# runs, task instances, stats (fcgi/runs.c, tasks.c, stats.c, objects.c).
# Appended section: runs after the core's summary, with its own. Needs the
# runner binary beside pipewright.fcgi to execute a run.
# ---------------------------------------------------------------------------
runner="${PW_BUILDDIR:-.}/runner-daemon/pipewright-runner"

# post PATH JSON [VAR=VALUE...]: a JSON POST to the plain project as alice
post() {
	path=$1
	body "$2"
	shift 2
	req plain POST "$path" CONTENT_TYPE=application/json \
		CONTENT_LENGTH=$(wc -c <"$tmp/body") REMOTE_USER=alice "$@"
}

runs_trigger() {
	post /api/v1/dags/iris_training/runs '{"run_id":"t1","conf":{"n":1}}' &&
		status_is 201 && body_has '"run_id":"t1"' && body_has '"state":"queued"' &&
		body_has '"triggered_by":"alice"' && body_has '"conf":{"n":1}' &&
		post /api/v1/dags/iris_training/runs '{"run_id":"t1"}' && error_is 409 conflict &&
		post /api/v1/dags/iris_training/runs '{"task_ids":["x"]}' && error_is 400 bad_request &&
		body_has "Pipeline does not contain nodes named \['x'\]." &&
		post /api/v1/dags/iris_training/runs '{"bogus":1}' && error_is 400 bad_request &&
		post /api/v1/dags/no_such_dag/runs '{}' && error_is 404 not_found
}

runs_execute() {
	env -i PATH="$PATH" "$runner" --project "$tmp/plain" --once >"$tmp/err" 2>&1 &&
		req plain GET /api/v1/dags/iris_training/runs/t1 && status_is 200 &&
		body_has '"state":"success"' && body_has '"task_instances":\[{"task_id":' &&
		req plain GET /api/v1/dags/iris_training/runs/t1/tasks/train && status_is 200 &&
		body_has '"tries":\[{"try_number":1,"state":"success"' &&
		req plain GET /api/v1/dags/iris_training/runs/t1/tasks/train/xcom &&
		body_has '"key":"return_value","value":"' &&
		req plain GET /api/v1/dags/iris_training/runs/t1/tasks/train/logs &&
		status_is 200 && header_has 'Content-Type: text/plain' &&
		req plain GET /api/v1/dags/iris_training/runs/t1/tasks/train/logs QUERY_STRING=try_number=7 &&
		error_is 404 not_found &&
		req plain GET /api/v1/dags/iris_training/runs/t1/tasks/train/logs QUERY_STRING=try_number=0 &&
		error_is 400 bad_request &&
		req plain GET /api/v1/dags/iris_training/runs/t1/tasks/nope && error_is 404 not_found
}

runs_list_queries() {
	req plain GET /api/v1/dags/iris_training/runs QUERY_STRING='state=success&order_by=-ended_at' &&
		status_is 200 && body_has '"meta":{"total":1,"limit":100,"offset":0,"next_cursor":null}' &&
		req plain GET /api/v1/dags/iris_training/runs QUERY_STRING='since=2999-01-01' &&
		body_has '"data":\[\],"meta":{"total":0' &&
		req plain GET /api/v1/dags/iris_training/runs QUERY_STRING='state=nope' &&
		error_is 400 bad_request &&
		req plain GET /api/v1/dags/iris_training/runs QUERY_STRING='order_by=run_id' &&
		error_is 400 bad_request &&
		req plain GET /api/v1/dags/iris_training/runs QUERY_STRING='until=yesterday' &&
		error_is 400 bad_request &&
		req plain GET '/api/v1/dags/bad$id/runs' && error_is 404 not_found
}

runs_cancel_retry() {
	req plain DELETE /api/v1/dags/iris_training/runs/t1 && error_is 409 conflict &&
		req plain POST /api/v1/dags/iris_training/runs/t1/retry && error_is 409 conflict &&
		post /api/v1/dags/iris_training/runs '{"run_id":"t2"}' && status_is 201 &&
		req plain DELETE /api/v1/dags/iris_training/runs/t2 && status_is 202 &&
		body_has '"run_id":"t2"' &&
		req plain DELETE /api/v1/dags/iris_training/runs/zz && error_is 404 not_found
}

stats_and_metrics() {
	req plain GET /api/v1/dags/iris_training/stats && status_is 200 &&
		body_has '"runs":{"queued":1,"running":0,"success":1,"failed":0,"cancelled":0}' &&
		body_has '"success_rate":1.0' && body_has '"duration_ms":{"avg":[0-9]' &&
		body_has '"last_run":{"run_id":"t2"' &&
		req plain GET /api/v1/metrics && status_is 200 &&
		body_has '"queue_depth":{"runs":1,"tasks":0}' &&
		body_has '"upstream_failed":0' && body_has '"name":"default_pool","slots":128' &&
		body_has '"runner":{"last_heartbeat":"' # --once leaves its heartbeat (DESIGN.md 8)
}

# queued_runs: how many runs of iris_training are queued (the list's total)
queued_runs() {
	req plain GET /api/v1/dags/iris_training/runs QUERY_STRING=state=queued &&
		sed -n 's/.*"meta":{"total":\([0-9]*\),.*/\1/p' "$tmp/resp"
}

# A waiting Kedro /run (no runner here) ends on the web server's SIGTERM;
# its run stays queued.
run_ends_on_sigterm() {
	before=$(queued_runs) && [ -n "$before" ] || return 1
	body '{"pipeline_names":["iris_training"]}'
	env -i PIPEWRIGHT_PROJECT_PATH="$tmp/plain" GATEWAY_INTERFACE=CGI/1.1 \
		REQUEST_METHOD=POST PATH_INFO=/run CONTENT_TYPE=application/json \
		CONTENT_LENGTH=$(wc -c <"$tmp/body") "$bin" <"$tmp/body" >"$tmp/out" 2>"$tmp/err" &
	pid=$!
	i=0
	until [ "$(queued_runs)" = $((before + 1)) ]; do
		i=$((i + 1))
		[ $i -lt 100 ] || { kill -9 $pid; echo "no queued run"; return 1; }
		sleep 0.05
	done
	kill -TERM $pid || return 1
	i=0
	while kill -0 $pid 2>/dev/null; do
		i=$((i + 1))
		[ $i -lt 40 ] || { kill -9 $pid; echo "still waiting after SIGTERM"; return 1; }
		sleep 0.05
	done
	status=0
	wait $pid || status=$?
	[ "$status" -eq 143 ] && [ "$(queued_runs)" = $((before + 1)) ]
}

if [ -x "$runner" ]; then
	passed=0
	failed=0
	check "trigger: 201, 409, Kedro's slicing errors, unknown DAG" runs_trigger
	check "a run executed: run, task, tries, xcom, logs" runs_execute
	check "runs list: state, order_by, since/until and bad values" runs_list_queries
	check "cancel and retry: 202 and 409" runs_cancel_retry
	check "DAG stats and metrics" stats_and_metrics
	check "a waiting /run ends on SIGTERM, its run stays queued" run_ends_on_sigterm
	echo "cgi (runs): $passed passed, $failed failed"
	[ "$failed" -eq 0 ]
fi

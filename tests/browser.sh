#!/bin/sh
# browser.sh - the dashboard (/ui/) in a real headless Chromium, driven by
# puppeteer-core (tests/browser/run.mjs), against a real `pipewright server
# start` on a free port with a copy of examples/iris plus the test DAGs of
# tests/browser/dags; a second one with settings.roles, also served by a
# real lighttpd (apache-conf/lighttpd.conf, basic auth, mounted at /pw);
# a third with a DAG of 1,000 tasks and 100,000 runs (tests/browser/scale.sh).
# Screenshots go to tests/browser-artifacts/ in the build folder. Skipped (77) only when chromium is not installed; node and
# the pinned npm packages are required (scripts/quickstart.sh installs
# them; this script runs `npm ci` into the build folder when they are
# missing there).
set -eu

bin="${PW_BUILDDIR:-.}/src/pipewright"
src="${PW_SRCDIR:-.}"
build="${PW_BUILDDIR:-.}"
tmp=$(mktemp -d)
servers=""
cleanup() {
	for pid in $servers; do
		kill -TERM "$pid" 2>/dev/null || :
		wait "$pid" 2>/dev/null || :
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

chromium=${PW_CHROMIUM:-$(command -v chromium || command -v chromium-browser || :)}
[ -n "$chromium" ] || { echo "browser: chromium not found (apt-get install chromium): skipped"; exit 77; }
command -v node >/dev/null || { echo "browser: node not found (apt-get install nodejs npm)"; exit 99; }
command -v curl >/dev/null || { echo "browser: curl not found"; exit 99; }

# The pinned packages, installed from the committed lock file into the
# build folder (the source folder may be read-only).
deps="$build/tests/browser"
mkdir -p "$deps"
if ! cmp -s "$src/tests/browser/package-lock.json" "$deps/package-lock.json" ||
	[ ! -d "$deps/node_modules/puppeteer-core" ]; then
	cp "$src/tests/browser/package.json" "$src/tests/browser/package-lock.json" "$deps/"
	(cd "$deps" && npm ci --no-audit --no-fund --loglevel=error) ||
		{ echo "browser: npm ci failed in $deps"; exit 99; }
fi
cp "$src/tests/browser/run.mjs" "$deps/run.mjs"

cp -R "$src/examples/iris" "$tmp/iris"
chmod -R u+w "$tmp/iris"
rm -rf "$tmp/iris/var"
cp "$src/tests/browser/dags/"*.yml "$tmp/iris/dags/"
mkdir -p "$tmp/iris/gates"
# A second project with settings.roles: with no web-server user, the API
# answers 401, which the pages must show as a message. The same project
# is also served by a real lighttpd with basic auth (below), whose users
# have these roles; "stranger" has none (403).
cp -R "$tmp/iris" "$tmp/roles"
printf '  roles: {reader: read, oper: operate, admin: admin}\n' >>"$tmp/roles/pipewright.yml"
# A third one for scale: a DAG of 1,000 tasks with 100,000 runs behind it.
cp -R "$tmp/iris" "$tmp/scale"
sh "$src/tests/browser/scale.sh" dag >"$tmp/scale/dags/big.yml"

# A port nothing answers on (curl cannot connect: exit 7), after $1.
free_port() {
	for p in 18741 18773 18809 18843 18877 18911 18947 18979 19013 19047 19081 19117 19151; do
		[ "$p" -gt "$1" ] || continue
		st=0
		curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$p/" || st=$?
		if [ "$st" -eq 7 ]; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# Starts `pipewright server start` on project $1, port $2; waits until
# /api/v1/health answers (healthy for the first one).
start_server() {
	"$bin" server start --project "$1" --port "$2" >"$1.out" 2>"$1.err" &
	servers="$servers $!"
	pid=$!
	tries=150
	until curl -sf --max-time 5 "http://127.0.0.1:$2/api/v1/health" 2>/dev/null |
		grep -q "\"status\":\"$3\""; do
		tries=$((tries - 1))
		if [ "$tries" -le 0 ] || ! kill -0 "$pid" 2>/dev/null; then
			echo "browser: the server of $1 did not become $3"
			cat "$1.out" "$1.err"
			exit 99
		fi
		sleep 0.2
	done
}

port=$(free_port 0) || { echo "browser: no free port"; exit 99; }
start_server "$tmp/iris" "$port" healthy
port2=$(free_port "$port") || { echo "browser: no second free port"; exit 99; }
start_server "$tmp/roles" "$port2" healthy
port3=$(free_port "$port2") || { echo "browser: no third free port"; exit 99; }
start_server "$tmp/scale" "$port3" healthy
sh "$src/tests/browser/scale.sh" runs "$tmp/scale/var/pipewright.db" ||
	{ echo "browser: cannot fill the scale project's database"; exit 99; }

# lighttpd from apache-conf/lighttpd.conf, the roles project mounted at
# /pw (SCRIPT_NAME) and at /, basic auth (mod_auth, a plain user file)
# on the whole /pw mount. It shares the database and the runner of the
# `server start` above.
lt="$tmp/lighttpd"
mkdir -p "$lt/run"
port4=$(free_port "$port3") || { echo "browser: no fourth free port"; exit 99; }
sed -e "s|@BINDIR@|$build/fcgi|g" -e "s|@PROJECT@|$tmp/roles|g" -e "s|@PREFIX@|/pw|g" \
	-e "s|@RUNDIR@|$lt/run|g" -e "s|@WWWDIR@|$build/www|g" \
	"$src/apache-conf/lighttpd.conf" >"$lt/pipewright.conf"
printf 'reader:rpw\noper:opw\nadmin:apw\nstranger:spw\n' >"$lt/users"
cat >"$lt/lighttpd.conf" <<EOF
server.document-root = "$lt/run"
server.port = $port4
server.bind = "127.0.0.1"
server.pid-file = "$lt/lighttpd.pid"
server.errorlog = "$lt/error.log"
server.upload-dirs = ( "$lt/run" )
server.modules = ( "mod_auth", "mod_authn_file" )
auth.backend = "plain"
auth.backend.plain.userfile = "$lt/users"
auth.require = ( "/pw/" => ( "method" => "basic", "realm" => "pipewright",
  "require" => "valid-user" ) )
mimetype.assign = ( ".html" => "text/html", ".js" => "text/javascript",
  ".css" => "text/css", ".json" => "application/json", ".png" => "image/png",
  ".svg" => "image/svg+xml" )
include "$lt/pipewright.conf"
EOF
lighttpd=${PW_LIGHTTPD:-$(command -v lighttpd || echo /usr/sbin/lighttpd)}
"$lighttpd" -D -f "$lt/lighttpd.conf" >"$lt/out" 2>&1 &
servers="$servers $!"
tries=150
until curl -sf --max-time 5 -u oper:opw "http://127.0.0.1:$port4/pw/api/v1/health" >/dev/null 2>&1; do
	tries=$((tries - 1))
	if [ "$tries" -le 0 ]; then
		echo "browser: lighttpd did not answer"
		cat "$lt/out" "$lt/error.log"
		exit 99
	fi
	sleep 0.2
done

artifacts="$build/tests/browser-artifacts"
rm -rf "$artifacts"
mkdir -p "$artifacts"
st=0
PW_URL="http://127.0.0.1:$port" PW_URL_ROLES="http://127.0.0.1:$port2" \
	PW_URL_SCALE="http://127.0.0.1:$port3" PW_URL_AUTH="http://127.0.0.1:$port4/pw" \
	PW_PROJECT="$tmp/iris" PW_PROJECT_ROLES="$tmp/roles" PW_CHROMIUM="$chromium" PW_ARTIFACTS="$artifacts" \
	node "$deps/run.mjs" || st=$?
[ "$st" -eq 0 ] || sed 's/^/# server: /' "$tmp/iris.err" "$tmp/roles.err" "$tmp/scale.err" \
	"$lt/out" "$lt/error.log"
echo "# screenshots: $artifacts"
exit "$st"

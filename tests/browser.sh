#!/bin/sh
# browser.sh - the dashboard (/ui/) in a real headless Chromium, driven by
# puppeteer-core (tests/browser/run.mjs), against a real `pipewright server
# start` on a free port with a copy of examples/iris plus the test DAGs of
# tests/browser/dags. Screenshots go to tests/browser-artifacts/ in the
# build folder. Skipped (77) only when chromium is not installed; node and
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
# answers 401, which the pages must show as a message.
cp -R "$tmp/iris" "$tmp/roles"
printf '  roles: {alice: read}\n' >>"$tmp/roles/pipewright.yml"

# A port nothing answers on (curl cannot connect: exit 7), after $1.
free_port() {
	for p in 18741 18773 18809 18843 18877 18911 18947 18979 19013 19047; do
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

artifacts="$build/tests/browser-artifacts"
rm -rf "$artifacts"
mkdir -p "$artifacts"
st=0
PW_URL="http://127.0.0.1:$port" PW_URL_ROLES="http://127.0.0.1:$port2" PW_PROJECT="$tmp/iris" PW_CHROMIUM="$chromium" PW_ARTIFACTS="$artifacts" \
	node "$deps/run.mjs" || st=$?
[ "$st" -eq 0 ] || sed 's/^/# server: /' "$tmp/iris.err" "$tmp/roles.err"
echo "# screenshots: $artifacts"
exit "$st"

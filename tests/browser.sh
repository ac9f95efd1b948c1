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
server=""
cleanup() {
	if [ -n "$server" ]; then
		kill -TERM "$server" 2>/dev/null || :
		wait "$server" 2>/dev/null || :
	fi
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

# A port nothing answers on (curl cannot connect: exit 7).
port=""
for p in 18741 18773 18809 18843 18877 18911 18947 18979 19013 19047; do
	st=0
	curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$p/" || st=$?
	if [ "$st" -eq 7 ]; then
		port=$p
		break
	fi
done
[ -n "$port" ] || { echo "browser: no free port"; exit 99; }
url="http://127.0.0.1:$port"

"$bin" server start --project "$tmp/iris" --port "$port" >"$tmp/server.out" 2>"$tmp/server.err" &
server=$!
tries=150
until curl -sf --max-time 5 "$url/api/v1/health" 2>/dev/null | grep -q '"status":"healthy"'; do
	tries=$((tries - 1))
	if [ "$tries" -le 0 ] || ! kill -0 "$server" 2>/dev/null; then
		echo "browser: the server did not become healthy"
		cat "$tmp/server.out" "$tmp/server.err"
		exit 99
	fi
	sleep 0.2
done

artifacts="$build/tests/browser-artifacts"
rm -rf "$artifacts"
mkdir -p "$artifacts"
st=0
PW_URL="$url" PW_PROJECT="$tmp/iris" PW_CHROMIUM="$chromium" PW_ARTIFACTS="$artifacts" \
	node "$deps/run.mjs" || st=$?
[ "$st" -eq 0 ] || sed 's/^/# server: /' "$tmp/server.err"
echo "# screenshots: $artifacts"
exit "$st"

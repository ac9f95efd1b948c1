#!/bin/sh
# openapi.sh - docs/openapi.yaml is valid and true:
# 1. every route of fcgi/routes.c is described in it: each {"METHOD",
#    "/pattern", ...} row, with :param written {param}, must be a path of
#    the document with that method under it (POSIX sh, grep, sed, awk);
# 2. it is a valid OpenAPI document (@apidevtools/swagger-parser) and
#    `redocly lint` (recommended rules) finds no error;
# 3. every response of a real server (`pipewright server start` on a copy
#    of examples/iris, with its runner) to an integration flow that asks
#    every operation, errors included, matches it (tests/openapi/flow.js).
# 2 and 3 need node and the pinned tools of tests/openapi (`npm ci` there:
# scripts/quickstart.sh does it; PW_NODE_MODULES names another node_modules,
# e.g. for make distcheck); without them the test fails, naming them.
set -u

srcdir=${PW_SRCDIR:-.}
routes=$srcdir/fcgi/routes.c
spec=$srcdir/docs/openapi.yaml

for f in "$routes" "$spec"; do
	if [ ! -r "$f" ]; then
		echo "openapi: cannot read $f" >&2
		exit 1
	fi
done

# "METHOD /path/{param}" per route row.
rows=$(sed -n 's/^[[:space:]]*{[[:space:]]*"\([A-Z]*\)",[[:space:]]*"\(\/[^"]*\)".*/\1 \2/p' "$routes" |
	sed 's/:\([A-Za-z_][A-Za-z0-9_]*\)/{\1}/g')

if [ -z "$rows" ]; then
	echo "openapi: no routes found in $routes" >&2
	exit 1
fi

# "METHOD /path" per operation of the document: a path is a key indented
# two spaces under "paths:", an operation a method key four spaces under it.
ops=$(awk '
	/^paths:[[:space:]]*$/ { inpaths = 1; next }
	inpaths && /^[^[:space:]#]/ { inpaths = 0 }
	!inpaths { next }
	/^  \/[^[:space:]]*:[[:space:]]*$/ {
		path = $1; sub(/:$/, "", path); gsub(/["\047]/, "", path); next
	}
	/^    (get|put|post|patch|delete|options|head):[[:space:]]*$/ {
		m = $1; sub(/:$/, "", m); print toupper(m), path
	}
' "$spec")

passed=0
failed=0
nl='
'
IFS=$nl
for row in $rows; do
	if printf '%s\n' "$ops" | grep -qxF "$row"; then
		passed=$((passed + 1))
	else
		echo "openapi: $row is not described in docs/openapi.yaml" >&2
		failed=$((failed + 1))
	fi
done

echo "openapi: routes: $passed passed, $failed failed"
[ "$failed" -eq 0 ] || exit 1

tools=$srcdir/tests/openapi
NODE_PATH=${PW_NODE_MODULES:-$tools/node_modules}
export NODE_PATH
if ! command -v node >/dev/null || [ ! -d "$NODE_PATH/@apidevtools/swagger-parser" ]; then
	echo "openapi: node or the tools in $NODE_PATH are missing: run 'npm ci' in $tools" >&2
	exit 1
fi
node "$tools/validate-spec.js" "$spec" || exit 1
# No telemetry, no update check: the test makes no request beyond loopback.
REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
	node "$NODE_PATH/@redocly/cli/bin/cli.js" lint --format stylish "$spec" || exit 1

bin=${PW_BUILDDIR:-.}/src/pipewright
tmp=$(mktemp -d)
server=""
cleanup() {
	if [ -n "$server" ]; then
		kill -TERM "$server" 2>/dev/null
		wait "$server" 2>/dev/null
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
cp -R "$srcdir/examples/iris" "$tmp/iris"
chmod -R u+w "$tmp/iris"
rm -rf "$tmp/iris/var"
port=$(node -e 'const s = require("net").createServer().listen(0, "127.0.0.1",
	() => { console.log(s.address().port); s.close(); });')
"$bin" server start --project "$tmp/iris" --port "$port" >"$tmp/server.out" 2>&1 &
server=$!
i=0
until grep -q '^pipewright: serving ' "$tmp/server.out"; do
	i=$((i + 1))
	if [ "$i" -gt 200 ] || ! kill -0 "$server" 2>/dev/null; then
		cat "$tmp/server.out" >&2
		echo "openapi: the server did not start" >&2
		exit 1
	fi
	sleep 0.1
done
node "$tools/flow.js" "$spec" "http://127.0.0.1:$port" || { cat "$tmp/server.out" >&2; exit 1; }

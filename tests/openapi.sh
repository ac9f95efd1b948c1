#!/bin/sh
# openapi.sh - every route of fcgi/routes.c is described in docs/openapi.yaml:
# each {"METHOD", "/pattern", ...} row, with :param written {param}, must be
# a path of the document with that method under it. POSIX sh, grep, sed and
# awk only (no python on CI).
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

echo "openapi: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

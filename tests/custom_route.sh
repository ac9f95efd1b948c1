#!/bin/sh
# custom_route.sh - the server as a library: examples/custom-route/pipelines
# (the server plus GET /pipelines) answers its own route and the built-in
# ones as plain CGI; and the example compiles against a `make install
# DESTDIR=...` copy through pipewright.pc.
set -eu

build="${PW_BUILDDIR:-.}"
src="${PW_SRCDIR:-.}"
bin="$build/examples/custom-route/pipelines"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$src/tests/lib.sh"


cp -R "$src/examples/iris" "$tmp/iris"
chmod -R u+w "$tmp/iris"
rm -rf "$tmp/iris/var"
"$build/src/pipewright" db migrate --project "$tmp/iris" >/dev/null

# cgi PROGRAM PATH: one GET as CGI; the body (after the blank line) on stdout.
cgi() {
	env -i PIPEWRIGHT_PROJECT_PATH="$tmp/iris" GATEWAY_INTERFACE=CGI/1.1 \
		REQUEST_METHOD=GET PATH_INFO="$2" SCRIPT_NAME=/pipelines \
		${ASAN_OPTIONS+ASAN_OPTIONS="$ASAN_OPTIONS"} \
		${UBSAN_OPTIONS+UBSAN_OPTIONS="$UBSAN_OPTIONS"} \
		"$1" </dev/null >"$tmp/resp" 2>"$tmp/err" || { cat "$tmp/err"; return 1; }
	tr -d '\r' <"$tmp/resp" | sed '1,/^$/d'
}

pipelines_lists_dags() {
	body=$(cgi "$bin" /pipelines)
	echo "$body"
	[ "$body" = '{"data":{"pipelines":["__default__","data_quality","hello","iris_training"]},"meta":{}}' ]
}

builtin_route_answers() {
	body=$(cgi "$bin" /api/v1/version)
	echo "$body"
	echo "$body" | grep -q '"version"'
}

unknown_route_is_404() {
	cgi "$bin" /nothing >/dev/null
	head -1 "$tmp/resp" | grep -q '^Status: 404'
}

# The installed interface: headers, libraries and pipewright.pc under DESTDIR.
compiles_against_install() {
	[ -n "${PW_MAKE:-}" ] || { echo "PW_MAKE unset: run from make check"; return 1; }
	${PW_MAKE} -s -C "$build" install DESTDIR="$tmp/inst" >"$tmp/install.log" 2>&1 ||
		{ cat "$tmp/install.log"; return 1; }
	pc=$(find "$tmp/inst" -name pipewright.pc)
	[ -n "$pc" ] || { echo "no pipewright.pc installed"; return 1; }
	flags=$(PKG_CONFIG_PATH=$(dirname "$pc") PKG_CONFIG_SYSROOT_DIR="$tmp/inst" \
		pkg-config --cflags --libs pipewright) || return 1
	echo "pkg-config: $flags"
	# shellcheck disable=SC2086 # flags are words
	${PW_CC:-cc} -std=c11 -Wall -Werror -o "$tmp/pipelines" \
		"$src/examples/custom-route/pipelines.c" $flags || return 1
	body=$(cgi "$tmp/pipelines" /pipelines)
	echo "$body" | grep -q '"pipelines":\["__default__",'
}

check "GET /pipelines lists __default__ and the DAGs" pipelines_lists_dags
check "a built-in route still answers" builtin_route_answers
check "an unknown route is still 404" unknown_route_is_404
check "the example compiles against an installed copy (pipewright.pc)" compiles_against_install

finish custom_route

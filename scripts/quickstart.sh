#!/bin/sh
# quickstart.sh - the README's two commands, each doing all of its own set-up
# on a fresh Debian bookworm machine (as root, or with sudo available):
#
#   scripts/quickstart.sh run    build, then serve examples/iris (a copy) until Ctrl-C
#   scripts/quickstart.sh test   build, then run the whole test suite
#
# The build goes to build/ (out of tree), so the source tree stays clean.
set -eu

cd "$(dirname "$0")/.."
top=$(pwd)

# Debian packages the build, the tests and the example need (munge and
# slurm*: tests/slurm.sh runs the Slurm runner against a real Slurm).
PACKAGES="build-essential autoconf automake pkg-config
	libfcgi-dev libjson-c-dev libyaml-dev libsqlite3-dev libcurl4-openssl-dev libcmocka-dev
	lighttpd apache2 libapache2-mod-fcgid sqlite3 ninja-build valgrind curl
	munge slurmctld slurmd slurm-client
	nodejs chromium libgraphviz-dev prometheus mandoc systemd clang"

install_packages() {
	missing=""
	for pkg in $PACKAGES; do
		dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" ||
			missing="$missing $pkg"
	done
	[ -z "$missing" ] && return 0
	echo "quickstart: installing$missing"
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
}

build() {
	[ -x configure ] && [ configure -nt configure.ac ] && [ Makefile.in -nt Makefile.am ] ||
		autoreconf -fi
	mkdir -p build
	cd build
	[ -f Makefile ] || ../configure
	make -j"$(nproc)"
	cd "$top"
}

# The tests' npm packages, exact versions from their package-lock.json:
# the OpenAPI validators (tests/openapi) and puppeteer-core for the browser
# tests (into build/tests/browser, where tests/browser.sh runs them).
# NodeSource's nodejs brings npm and conflicts with Debian's npm package;
# Debian's nodejs needs it: so npm is installed only when missing.
npm_deps() {
	command -v npm >/dev/null || PACKAGES=npm install_packages
	(cd tests/openapi && npm ci --no-audit --no-fund --loglevel=error)
	mkdir -p build/tests/browser
	cp tests/browser/package.json tests/browser/package-lock.json build/tests/browser/
	(cd build/tests/browser && npm ci --no-audit --no-fund --loglevel=error)
}

# Prints the totals of the last `make check` as "N passed, N failed": the
# cmocka programs' counts and the shell tests' own "N passed, N failed".
summarize_tests() {
	cat build/tests/unit/*.log build/tests/integration/*.log build/tests/*.sh.log \
		2>/dev/null | awk '
		/\[  PASSED  \] [0-9]+ test/ { passed += $4 }
		/\[  FAILED  \] [0-9]+ test/ { failed += $4 }
		/^[a-z() ]+: [0-9]+ passed, [0-9]+ failed/ {
			sub(/^[^:]*: /, ""); passed += $1; failed += $3 }
		END { printf "tests: %d passed, %d failed\n", passed, failed }'
}

case "${1:-}" in
run)
	# scripts/quickstart.sh run [--port P] [--host H] [--project DIR] [...]:
	# the options go on to `pipewright server start`.
	shift
	project="" host=127.0.0.1 port=8000
	n=$#
	while [ "$n" -gt 0 ]; do
		a=$1
		shift
		n=$((n - 1))
		case $a in
		--project) project=$1; shift; n=$((n - 1)); continue ;;
		--project=*) project=${a#--project=}; continue ;;
		-p | --port) port=$1 ;;
		--port=*) port=${a#--port=} ;;
		-H | --host) host=$1 ;;
		--host=*) host=${a#--host=} ;;
		esac
		set -- "$@" "$a"
	done
	install_packages
	build
	if [ -z "$project" ]; then
		# Work on a copy, so the example stays clean.
		project=$(mktemp -d)/iris
		cp -R examples/iris "$project"
	fi
	./build/src/pipewright validate --project "$project"
	./build/src/pipewright dags --project "$project"
	url="http://$host:$port"
	echo
	echo "Starting the server (lighttpd + pipewright.fcgi) and the runner; Ctrl-C stops them."
	echo "Open $url/ (the dashboard) or $url/docs (the API docs)."
	echo "(Port $port busy? scripts/quickstart.sh run --port 8080.) In another terminal, try:"
	echo "  curl $url/health"
	echo "  ./build/src/pipewright run -p iris_training --url $url"
	echo "  ./build/src/pipewright runs --url $url"
	echo "  cat $project/data/08_reporting/report.txt      (once the run succeeded)"
	echo
	exec ./build/src/pipewright server start --project "$project" "$@"
	;;
test)
	install_packages
	build
	npm_deps
	status=0
	make -C build -j"$(nproc)" check || status=$?
	[ $status -eq 0 ] || cat build/test-suite.log
	summarize_tests
	exit $status
	;;
*)
	echo "usage: $0 run [--port P] [--host H] [--project DIR] | test" >&2
	exit 2
	;;
esac

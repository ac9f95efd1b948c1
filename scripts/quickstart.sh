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
	munge slurmctld slurmd slurm-client clang"

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
	install_packages
	build
	# Work on a copy, so the example stays clean.
	project=$(mktemp -d)/iris
	cp -R examples/iris "$project"
	./build/src/pipewright validate --project "$project"
	./build/src/pipewright dags --project "$project"
	echo
	echo "Starting the server (lighttpd + pipewright.fcgi) and the runner; Ctrl-C stops them."
	echo "In another terminal, try:"
	echo "  curl http://127.0.0.1:8000/health"
	echo "  curl -X POST -H 'Content-Type: application/json' -d '{}' \\"
	echo "    http://127.0.0.1:8000/api/v1/dags/iris_training/runs"
	echo "  curl http://127.0.0.1:8000/api/v1/dags/iris_training/runs"
	echo "  cat $project/data/08_reporting/report.txt      (once the run succeeded)"
	echo
	exec ./build/src/pipewright server start --project "$project"
	;;
test)
	install_packages
	build
	status=0
	make -C build -j"$(nproc)" check || status=$?
	[ $status -eq 0 ] || cat build/test-suite.log
	summarize_tests
	exit $status
	;;
*)
	echo "usage: $0 run|test" >&2
	exit 2
	;;
esac

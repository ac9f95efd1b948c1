#!/bin/sh
# operator.sh - what an operator installs: the man pages are clean under
# `mandoc -T lint -W warning`, the systemd units pass `systemd-analyze
# verify` (with their ExecStart pointing into the build tree), `make
# install DESTDIR=...` lays out binaries, man pages, units, completion,
# the example, apache-conf/ and the docs, the installed pipewright
# validates the installed (read-only) example, and bash completion
# completes commands and DAG ids. A missing tool skips its check.
set -eu

src="${PW_SRCDIR:-.}"
build="${PW_BUILDDIR:-.}"
make="${PW_MAKE:-make}"
tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
. "$src/tests/lib.sh"

man_pages_lint_clean() {
	command -v mandoc >/dev/null || { echo "no mandoc: skipped"; return 0; }
	for m in pipewright.1 pipewright.yml.5 pipewright-runner.8 pipewright.fcgi.8; do
		out=$(mandoc -T lint -W warning "$src/docs/man/$m" 2>&1) || { echo "$out"; return 1; }
		[ -z "$out" ] || { echo "$out"; return 1; }
	done
}

man_page_has_every_key() {
	# every settings key the loader knows, every DAG and task key
	for k in project_name package_name version settings database logs_dir \
		max_parallel_tasks events_keep_days events_keep_max runner runners cors_origins \
		roles description schedule paused start_date catchup max_active_runs tags \
		params defaults tasks id command inputs outputs upstream namespace retries \
		retry_delay timeout pool pool_slots trigger_rule env cwd type filepath versioned \
		slots partition sbatch_args poll_interval time_margin status_wait; do
		grep -q "^\.It Ic $k\b\|Ic $k\b\|^    $k:" "$src/docs/man/pipewright.yml.5" ||
			{ echo "pipewright.yml(5) lacks $k"; return 1; }
	done
}

units_verify() {
	command -v systemd-analyze >/dev/null || { echo "no systemd-analyze: skipped"; return 0; }
	mkdir -p "$tmp/units"
	for u in pipewright-runner.service pipewright-fcgi.socket pipewright-fcgi.service; do
		sed -e "s|@bindir@/pipewright-runner|$build/runner-daemon/pipewright-runner|" \
			-e "s|@bindir@/pipewright.fcgi|$build/fcgi/pipewright.fcgi|" \
			"$src/systemd/$u.in" >"$tmp/units/$u"
	done
	# --man=no: the man: links name pages installed by make install only
	(cd "$tmp/units" && systemd-analyze verify --man=no pipewright-runner.service \
		pipewright-fcgi.socket pipewright-fcgi.service) 2>&1 |
		grep -v 'Failed to prepare filename\|^$' >"$tmp/verify" || :
	[ ! -s "$tmp/verify" ] || { cat "$tmp/verify"; return 1; }
}

units_are_hardened() {
	for u in pipewright-runner.service pipewright-fcgi.service; do
		for k in 'User=pipewright' 'NoNewPrivileges=yes' 'ProtectSystem=strict' \
			'EnvironmentFile=-/etc/default/pipewright'; do
			grep -qx "$k" "$src/systemd/$u.in" || { echo "$u: no $k"; return 1; }
		done
	done
	grep -qx 'StandardInput=socket' "$src/systemd/pipewright-fcgi.service.in" &&
		grep -qx 'SocketMode=0660' "$src/systemd/pipewright-fcgi.socket.in"
}

install_layout() {
	"$make" -s -C "$build" install DESTDIR="$tmp/inst" >"$tmp/install.log" 2>&1 ||
		{ tail -20 "$tmp/install.log"; return 1; }
	prefix=$(sed -n 's/^prefix = //p' "$build/Makefile")
	root="$tmp/inst$prefix"
	doc="$root/share/doc/pipewright"
	for f in bin/pipewright bin/pipewright-runner bin/pipewright.fcgi \
		share/man/man1/pipewright.1 share/man/man5/pipewright.yml.5 \
		share/man/man8/pipewright-runner.8 share/man/man8/pipewright.fcgi.8 \
		lib/systemd/system/pipewright-runner.service \
		lib/systemd/system/pipewright-fcgi.socket lib/systemd/system/pipewright-fcgi.service \
		share/bash-completion/completions/pipewright \
		share/doc/pipewright/README.md share/doc/pipewright/runner.md \
		share/doc/pipewright/hosting.md share/doc/pipewright/openapi.yaml \
		share/doc/pipewright/apache-conf/README.md share/doc/pipewright/apache-conf/lighttpd.conf \
		share/doc/pipewright/examples/iris/pipewright.yml \
		share/doc/pipewright/examples/iris/dags/hello.yml \
		share/doc/pipewright/systemd/pipewright.default; do
		[ -e "$root/$f" ] || { echo "not installed: $f"; return 1; }
	done
	grep -q "^ExecStart=$prefix/bin/pipewright-runner\$" \
		"$root/lib/systemd/system/pipewright-runner.service" &&
		# the installed example is read-only; validate needs no database
		chmod -R a-w "$doc/examples" &&
		"$root/bin/pipewright" validate --project "$doc/examples/iris" | grep -q ': OK$'
}

apache_conf_names_the_install_layout() {
	# the placeholder's example is where make install puts pipewright.fcgi
	grep -q '`@BINDIR@`  | folder holding `pipewright.fcgi` | `/usr/local/bin`' \
		"$src/apache-conf/README.md" &&
		! grep -q '/usr/local/lib/pipewright' "$src/apache-conf/README.md"
}

bash_completion() {
	command -v bash >/dev/null || { echo "no bash: skipped"; return 0; }
	cp -R "$src/examples/iris" "$tmp/iris"
	chmod -R u+w "$tmp/iris"
	PATH="$build/src:$PATH" bash -c '
		. "$1"
		COMP_WORDS=(pipewright lo); COMP_CWORD=1; _pipewright
		[ "${COMPREPLY[*]}" = logs ] || { echo "commands: ${COMPREPLY[*]}"; exit 1; }
		COMP_WORDS=(pipewright pause --project "$2" iris); COMP_CWORD=4; _pipewright
		[ "${COMPREPLY[*]}" = iris_training ] || { echo "dags: ${COMPREPLY[*]}"; exit 1; }
		COMP_WORDS=(pipewright logs --fo); COMP_CWORD=2; _pipewright
		[ "${COMPREPLY[*]}" = --follow ] || { echo "options: ${COMPREPLY[*]}"; exit 1; }
	' sh "$src/scripts/completion/pipewright" "$tmp/iris"
}

check "man pages are clean under mandoc -T lint -W warning" man_pages_lint_clean
check "pipewright.yml(5) has every key" man_page_has_every_key
check "systemd-analyze verify passes on the units" units_verify
check "the units are hardened and socket-activated" units_are_hardened
check "make install lays out everything; the installed example validates" install_layout
check "apache-conf/README.md names the install layout" apache_conf_names_the_install_layout
check "bash completion: commands, DAG ids, options" bash_completion
finish operator

#!/bin/sh
# cli.sh - runs the `pipewright` binary the way a user does: validate and
# dags on the example project, and validate on a broken copy of it.
set -eu

bin="${PW_BUILDDIR:-.}/src/pipewright"
src="${PW_SRCDIR:-.}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$src/tests/lib.sh"


validate_example() {
	"$bin" validate --project "$src/examples/iris" | grep -q ': OK$'
}

dags_lists_tasks() {
	out=$("$bin" dags --project "$src/examples/iris")
	echo "$out" | grep -q '^iris_training ' && echo "$out" | grep -q 'evaluate'
}

broken_copy_fails_with_line() {
	cp -R "$src/examples/iris" "$tmp/broken"
	chmod -R u+w "$tmp/broken"
	printf 'tasks:\n  - id: a\n    command: [x]\n    upstream: [ghost]\n' >"$tmp/broken/dags/zz.yml"
	if "$bin" validate --project "$tmp/broken" 2>"$tmp/err"; then
		return 1
	fi
	grep -q "^dags/zz.yml:4: .*ghost" "$tmp/err"
}

env_var_names_project() {
	PIPEWRIGHT_PROJECT_PATH="$src/examples/iris" "$bin" validate | grep -q ': OK$'
}

bad_env_refused() {
	! "$bin" validate --project "$src/examples/iris" --env '../x' 2>"$tmp/err" &&
		grep -q 'invalid environment name' "$tmp/err"
}

# A typo in a parameter and a dataset nobody has: reported with the lines
# that read them, and validate exits 1 (the DAG itself still loads).
free_inputs_reported() {
	cp -R "$src/examples/iris" "$tmp/free"
	chmod -R u+w "$tmp/free"
	printf 'tasks:\n  - id: a\n    command: [x]\n    inputs: "params:topn"\n  - id: b\n    command: [x]\n    inputs: [ghost_in]\n' \
		>"$tmp/free/dags/zz.yml"
	if "$bin" validate --project "$tmp/free" 2>"$tmp/err"; then
		return 1
	fi
	grep -qF "dags/zz.yml:4: ValueError: Pipeline input(s) {'params:topn'} not found in the DataCatalog" "$tmp/err" &&
		grep -qF "dags/zz.yml:7: ValueError: Pipeline input(s) {'ghost_in'} not found in the DataCatalog" "$tmp/err" &&
		"$bin" dags --project "$tmp/free" 2>/dev/null | grep -q '^zz '
}

missing_env_folder_fails() {
	! "$bin" validate --project "$src/examples/iris" --env nope 2>"$tmp/err" &&
		grep -q "MissingConfigException: .*conf/nope" "$tmp/err"
}

unknown_key_suggests() {
	cp -R "$src/examples/iris" "$tmp/typo"
	chmod -R u+w "$tmp/typo"
	printf 'tasks:\n  - name: a\n    command: [x]\n' >"$tmp/typo/dags/zz.yml"
	! "$bin" validate --project "$tmp/typo" 2>"$tmp/err" &&
		grep -qF "dags/zz.yml:2: unknown key 'name' in task #1 (did you mean 'id'? allowed: id, command, inputs," "$tmp/err"
}

unknown_command_exits_2() {
	status=0
	"$bin" frobnicate 2>/dev/null || status=$?
	[ "$status" -eq 2 ]
}

check "validate the example project" validate_example
check "dags lists the tasks" dags_lists_tasks
check "a broken DAG is reported with file and line" broken_copy_fails_with_line
check "PIPEWRIGHT_PROJECT_PATH names the project" env_var_names_project
check "a bad environment name is refused" bad_env_refused
check "an unknown command exits 2" unknown_command_exits_2
check "free inputs nothing defines are reported with their lines" free_inputs_reported
check "--env naming a missing folder fails" missing_env_folder_fails
check "an unknown key suggests the nearest allowed key" unknown_key_suggests

finish cli

# lib.sh - helpers sourced by the task scripts (POSIX sh, awk).
export LC_ALL=C   # "." as the decimal point in awk and printf

# json_get FILE KEY [DEFAULT]: the scalar value of "KEY" in a flat JSON
# object (a string without its quotes, or a number/true/false/null), or
# DEFAULT when FILE or KEY is missing.
json_get() {
	v=
	if [ -r "$1" ]; then
		v=$(awk -v key="\"$2\"" '
			{ text = text $0 "\n" }
			END {
				i = index(text, key)
				if (!i) exit
				s = substr(text, i + length(key))
				sub(/^[ \t\r\n]*:[ \t\r\n]*/, "", s)
				if (substr(s, 1, 1) != "\"") {      # number, true, false, null
					sub(/[ \t\r\n,}\]].*/, "", s)
					print s
					exit
				}
				out = ""                             # string: undo \" \\ \/
				for (j = 2; j <= length(s); j++) {
					c = substr(s, j, 1)
					if (c == "\"") break
					if (c == "\\") { j++; c = substr(s, j, 1) }
					out = out c
				}
				print out
			}' "$1")
	fi
	printf '%s\n' "${v:-${3:-}}"
}

# param NAME [DEFAULT]: an effective parameter of this run.
param() {
	json_get "${PIPEWRIGHT_PARAMS:-}" "$1" "${2:-}"
}

# out_dir PATH...: creates the folders that output files go in. A versioned
# dataset's path is <filepath>/<run_id>/<basename>, a folder that is new
# for every run.
out_dir() {
	for f in "$@"; do mkdir -p "$(dirname "$f")"; done
}

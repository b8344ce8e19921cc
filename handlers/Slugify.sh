#!/bin/sh
# Slugify: turn a title into a URL slug (POSIX sh, no dependencies).
#
# Job:     {"class":"Slugify","args":["Hello, World!"]}  result {"slug":"hello-world"}
# By hand: printf '["Hello, World!"]' | ./handlers/Slugify.sh
#
# The result and, on bad input, the failure are JSON lines for resqued, on
# the descriptor named by RESQUE_RESULT_FD (3). Run by hand, without it set,
# they go to stdout.

report() {
	if [ -n "${RESQUE_RESULT_FD:-}" ]; then
		printf '%s\n' "$1" >&"$RESQUE_RESULT_FD"
	else
		printf '%s\n' "$1"
	fi
}

# fail MESSAGE: explain on stderr (logged), report the failure, exit 1. With
# no "backtrace" field the failure record keeps the stderr lines as one.
fail() {
	echo "Slugify: $1" >&2
	msg=$(printf '%s' "$1" | tr -d '\000-\037' | cut -c1-300 | sed 's/[\\"]/\\&/g')
	report "{\"exception\":\"ArgumentError\",\"error\":\"$msg\"}"
	exit 1
}

args=$(cat)
# The first element of the args array, if it is a string (escapes kept).
text=$(printf '%s' "$args" | tr -d '\r\n' |
	sed -n 's/^[[:space:]]*\[[[:space:]]*"\([^"\\]*\(\\.[^"\\]*\)*\)".*/\1/p')
[ -n "$text" ] || fail "args must be [\"some title\"], got $args"

# JSON escapes (\", \n, \u00e9) become separators, then every run of bytes
# that are not ASCII letters or digits becomes one "-".
slug=$(printf '%s' "$text" | sed 's/\\u[0-9a-fA-F]\{4\}/-/g; s/\\./-/g' |
	tr 'A-Z' 'a-z' | tr -cs 'a-z0-9' '-' | sed 's/^-*//; s/-*$//')
[ -n "$slug" ] || fail "no letters or digits to make a slug of in \"$text\""

report "{\"result\":{\"slug\":\"$slug\"}}"

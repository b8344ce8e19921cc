#!/bin/sh
# Echo: print the job's args (read from stdin) with the job's id.
#
# Job:     {"class":"Echo","args":[...anything...]}
# By hand: echo '["hello", 42]' | RESQUE_CLASS=Echo RESQUE_JOB_ID=abc ./handlers/Echo.sh
#
# stdin holds the payload's "args" JSON array, then EOF. Everything written to
# stdout or stderr goes to resqued's log, one entry per line.
set -eu

args=$(cat)
printf 'Echo job %s from queue %s: %s\n' \
	"${RESQUE_JOB_ID:-(no id)}" "${RESQUE_QUEUE:-(none)}" "$args"
exit 0

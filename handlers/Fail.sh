#!/bin/sh
# Fail: always fails, to show what a failure record looks like.
#
# Job:     {"class":"Fail","args":[3]}   exits with status 3 (default 1)
# By hand: echo '[3]' | RESQUE_CLASS=Fail ./handlers/Fail.sh; echo "status $?"
#
# The stderr lines below end up, newest last, in the "backtrace" of the
# record resqued pushes to resque:failed; the exit status is in its "error"
# ("handler Fail exited with status 3"). [0] makes it succeed.

args=$(cat)

# Take the first element of the args array: [3], ["3"] and [ 3 , "x"] all
# give 3. Anything that is not a number 0-255 falls back to 1.
first=$(printf '%s' "$args" | tr -d '[]" \t\r\n' | cut -d, -f1)
case $first in
'' | *[!0-9]* | ????*)
	code=1
	[ -n "$first" ] && echo "Fail: ignoring exit status '$first' (want 0-255), using 1" >&2
	;;
*)
	code=$first
	[ "$code" -gt 255 ] && code=1
	;;
esac

echo "Fail: simulating a failure of job ${RESQUE_JOB_ID:-(no id)}" >&2
echo "Fail:   step 1: pretended to open a resource" >&2
echo "Fail:   step 2: pretended it went wrong" >&2
echo "Fail: exiting with status $code" >&2
exit "$code"

#!/bin/sh
# Sleep: sleep N seconds, stopping cleanly when asked to.
#
# Job:     {"class":"Sleep","args":[30]}   sleeps 30 s (default 1; decimals ok)
# By hand: echo '[30]' | RESQUE_CLASS=Sleep ./handlers/Sleep.sh & sleep 1; kill $!
#
# On worker shutdown (TERM/INT), USR1 and --timeout, resqued sends SIGTERM to
# the handler's whole process group and SIGKILL after --term-timeout (4 s by
# default). This handler traps TERM, cleans up and exits 143 (128 + 15), so
# the job's failure record says "exited with status 143" and its backtrace
# shows the cleanup message. A handler that does not trap TERM simply dies
# ("killed by signal SIGTERM"), which is fine too.

args=$(cat)
secs=$(printf '%s' "$args" | tr -d '[]" \t\r\n' | cut -d, -f1)
case $secs in
'') secs=1 ;;
*[!0-9.]* | *.*.* | .)
	echo "Sleep: args must be [seconds], got $args" >&2
	exit 1
	;;
esac

child=
on_term() {
	echo "Sleep: got SIGTERM, cleaning up and exiting" >&2
	# The group signal reached sleep already; this covers a TERM sent to
	# this shell alone (kill by hand).
	[ -n "$child" ] && kill "$child" 2>/dev/null
	exit 143
}
trap on_term TERM INT

echo "Sleep: sleeping ${secs}s"
# Run sleep in the background and wait for it: the shell runs a trap only
# between commands, and "wait" returns as soon as a trapped signal arrives.
sleep "$secs" &
child=$!
wait "$child"
echo "Sleep: done"

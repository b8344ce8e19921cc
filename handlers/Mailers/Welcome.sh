#!/bin/sh
# Mailers::Welcome: a Ruby-style namespaced class. Resque class
# "Mailers::Welcome" is looked up as handlers/Mailers/Welcome, then as
# handlers/Mailers/Welcome.<ext> - this file.
#
# Job:     {"class":"Mailers::Welcome","args":[{"email":"ann@example.com"}]}
# By hand: echo '[{"email":"ann@example.com"}]' | RESQUE_CLASS=Mailers::Welcome ./handlers/Mailers/Welcome.sh
#
# It only pretends to send: it logs a structured line. A stdout or stderr
# line that is a JSON object with a "level" field is logged by resqued at
# that level, with "msg" as the message and the other fields as key=value.
# The working directory is the handlers directory, not handlers/Mailers.

args=$(cat)
# A real handler would use a JSON parser (jq, python3, ...); sed keeps this
# example dependency-free.
email=$(printf '%s' "$args" | tr -d '\r\n' |
	sed -n 's/.*"email"[[:space:]]*:[[:space:]]*"\([^"\\]*\)".*/\1/p')
case $email in
?*@?*) ;;
*)
	echo "Mailers::Welcome: args must be [{\"email\":\"someone@example.com\"}], got $args" >&2
	exit 1
	;;
esac

# resqued already tags every line with the job's class, id and queue.
printf '{"level":"info","msg":"welcome mail sent","to":"%s"}\n' "$email"

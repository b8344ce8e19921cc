#!/usr/bin/env bash
# Make sure a Redis server answers on 127.0.0.1:6379 for `make run`:
# use the one that is there, else start redis-server (installing it with
# apt-get first when it is missing and we are root).
set -eu
port=6379
if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null || redis-cli -p $port ping >/dev/null 2>&1; then
  echo "redis: using the server on 127.0.0.1:$port"
  exit 0
fi
if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "redis: installing redis-server with apt-get"
    apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server >/dev/null
  else
    echo "redis: no server on 127.0.0.1:$port and redis-server is not installed." >&2
    echo "Try: sudo apt-get install -y redis-server" >&2
    exit 1
  fi
fi
mkdir -p .redis
redis-server --port $port --bind 127.0.0.1 --daemonize yes --dir "$PWD/.redis" \
  --logfile "$PWD/.redis/redis.log" --pidfile "$PWD/.redis/redis.pid" --save "" --appendonly no
i=0
until redis-cli -p $port ping >/dev/null 2>&1; do
  i=$((i+1)); [ $i -lt 100 ] || { echo "redis: server did not start; see .redis/redis.log" >&2; exit 1; }
  sleep 0.1
done
echo "redis: started redis-server on 127.0.0.1:$port (pid $(cat .redis/redis.pid); stop it with: redis-cli -p $port shutdown)"

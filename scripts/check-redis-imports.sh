#!/usr/bin/env bash
# check-redis-imports.sh fails when a Go file outside the packages that
# own Redis imports the Redis client (github.com/gomodule/redigo).
#
# pkg/queue is the only door to Redis for jobs, workers, stats, failures
# and delayed items (docs/architecture.md); pkg/status holds the status
# key, pkg/redisurl dials. Everything else asks pkg/queue.
#
# Exempt besides:
#   *_test.go            tests check Redis directly, through keys.go's names
#   internal/redistest   the test helper that starts redis-server
#   internal/faultproxy  the test helper between clients and Redis
#   bench/               a separate measuring tool (make bench): it reads
#                        Redis to time the daemon from outside, as an
#                        operator's tools would, and is not part of resqued
set -eu
cd "$(dirname "$0")/.."
allowed='^(pkg/queue|pkg/status|pkg/redisurl|internal/redistest|internal/faultproxy|bench)/'
bad=()
while IFS= read -r f; do
  f=${f#./}
  case "$f" in *_test.go) continue ;; esac
  [[ "$f" =~ $allowed ]] && continue
  if grep -q '"github.com/gomodule/redigo' "$f"; then
    bad+=("$f")
  fi
done < <(find . -name '*.go' -not -path './.git/*' | sort)
if [ ${#bad[@]} -gt 0 ]; then
  echo "These files import github.com/gomodule/redigo, but only pkg/queue, pkg/status and pkg/redisurl may talk to Redis:" >&2
  printf '  %s\n' "${bad[@]}" >&2
  echo "Move the Redis reads and writes into a pkg/queue method (keys from pkg/queue/keys.go) and call that instead." >&2
  exit 1
fi

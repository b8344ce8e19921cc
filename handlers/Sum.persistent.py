#!/usr/bin/env python3
"""Sum: add up a list of numbers, as a persistent handler (Python 3, stdlib only).

One process serves many jobs: each job is one JSON line on stdin, and each
answer one "done" line on the descriptor in RESQUE_RESULT_FD (3).

Job:     {"class":"Sum","args":[[1,2,3]]}   result {"sum": 6}
By hand: echo '{"args":[[1,2,3]]}' | ./handlers/Sum.persistent.py
"""

import json
import math
import os
import sys
import traceback

fd = os.environ.get("RESQUE_RESULT_FD")
out = os.fdopen(int(fd), "w", buffering=1) if fd else sys.stdout  # line-buffered: one flush per line


def total(args):
    numbers = args[0] if isinstance(args, list) and len(args) == 1 else None
    if not isinstance(numbers, list) or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in numbers):
        raise ValueError(f"args must be [[number, ...]], got {json.dumps(args):.100}")
    return sum(numbers)


for line in sys.stdin:  # one job per line; EOF means exit
    try:
        job = json.loads(line)
        print(json.dumps({"done": "ok", "result": {"sum": total(job["args"])}}, allow_nan=False), file=out)
    except Exception as e:  # the job fails, the process carries on
        print(f"Sum: {e}", file=sys.stderr, flush=True)
        backtrace = [f"{f.filename}:{f.lineno} in {f.name}" for f in reversed(traceback.extract_tb(e.__traceback__))]
        print(json.dumps({"done": "failed", "exception": type(e).__name__, "error": str(e), "backtrace": backtrace}), file=out)

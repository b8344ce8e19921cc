#!/usr/bin/env python3
"""Stats: count, mean, min and max of a list of numbers (Python 3, stdlib only).

Job:     {"class":"Stats","args":[[1,2,3,4]]}
Result:  {"count": 4, "mean": 2.5, "min": 1, "max": 4}
By hand: echo '[[1,2,3,4]]' | ./handlers/Stats.py
"""

import json
import math
import os
import sys
import traceback

# Result, progress and failure: one JSON object per line on the descriptor
# resqued names in RESQUE_RESULT_FD (3); on stdout when run by hand.
if "RESQUE_RESULT_FD" in os.environ:
    out = os.fdopen(int(os.environ["RESQUE_RESULT_FD"]), "w", buffering=1)  # line-buffered
else:
    out = sys.stdout


def report(**fields):
    print(json.dumps(fields, allow_nan=False), file=out)


def stats(args):
    if not (isinstance(args, list) and args and isinstance(args[0], list) and args[0]):
        raise ValueError(f"args must be [[number, ...]], at least one number; got {json.dumps(args):.100}")
    numbers = args[0]
    total, lo, hi = 0, numbers[0], numbers[0]
    for i, x in enumerate(numbers):
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
            raise ValueError(f"item {i} is {x!r:.100}, not a number")
        total, lo, hi = total + x, min(lo, x), max(hi, x)
        if i % 100_000 == 0:  # progress, shown for tracked jobs
            report(progress=round(i / len(numbers), 3), message=f"{i} of {len(numbers)}")
    return {"count": len(numbers), "mean": total / len(numbers), "min": lo, "max": hi}


def main():
    try:
        args = json.loads(sys.stdin.buffer.read())
        report(result=stats(args))
        return 0
    except ValueError as e:  # json.JSONDecodeError is a ValueError too
        print(f"Stats: {e}", file=sys.stderr)
        # Innermost frame first, as in Ruby's (and so resque-web's) backtraces.
        frames = reversed(traceback.extract_tb(e.__traceback__))
        backtrace = [f"{f.filename}:{f.lineno} in {f.name}" for f in frames]
        report(exception=type(e).__name__, error=str(e), backtrace=backtrace)
        return 1


if __name__ == "__main__":
    sys.exit(main())

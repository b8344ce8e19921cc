#!/usr/bin/env python3
"""WordCount: count the words of each string argument (Python 3, stdlib only).

Job:     {"class":"WordCount","args":["some text", "more text here"]}
By hand: echo '["a b c"]' | RESQUE_CLASS=WordCount ./handlers/WordCount.py

Prints one JSON line to stdout, e.g. {"counts": [2, 3], "total": 5}, which
resqued logs. On bad input (args not a list of strings) it explains the
problem on stderr and exits 1: the job fails with Resqued::HandlerFailed and
the stderr lines become the failure record's backtrace.
"""

import json
import sys


def fail(message):
    print(f"WordCount: {message}", file=sys.stderr)
    return 1


def main():
    # stdin is the payload's "args" array as JSON, UTF-8, then EOF.
    raw = sys.stdin.buffer.read()
    try:
        args = json.loads(raw)
    except ValueError as e:
        return fail(f"stdin is not JSON: {e}")
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        got = json.dumps(args)
        if len(got) > 200:
            got = got[:200] + "..."
        return fail(f'args must be a list of strings, like ["some text"]; got {got}')

    counts = [len(text.split()) for text in args]
    result = {"counts": counts, "total": sum(counts)}
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

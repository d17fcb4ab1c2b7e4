"""A pipe stage for the drills: pass the first N lines of stdin, flush, then hold the rest
back until OPEN_FILE exists (at most 120 s), then pass the rest. A downstream stage can be
killed while the pipe is provably mid-run.

    python -m tests.e2e.valve N OPEN_FILE
"""

from __future__ import annotations

import os
import sys
import time


def main() -> int:
    n, open_file = int(sys.argv[1]), sys.argv[2]
    out = sys.stdout.buffer
    try:
        for i, line in enumerate(sys.stdin.buffer, 1):
            out.write(line)
            if i == n:
                out.flush()
                deadline = time.monotonic() + 120
                while not os.path.exists(open_file) and time.monotonic() < deadline:
                    time.sleep(0.05)
        out.flush()
    except BrokenPipeError:  # the downstream stage went away: end quietly, like every stage
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())

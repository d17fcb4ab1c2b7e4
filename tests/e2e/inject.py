"""A pipe stage for the drills: copy stdin to stdout, inserting a garbage line before every
EVERY-th input line, and write the output line numbers of the garbage to a side file.

    python -m tests.e2e.inject EVERY SIDE_FILE
"""

from __future__ import annotations

import os
import sys

GARBAGE = [
    b"\xff\xfe this is not text\n",
    b"not json at all\n",
    b"[1, 2, 3]\n",
    b'{"no_type": true}\n',
    b'{"type": "book", "ts_event": 1, "bids": [[0.5, \n',  # a line cut short
    b'{"type": 42, "ts_event": 1, "ts_init": 1}\n',
]


def main() -> int:
    every, side = int(sys.argv[1]), sys.argv[2]
    out = sys.stdout.buffer
    n_injected = n_out = 0
    with open(side, "w") as log:  # written as it goes: complete even when downstream stops early
        try:
            for i, line in enumerate(sys.stdin.buffer, 1):
                if i % every == 0:
                    out.write(GARBAGE[n_injected % len(GARBAGE)])
                    n_out += 1
                    n_injected += 1
                    log.write(f"{n_out}\n")
                    log.flush()
                out.write(line)
                n_out += 1
            out.flush()
        except BrokenPipeError:  # the downstream stage stopped (--on-error fail): end quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())

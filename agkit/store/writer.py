"""A child process that writes the batches of `store ingest` (SQLite and PostgreSQL).

SQLite does its work while holding the GIL for every row it binds, and psycopg's COPY
encodes every row under the GIL too, so a writer thread cannot overlap with decoding.
A second process can: the stage serialises each full batch down a pipe (marshal: twice
as fast as pickle for rows of str, int and float, and both ends are the same
interpreter), the child writes it in one transaction and answers with the number of new
rows, while the stage decodes the next batch. The child reads the next batch off the
pipe while it writes the current one, so at most two batches are in flight: memory
stays bounded and back-pressure still reaches stdin.

The child ignores SIGINT and SIGTERM (a Ctrl-C or a `kill` of the process group must
not lose the batch it is writing): it ends when its input closes, after committing what
it received, so a SIGKILLed stage loses nothing the child had already been sent.

    frame in:  first the database URL (8-byte length, UTF-8: not in argv, where `ps`
               would show a password), then per batch 8-byte length, marshal of
               (rows by table, n, flat)
    frame out: 8-byte signed count of new rows; -1 then an error message frame
"""

from __future__ import annotations

import marshal
import queue
import signal
import struct
import subprocess
import sys
import threading
from typing import IO

from agkit.errors import AgkitError
from agkit.store.base import Batch

_LEN = struct.Struct("<q")


class ChildWriter:
    """The stage's side: send batches, collect their results in the order they were sent
    (the stage keeps at most two unanswered)."""

    def __init__(self, url: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agkit.store.writer"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        self._write(url.encode())

    def _write(self, payload: bytes) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(_LEN.pack(len(payload)))
            self.proc.stdin.write(payload)
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise AgkitError(f"the store writer process ended ({self._why()})") from None

    def send(self, batch: Batch) -> None:
        self._write(marshal.dumps((batch.rows, batch.n, batch.flat)))

    def result(self) -> int:
        """New rows of the oldest batch not yet answered (raises the child's error)."""
        assert self.proc.stdout is not None
        n = _read_int(self.proc.stdout)
        if n is None:
            raise AgkitError(f"the store writer process ended ({self._why()})")
        if n < 0:
            size = _read_int(self.proc.stdout) or 0
            raise AgkitError(self.proc.stdout.read(size).decode(errors="replace"))
        return n

    def close(self) -> None:
        """End of input: the child exits once everything sent is committed."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait()

    def _why(self) -> str:
        code = self.proc.poll()
        return "still running" if code is None else f"exit status {code}"


def _read_int(stream: IO[bytes]) -> int | None:
    head = stream.read(_LEN.size)
    if len(head) < _LEN.size:
        return None
    (value,) = _LEN.unpack(head)
    return int(value)


def _read_frames(inp: IO[bytes], frames: queue.Queue[bytes | None]) -> None:
    """Take the next batch off the pipe while the current one is written, so the stage
    can hand it over and go on decoding (reading the pipe releases the GIL)."""
    while (size := _read_int(inp)) is not None:
        frames.put(inp.read(size))
    frames.put(None)


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from agkit.store import open_store

    inp, out = sys.stdin.buffer, sys.stdout.buffer
    size = _read_int(inp)
    if size is None:
        return 0
    store = open_store(inp.read(size).decode(), migrate=False, create=False)  # the stage migrated it
    frames: queue.Queue[bytes | None] = queue.Queue(maxsize=1)
    threading.Thread(target=_read_frames, args=(inp, frames), daemon=True).start()
    try:
        while (frame := frames.get()) is not None:
            rows, n, flat = marshal.loads(frame)
            try:
                new = store.write_batch(Batch(rows, n, flat))
            except Exception as exc:
                why = str(exc) if isinstance(exc, AgkitError) else f"{type(exc).__name__}: {exc}"
                message = f"cannot write to the store: {why}".encode()
                out.write(_LEN.pack(-1) + _LEN.pack(len(message)) + message)
                out.flush()
                return 1
            out.write(_LEN.pack(new))
            out.flush()
    except BrokenPipeError:  # the stage is gone: what was committed stays
        pass
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

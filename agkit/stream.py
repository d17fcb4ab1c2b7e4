"""NDJSON stream I/O: encoding, line splitting, non-blocking output, error policy.

One JSON object per line, compact, `\\n`-terminated. Records a stage does not consume
are forwarded as the exact bytes that came in. See DESIGN.md §2.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import gzip
import os
import stat
import sys
from collections.abc import Iterator
from typing import IO, Any

import msgspec
import orjson

from agkit.records import Record

MAX_LINE = 16 * 1024 * 1024  # a longer line is reported as bad and discarded, never buffered
RAW_KEEP = 4096  # how much of a bad line an `error` record carries

_msgspec_encoder = msgspec.json.Encoder()
_APPEND_NL = orjson.OPT_APPEND_NEWLINE


class OnError(enum.StrEnum):
    """What a stage does with a malformed or invalid input line."""

    FAIL = "fail"  # report it, flush what was processed, exit 3
    SKIP = "skip"  # report it on stderr with its line number and go on
    EMIT = "emit"  # also forward an `error` record in its place


def encode(rec: Any) -> bytes:
    """One record (dict or Record) as a compact JSON line, newline included."""
    if type(rec) is dict:
        return orjson.dumps(rec, option=_APPEND_NL)
    if isinstance(rec, Record):
        return _msgspec_encoder.encode(rec) + b"\n"
    raise TypeError(f"a stage emitted {type(rec).__name__}, not a record")


def encode_into(rec: Any, buf: bytearray) -> None:
    """Append one encoded record to buf (avoids a copy for Structs)."""
    if type(rec) is dict:
        buf += orjson.dumps(rec, option=_APPEND_NL)
    elif isinstance(rec, Record):
        _msgspec_encoder.encode_into(rec, buf, -1)
        buf += b"\n"
    else:
        raise TypeError(f"a stage emitted {type(rec).__name__}, not a record")


class Head(msgspec.Struct):
    """What the runner reads of every line: its type, and the feedback tag if any."""

    type: str
    fb: str | None = msgspec.field(name="_fb", default=None)


read_head = msgspec.json.Decoder(Head).decode  # validates the whole line, builds no dict
# What read_head raises for a line that is not a record: msgspec raises UnicodeDecodeError,
# not a DecodeError, for bytes that are not UTF-8.
HEAD_ERRORS = (msgspec.DecodeError, UnicodeDecodeError)


def head_error(exc: msgspec.DecodeError | UnicodeDecodeError) -> str:
    """A reader's words for why a line is not a record."""
    text = str(exc)
    if isinstance(exc, UnicodeDecodeError):
        return f"invalid JSON: not UTF-8 ({text})"
    if not isinstance(exc, msgspec.ValidationError):
        return f"invalid JSON: {text}"
    if "missing required field `type`" in text:
        return "no `type` field"
    if text.endswith("`$`") or "- at" not in text:
        return f"not a JSON object: {text}"
    return f"invalid record: {text}"


def decode_line(line: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """(record, None) for a valid line, (None, reason) for a bad one."""
    try:
        read_head(line)
    except HEAD_ERRORS as exc:
        return None, head_error(exc)
    try:  # the header pass skips the other fields' strings without checking their UTF-8
        rec: dict[str, Any] = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return None, f"invalid JSON: {exc}"
    return rec, None


def is_pollable(fd: int) -> bool:
    """Pipes, FIFOs, sockets and terminals can be watched by the event loop; files and
    other devices (/dev/null) cannot, so they are read in slices as if always ready."""
    mode = os.fstat(fd).st_mode
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or (stat.S_ISCHR(mode) and os.isatty(fd))


def set_nonblocking(fd: int, on: bool) -> bool:
    """Set O_NONBLOCK on a pipe or socket; returns the previous state."""
    flags = os.get_blocking(fd)
    os.set_blocking(fd, not on)
    return not flags


class LineSplitter:
    """Turns chunks of bytes into complete lines, counting them and refusing giant ones."""

    __slots__ = ("discarding", "lineno", "name", "partial")

    def __init__(self, name: str) -> None:
        self.name = name
        self.lineno = 0
        self.partial = b""
        self.discarding = False  # inside an over-long line, skipping to its newline

    def split(self, chunk: bytes) -> tuple[list[bytes], bool]:
        """Complete lines in chunk (without newlines); flag True if a giant line was dropped."""
        dropped = False
        if self.discarding:
            cut = chunk.find(b"\n")
            if cut < 0:
                return [], False
            chunk = chunk[cut + 1 :]
            self.discarding = False
            self.lineno += 1
        data = self.partial + chunk if self.partial else chunk
        lines = data.split(b"\n")
        self.partial = lines.pop()
        if len(self.partial) > MAX_LINE:
            self.partial = b""
            self.discarding = True
            dropped = True
        return lines, dropped

    def finish(self) -> bytes | None:
        """The last line when input ends without a newline."""
        rest, self.partial = self.partial, b""
        return rest if rest.strip() else None


class Output:
    """A buffered writer on a file descriptor that never blocks the event loop.

    Pipes and sockets are switched to non-blocking mode; what the reader cannot take
    yet stays in the buffer (`backlog`) and the runner applies back-pressure upstream.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = bytearray()
        self.pollable = is_pollable(fd) and not os.isatty(fd)
        self._was_nonblocking = set_nonblocking(fd, True) if self.pollable else False

    @property
    def backlog(self) -> int:
        return len(self.buf)

    def try_flush(self) -> bool:
        """Write what the fd accepts now; True when the buffer is empty. Raises BrokenPipeError."""
        buf = self.buf
        while buf:
            try:
                n = os.write(self.fd, buf)
            except BlockingIOError:
                return False
            except InterruptedError:
                continue
            del buf[:n]
        return True

    def flush_blocking(self) -> None:
        """Write everything, waiting as needed (shutdown path)."""
        if self.pollable:
            os.set_blocking(self.fd, True)
        try:
            self.try_flush()
        finally:
            if self.pollable:
                os.set_blocking(self.fd, False)

    def restore(self) -> None:
        if self.pollable and not self._was_nonblocking:
            with contextlib.suppress(OSError):
                os.set_blocking(self.fd, True)


def open_input(path: str) -> IO[bytes]:
    """A binary reader for a path (`-` is stdin); `.gz` files are decompressed."""
    if path == "-":
        return sys.stdin.buffer
    if path.endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def iter_records(
    stream: IO[bytes], on_error: OnError = OnError.FAIL, name: str = "input"
) -> Iterator[tuple[int, dict[str, Any] | None, bytes, str | None]]:
    """Yield (line number, record or None, raw line, reason) for every non-blank line.

    For library callers (backtest, store ingest from files) that read synchronously.
    With OnError.FAIL the first bad line raises BadInputError.
    """
    from agkit.errors import BadInputError

    for lineno, line in enumerate(stream, 1):
        line = line.rstrip(b"\r\n")
        if not line.strip():
            continue
        rec, reason = decode_line(line)
        if reason is not None and on_error is OnError.FAIL:
            raise BadInputError(f"{name} line {lineno}: {reason}")
        yield lineno, rec, line, reason


def is_broken_pipe(exc: BaseException) -> bool:
    return isinstance(exc, BrokenPipeError) or (
        isinstance(exc, OSError) and exc.errno in (errno.EPIPE, errno.ECONNRESET)
    )


def silence_fd(fd: int) -> None:
    """Point fd (stdout after EPIPE) at /dev/null, so interpreter shutdown cannot complain."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
    except OSError:
        pass

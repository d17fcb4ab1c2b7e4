"""The exec journal: what a live venue sent and reported, kept across restarts.

A restarted `agkit exec` must tell the downstream stages what happened while it was
down (a resting order filled, canceled) and nothing it already told them. The venue
keeps the facts (open orders, recent trades); the journal keeps what this bot did
with them: every order sent (client id, venue order id, its fields), every trade
reported (with its settlement) and every order whose end was reported.

One JSON object per line, appended and fsync'd *before* the matching record leaves
exec: after a crash a record may be journaled and lost in the pipe, never emitted
and forgotten (so a restart never emits it twice). Opening the journal rewrites it
without the orders that can produce nothing new (ended, every fill settled), so it
stays as small as the open business. A torn last line (a crash mid-write) is skipped.
One exec at a time: a second one on the same journal is refused (a lock file, released
by the kernel however the first one ends).

    {"k": "order", "v": venue order id, "id": client id, "req": {...}, "ts": unix s, "base": "0"}
    {"k": "ack", "v": venue order id}        (its order_accepted was emitted)
    {"k": "fill", "v": venue order id, "t": trade id, "size": "5", "s": "pending"}
    {"k": "done", "v": venue order id}       (its end was emitted: filled, canceled, ...)

`base` is the size already matched when the order became ours (an order found open
at the venue and restored): its earlier trades were never ours to report.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import orjson

from agkit.errors import ConfigError


def state_dir() -> Path:
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "agkit"


def default_path(venue: str, host: str, account: str) -> Path:
    """One journal per venue, host and funding account (a test host never mixes with the real one)."""
    host_part = re.sub(r"[^A-Za-z0-9.-]+", "_", re.sub(r"^[a-z]+://", "", host).strip("/"))
    return state_dir() / "exec" / f"{venue}-{host_part}-{account.lower()}.jsonl"


@dataclass
class JournaledOrder:
    venue_order_id: str
    client_id: str
    req: dict[str, Any]  # strategy, market, asset, side, price, size, tif (as text)
    ts: int  # unix s when sent (or restored): trades before it are not ours
    base: Decimal = Decimal(0)
    fills: dict[str, tuple[Decimal, str]] = field(default_factory=dict)  # trade id -> (size, settlement)
    acked: bool = False
    done: bool = False

    @property
    def reported(self) -> Decimal:
        """Size matched as far as the downstream stages know."""
        return self.base + sum((size for size, _ in self.fills.values()), Decimal(0))

    def settled(self) -> bool:
        return all(s != "pending" for _, s in self.fills.values())


class Journal:
    def __init__(self, path: Path, log: Callable[[str], None] = lambda _m: None) -> None:
        self.path = path
        self.log = log
        self.orders: dict[str, JournaledOrder] = {}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._lock = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ConfigError(f"exec journal {path}: {exc.strerror}; choose another with --journal PATH") from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock)
            raise ConfigError(f"exec journal {path} is in use by another exec (one journal per running exec: --journal PATH)") from None
        self._load()
        self._compact()
        self._file: IO[bytes] = open(path, "ab")  # noqa: SIM115 - open for the journal's lifetime

    # --- reading -----------------------------------------------------------------------

    def _load(self) -> None:
        if not self.path.exists():
            return
        with open(self.path, "rb") as f:
            for n, line in enumerate(f, 1):
                try:
                    self._apply(orjson.loads(line))
                except (orjson.JSONDecodeError, KeyError, TypeError, ArithmeticError):
                    self.log(f"agkit exec: journal {self.path} line {n} unreadable (torn write?), skipped")

    def _apply(self, e: dict[str, Any]) -> None:
        kind, vid = e["k"], e["v"]
        if kind == "order":
            if vid not in self.orders:
                self.orders[vid] = JournaledOrder(vid, e["id"], e["req"], int(e["ts"]), Decimal(e.get("base", "0")))
            return
        o = self.orders.get(vid)
        if o is None:
            return  # compacted away, or never ours
        if kind == "fill":
            o.fills[e["t"]] = (Decimal(e["size"]), e["s"])
        elif kind == "ack":
            o.acked = True
        elif kind == "done":
            o.done = True

    def _lines(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for o in self.orders.values():
            vid = o.venue_order_id
            out.append(order_entry(vid, o.client_id, o.req, o.ts, o.base))
            if o.acked:
                out.append({"k": "ack", "v": vid})
            out.extend(fill_entry(vid, t, size, st) for t, (size, st) in o.fills.items())
            if o.done:
                out.append(done_entry(vid))
        return out

    def _compact(self) -> None:
        self.orders = {v: o for v, o in self.orders.items() if not (o.done and o.settled())}
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(b"".join(orjson.dumps(e) + b"\n" for e in self._lines()))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    # --- writing ------------------------------------------------------------------------

    def write(self, entries: list[dict[str, Any]]) -> None:
        """Append and fsync: on disk when this returns."""
        if entries:
            self.append(entries)
            self.sync()

    def append(self, entries: list[dict[str, Any]]) -> None:
        """Append without fsync: safe from a killed exec (the kernel has it), not yet from a
        crash of the machine; `sync` (e.g. in a thread beside a request) finishes it."""
        for e in entries:
            self._apply(e)
        self._file.write(b"".join(orjson.dumps(e) + b"\n" for e in entries))
        self._file.flush()

    def sync(self) -> None:
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()
        os.close(self._lock)  # releases the lock


def order_entry(vid: str, client_id: str, req: dict[str, Any], ts: int, base: Decimal = Decimal(0)) -> dict[str, Any]:
    return {"k": "order", "v": vid, "id": client_id, "req": req, "ts": ts, "base": str(base)}


def fill_entry(vid: str, trade_id: str, size: Decimal, settlement: str) -> dict[str, Any]:
    return {"k": "fill", "v": vid, "t": trade_id, "size": str(size), "s": settlement}


def done_entry(vid: str) -> dict[str, Any]:
    return {"k": "done", "v": vid}

"""Push metrics from any stage to a running `agkit monitor --web` (WebSocket ingest).

    from agkit.monitor.push import pusher_from_env
    pusher = pusher_from_env(url)          # url from --metrics-url, else AGKIT_METRICS_URL
    if pusher:
        pusher.metric("exec.latency_ms", 12.5, kind="gauge", labels={"venue": "paper"})
        pusher.push(any_record_dict)       # positions, fills... also feed the dashboards
    ...
    pusher.close()                         # flushes what is queued (bounded wait)

The URL is the monitor's ingest endpoint, `ws://127.0.0.1:8080/metrics` (add `?token=T`
when the monitor needs one; `?stage=NAME` is added for its stage-health table).

`push` never blocks the stage and never raises: records go into a bounded queue that a
daemon thread sends in batches (one WebSocket frame holds many newline-separated
records). When the monitor is down the thread reconnects with backoff; when the queue is
full the oldest records are dropped and counted (`dropped`). Error frames the monitor
sends back for malformed records are reported on stderr (the first few) and counted.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson

ENV = "AGKIT_METRICS_URL"
QUEUE_MAX = 100_000
BATCH_MAX = 5_000


def _stderr(message: str) -> None:
    try:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def metrics_url(url: str | None = None) -> str | None:
    """The push URL: the flag's value, else $AGKIT_METRICS_URL, else None (pushing off)."""
    return url or os.environ.get(ENV) or None


def pusher_from_env(url: str | None = None, stage: str = "") -> MetricsPusher | None:
    """A pusher for --metrics-url / AGKIT_METRICS_URL, or None when neither is set."""
    u = metrics_url(url)
    return MetricsPusher(u, stage=stage) if u else None


def _with_stage(url: str, stage: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        from agkit.errors import UsageError

        raise UsageError(f"metrics URL must be ws:// or wss://, got {url!r}")
    if not stage:
        return url
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "stage"] + [("stage", stage)]
    return urlunsplit(parts._replace(query=urlencode(query)))


class MetricsPusher:
    """Background WebSocket client; `push` and `metric` are cheap and thread-safe."""

    def __init__(self, url: str, stage: str = "", log: Callable[[str], None] = _stderr) -> None:
        self.url = _with_stage(url, stage)
        self.log = log
        self.queue: deque[bytes] = deque()
        self.dropped = 0
        self.sent = 0
        self.errors = 0
        self._cond = threading.Condition()
        self._closing = False
        self._idle = True
        self._thread = threading.Thread(target=self._loop, name="agkit-metrics-push", daemon=True)
        self._thread.start()

    # -- producer side ------------------------------------------------------------------

    def push(self, rec: dict[str, Any]) -> None:
        """Queue one record (a dict with `type`), or an original-form metric dict."""
        line = orjson.dumps(rec)
        with self._cond:
            if len(self.queue) >= QUEUE_MAX:
                self.queue.popleft()
                self.dropped += 1
            self.queue.append(line)
            self._idle = False
            self._cond.notify()

    def metric(self, name: str, value: float, kind: str = "gauge", labels: dict[str, str] | None = None,
               ts_us: int | None = None) -> None:
        """Queue an agkit `metric` record (kind counter: the cumulative total)."""
        ts = ts_us if ts_us is not None else time.time_ns() // 1000
        self.push({"type": "metric", "ts_event": ts, "ts_init": time.time_ns() // 1000, "name": name,
                   "kind": kind, "value": value, "labels": labels or {}})

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued was sent (True) or the timeout passed (False)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not (self._idle and not self.queue):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def close(self, timeout: float = 2.0) -> None:
        self.flush(timeout)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)

    # -- sender thread -------------------------------------------------------------------

    def _take(self) -> list[bytes]:
        with self._cond:
            while not self.queue and not self._closing:
                self._idle = True
                self._cond.notify_all()
                self._cond.wait(0.5)
            n = min(len(self.queue), BATCH_MAX)
            batch = [self.queue.popleft() for _ in range(n)]
            self._idle = False
            return batch

    def _loop(self) -> None:
        from websockets.exceptions import WebSocketException
        from websockets.sync.client import connect

        backoff = 0.1
        warned = False
        while not self._closing:
            try:
                with connect(self.url, compression=None, proxy=None, open_timeout=5, max_size=1 << 20) as ws:
                    backoff = 0.1
                    warned = False
                    while True:
                        batch = self._take()
                        if not batch:
                            if self._closing:
                                return
                            continue
                        try:
                            ws.send(b"\n".join(batch), text=True)
                        except (OSError, WebSocketException):
                            with self._cond:  # put them back, oldest first
                                self.queue.extendleft(reversed(batch))
                            raise
                        self.sent += len(batch)
                        self._read_errors(ws)
            except (OSError, WebSocketException, TimeoutError) as exc:
                if not warned:
                    self.log(f"agkit: metrics push to {self.url}: {exc}; retrying")
                    warned = True
                with self._cond:
                    self._idle = not self.queue
                    self._cond.notify_all()
                    if self._closing:
                        return
                    self._cond.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def _read_errors(self, ws: Any) -> None:
        while True:
            try:
                msg = ws.recv(timeout=0)
            except TimeoutError:
                return
            self.errors += 1
            if self.errors <= 5:
                try:
                    reason = orjson.loads(msg).get("reason", msg)
                except (orjson.JSONDecodeError, AttributeError):
                    reason = msg
                self.log(f"agkit: the monitor rejected a pushed record: {reason}")

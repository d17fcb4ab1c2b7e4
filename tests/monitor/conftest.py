"""Fixtures for the monitor tests: a real `agkit monitor --web` subprocess on a free port."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from tests.helpers import popen_agkit

IN_CI = os.environ.get("CI") == "true"


def require_tool(name: str, why: str) -> str:
    """The path of an external tool; fail under CI=true, skip elsewhere."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed ({why}); .ci/run installs it"
        if IN_CI:
            pytest.fail(f"CI=true: {message}")
        pytest.skip(message)
    return path


@dataclass
class Monitor:
    proc: subprocess.Popen[bytes]
    port: int
    token: str | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, Any]:
        import urllib.error
        import urllib.request

        req = urllib.request.Request(self.http + path, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, resp.read(), resp.headers
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), exc.headers

    def health(self) -> dict[str, Any]:
        status, body, _ = self.get("/health")
        assert status == 200
        out: dict[str, Any] = orjson.loads(body)
        return out

    def wait_for(self, pred: Any, timeout: float = 30.0) -> dict[str, Any]:
        """Poll /health until pred(health) is true (generous timeout, no timing asserts)."""
        deadline = time.monotonic() + timeout
        while True:
            h = self.health()
            if pred(h):
                return h
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not reached; last /health: {h}")
            time.sleep(0.05)

    def stop(self) -> tuple[int, bytes]:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return self.proc.returncode, err


def start_monitor(*args: str, stdin: Any = subprocess.DEVNULL, stdout: Any = subprocess.DEVNULL, **kw: Any) -> Monitor:
    proc = popen_agkit("monitor", "--web", "127.0.0.1:0", *args, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, **kw)
    assert proc.stderr is not None
    line = proc.stderr.readline().decode()
    m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
    if m is None:
        proc.kill()
        raise AssertionError(f"monitor did not start: {line}{proc.stderr.read().decode()}")
    token = None
    if "--token" in args:
        token = args[args.index("--token") + 1]
    return Monitor(proc, int(m.group(1)), token)


@pytest.fixture
def monitor() -> Iterator[Monitor]:
    mon = start_monitor()
    yield mon
    mon.stop()


def metric(name: str, value: float, ts: int, kind: str = "gauge", **labels: str) -> dict[str, Any]:
    return {"type": "metric", "ts_event": ts, "ts_init": ts, "name": name, "kind": kind, "value": value, "labels": labels}


def original(name: str, value: float, ts_ms: int, kind: str = "gauge", **labels: str) -> dict[str, Any]:
    return {"timestamp": ts_ms, "metric_type": kind, "metric_name": name, "value": value, "labels": labels}

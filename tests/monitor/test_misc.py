"""Packaging of the page (no CDN), the push client's URL handling, --tui without a terminal."""

from __future__ import annotations

import re
import subprocess

import pytest

from agkit.errors import UsageError
from agkit.monitor import push
from agkit.monitor.web import STATIC, parse_addr
from tests.helpers import ROOT, agkit_argv, agkit_env


def test_page_assets_are_local_and_licensed() -> None:
    html = (STATIC / "index.html").read_text()
    js = (STATIC / "monitor.js").read_text()
    for text in (html, js):
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text), "nothing may load from the network"
    assert 'src="static/uPlot.iife.min.js"' in html
    lib = (STATIC / "uPlot.iife.min.js").read_text()
    assert "uPlot" in lib and len(lib) > 20_000
    assert "MIT License" in (STATIC / "uPlot.LICENSE").read_text()
    lock = (ROOT / "agkit/monitor/web/package-lock.json").read_text()
    assert '"integrity": "sha512-' in lock


def test_push_url_from_flag_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(push.ENV, raising=False)
    assert push.metrics_url(None) is None
    assert push.pusher_from_env(None) is None
    monkeypatch.setenv(push.ENV, "ws://127.0.0.1:9/metrics?token=t")
    assert push.metrics_url(None) == "ws://127.0.0.1:9/metrics?token=t"
    assert push.metrics_url("ws://h:1/metrics") == "ws://h:1/metrics"
    assert push._with_stage("ws://h:1/metrics?token=t", "exec") == "ws://h:1/metrics?token=t&stage=exec"
    with pytest.raises(UsageError, match="ws://"):
        push._with_stage("http://h:1/metrics", "exec")


@pytest.mark.parametrize(("addr", "want"), [("127.0.0.1:8080", ("127.0.0.1", 8080)), (":9000", ("127.0.0.1", 9000)),
                                            ("9001", ("127.0.0.1", 9001)), ("[::1]:80", ("::1", 80))])
def test_parse_addr(addr: str, want: tuple[str, int]) -> None:
    assert parse_addr(addr) == want


def test_tui_without_a_terminal_is_a_usage_error() -> None:
    proc = subprocess.run(agkit_argv("monitor", "--tui"), input=b"", capture_output=True, env=agkit_env(),
                          cwd=ROOT, timeout=60, start_new_session=True)  # no controlling terminal
    assert proc.returncode == 2
    assert b"--tui needs a terminal" in proc.stderr
    assert proc.stdout == b"" and b"Traceback" not in proc.stderr

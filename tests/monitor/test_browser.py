"""The web dashboard in a real headless Chromium (selenium + chromedriver).

Charts must render (uPlot canvases for the original's six tiles plus PnL, inventory,
fills and latency), fill from the backfill, and update as metrics are pushed; a
screenshot is saved under the test's tmp dir.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.sync.client import connect

from tests.monitor.conftest import Monitor, metric, original, require_tool, start_monitor

CHROME_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=1400,1800",
]

TILES = ["lag", "rate", "position", "risk", "received", "kill", "pnl", "inventory", "fills", "latency"]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    chromium = require_tool("chromium", "headless browser for the web dashboard test")
    driver_path = require_tool("chromedriver", "drives chromium (Debian package chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in CHROME_FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={tmp_path / 'chrome-profile'}")
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def push_all(mon: Monitor, t0: int, n: int, start: int = 0) -> None:
    """The six metrics the original dashboard charted, plus PnL, inventory, fills, latency."""
    lines = []
    for i in range(start, start + n):
        ts = t0 + i * 200_000
        lines += [
            original("polymarket.rtds.lag_ms", 50 + 10 * (i % 7), ts // 1000, topic="crypto_prices"),
            original("polymarket.rtds.msgs_per_second", 100 + i, ts // 1000),
            original("polymarket.position.size", 10 + i % 5, ts // 1000, market_id="m1"),
            original("polymarket.risk.decision", 1 if i % 3 else 0, ts // 1000, market_id="m1", policy="combined"),
            original("polymarket.rtds.messages_received", 1, ts // 1000, kind="counter"),
            original("polymarket.risk.kill_switch", 1 if i >= 15 else 0, ts // 1000),
            metric("strategy.pnl_usd", 0.5 * i, ts, strategy="mm"),
            original("polymarket.inventory.value_usd", 100 - i, ts // 1000),
            metric("exec.orders_filled", float(i), ts, kind="counter", venue="paper"),
            metric("exec.latency_ms", 3.0 + i % 4, ts, kind="histogram", venue="paper"),
        ]
    with connect(mon.ws + "/metrics", proxy=None) as ws:
        ws.send(b"\n".join(orjson.dumps(r) for r in lines), text=True)


def js(driver: Any, expr: str) -> Any:
    return driver.execute_script(f"return {expr};")


def wait(driver: Any, expr: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = js(driver, expr)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {expr}; page stats: {js(driver, 'JSON.stringify(window.agkit && window.agkit.stats)')}")
        time.sleep(0.1)


def tile_points(driver: Any) -> dict[str, int]:
    return js(driver, "Object.fromEntries(window.agkit.tiles.map(t => [t.spec.id, t.points]))")  # type: ignore[no-any-return]


def test_dashboard_renders_and_updates(browser: Any, tmp_path: Path) -> None:
    mon = start_monitor()
    try:
        t0 = time.time_ns() // 1000 - 10_000_000
        push_all(mon, t0, 10)  # history before the page opens: comes as the backfill
        mon.wait_for(lambda h: h["records"] >= 100)
        browser.get(mon.http + "/")
        assert browser.title == "agkit monitor"
        wait(browser, "window.agkit && window.agkit.stats.backfills >= 1")
        wait(browser, f"window.agkit.tiles.filter(t => {TILES!r}.includes(t.spec.id) && t.u).length === {len(TILES)}")
        canvases = js(browser, "document.querySelectorAll('.uplot canvas').length")
        assert canvases >= len(TILES)
        before = tile_points(browser)
        assert all(before[t] > 0 for t in TILES), before
        assert js(browser, "document.getElementById('kill').textContent") == "kill switch OFF"
        shot1 = tmp_path / "dashboard-backfill.png"
        browser.save_screenshot(str(shot1))

        push_all(mon, t0, 10, start=10)  # live updates; the kill switch engages at i >= 15
        wait(browser, "window.agkit.tiles.find(t => t.spec.id === 'lag').points >= 20")
        after = tile_points(browser)
        assert all(after[t] > before[t] for t in TILES if t != "received"), (before, after)
        wait(browser, "document.getElementById('kill').textContent.includes('ENGAGED')")
        assert js(browser, "document.querySelector('[data-tile=kill] .indicator').textContent") == "ENGAGED"
        stats = js(browser, "document.querySelector('[data-tile=lag] .stats').textContent")
        assert stats.startswith("cur ") and "max 110" in stats
        risk = js(browser, "document.querySelector('[data-tile=risk] .stats').textContent")
        assert "allowed" in risk and "blocked" in risk
        # pixels changed on the lag chart between the two states (the line was redrawn)
        shot2 = tmp_path / "dashboard-live.png"
        browser.save_screenshot(str(shot2))
        assert shot1.stat().st_size > 10_000 and shot2.stat().st_size > 10_000
        assert shot1.read_bytes() != shot2.read_bytes()
        print(f"screenshots: {shot1} {shot2}")
    finally:
        mon.stop()


def test_dashboard_with_token(browser: Any, tmp_path: Path) -> None:
    mon = start_monitor("--token", "tok123")
    try:
        with connect(mon.ws + "/metrics?token=tok123", proxy=None) as ws:
            ws.send(orjson.dumps(metric("polymarket.rtds.lag_ms", 7.0, time.time_ns() // 1000)).decode())
        browser.get(mon.http + "/?token=tok123")
        wait(browser, "window.agkit && window.agkit.stats.connected")
        wait(browser, "window.agkit.tiles.find(t => t.spec.id === 'lag').points >= 1")
        browser.save_screenshot(str(tmp_path / "dashboard-token.png"))
    finally:
        mon.stop()

"""`agkit auth derive | orders | cancel | balance` and `agkit exec --venue polymarket`
as real subprocesses against the fake CLOB (served from a thread of the test process)."""

from __future__ import annotations

import asyncio
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from agkit.venues.polymarket import signing as sg
from agkit.venues.polymarket.orders import OrderBuilder
from tests.fakes.clob import TEST_KEY, FakeClob
from tests.helpers import ndjson, parse_ndjson
from tests.helpers import run_agkit as _run_agkit

TOKEN = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
COND = "0xdd22472e552920b8438158ea7238bfadfa4f736aa4cee91a6b86c39ead110917"


def run_agkit(*args: str, input: bytes = b"", **env: str) -> Any:
    # generous: eight test suites may share two cores
    return _run_agkit(*args, input=input, timeout=240, **env)


class Served:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.fake = FakeClob()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.call(self.fake.start())
        self.fake.add_market(COND, TOKEN)
        self.acc = self.fake.add_account()
        self.state = tempfile.TemporaryDirectory()  # exec --live keeps its journal here, not in ~/.local/state

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(120)

    def do(self, fn: Any, *args: Any) -> Any:
        async def wrap() -> Any:
            return fn(*args)

        return self.call(wrap())

    def env(self, creds: bool = True, **extra: str) -> dict[str, str]:
        env = {"AGKIT_CLOB_URL": self.fake.url, "AGKIT_CLOB_WS_URL": self.fake.ws_url, "POLYMARKET_PRIVATE_KEY": TEST_KEY,
               "AGKIT_ENV_FILE": "/nonexistent/.env", "XDG_STATE_HOME": self.state.name}
        if creds:
            env.update(POLYMARKET_API_KEY=self.acc.api_key, POLYMARKET_API_SECRET=self.acc.secret, POLYMARKET_API_PASSPHRASE=self.acc.passphrase)
        env.update(extra)
        return env

    def close(self) -> None:
        self.call(self.fake.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.state.cleanup()


@pytest.fixture
def served() -> Iterator[Served]:
    s = Served()
    try:
        yield s
    finally:
        s.close()


def _place(s: Served, price: str) -> str:
    signed = OrderBuilder(sg.Signer(TEST_KEY)).build(TOKEN, "BUY", price, "10", "0.01")
    from agkit.venues.polymarket.client import ClobClient

    async def go() -> None:
        c = ClobClient(s.fake.url, signer=sg.Signer(TEST_KEY), creds=sg.ApiCreds(s.acc.api_key, sg.Secret(s.acc.secret), sg.Secret(s.acc.passphrase)))
        try:
            await c.post_order(signed)
        finally:
            await c.aclose()

    s.call(go())
    return signed.order_hash


def test_auth_derive(served: Served, tmp_path: Path) -> None:
    env_file = tmp_path / "creds.env"
    proc = run_agkit("auth", "derive", "--env-file", str(env_file), **served.env(creds=False))
    assert proc.returncode == 0, proc.stderr
    out = orjson.loads(proc.stdout)
    assert out["address"] == sg.Signer(TEST_KEY).address and out["api_key"] == served.acc.api_key
    assert served.acc.secret.encode() not in proc.stdout + proc.stderr
    text = env_file.read_text()
    assert f"POLYMARKET_API_SECRET={served.acc.secret}" in text
    assert env_file.stat().st_mode & 0o777 == 0o600


def test_orders_cancel_and_balance(served: Served) -> None:
    a, b, c = (_place(served, p) for p in ("0.40", "0.41", "0.42"))
    proc = run_agkit("orders", **served.env())
    assert proc.returncode == 0, proc.stderr
    rows = parse_ndjson(proc.stdout)
    assert {r["id"] for r in rows} == {a, b, c} and rows[0]["side"] == "buy"
    proc = run_agkit("cancel", a, **served.env())
    assert proc.returncode == 0 and orjson.loads(proc.stdout)["canceled"] == [a]
    proc = run_agkit("cancel", a, **served.env())
    assert proc.returncode == 4 and a in orjson.loads(proc.stdout)["not_canceled"]
    proc = run_agkit("cancel", "--market", COND, **served.env())
    assert sorted(orjson.loads(proc.stdout)["canceled"]) == sorted([b, c])
    assert run_agkit("cancel", **served.env()).returncode == 2
    assert run_agkit("cancel", "--all", **served.env()).returncode == 0

    served.fake.balances["COLLATERAL"] = {
        "balance": "25000000",
        "allowances": {"0xE111180000d2663C0091e4f400237545B87B996B": "1000000000000", "0xe2222d279d744050d28e00520010520000310F59": "0"},
    }
    proc = run_agkit("balance", **served.env())
    assert proc.returncode == 5
    out = orjson.loads(proc.stdout)
    assert out["balance"] == 25.0
    assert out["missing"] == ["pUSD approval for the Neg Risk CTF Exchange (V2) (0xe2222d279d744050d28e00520010520000310F59)"]
    assert b"missing pUSD approval for the Neg Risk CTF Exchange" in proc.stderr
    served.fake.balances["COLLATERAL"]["allowances"]["0xe2222d279d744050d28e00520010520000310F59"] = "5"
    assert run_agkit("balance", "--refresh", **served.env()).returncode == 0
    assert ("GET", "/balance-allowance/update") in served.fake.requests


def test_bad_credentials_exit_config(served: Served) -> None:
    proc = run_agkit("orders", **served.env(POLYMARKET_API_PASSPHRASE="wrong"))
    assert proc.returncode == 5
    assert b"refused the credentials" in proc.stderr and b"wrong" not in proc.stderr


def test_missing_key_is_a_config_error(served: Served) -> None:
    env = served.env()
    env["POLYMARKET_PRIVATE_KEY"] = ""
    proc = run_agkit("orders", **env)
    assert proc.returncode == 5 and b"POLYMARKET_PRIVATE_KEY is not set" in proc.stderr


def _submit(cid: str, price: float, size: float = 10) -> dict[str, Any]:
    return {"type": "submit_order", "ts_event": 1, "ts_init": 1, "id": cid, "strategy": "t", "venue": "polymarket",
            "market": COND, "asset": TOKEN, "side": "buy", "price": price, "size": size, "neg_risk": False,
            "tick_size": 0.01}


def test_exec_polymarket_dry_run_sends_nothing(served: Served) -> None:
    proc = run_agkit("exec", "--venue", "polymarket", input=ndjson([_submit("a", 0.4)]), **served.env())
    assert proc.returncode == 0, proc.stderr
    rej = [r for r in parse_ndjson(proc.stdout) if r["type"] == "order_rejected"]
    assert rej and rej[0]["reason"].startswith("dry run")
    assert b'"path":"/order"' in proc.stderr and b"DRY RUN" in proc.stderr
    assert served.fake.post_attempts == {}
    assert served.acc.secret.encode() not in proc.stderr


def test_exec_polymarket_live(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    served.do(served.fake.add_liquidity, TOKEN, "SELL", "0.45", "5")
    recs = [_submit("a", 0.4), _submit("b", 0.45, 5), _submit("c", 0.333)]
    proc = run_agkit("exec", "--venue", "polymarket", "--live", input=ndjson(recs), **served.env())
    assert proc.returncode == 0, proc.stderr
    out = parse_ndjson(proc.stdout)
    by = {(r["type"], r.get("id")) for r in out}
    assert ("order_accepted", "a") in by and ("order_accepted", "b") in by
    assert ("order_rejected", "c") in by
    assert any(r["type"] == "order_filled" and r["id"] == "b" for r in out)
    assert served.acc.secret.encode() not in proc.stderr
    # the journal, at its default place: the orders sent (c was refused locally, never sent)
    from agkit.exec.journal import Journal, default_path

    monkeypatch.setenv("XDG_STATE_HOME", served.state.name)
    path = default_path("polymarket", served.fake.url, served.acc.address)
    assert path.is_relative_to(served.state.name) and path.exists()
    j = Journal(path)
    j.close()
    assert {o.client_id for o in j.orders.values()} <= {"a", "b"}  # b ended filled: may be compacted away
    assert "a" in {o.client_id for o in j.orders.values()}


def test_journal_is_for_a_live_venue() -> None:
    proc = run_agkit("exec", "--journal", "/tmp/x.jsonl", input=b"")
    assert proc.returncode == 2 and b"--journal is for a live venue" in proc.stderr

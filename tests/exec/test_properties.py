"""Whole-stream properties of the paper exec: positions equal the fills, nothing is
overfilled, every order ends in one terminal event, runs are deterministic."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

import pytest

from agkit.portfolio import Portfolio
from tests.exec.util import book, cancel, cancel_all, run, submit, tick, trade


def stream(seed: int, n: int = 3000) -> list[dict[str, Any]]:
    """A random but plausible market with a random trader in it."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    mid = 50
    ids: list[str] = []
    ts = 1_000_000
    for i in range(n):
        ts += rng.randint(1, 2000)
        asset = rng.choice(["111", "222"])
        roll = rng.random()
        if roll < 0.4:
            mid = min(90, max(10, mid + rng.choice([-1, 0, 0, 1])))
            bids = [[(mid - k) / 100, float(rng.randint(0, 300))] for k in range(1, 6)]
            asks = [[(mid + k) / 100, float(rng.randint(0, 300))] for k in range(1, 6)]
            out.append(book(ts, [b for b in bids if b[1]], [a for a in asks if a[1]], asset=asset))
        elif roll < 0.7:
            side = rng.choice(["buy", "sell"])
            px = (mid + (rng.randint(0, 2) if side == "buy" else -rng.randint(0, 2))) / 100
            out.append(trade(ts, px, float(rng.randint(1, 200)), side, asset=asset))
        elif roll < 0.9:
            oid = f"o{i}"
            ids.append(oid)
            tif = rng.choice(["GTC", "GTC", "GTD", "FOK", "FAK"])
            kw: dict[str, Any] = {"tif": tif}
            if tif == "GTD":
                kw["expire_at"] = ts + rng.randint(1, 50_000)
            if tif in ("GTC", "GTD") and rng.random() < 0.3:
                kw["post_only"] = True
            side = rng.choice(["buy", "sell"])
            px = (mid + rng.randint(-4, 4)) / 100
            size = float(rng.randint(5, 120))
            if tif in ("FOK", "FAK") and rng.random() < 0.5:  # a market order by amount
                kw["amount"] = float(rng.randint(3, 40)) if side == "buy" else size
            out.append(submit(ts, oid, side, px, size, asset=asset, **kw))
        elif roll < 0.97 and ids:
            out.append(cancel(ts, rng.choice(ids)))
        elif roll < 0.98:
            out.append(cancel_all(ts, asset=asset))
        else:
            out.append(tick(ts))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("latency", [0, 3000])
def test_positions_equal_fills(seed: int, latency: int) -> None:
    out = run(
        stream(seed),
        latency_us=latency,
        cancel_latency_us=latency // 2,
        jitter_us=latency,
        fee_rate=0.03,
        seed=seed,
    )
    fills = [r for r in out if r["type"] == "order_filled"]
    assert len(fills) > 50
    book_ = Portfolio()
    for f in fills:
        book_.apply_fill_record(f)
    last: dict[str, dict[str, Any]] = {}
    for r in out:
        if r["type"] == "position":
            last[r["asset"]] = r
    assert set(last) == {a for a, p in book_.positions.items() if p.fills}
    for asset, pos in last.items():
        mine = book_.positions[asset]
        assert pos["size"] == pytest.approx(mine.size, abs=1e-9)
        assert pos["avg_price"] == pytest.approx(mine.avg_price, abs=1e-9)
        assert pos["realized_pnl"] == pytest.approx(mine.realized_pnl, abs=1e-9)
        assert pos["fees"] == pytest.approx(mine.fees, abs=1e-9)
    # no order overfilled; each order ends at most once; no illegal transitions
    sizes = {r["id"]: r["size"] for r in out if r["type"] == "submit_order"}
    filled: dict[str, float] = defaultdict(float)
    for f in fills:
        filled[f["id"]] += f["size"]
        assert f["fee"] >= 0 and (f["fee"] == 0) == (f["liquidity"] == "maker")
    for oid, total in filled.items():
        assert total <= sizes[oid] + 1e-9
    # a market BUY never spends more than its amount
    amounts = {r["id"]: r["amount"] for r in out if r["type"] == "submit_order" and "amount" in r}
    spent: dict[str, float] = defaultdict(float)
    for f in fills:
        if f["id"] in amounts and f["side"] == "buy":
            spent[f["id"]] += f["price"] * f["size"]
    assert spent and all(v <= amounts[oid] + 1e-9 for oid, v in spent.items())
    ends: dict[str, int] = defaultdict(int)
    for r in out:
        if r["type"] in ("order_canceled", "order_expired") or (
            r["type"] == "order_rejected" and "duplicate" not in r["reason"]
        ):
            ends[r["id"]] += 1
    for oid, n in ends.items():
        assert n == 1, oid
        assert filled.get(oid, 0) < sizes[oid]  # nothing filled ends a second way
    assert not [r for r in out if r["type"] == "metric"]  # no illegal transitions mid-stream


def test_deterministic_for_a_seed() -> None:
    data = stream(9, 2000)
    a = run(data, latency_us=2000, jitter_us=2000, seed=5)
    b = run(data, latency_us=2000, jitter_us=2000, seed=5)
    assert a == b  # byte for byte, ts_init included (event clock)
    c = run(data, latency_us=2000, seed=6)
    d = run(data, latency_us=2000, seed=7)
    strip = lambda out: [  # noqa: E731
        {k: v for k, v in r.items() if k != "venue_order_id"} for r in out
    ]
    assert strip(c) == strip(d)  # without jitter the seed only names the orders
    assert c != d


def test_pipe_and_in_process_give_the_same_records() -> None:
    """DESIGN.md §3: the same data through the pipe stage and through a Chain gives the
    same fills (and everything else), ts_init aside."""
    from tests.helpers import ndjson, parse_ndjson, run_agkit

    data = stream(4, 1500)
    flags = {
        "latency_us": 1500,
        "cancel_latency_us": 700,
        "jitter_us": 300,
        "fee_rate": 0.02,
        "seed": 2,
    }
    argv = [f"--{k.replace('_', '-')}={v}" for k, v in flags.items()]
    proc = run_agkit("exec", *argv, input=ndjson(data))
    assert proc.returncode == 0, proc.stderr
    piped = parse_ndjson(proc.stdout)
    while piped and piped[-1]["type"] == "metric":
        piped.pop()
    chained = run(data, **flags)
    strip = lambda out: [{k: v for k, v in r.items() if k != "ts_init"} for r in out]  # noqa: E731
    assert strip(piped) == strip(chained)
    assert sum(r["type"] == "order_filled" for r in piped) > 20

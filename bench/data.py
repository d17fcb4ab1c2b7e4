"""Deterministic mixed record streams for the benchmarks."""

from __future__ import annotations

import random
from pathlib import Path

import orjson

ASSET = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
MARKET = "0x5f65177b394277fd294cd75650044e32ba009a95022d88a0c1d565897d72f8f1"


def mixed_records(n: int, seed: int = 7) -> list[bytes]:
    """Books (10 levels a side), trades, metrics and orders in market-like proportions."""
    rng = random.Random(seed)
    out = []
    ts = 1_767_225_600_000_000
    for i in range(n):
        ts += rng.randint(50, 5000)
        kind = rng.random()
        mid = round(rng.uniform(0.2, 0.8), 2)
        if kind < 0.55:
            rec = {
                "type": "book", "ts_event": ts, "ts_init": ts + 40, "venue": "polymarket", "market": MARKET,
                "asset": ASSET, "bids": [[round(mid - 0.01 * (k + 1), 2), rng.randint(5, 900)] for k in range(10)],
                "asks": [[round(mid + 0.01 * (k + 1), 2), rng.randint(5, 900)] for k in range(10)],
                "tick_size": 0.01, "min_size": 5,
            }
        elif kind < 0.85:
            rec = {
                "type": "trade", "ts_event": ts, "ts_init": ts + 40, "venue": "polymarket", "market": MARKET,
                "asset": ASSET, "price": mid, "size": rng.randint(1, 500), "side": rng.choice(["buy", "sell"]),
                "trade_id": f"t{i}",
            }
        elif kind < 0.95:
            rec = {
                "type": "metric", "ts_event": ts, "ts_init": ts, "name": "feed_messages_total", "kind": "counter",
                "value": i, "labels": {"source": "polymarket"},
            }
        else:
            rec = {
                "type": "submit_order", "ts_event": ts, "ts_init": ts, "id": f"c{i}", "strategy": "mm",
                "venue": "paper", "market": MARKET, "asset": ASSET, "side": "buy", "price": mid, "size": 10,
                "tif": "GTC", "post_only": True,
            }
        out.append(orjson.dumps(rec) + b"\n")
    return out


def mixed_file(path: Path, n: int, seed: int = 7) -> Path:
    if not path.exists() or path.stat().st_size == 0:
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            for chunk_start in range(0, n, 100_000):
                f.writelines(mixed_records(min(100_000, n - chunk_start), seed + chunk_start))
        tmp.rename(path)
    return path

"""Deterministic mixed streams for the store tests."""

from __future__ import annotations

import random
from typing import Any

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
MIN = 60_000_000
HOUR = 3_600_000_000
DAY = 86_400_000_000


def mixed(n: int, seed: int = 7, start: int = T0, step_us: int = 1_500_000) -> list[dict[str, Any]]:
    """n records of every stored kind, in ts_event order (ties included)."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    t = start
    oid = 0
    for i in range(n):
        if i % 7:  # leave some equal timestamps
            t += rng.randint(0, step_us)
        asset = f"tok{i % 3}"
        market = f"0xmkt{i % 3 // 2}"
        k = i % 12
        base = {"ts_event": t, "ts_init": t + 17}
        if k in (0, 1, 2):
            bid = round(rng.uniform(0.1, 0.8), 2)
            rec = {"type": "book", **base, "venue": "polymarket", "market": market, "asset": asset,
                   "bids": [[bid, 100.0], [round(bid - 0.01, 2), 250.5]], "asks": [[round(bid + 0.02, 2), 80.0]],
                   "tick_size": 0.01, "min_size": 5.0}
            if i % 2:
                rec["hash"] = f"h{i}"
        elif k in (3, 4, 5, 6):
            rec = {"type": "trade", **base, "venue": "polymarket", "market": market, "asset": asset,
                   "price": round(rng.uniform(0.05, 0.95), 3), "size": float(rng.randint(1, 500)),
                   "side": rng.choice(["buy", "sell"]), "trade_id": f"tr{i}"}
        elif k == 7:
            oid += 1
            rec = {"type": "submit_order", **base, "id": f"o{oid}", "strategy": rng.choice(["mm", "bands"]),
                   "venue": "paper", "market": market, "asset": asset, "side": rng.choice(["buy", "sell"]),
                   "price": round(rng.uniform(0.1, 0.9), 2), "size": 10.0, "tif": "GTC", "post_only": False,
                   "expire_at": None}
        elif k == 8:
            rec = {"type": "order_accepted", **base, "id": f"o{oid}", "venue_order_id": f"v{oid}"}
        elif k == 9:
            rec = {"type": "order_filled", **base, "id": f"o{oid}", "venue_order_id": f"v{oid}",
                   "trade_id": f"f{i}", "market": market, "asset": asset, "side": rng.choice(["buy", "sell"]),
                   "price": round(rng.uniform(0.1, 0.9), 2), "size": 5.0, "fee": 0.01, "liquidity": "maker",
                   "settlement": "pending"}
        elif k == 10:
            rec = {"type": "metric", **base, "name": "stage_latency_us", "kind": "gauge",
                   "value": round(rng.uniform(1, 100), 3), "labels": {"stage": rng.choice(["exec", "risk"])}}
        else:
            rec = rng.choice([
                {"type": "feed_status", **base, "source": "sim", "state": "live", "lag_ms": 1.5},
                {"type": "position", **base, "market": market, "asset": asset, "size": 5.0,
                 "avg_price": 0.5, "realized_pnl": 0.0, "fees": 0.01},
                {"type": "zz_custom", **base, "nested": {"k": [1, 2.5, "x"]}},
                {"type": "market_resolved", **base, "venue": "polymarket", "market": market,
                 "winning_asset": asset, "assets": ["tok0", "tok1"]},
            ])
        out.append(rec)
    return out

"""A risk-check denial reaches the strategy in a pipe (exec's --feedback FIFO on the
strategy's --merge) exactly as in `agkit backtest` (the Chain's feedback)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agkit.strategy.lockstep import BARRIER_PREFIX
from tests.backtest.pipes import pipe_and_backtest
from tests.helpers import parse_ndjson, sim_file

# one working order per token: every replace (cancel + new) is denied until exec has
# confirmed the cancel, so a run has many denials
POLICY = """\
name: one-order-per-token
policies:
  - type: OpenOrderLimit
    max_orders: 200
    max_per_asset: 1
"""
KNOBS = ["--latency-us", "20000", "--seed", "7"]


def _orders_and_fills(recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for rec in _no_barriers(recs):
        if rec["type"] in ("submit_order", "cancel_order", "order_filled"):
            rec.pop("_fb", None)
            rec.pop("ts_init", None)
            out.append(rec)
    return out


def _no_barriers(recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Without lockstep's barrier cancels and exec's answers to them."""
    return [r for r in recs if not str(r.get("id", "")).startswith(BARRIER_PREFIX)]


def _saw_its_denials(recs: list[dict[str, Any]]) -> None:
    """A strategy that missed a denial keeps the order as working and later cancels it."""
    recs = _no_barriers(recs)
    denied = {r["id"] for r in recs if r["type"] == "order_denied"}
    assert len(denied) > 20
    assert not [r for r in recs if r["type"] == "cancel_order" and r["id"] in denied]
    assert not [r for r in recs if r["type"] == "cancel_rejected"]


@pytest.mark.slow
def test_denials_come_back_the_same_in_a_pipe_and_in_backtest(tmp_path: Path) -> None:
    data = sim_file(tmp_path / "day.ndjson", seed=5, records=4000)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    pipe_out, bt_out = pipe_and_backtest(data, policy, KNOBS, tmp_path)
    pipe_recs = parse_ndjson(pipe_out)
    bt_recs = parse_ndjson(bt_out)
    _saw_its_denials(bt_recs)
    _saw_its_denials(pipe_recs)
    assert _orders_and_fills(pipe_recs) == _orders_and_fills(bt_recs)
    # each denial once on the way out: the copy that went around the loop stops at exec
    assert [r["id"] for r in pipe_recs if r["type"] == "order_denied"] == [
        r["id"] for r in bt_recs if r["type"] == "order_denied"
    ]

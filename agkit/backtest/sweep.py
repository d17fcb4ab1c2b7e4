"""Parameter sweeps (`--grid`) across processes and walk-forward evaluation.

A grid is the cartesian product of `k=v1,v2,...` axes; every point is one backtest on
the same data, run in a `multiprocessing` pool (fork: workers share the parent's
imports). Results are sorted by the chosen metric, best first, ties broken by the
parameters' text, so the output is deterministic whatever the scheduling.

Walk-forward splits the data's time span into `folds + 1` equal consecutive windows;
fold i picks the best grid point on window i (train) and reports it on window i + 1
(test), so every reported figure is out of sample.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from agkit.backtest.engine import BacktestConfig, data_span, run_backtest
from agkit.errors import UsageError

# metrics where smaller is better
LOWER_IS_BETTER = frozenset(
    {"max_drawdown", "max_drawdown_pct", "max_drawdown_duration_s", "volatility", "fees", "denied", "rejected"}
)


def parse_grid(items: Iterable[str]) -> dict[str, list[str]]:
    grid: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        vals = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not key.strip() or not vals:
            raise UsageError(f"--grid wants key=v1,v2,..., got {item!r}")
        grid[key.strip().replace("-", "_")] = vals
    return grid


def grid_points(grid: dict[str, list[str]]) -> list[dict[str, str]]:
    keys = sorted(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(grid[k] for k in keys))]


def _run_one(cfg: BacktestConfig) -> dict[str, Any]:
    result, _curve = run_backtest(cfg)
    return result


def run_many(
    configs: list[BacktestConfig], jobs: int = 0, on_done: Callable[[int], None] | None = None
) -> list[dict[str, Any]]:
    """Results in the order of `configs`; `jobs` processes (0: every core)."""
    jobs = jobs or os.cpu_count() or 1
    jobs = max(1, min(jobs, len(configs)))
    if jobs == 1:
        out = []
        for i, cfg in enumerate(configs, 1):
            out.append(_run_one(cfg))
            if on_done:
                on_done(i)
        return out
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(jobs) as pool:
        results: list[dict[str, Any]] = []
        for i, res in enumerate(pool.imap(_run_one, configs, chunksize=1), 1):
            results.append(res)
            if on_done:
                on_done(i)
    return results


def sort_results(results: list[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    if results and metric not in results[0]:
        known = ", ".join(
            k for k, v in results[0].items() if v is None or (isinstance(v, int | float) and not isinstance(v, bool))
        )
        raise UsageError(f"unknown metric {metric!r}; known: {known}")
    sign = 1.0 if metric in LOWER_IS_BETTER else -1.0

    def key(r: dict[str, Any]) -> tuple[bool, float, str]:
        value = r.get(metric)  # None: nothing to measure, ranked after every figure
        return value is None, 0.0 if value is None else sign * float(value), _params_key(r)

    return sorted(results, key=key)


def _params_key(r: dict[str, Any]) -> str:
    return repr(sorted(r.get("params", {}).items()))


def run_grid(
    base: BacktestConfig, grid: dict[str, list[str]], metric: str, jobs: int = 0,
    on_done: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    configs = [base.with_params(p) for p in grid_points(grid)]
    _validate(configs)
    ranked = sort_results(run_many(configs, jobs, on_done), metric)
    for rank, r in enumerate(ranked, 1):
        r["rank"] = rank
    return ranked


def _validate(configs: list[BacktestConfig]) -> None:
    """Fail early (in the parent) on a bad parameter name or value."""
    from agkit.strategy import load
    from agkit.strategy.params import parse_params

    for cfg in configs:
        parse_params(load(cfg.strategy).Params, dict(cfg.params))


def walk_forward(
    base: BacktestConfig, grid: dict[str, list[str]], folds: int, metric: str, jobs: int = 0
) -> list[dict[str, Any]]:
    if folds < 1:
        raise UsageError("--walk-forward needs at least 1 fold")
    lo, hi = data_span(base.data)
    hi += 1
    step = (hi - lo) // (folds + 1)
    if step <= 0:
        raise UsageError("the data span is too short for that many walk-forward folds")
    edges = [lo + i * step for i in range(folds + 1)] + [hi]
    points = grid_points(grid) if grid else [{}]
    train_cfgs = [
        replace(base.with_params(p), from_us=edges[i], to_us=edges[i + 1])
        for i in range(folds)
        for p in points
    ]
    _validate(train_cfgs[: len(points)])
    train = run_many(train_cfgs, jobs)
    test_cfgs = []
    best_of = []
    for i in range(folds):
        chunk = train[i * len(points) : (i + 1) * len(points)]
        best = sort_results(chunk, metric)[0]
        best_of.append(best)
        test_cfgs.append(
            replace(base.with_params(best["params"]), from_us=edges[i + 1], to_us=edges[i + 2])
        )
    tests = run_many(test_cfgs, jobs)
    out = []
    for i, (best, test) in enumerate(zip(best_of, tests, strict=True)):
        out.append(
            {
                "type": "walk_forward_fold",
                "ts_event": test["ts_event"],
                "ts_init": test["ts_init"],
                "fold": i + 1,
                "train_from_us": edges[i],
                "train_to_us": edges[i + 1],
                "test_from_us": edges[i + 1],
                "test_to_us": edges[i + 2],
                "metric": metric,
                "params": best["params"],
                "train_" + metric: best[metric],
                "test": test,
            }
        )
    return out


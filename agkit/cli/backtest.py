"""`agkit backtest`: strategy → risk-check → paper exec over recorded data, in one process."""

from __future__ import annotations

import sys
import time
from typing import Annotated, Any

import typer

from agkit.cli.options import OnErrorOpt
from agkit.stream import OnError


class _Progress:
    """A progress bar on stderr (only when stderr is a terminal)."""

    def __init__(self, total: int, label: str) -> None:
        self.total = total
        self.label = label
        self.on = sys.stderr.isatty() and total > 0
        self.last = 0.0

    def __call__(self, done: int) -> None:
        if not self.on:
            return
        now = time.monotonic()
        if now - self.last < 0.2 and done < self.total:
            return
        self.last = now
        frac = min(1.0, done / self.total)
        bar = "#" * int(frac * 30)
        sys.stderr.write(f"\r{self.label} [{bar:<30}] {frac * 100:5.1f}%")
        sys.stderr.flush()

    def end(self) -> None:
        if self.on:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def _dash(v: Any) -> Any:
    return "–" if v is None else v  # nothing to measure: not a 0


def _table(rows: list[tuple[str, Any]]) -> str:
    width = max(len(k) for k, _ in rows)
    out = []
    for k, v in rows:
        v = _dash(v)
        if isinstance(v, float):
            v = f"{v:,.2f}" if 1e3 <= abs(v) < 1e12 else f"{v:.6g}"
        out.append(f"{k:<{width}}  {v}")
    return "\n".join(out) + "\n"


def backtest(
    data: Annotated[
        list[str],
        typer.Option("--data", "-d", metavar="FILE", help="Recorded NDJSON (.gz too): feed --record, feed sim, store export. Repeatable."),
    ],
    strategy: Annotated[
        str, typer.Option("--strategy", "-s", help="mm, bands, arb, an entry point, or path.py:Class.")
    ] = "mm",
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-P", metavar="KEY=VALUE", help="A strategy parameter (repeatable)."),
    ] = None,
    params_file: Annotated[
        str | None, typer.Option("--params", metavar="FILE.yaml", help="Strategy parameters from YAML.")
    ] = None,
    policy: Annotated[
        str | None,
        typer.Option("--policy", "-p", metavar="POLICY.yaml", help="Risk policy for the risk-check stage (none: no risk check)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the paper venue (ids, latency jitter).")] = 0,
    latency_us: Annotated[int, typer.Option("--latency-us", min=0, help="Order latency, event-time µs.")] = 0,
    cancel_latency_us: Annotated[
        int | None, typer.Option("--cancel-latency-us", min=0, help="Cancel latency (default: --latency-us).")
    ] = None,
    jitter_us: Annotated[int, typer.Option("--jitter-us", min=0, help="Extra latency, uniform in [0, N] µs, seeded.")] = 0,
    fee_rate: Annotated[float, typer.Option("--fee-rate", min=0.0, help="Taker fee rate (shares × rate × (p(1−p))^exponent).")] = 0.0,
    fee_exponent: Annotated[float, typer.Option("--fee-exponent", min=0.0, help="Exponent of the fee formula.")] = 1.0,
    initial_cash: Annotated[float, typer.Option("--initial-cash", help="Starting cash, USDC.")] = 10_000.0,
    sample_s: Annotated[
        float, typer.Option("--sample-s", min=0.001, help="Equity sampling interval, seconds of event time (Sharpe periods).")
    ] = 60.0,
    output: Annotated[
        str | None, typer.Option("--output", "-o", metavar="FILE", help="Write every record of the run (market data, orders, fills) as NDJSON.")
    ] = None,
    chart: Annotated[
        str | None, typer.Option("--chart", metavar="FILE.html", help="Write the equity and drawdown chart (self-contained HTML, inline SVG).")
    ] = None,
    grid: Annotated[
        list[str] | None,
        typer.Option("--grid", metavar="KEY=V1,V2,...", help="Sweep a parameter (repeatable: the cartesian product); one result per point."),
    ] = None,
    walk_forward: Annotated[
        int, typer.Option("--walk-forward", metavar="FOLDS", min=0, help="Walk-forward: FOLDS+1 equal windows; pick the best --grid point on each, report it on the next.")
    ] = 0,
    metric: Annotated[str, typer.Option(help="Metric that sorts --grid results and picks walk-forward winners.")] = "net_pnl",
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=0, help="Processes for --grid / --walk-forward (0: every core).")] = 0,
    progress: Annotated[bool, typer.Option(help="Progress bar on stderr (only on a terminal).")] = True,
    on_error: OnErrorOpt = OnError.SKIP,
) -> int:
    """Backtest a strategy on recorded data: strategy → risk-check → paper exec in one
    process (agkit.runner.Chain), with exec's events fed back before the next record.

    The paper venue models queue position, latency and fees; market_resolved pays 1 to
    the winning token. Time is the data's event time, so the same inputs and --seed give
    byte-identical output. Prints one backtest_result record (a table when stdout is a
    terminal): PnL realized/unrealized, fees, volume, fill ratio, inventory, win rate,
    Sharpe, Sortino, Calmar, max drawdown (at every change of equity, not only at the
    --sample-s samples), daily PnL. A figure with nothing to measure (Sortino without a
    losing period, CAGR on less than a day...) is null, shown as –, never 0.

    With --grid, one result per parameter point, run on every core and sorted by
    --metric (best first). With --walk-forward N, one walk_forward_fold record per fold.

    Example: agkit backtest --data day.ndjson --strategy mm -p policies/market-maker.yaml --latency-us 50000 --chart mm.html
    """
    import orjson

    from agkit.backtest.engine import BacktestConfig, file_size, run_backtest
    from agkit.errors import UsageError
    from agkit.strategy import load
    from agkit.strategy.params import load_params_file, parse_assignments, parse_params

    values: dict[str, Any] = {}
    if params_file:
        values.update(load_params_file(params_file))
    values.update(parse_assignments(param))
    parse_params(load(strategy).Params, values)  # unknown or ill-typed parameters: exit 2 now
    if policy:
        from agkit.risk.policy import load_policy

        load_policy(policy)
    for path in data:
        import os

        if path != "-" and not os.path.exists(path):
            raise UsageError(f"--data {path}: no such file")
    cfg = BacktestConfig(
        data=tuple(data),
        strategy=strategy,
        params=tuple(sorted(values.items())),
        policy=policy,
        seed=seed,
        latency_us=latency_us,
        cancel_latency_us=cancel_latency_us,
        jitter_us=jitter_us,
        fee_rate=fee_rate,
        fee_exponent=fee_exponent,
        initial_cash=initial_cash,
        sample_s=sample_s,
        on_error=on_error,
    )
    out = sys.stdout.buffer
    tty = sys.stdout.isatty()
    if grid or walk_forward:
        from agkit.backtest.sweep import parse_grid, run_grid
        from agkit.backtest.sweep import walk_forward as wf

        axes = parse_grid(grid or [])
        if output or chart:
            raise UsageError("--output and --chart are for a single run, not --grid/--walk-forward")
        if walk_forward:
            rows = wf(cfg, axes, walk_forward, metric, jobs)
        else:
            from agkit.backtest.sweep import grid_points

            bar = _Progress(len(grid_points(axes)), "grid")
            rows = run_grid(cfg, axes, metric, jobs, on_done=bar if progress else None)
            bar.end()
        for row in rows:
            if tty:
                shown = row.get("test", row)
                sys.stdout.write(
                    f"{row.get('rank', row.get('fold'))}: {orjson.dumps(row['params']).decode()} "
                    f"{metric}={_dash(shown.get(metric))} net_pnl={shown.get('net_pnl')} "
                    f"sharpe={_dash(shown.get('sharpe'))}\n"
                )
            else:
                out.write(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE))
        return 0
    sink = None
    fh = None
    if output:
        fh = open(output, "wb")  # noqa: SIM115 - closed below
        from agkit.stream import encode

        write = fh.write

        def sink(rec: Any) -> None:
            write(encode(rec))

    bar = _Progress(file_size(data), "backtest")
    try:
        result, curve = run_backtest(cfg, sink=sink, progress=bar if progress else None)
    finally:
        bar.end()
        if fh is not None:
            fh.close()
    if chart:
        from agkit.backtest.chart import write_chart

        write_chart(chart, result, curve)
    if tty:
        table: list[tuple[str, Any]] = [
            (k, v) for k, v in result.items() if not isinstance(v, dict) and k not in ("type", "ts_init")
        ]
        table += [(f"inventory {a[:16]}…", v) for a, v in result["inventory"].items()]
        table += [(f"pnl {d}", v) for d, v in result["pnl_by_day"].items()]
        sys.stdout.write(_table(table))
    else:
        out.write(orjson.dumps(result, option=orjson.OPT_APPEND_NEWLINE))
    return 0


def register(app: typer.Typer) -> None:
    app.command()(backtest)

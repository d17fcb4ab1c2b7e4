"""`agkit risk-check` (the pre-trade stage) and `agkit risk ...` (analytics)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from agkit.cli.options import MergeOpt, OnErrorOpt
from agkit.stream import OnError


class ClockMode(StrEnum):
    WALL = "wall"
    EVENT = "event"


def risk_check(
    policy: Annotated[
        str,
        typer.Option("--policy", "-p", metavar="POLICY.yaml", help="Risk policy file (YAML or JSON); see policies/ and docs/risk.md."),
    ],
    kill_file: Annotated[
        str | None,
        typer.Option(
            "--kill-file",
            metavar="PATH",
            help="Engage the kill switch when this file appears (checked every --kill-file-interval-ms, and at start).",
        ),
    ] = None,
    kill_file_interval_ms: Annotated[int, typer.Option(min=1, help="How often to look for the kill file.")] = 250,
    metrics_interval_ms: Annotated[
        int, typer.Option(min=0, help="Emit `metric` records this often (0: only at the end).")
    ] = 1000,
    clock: Annotated[
        ClockMode,
        typer.Option(
            case_sensitive=False,
            help="Time source for the stale-data guard, rate limit and daily loss window: "
            "wall (live) or event (each record's ts_event; for recorded data in a pipe).",
        ),
    ] = ClockMode.WALL,
    check: Annotated[bool, typer.Option("--check", help="Validate the policy file, print a summary on stderr and exit.")] = False,
    on_error: OnErrorOpt = OnError.SKIP,
    merge: MergeOpt = None,
) -> int:
    """Pre-trade risk checks between strategy and exec.

    Approved submit_order records pass unchanged; refused ones become order_denied
    (id, policy, reason). Positions are tracked from order_filled, open orders from
    exec's events, marks and data freshness from book records; all are forwarded.

    Policies: PositionLimit (per asset, market or neg-risk event), InventoryLimit (at
    mark or worst case), OrderLimit, PriceBand, OpenOrderLimit, RateLimit, LossLimit
    (daily loss, drawdown), StaleData, ReduceOnly, KillSwitch. The original ag-botkit
    policy format is accepted verbatim; unknown keys and wrong types are errors (exit 5).

    Kill switch: engaged by a KillSwitch policy with enabled: true, a breached LossLimit,
    the --kill-file appearing, or SIGUSR1. It emits kill_switch and cancel_all, then
    denies every order that does not reduce exposure. Disengage explicitly with SIGUSR2
    (refused while the kill file exists: remove it first).

    Metrics: risk.decisions (labels policy, decision), risk.exposure_usd (basis mark or
    worst_case), risk.open_orders, risk.pnl_usd, risk.daily_pnl_usd, risk.kill_switch.

    Example: agkit feed sim | agkit strategy mm | agkit risk-check -p policies/default.yaml | agkit exec
    """
    import sys

    from agkit.risk.policy import load_policy

    pset = load_policy(policy)
    if check:
        sys.stderr.write(f"agkit risk-check: {policy}: ok, {len(pset.policies)} policies: ")
        sys.stderr.write(", ".join(p.name for p in pset.policies) + "\n")
        return 0
    from agkit.clock import EventClock
    from agkit.risk.stage import RiskCheck
    from agkit.runner import run_stage

    stage = RiskCheck(
        pset,
        kill_file=kill_file,
        kill_file_interval_ms=kill_file_interval_ms,
        metrics_interval_ms=metrics_interval_ms,
        advance_clock=clock is ClockMode.EVENT,
    )
    kwargs: dict[str, object] = {}
    if clock is ClockMode.EVENT:
        kwargs["clock"] = EventClock()
    return run_stage(stage, on_error=on_error, merge=merge or (), **kwargs)


risk_app = typer.Typer(
    name="risk",
    help="Risk analytics over NDJSON: var, stress, greeks, portfolio, perf.\n\n"
    "Each reads records from files or stdin (return, equity, position, order_filled, book, "
    "market_resolved, option; see docs/risk.md), or from the store with --db / --from-store, "
    "and writes NDJSON result records on stdout, "
    "or a table when stdout is a terminal.",
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

FilesArg = Annotated[list[str] | None, typer.Argument(help="NDJSON input files (.gz too); stdin when omitted.")]
SeriesOpt = Annotated[
    str | None,
    typer.Option("--series", help="Which return/equity series to use (by its `series`, `asset` or `strategy` field)."),
]
ConfidenceOpt = Annotated[
    list[float] | None,
    typer.Option("--confidence", "-c", help="Confidence level in (0, 1); repeatable. Default 0.95 and 0.99."),
]


class StoreKind(StrEnum):
    FILLS = "fills"
    POSITIONS = "positions"
    EQUITY = "equity"
    PNL = "pnl"
    OPTIONS = "options"


DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        metavar="URL",
        help="Read the inputs from this store (sqlite:///PATH, a file path, or postgresql://...) "
        "instead of stdin; what is read: --from-store.",
    ),
]
FromStoreOpt = Annotated[
    list[StoreKind] | None,
    typer.Option(
        "--from-store",
        case_sensitive=False,
        help="Read from the store (repeatable): fills (positions rebuilt from order_filled, marked by "
        "book, settled by market_resolved), positions (the latest position records), equity (equity "
        "and return records), pnl (one equity curve per strategy from the daily PnL rollup and "
        "--capital), options (option records). Without --db: the store commands' default store.",
    ),
]
CapitalOpt = Annotated[
    float | None, typer.Option(help="With --from-store pnl: the capital (USD) the daily PnL is a return on.")
]


def _read(
    files: list[str] | None,
    on_error: OnError,
    db: str | None = None,
    from_store: list[StoreKind] | None = None,
    capital: float | None = None,
    default_kinds: tuple[StoreKind, ...] = (),
) -> object:
    """Inputs from FILES (stdin when none), or from the store (plus any FILES) with --db or --from-store."""
    from agkit.risk.inputs import read, read_store

    if db is None and not from_store:
        return read(files or ["-"], on_error)
    kinds = [k.value for k in (from_store or default_kinds)]
    return read_store(db, kinds, files or [], on_error, capital)


def _out(records: list[dict[str, object]], columns: list[str]) -> None:
    """NDJSON on a pipe or file; an aligned table on a terminal."""
    import sys

    import orjson

    if sys.stdout.isatty():
        rows = [[_cell(r.get(c)) for c in columns] for r in records]
        widths = [max(len(c), *(len(row[i]) for row in rows)) if rows else len(c) for i, c in enumerate(columns)]
        sys.stdout.write("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)) + "\n")
        for row in rows:
            sys.stdout.write("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) + "\n")
        sys.stdout.flush()
        return
    opt = orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY
    buf = b"".join(orjson.dumps(_clean(r), option=opt) for r in records)
    sys.stdout.buffer.write(buf)
    sys.stdout.buffer.flush()


def _clean(v: object) -> object:
    """JSON has no NaN or infinity: such values become null."""
    import math

    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_clean(x) for x in v]
    if hasattr(v, "tolist"):
        return _clean(v.tolist())
    return v


def _cell(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if v is None:
        return "-"
    if isinstance(v, dict | list):
        return f"({len(v)})"
    return str(v)


def _rec(type_: str, ts: int, **fields: object) -> dict[str, object]:
    from agkit.records import now_us

    now = now_us()
    return {"type": type_, "ts_event": ts or now, "ts_init": now, **fields}


class VarMethod(StrEnum):
    HISTORICAL = "historical"
    PARAMETRIC = "parametric"
    MONTECARLO = "montecarlo"


def var(
    files: FilesArg = None,
    method: Annotated[
        list[VarMethod] | None, typer.Option("--method", "-m", case_sensitive=False, help="Repeatable; all three by default.")
    ] = None,
    confidence: ConfidenceOpt = None,
    horizon: Annotated[float, typer.Option(help="Horizon in periods of the input (e.g. days); see the scaling rules.")] = 1.0,
    value: Annotated[
        float | None,
        typer.Option(help="Portfolio value the VaR is expressed in; default the last equity point, or 1 (a fraction)."),
    ] = None,
    paths: Annotated[int, typer.Option(min=1, help="Monte Carlo paths.")] = 100_000,
    seed: Annotated[int, typer.Option(help="Monte Carlo seed (reproducible runs).")] = 0,
    series: SeriesOpt = None,
    window: Annotated[
        int | None, typer.Option(min=2, help="Also emit a rolling historical VaR over this many returns (a ring buffer).")
    ] = None,
    backtest: Annotated[
        bool, typer.Option("--backtest", help="Backtest the rolling VaR (needs --window): exceptions and the Kupiec test.")
    ] = False,
    significance: Annotated[float, typer.Option(help="Significance level of the Kupiec test.")] = 0.05,
    db: DbOpt = None,
    from_store: FromStoreOpt = None,
    capital: CapitalOpt = None,
    on_error: OnErrorOpt = OnError.SKIP,
) -> int:
    """Value at Risk and CVaR (expected shortfall) of a return series.

    Historical: VaR = -q(1-c) * value * sqrt(h), q the linearly interpolated quantile of
    the returns; CVaR = -mean(returns <= q) * value * sqrt(h). Parametric (normal, mean
    kept): VaR = -(mu*h + z(1-c)*sigma*sqrt(h)) * value; CVaR = -(mu*h -
    sigma*sqrt(h)*pdf(z)/(1-c)) * value. Monte Carlo: GBM with the per-period log drift and
    volatility of the same data, h-period log return N(m*h, s^2*h), seeded; VaR and CVaR
    from the simulated returns. VaR and CVaR are positive losses.

    Input: `return` {value, series} or `equity` {value, series} records; from the store
    (--db, --from-store; default equity) also daily returns from the PnL rollup
    (--from-store pnl --capital USD). Output:
    risk_var {method, confidence, horizon, value, var, cvar, n}; with --window,
    risk_var_rolling {ts_event, confidence, var}; with --backtest, risk_var_backtest {n,
    exceptions, rate, expected_rate, lr, p_value, reject} (Kupiec POF, chi-square(1)).

    Example: agkit risk var -c 0.99 --horizon 10 --value 25000 returns.ndjson
    """
    from agkit.errors import UsageError
    from agkit.risk import var as v

    inp = _read(files, on_error, db, from_store, capital, (StoreKind.EQUITY,))
    ts, rets = inp.series(series)  # type: ignore[attr-defined]
    confs = confidence or [0.95, 0.99]
    if value is None:
        eq = inp.equity.get(series) if series else (next(iter(inp.equity.values())) if len(inp.equity) == 1 else None)  # type: ignore[attr-defined]
        value = max(eq, key=lambda p: p[0])[1] if eq else 1.0
    methods = [m.value for m in method] if method else ["historical", "parametric", "montecarlo"]
    last = inp.last_ts  # type: ignore[attr-defined]
    out: list[dict[str, object]] = [
        _rec("risk_var", last, series=series, **res.as_dict())
        for res in v.compute(rets, methods, confs, value, horizon, paths, seed)
    ]
    if backtest and window is None:
        raise UsageError("--backtest needs --window N")
    if window is not None:
        for c in confs:
            rts, rvar = v.rolling_historical_var(ts, rets, window, c, value)
            out += [
                _rec("risk_var_rolling", int(t), series=series, method="historical", window=window, confidence=c, value=value, var=float(x))
                for t, x in zip(rts, rvar, strict=True)
            ]
            if backtest:
                k = v.backtest(ts, rets, window, c, significance)
                out.append(_rec("risk_var_backtest", last, series=series, window=window, confidence=c, significance=significance, **k.as_dict()))
    _out(out, ["type", "method", "confidence", "horizon", "var", "cvar", "n", "exceptions", "p_value", "reject"])
    return 0


def stress(
    files: FilesArg = None,
    scenarios: Annotated[
        str | None, typer.Option("--scenarios", metavar="FILE", help="YAML file of custom scenarios, asset map and events.")
    ] = None,
    map_: Annotated[
        list[str] | None,
        typer.Option("--map", metavar="ASSET=FACTOR[:BETA]", help="Tie an asset to a named scenario factor (SPY, QQQ, IWM, TLT, ...)."),
    ] = None,
    named: Annotated[bool, typer.Option(help="Run the five named historical scenarios.")] = True,
    pm: Annotated[bool, typer.Option(help="Run the prediction-market scenarios (resolutions, gaps to 0 and 1, events).")] = True,
    db: DbOpt = None,
    from_store: FromStoreOpt = None,
    on_error: OnErrorOpt = OnError.SKIP,
) -> int:
    """Stress test positions under named, custom and prediction-market scenarios.

    Positions come from `position` records (size, avg_price, mark or price, outcome) or
    are rebuilt from `order_filled` records, marked by `book` mids; from the store with
    --db / --from-store (default fills). A scenario's impact
    is the sum over positions of size * (new price - price); prices stay in [0, 1].
    Named scenarios (2008 Financial Crisis, 2020 COVID Crash, 2022 Inflation Shock, Flash
    Crash, Mild Correction) shock factors; --map ties assets to factors with a beta (new
    price = clip(p * (1 + beta * shock), 0, 1)). Prediction-market scenarios: each market
    resolving to each held asset, all prices gapping to 0 and to 1, each neg-risk event
    (from --scenarios `events:`) resolving to each of its markets.

    Output: risk_stress {scenario, kind, impact_usd, impact_pct, traffic_light,
    worst_position, worst_position_impact_usd, position_impacts} per scenario, then
    risk_stress_report {worst_scenario, max_loss_usd, best_scenario, max_gain_usd,
    average_impact_usd}. Traffic light on the loss as % of gross value: <10 green, <20
    yellow, <30 orange, else red.

    Example: agkit risk stress --map 0xtoken=SPY:0.5 positions.ndjson
    """
    from agkit.errors import UsageError
    from agkit.risk import stress as st

    inp = _read(files, on_error, db, from_store, None, (StoreKind.FILLS,))
    positions = [
        st.StressPosition(p["market"], p["asset"], float(p["size"]), float(p["price"]), p.get("outcome"))
        for p in inp.position_list()  # type: ignore[attr-defined]
    ]
    if not positions:
        raise UsageError("no positions in the input (position or order_filled records)")
    amap = st.parse_map(map_ or [])
    custom: list[st.Scenario] = []
    events: dict[str, list[str]] = {}
    if scenarios:
        custom, file_map, events = st.load_scenarios(scenarios)
        amap = {**file_map, **amap}
    todo = (st.NAMED if named else []) + custom + (st.prediction_market_scenarios(positions, events) if pm else [])
    results = st.run(positions, todo, amap)
    last = inp.last_ts  # type: ignore[attr-defined]
    out = [_rec("risk_stress", last, **r) for r in results]
    out.append(_rec("risk_stress_report", last, **st.report(results)))
    _out(out, ["type", "scenario", "impact_usd", "impact_pct", "traffic_light", "worst_position", "max_loss_usd"])
    return 0


class Kind(StrEnum):
    BINARY = "binary"
    VANILLA = "vanilla"


class Right(StrEnum):
    CALL = "call"
    PUT = "put"


def greeks(
    files: FilesArg = None,
    spot: Annotated[float | None, typer.Option(help="Underlying price S (omit to read `option` records).")] = None,
    strike: Annotated[float | None, typer.Option(help="Strike or threshold K.")] = None,
    expiry_days: Annotated[float | None, typer.Option(help="Time to expiry in days (/365).")] = None,
    expiry_years: Annotated[float | None, typer.Option(help="Time to expiry in years.")] = None,
    vol: Annotated[float | None, typer.Option(help="Annual volatility (decimal); omit with --price to imply it.")] = None,
    price: Annotated[float | None, typer.Option(help="Market price: solve the implied volatility from it.")] = None,
    rate: Annotated[float, typer.Option(help="Annual risk-free rate (decimal, continuous).")] = 0.0,
    kind: Annotated[Kind, typer.Option(case_sensitive=False, help="binary (cash-or-nothing, outcome shares) or vanilla (Black-Scholes).")] = Kind.BINARY,
    right: Annotated[Right, typer.Option(case_sensitive=False, help="call (YES: pays if S > K) or put (NO).")] = Right.CALL,
    quantity: Annotated[float, typer.Option(help="Position size (shares or contracts).")] = 1.0,
    db: DbOpt = None,
    from_store: FromStoreOpt = None,
    on_error: OnErrorOpt = OnError.SKIP,
) -> int:
    """Option price and Greeks: binary (outcome shares) and vanilla Black-Scholes.

    A YES share on "underlying above K at T" is a cash-or-nothing binary call paying 1,
    the NO share the binary put. Binary call: V = exp(-rT) N(d2). Greeks: delta dV/dS,
    gamma, vega (per 1.00 vol; vega_pct per vol point), theta (per year of calendar time;
    theta_day = /365), rho (per 1.00; rho_pct per 1%). With --price instead of --vol the
    implied volatility is solved (Brent); a binary's price is not monotone in vol out of the
    money, the lower root is returned. Vanilla: the original's Black-Scholes Greeks plus the
    price.

    Without --spot, reads `option` records {spot, strike, expiry_years, vol or price, rate,
    right, kind, quantity, underlying} (from the store with --db: default options) and
    prints each plus risk_greeks_total.

    Example: agkit risk greeks --spot 97000 --strike 100000 --expiry-days 30 --price 0.35
    """
    from agkit.errors import UsageError
    from agkit.risk import greeks as g

    if spot is not None:
        if strike is None:
            raise UsageError("--strike is required with --spot")
        if (expiry_days is None) == (expiry_years is None):
            raise UsageError("give one of --expiry-days or --expiry-years")
        T = expiry_years if expiry_years is not None else float(expiry_days or 0) / 365.0
        if vol is None and price is None:
            raise UsageError("give --vol, or --price to imply it")
        positions = [
            {"spot": spot, "strike": strike, "expiry_years": T, "vol": vol, "price": price, "rate": rate, "kind": kind.value, "right": right.value, "quantity": quantity}
        ]
        last = 0
    else:
        inp = _read(files, on_error, db, from_store, None, (StoreKind.OPTIONS,))
        positions = inp.options  # type: ignore[attr-defined]
        last = inp.last_ts  # type: ignore[attr-defined]
        if not positions:
            raise UsageError("no --spot and no `option` records in the input")
    try:
        res = g.portfolio(positions)
    except KeyError as exc:
        raise UsageError(f"option record without {exc.args[0]!r}") from None
    out = [_rec("risk_greeks", last, **row) for row in res["positions"]]
    if len(out) > 1:
        out.append(_rec("risk_greeks_total", last, **res["total"], by_underlying=res["by_underlying"]))
    _out(out, ["type", "kind", "right", "vol", "price", "delta", "gamma", "vega", "theta_day", "rho"])
    return 0


def portfolio(
    files: FilesArg = None,
    confidence: Annotated[float, typer.Option("--confidence", "-c", help="Confidence of the component VaR.")] = 0.95,
    horizon: Annotated[float, typer.Option(help="Horizon in periods (sqrt scaling).")] = 1.0,
    ridge: Annotated[float, typer.Option(help="Added to the covariance diagonal (regularisation).")] = 0.0,
    db: DbOpt = None,
    from_store: FromStoreOpt = None,
    on_error: OnErrorOpt = OnError.SKIP,
) -> int:
    """Covariance, correlation, risk contributions, component VaR, diversification, HHI, YES/NO netting.

    Input: `return` records with an `asset` (or `series`) per asset, aligned on ts_event
    (only timestamps present for every asset are used), and positions (`position` or
    `order_filled`) whose USD values (size * mark) are the exposures w; without positions,
    every asset gets 1 USD. From the store (--db, --from-store): default equity (the
    return records) and fills. sigma_p = sqrt(w' S w) with S the sample covariance (n-1) +
    ridge*I; marginal_i = (S w)_i / sigma_p; component_i = w_i * marginal_i (they sum to
    sigma_p); component VaR_i = z(c) * sqrt(h) * component_i; diversification ratio =
    sum |w_i| sigma_i / sigma_p; HHI = sum (|w_i| / sum |w|)^2. YES/NO netting: per market
    held on both sides, min(yes, no) complete sets are riskless (worth 1 each).

    Output: risk_portfolio {assets, volatility_usd, var_usd, diversification_ratio, hhi,
    covariance, correlation}, risk_contribution per asset {asset, value_usd, marginal,
    component, pct, component_var_usd, volatility}, risk_netting per market.

    Example: agkit risk portfolio -c 0.99 returns.ndjson positions.ndjson
    """
    from agkit.errors import UsageError
    from agkit.risk import portfolio_risk as pr

    inp = _read(files, on_error, db, from_store, None, (StoreKind.EQUITY, StoreKind.FILLS))
    series = {name: dict(pts) for name, pts in inp.returns.items()}  # type: ignore[attr-defined]
    if not series:
        raise UsageError("no `return` records with an asset or series")
    assets, ts, matrix = pr.align(series)
    if len(ts) < 2:
        raise UsageError("fewer than 2 timestamps common to every asset's returns")
    positions = {p["asset"]: p for p in inp.position_list()}  # type: ignore[attr-defined]
    if positions:
        values = [float(positions[a]["size"]) * float(positions[a]["price"]) if a in positions else 0.0 for a in assets]
    else:
        values = [1.0] * len(assets)
    cov = pr.covariance(matrix, ridge)
    d = pr.decompose(values, cov, confidence, horizon)
    last = inp.last_ts  # type: ignore[attr-defined]
    out: list[dict[str, object]] = [
        _rec(
            "risk_portfolio",
            last,
            assets=assets,
            n=len(ts),
            confidence=confidence,
            horizon=horizon,
            volatility_usd=d["volatility_usd"],
            var_usd=d["var_usd"],
            diversification_ratio=d["diversification_ratio"],
            hhi=d["hhi"],
            covariance=cov,
            correlation=pr.correlation(cov),
        )
    ]
    for i, a in enumerate(assets):
        out.append(
            _rec(
                "risk_contribution",
                last,
                asset=a,
                value_usd=values[i],
                marginal=float(d["marginal"][i]),
                component=float(d["component"][i]),
                pct=float(d["pct"][i]),
                component_var_usd=float(d["component_var_usd"][i]),
                volatility=float(d["asset_volatility"][i]),
            )
        )
    if positions:
        out += [_rec("risk_netting", last, **n) for n in pr.net_complements(list(positions.values()))]
    _out(out, ["type", "asset", "value_usd", "component", "pct", "component_var_usd", "volatility_usd", "var_usd"])
    return 0


def perf(
    files: FilesArg = None,
    series: SeriesOpt = None,
    benchmark: Annotated[str | None, typer.Option(help="Benchmark series (aligned on ts_event) for beta, alpha, tracking error.")] = None,
    periods_per_year: Annotated[float, typer.Option(help="Periods per year of the input (252 trading days, 365 calendar days, 8760 hours).")] = 252.0,
    risk_free: Annotated[float, typer.Option(help="Annual risk-free rate (rf/P per period).")] = 0.0,
    mar: Annotated[float, typer.Option(help="Annual minimum acceptable return for Sortino (mar/P per period).")] = 0.0,
    db: DbOpt = None,
    from_store: FromStoreOpt = None,
    capital: CapitalOpt = None,
    on_error: OnErrorOpt = OnError.SKIP,
) -> int:
    """Performance statistics of a return or equity series.

    r: per-period simple returns (from `return` records, or derived from `equity`
    records; from the store with --db / --from-store: default equity, or pnl with
    --capital: daily returns on capital plus the PnL so far); P: --periods-per-year; rf: --risk-free (annual). total_return = prod(1+r) - 1;
    cagr = (1 + total_return)^(P/n) - 1; volatility = std(r)*sqrt(P); sharpe = mean(r -
    rf/P)/std(r - rf/P)*sqrt(P) (std with n-1); sortino = mean(r - mar/P)/DD*sqrt(P), DD =
    sqrt(mean(min(r - mar/P, 0)^2)) over all n periods; max_drawdown = max(1 - W/peak(W)),
    W = prod(1+r), a positive fraction; max_drawdown_duration = longest run of periods
    below a previous peak; calmar = cagr/max_drawdown; win_rate = #(r>0)/#(r!=0);
    profit_factor = sum(r>0)/|sum(r<0)| (null without losses). With --benchmark b: beta =
    cov(r,b)/var(b); alpha = (mean(r - rf/P) - beta*mean(b - rf/P))*P; tracking_error =
    std(r - b)*sqrt(P); information_ratio = mean(r - b)/std(r - b)*sqrt(P).

    Output: one risk_perf record with every statistic (null where undefined).

    Example: agkit risk perf --periods-per-year 365 --benchmark btc equity.ndjson
    """
    from agkit.errors import UsageError
    from agkit.risk import perf as pf

    inp = _read(files, on_error, db, from_store, capital, (StoreKind.EQUITY,))
    if benchmark is not None and series is None:
        others = [n for n in inp.series_names() if n != benchmark]  # type: ignore[attr-defined]
        if len(others) != 1:
            raise UsageError(f"pick the series with --series (have: {', '.join(others)})")
        series = others[0]
    ts, rets = inp.series(series)  # type: ignore[attr-defined]
    bench = None
    if benchmark is not None:
        bts, brets = inp.series(benchmark)  # type: ignore[attr-defined]
        bmap = dict(zip(bts, brets, strict=True))
        keep = [i for i, t in enumerate(ts) if t in bmap]
        if len(keep) < 2:
            raise UsageError(f"fewer than 2 timestamps shared by the series and benchmark {benchmark!r}")
        rets = [rets[i] for i in keep]
        bench = [bmap[ts[i]] for i in keep]
    stats = pf.metrics(rets, periods_per_year, risk_free, mar, bench)
    rec = _rec("risk_perf", inp.last_ts, series=series, benchmark=benchmark, **stats)  # type: ignore[attr-defined]
    import sys

    if sys.stdout.isatty():
        _out([{"type": "risk_perf", "statistic": k, "value": v} for k, v in rec.items() if k not in ("type", "ts_event", "ts_init")], ["statistic", "value"])
    else:
        _out([rec], [])
    return 0


def register(app: typer.Typer) -> None:
    app.command("risk-check")(risk_check)
    risk_app.command()(var)
    risk_app.command()(stress)
    risk_app.command()(greeks)
    risk_app.command()(portfolio)
    risk_app.command()(perf)
    app.add_typer(risk_app)

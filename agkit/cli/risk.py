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
    "Each reads records on stdin (or files) and writes NDJSON results; a table when stdout is a terminal.",
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def register(app: typer.Typer) -> None:
    app.command("risk-check")(risk_check)

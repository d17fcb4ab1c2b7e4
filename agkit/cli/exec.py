"""`agkit exec`: the execution stage (OMS + paper or Polymarket venue)."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from agkit.cli.options import OnErrorOpt
from agkit.stream import OnError

if TYPE_CHECKING:
    from agkit.exec.venue import Venue


class VenueName(enum.StrEnum):
    PAPER = "paper"
    POLYMARKET = "polymarket"


def exec_(
    venue: Annotated[
        VenueName,
        typer.Option(
            "--venue",
            help="paper: simulated fills against the book and trade records in the stream "
            "(default). polymarket: the real CLOB (dry run unless --live).",
            case_sensitive=False,
        ),
    ] = VenueName.PAPER,
    live: Annotated[
        bool,
        typer.Option(
            "--live",
            help="Really send orders to the venue. Without it, nothing real is sent "
            "(polymarket: orders are signed and printed as a dry run).",
        ),
    ] = False,
    feedback: Annotated[
        str | None,
        typer.Option(
            "--feedback",
            metavar="PATH",
            help="Also write exec's own events to this FIFO, for the head stage's --merge PATH "
            "(fills reach the strategy); they are dropped when they come around again.",
        ),
    ] = None,
    journal: Annotated[
        Path | None,
        typer.Option(
            "--journal",
            metavar="PATH",
            help="polymarket --live: the file of what exec sent and reported, so a restart reports "
            "exactly what it missed (fills, cancels while down) and nothing twice "
            "(default: $XDG_STATE_HOME/agkit/exec/polymarket-<host>-<funder>.jsonl).",
        ),
    ] = None,
    latency_us: Annotated[
        int,
        typer.Option(
            "--latency-us",
            min=0,
            help="paper: event-time µs from submit_order to the order reaching the venue.",
        ),
    ] = 0,
    cancel_latency_us: Annotated[
        int | None,
        typer.Option(
            "--cancel-latency-us",
            min=0,
            help="paper: µs from cancel_order to the cancel taking effect (default: --latency-us).",
        ),
    ] = None,
    jitter_us: Annotated[
        int,
        typer.Option(
            "--jitter-us", min=0, help="paper: extra order latency, uniform in [0, N] µs (seeded)."
        ),
    ] = 0,
    fee_rate: Annotated[
        float,
        typer.Option(
            "--fee-rate",
            min=0.0,
            help="paper: taker fee rate; fee = shares × rate × (p(1−p))^exponent. Makers pay none.",
        ),
    ] = 0.0,
    fee_exponent: Annotated[
        float, typer.Option("--fee-exponent", min=0.0, help="paper: exponent of the fee formula.")
    ] = 1.0,
    seed: Annotated[
        int, typer.Option("--seed", help="paper: seed of venue order ids and latency jitter.")
    ] = 0,
    on_error: OnErrorOpt = OnError.SKIP,
) -> int:
    """Execute orders on the paper venue (default) or the Polymarket CLOB.

    Consumes submit_order, cancel_order and cancel_all; emits order_accepted,
    order_rejected, order_canceled, order_expired, order_filled, cancel_rejected and
    position records right after the record that caused them.

    Every other record passes through unchanged (book and trade records too, which the
    paper venue matches against, in event time). A repeated client order id is refused
    with order_rejected and never sent twice. Counters are emitted as metric records at
    the end. The paper venue fills marketable orders by walking the book and resting
    orders through a queue model, in event time, with --latency-us and Polymarket's
    taker fee; see docs/exec.md.

    Example: agkit pass --merge /tmp/fb | agkit strategy mm | agkit exec --feedback /tmp/fb
    """
    from agkit.errors import UsageError
    from agkit.exec.stage import ExecStage
    from agkit.runner import run_stage

    v: Venue
    if venue is VenueName.PAPER:
        if live:
            raise UsageError("--live is for a real venue; the paper venue never sends anything")
        if journal is not None:
            raise UsageError("--journal is for a live venue; the paper venue keeps nothing across runs")
        from agkit.exec.paper import PaperVenue

        v = PaperVenue(
            latency_us=latency_us,
            cancel_latency_us=cancel_latency_us,
            jitter_us=jitter_us,
            fee_rate=fee_rate,
            fee_exponent=fee_exponent,
            seed=seed,
        )
    else:
        v = polymarket_venue(live, journal)
    return run_stage(ExecStage(v), on_error=on_error, feedback=feedback)


def polymarket_venue(live: bool, journal: Path | None = None) -> Venue:
    """The Polymarket venue, imported lazily: `PolymarketVenue(live=..., journal=...)` from
    agkit.venues.polymarket.venue (or the package)."""
    import importlib

    from agkit.errors import UsageError

    cls = None
    for name in ("agkit.venues.polymarket.venue", "agkit.venues.polymarket"):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and not name.startswith(exc.name):
                raise UsageError(
                    f"the polymarket venue needs the package {exc.name!r}: pip install agkit"
                ) from None
            continue
        cls = getattr(module, "PolymarketVenue", None)
        if cls is not None:
            break
    if cls is None:
        raise UsageError(
            "the polymarket venue is not available in this build "
            "(agkit.venues.polymarket has no PolymarketVenue); use --venue paper"
        )
    venue: Venue = cls(live=live, journal=journal or "auto")
    return venue


def register(app: typer.Typer) -> None:
    app.command("exec")(exec_)

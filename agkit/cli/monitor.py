"""`agkit monitor`: watch a running bot (terminal dashboard, web dashboard, Prometheus)."""

from __future__ import annotations

from typing import Annotated

import typer

from agkit.cli.options import OnErrorOpt
from agkit.stream import OnError


def monitor(
    tee: Annotated[
        bool, typer.Option("--tee", help="Forward every record unchanged (sit mid-pipe) instead of consuming them.")
    ] = False,
    tui: Annotated[
        bool, typer.Option("--tui", help="Full-screen terminal dashboard, drawn on /dev/tty (never on a piped stdout).")
    ] = False,
    web: Annotated[
        str | None,
        typer.Option(
            "--web",
            metavar="[HOST:PORT]",
            flag_value="127.0.0.1:8080",
            is_flag=False,
            help="Serve the web dashboard, WebSocket ingest (ws://ADDR/metrics), /health and "
            "Prometheus text at /metrics. Default address 127.0.0.1:8080 (port 0: any free port).",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="AGKIT_MONITOR_TOKEN",
            help="Require this token (?token=T or Authorization: Bearer T); needed to bind a non-loopback address.",
        ),
    ] = None,
    capacity: Annotated[int, typer.Option("--capacity", min=1, help="Points kept per series (ring buffer).")] = 10_000,
    max_series: Annotated[
        int, typer.Option("--max-series", min=1, help="Most series held; points of further series are counted and dropped.")
    ] = 1_000,
    backfill: Annotated[
        float, typer.Option("--backfill", min=0, metavar="SECONDS", help="History sent to a browser when it connects.")
    ] = 300.0,
    linger: Annotated[
        bool | None,
        typer.Option(
            "--linger/--exit-on-eof",
            help="Keep the dashboards up after stdin ends (default for --tui/--web without --tee), until q or a signal.",
        ),
    ] = None,
    summary: Annotated[
        bool | None,
        typer.Option("--summary/--no-summary", help="Print a table of the series on stderr at the end (default without dashboards)."),
    ] = None,
    metrics_url: Annotated[
        str | None,
        typer.Option(
            "--metrics-url",
            envvar="AGKIT_METRICS_URL",
            metavar="URL",
            help="Also forward the metrics seen here to another monitor (ws://HOST:PORT/metrics).",
        ),
    ] = None,
    on_error: OnErrorOpt = OnError.SKIP,
) -> int:
    """Watch a bot: consume records (or pass them on with --tee) and show them live.

    Reads records on stdin and, with --web, metric records pushed over WebSocket (agkit
    `metric` records or the original ag-botkit JSON form). Series are keyed by name and
    labels, each in a bounded ring buffer. Without --tui or --web a table of the series is
    printed on stderr when input ends.

    Terminal dashboard keys: 1-4 or Tab switch views, p pauses, q quits.

    Examples:
      agkit feed sim | agkit strategy mm | agkit exec | agkit monitor --tui
      agkit feed sim | agkit monitor --tee --web | agkit strategy mm | ...
      AGKIT_METRICS_URL=ws://127.0.0.1:8080/metrics my-stage ...
    """
    from agkit.monitor.stage import MonitorOptions, run_monitor

    opts = MonitorOptions(
        tee=tee,
        tui=tui,
        web=web,
        token=token,
        capacity=capacity,
        max_series=max_series,
        backfill_s=backfill,
        linger=linger,
        metrics_url=metrics_url,
        summary=summary,
    )
    return run_monitor(opts, on_error=on_error)


def register(app: typer.Typer) -> None:
    app.command()(monitor)

"""`agkit store ...`: persistence (ingest, query, export, rollup, retention, migrate, stats)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agkit.cli.options import MergeOpt, OnErrorOpt
from agkit.stream import OnError

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from agkit.store.base import Filters

store_app = typer.Typer(
    name="store",
    help="Persist the stream: SQLite by default, PostgreSQL (TimescaleDB when installed) with "
    "--db postgresql://...\n\n"
    "Example: agkit feed sim | agkit store ingest; agkit store rollup; agkit store query bars",
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="AGKIT_DB",
        metavar="URL",
        help="sqlite:///PATH, a file path, or postgresql://...; default: agkit.db under the XDG "
        "data directory ($XDG_DATA_HOME/agkit).",
    ),
]
SinceOpt = Annotated[
    str | None, typer.Option(help="From this time: µs, ISO 8601 (UTC), or an age such as 7d.")
]
UntilOpt = Annotated[str | None, typer.Option(help="Before this time (same forms as --since).")]
MarketOpt = Annotated[str | None, typer.Option(help="Only this market (condition id).")]
AssetOpt = Annotated[str | None, typer.Option(help="Only this asset (token id).")]
ProgressOpt = Annotated[
    bool | None,
    typer.Option(
        "--progress/--no-progress", help="Progress and a summary on stderr (default: when stderr is a terminal)."
    ),
]
FormatOpt = Annotated[
    str,
    typer.Option(
        "--format", help="ndjson, table, or auto (a table when stdout is a terminal, else NDJSON)."
    ),
]


def _progress(flag: bool | None) -> bool:
    return sys.stderr.isatty() if flag is None else flag


def _log(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def _filters(
    since: str | None,
    until: str | None,
    types: list[str] | None = None,
    market: str | None = None,
    asset: str | None = None,
    strategy: str | None = None,
) -> Filters:
    from agkit.records import now_us
    from agkit.store.base import Filters
    from agkit.store.timeparse import parse_time_us

    now = now_us()
    return Filters(
        since=parse_time_us(since, now) if since else None,
        until=parse_time_us(until, now) if until else None,
        types=tuple(types or ()),
        market=market,
        asset=asset,
        strategy=strategy,
    )


def _write_rows(names: list[str] | None, rows: Iterable[Any], fmt: str) -> int:
    """Dict rows (names None) or tuples with column names, as NDJSON or a table."""
    import orjson

    if fmt not in ("auto", "ndjson", "table"):
        from agkit.errors import UsageError

        raise UsageError(f"--format must be ndjson, table or auto, not {fmt!r}")
    table = fmt == "table" or (fmt == "auto" and sys.stdout.isatty())
    out = sys.stdout.buffer
    n = 0
    if not table:
        buf = bytearray()
        for row in rows:
            d = row if names is None else dict(zip(names, row, strict=True))
            buf += orjson.dumps(d, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS)
            n += 1
            if len(buf) > 1 << 16:
                out.write(buf)
                buf.clear()
        out.write(buf)
        out.flush()
        return n
    dicts = [row if names is None else dict(zip(names, row, strict=True)) for row in rows]
    cols = list(names or ())
    for d in dicts:
        for k in d:
            if k not in cols:
                cols.append(k)
    cells = [[_cell(d.get(c)) for c in cols] for d in dicts]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for r in cells:
        lines.append("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
    return len(dicts)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


# --- commands ------------------------------------------------------------------------------


def ingest(
    db: DbOpt = None,
    tee: Annotated[
        bool, typer.Option("--tee", help="Also forward every record unchanged (a pass-through stage).")
    ] = False,
    batch_size: Annotated[int, typer.Option(help="Rows per transaction (size flush).")] = 50_000,
    flush_ms: Annotated[
        int, typer.Option(help="Commit a partial batch after this many milliseconds (time flush).")
    ] = 500,
    progress: ProgressOpt = None,
    on_error: OnErrorOpt = OnError.SKIP,
    merge: MergeOpt = None,
) -> int:
    """Store every record read on stdin (a sink; with --tee a pass-through).

    Batches by size and time, one transaction per batch (SQLite in WAL mode;
    PostgreSQL through COPY, with INSERT ... ON CONFLICT DO NOTHING for batches that
    overlap stored data). A lost PostgreSQL connection is reopened and the batch retried.
    Every record has a natural or derived key, so re-ingesting a file or replaying after
    a crash never duplicates a row. EOF, SIGTERM and SIGINT commit what was received.
    Record types outside the vocabulary go to the generic `records` table.
    Example: agkit feed sim | agkit strategy mm | agkit exec | agkit store ingest
    """
    from agkit.runner import run_stage
    from agkit.store.ingest import IngestStage

    stage = IngestStage(
        db, batch_size=batch_size, flush_ms=flush_ms, tee=tee, progress=_progress(progress)
    )
    return run_stage(stage, on_error=on_error, merge=merge or ())


def export(
    db: DbOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    type_: Annotated[
        list[str] | None, typer.Option("--type", help="Only this record type (repeatable).")
    ] = None,
    market: MarketOpt = None,
    asset: AssetOpt = None,
    progress: ProgressOpt = None,
) -> int:
    """Write stored records back out as NDJSON, in time order (ts_event, then arrival).

    The output is what `agkit feed replay` and `agkit backtest` read: ingest then export
    gives back the same records (in the compact encoding agkit writes).
    Example: agkit store export --since 2026-05-01 --until 2026-05-02 --market 0xabc > day.ndjson
    """
    from agkit.store import open_store
    from agkit.store.base import Progress

    f = _filters(since, until, type_, market, asset)
    show = Progress(_log, "export", _progress(progress))
    out = sys.stdout.buffer
    n = 0
    with open_store(db, create=False) as store:
        buf = bytearray()
        for raw in store.export(f):
            buf += raw.encode()
            buf += b"\n"
            n += 1
            if len(buf) > 1 << 20:
                out.write(buf)
                buf.clear()
                show(f"{n} records")
        out.write(buf)
        out.flush()
    show(f"{n} records exported", force=True)
    return 0


def query(
    name: Annotated[
        str | None,
        typer.Argument(metavar="[NAME]", help="positions, pnl, fills, bars or orders (or use --sql)."),
    ] = None,
    db: DbOpt = None,
    sql: Annotated[
        str | None, typer.Option(help="Raw read-only SQL; :name placeholders bound from --param.")
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", metavar="NAME=VALUE", help="A bound parameter (repeatable).")
    ] = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    market: MarketOpt = None,
    asset: AssetOpt = None,
    strategy: Annotated[str | None, typer.Option(help="Only this strategy.")] = None,
    period: Annotated[str, typer.Option(help="bars: 1m, 1h or 1d.")] = "1m",
    source: Annotated[str, typer.Option(help="bars: trade (OHLCV of trades) or mid (of book mids).")] = "trade",
    limit: Annotated[int | None, typer.Option(help="At most this many rows.")] = None,
    fmt: FormatOpt = "auto",
) -> int:
    """Run a named query or read-only SQL; NDJSON, or a table on a terminal.

    Named: positions (latest position per asset), pnl (daily PnL and fees per strategy
    and market, from `store rollup`), fills (order_filled records), bars (OHLCV), orders
    (each order's latest state). Every value is bound, never pasted into SQL; raw SQL runs
    on a read-only connection.
    Example: agkit store query bars --asset 123 --period 1h
    Example: agkit store query --sql "select count(*) n from trades where market = :m" --param m=0xabc
    """
    from agkit.errors import UsageError
    from agkit.store import open_store
    from agkit.store.queries import named_query, raw_query

    if (name is None) == (sql is None):
        raise UsageError("give a query NAME (positions, pnl, fills, bars, orders) or --sql, not both")
    params: dict[str, str] = {}
    for item in param or ():
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise UsageError(f"--param wants NAME=VALUE, not {item!r}")
        params[key] = value
    with open_store(db, create=False) as store:
        if sql is not None:
            names, rows = raw_query(store, sql, params)
            if limit is not None:
                rows = _take(rows, limit)
            _write_rows(names, rows, fmt)
        else:
            assert name is not None
            f = _filters(since, until, None, market, asset, strategy)
            _write_rows(None, named_query(store, name, f, limit=limit, period=period, source=source), fmt)
    return 0


def _take(rows: Iterator[Any], n: int) -> Iterator[Any]:
    for i, row in enumerate(rows):
        if i >= n:
            return
        yield row


def rollup(
    db: DbOpt = None,
    skip_if_locked: Annotated[
        bool, typer.Option(help="Exit 0 at once when another rollup holds the lock (default: wait).")
    ] = False,
    full: Annotated[bool, typer.Option(help="Recompute every rollup from scratch.")] = False,
    progress: ProgressOpt = None,
) -> int:
    """Update the rollups incrementally (meant for cron).

    Only data ingested since the last watermark is read; every bucket it touches is
    recomputed whole, so a rerun is idempotent and late data is handled. Produces OHLCV
    bars from trades and book mids (1m, 1h, 1d), daily PnL and fees per strategy and
    market (average-cost, from fills), metric min/max/avg/last per hour and day. A lock
    keeps overlapping runs apart. Exits non-zero with a message on failure.
    Example: */5 * * * * agkit store rollup --skip-if-locked
    """
    from agkit.store import open_store
    from agkit.store.base import Progress
    from agkit.store.rollup import run_rollup

    show = Progress(_log, "rollup", _progress(progress))
    with open_store(db) as store:
        report = run_rollup(store, wait=not skip_if_locked, full=full, progress=show)
    if report is None:
        _log("agkit store rollup: another rollup is running; skipped")
        return 0
    _write_rows(None, [report], "ndjson")
    show(
        ", ".join(f"{k} {v}" for k, v in report.items() if k not in ("type", "ts_event", "ts_init")),
        force=True,
    )
    return 0


def retention(
    db: DbOpt = None,
    keep: Annotated[
        list[str] | None,
        typer.Option(
            "--keep",
            metavar="TABLE=AGE",
            help="Keep this much of a table, e.g. trades=30d, metrics=14d, bars=forever "
            "(repeatable). Defaults: books, trades, records, metrics 90d; order_events, fills, "
            "positions 365d; rollups (bars, pnl_daily, metric_aggs) kept.",
        ),
    ] = None,
    apply: Annotated[bool, typer.Option("--apply", help="Delete; without it, only list what would go.")] = False,
    progress: ProgressOpt = None,
    fmt: FormatOpt = "auto",
) -> int:
    """Delete data older than each table's retention (a dry run unless --apply).

    Lists, per table, the cutoff and the rows older than it; with --apply deletes them
    (whole partitions or chunks on PostgreSQL, in batches on SQLite).
    Example: agkit store retention --keep trades=30d --apply
    """
    from agkit.records import now_us
    from agkit.store import open_store
    from agkit.store.base import Progress
    from agkit.store.retention import parse_keep, run_retention

    policy = parse_keep(keep or [])
    show = Progress(_log, "retention", _progress(progress))
    with open_store(db) as store:
        rows = run_retention(store, policy, now_us(), apply=apply, progress=show)
    _write_rows(None, rows, fmt)
    if not apply:
        show("dry run: nothing deleted (use --apply)", force=True)
    return 0


def migrate(db: DbOpt = None) -> int:
    """Create or upgrade the schema (also done automatically by every command).

    Safe when several processes start at once (an advisory lock on PostgreSQL,
    BEGIN IMMEDIATE on SQLite). Prints the schema version reached.
    """
    from agkit.store import open_store

    with open_store(db, migrate=False) as store:
        applied = store.migrate()
        version = store.version()
        url = store.url
    _write_rows(None, [{"db": _redact(url), "version": version, "applied": applied}], "ndjson")
    return 0


def stats(db: DbOpt = None, fmt: FormatOpt = "auto") -> int:
    """Rows, size and time range of every table, plus the rollup watermarks."""
    from agkit.store import open_store

    with open_store(db, create=False) as store:
        rows = [
            {"table": s.table, "rows": s.rows, "bytes": s.bytes, "ts_min": s.ts_min, "ts_max": s.ts_max}
            for s in store.stats()
        ]
        info = {"backend": store.backend, "version": store.version(), "seq": store.meta("seq")}
    _write_rows(None, rows, fmt)
    _log(f"agkit store stats: {info['backend']}, schema version {info['version']}, {info['seq']} records ingested")
    return 0


def _redact(url: str) -> str:
    """A URL without its password."""
    import re

    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def register(app: typer.Typer) -> None:
    store_app.command()(ingest)
    store_app.command()(export)
    store_app.command()(query)
    store_app.command()(rollup)
    store_app.command()(retention)
    store_app.command()(migrate)
    store_app.command()(stats)
    app.add_typer(store_app, name="store")

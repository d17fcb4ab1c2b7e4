"""`agkit feed sim|replay|polymarket|rtds` and `agkit markets`: market data into the pipe."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from agkit.cli.options import MergeOpt, OnErrorOpt
from agkit.stream import OnError

feed_app = typer.Typer(
    name="feed",
    help="Market data sources: each writes NDJSON records (book, trade, feed_status, metric, ...) on stdout.\n\n"
    "Example: agkit feed sim --seed 7 --max-records 10000 | agkit validate",
    no_args_is_help=True,
    rich_markup_mode=None,
)

RecordOpt = Annotated[
    str | None,
    typer.Option(
        "--record",
        metavar="FILE",
        help="Also write every emitted record to FILE (.gz compresses); replay it with `feed replay FILE`.",
    ),
]
MetricsOpt = Annotated[
    float,
    typer.Option(
        "--metrics-every",
        metavar="SECONDS",
        help="Emit `metric` records (messages, msgs/s, lag, reconnects, book levels) this often; 0 disables.",
    ),
]


def parse_time_us(text: str | None, flag: str) -> int | None:
    """Microseconds since the epoch from an integer (µs, or ms/s by magnitude) or ISO-8601."""
    if text is None:
        return None
    from datetime import UTC, datetime

    from agkit.errors import UsageError

    t = text.strip()
    if t.lstrip("-").isdigit():
        v = int(t)
        if abs(v) < 10**11:  # seconds
            return v * 1_000_000
        if abs(v) < 10**14:  # milliseconds
            return v * 1000
        return v
    try:
        dt = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{flag}: {text!r} is neither an epoch time nor an ISO-8601 date") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp()) * 1_000_000 + dt.microsecond


def _run(stage: object, on_error: OnError, merge: list[str] | None) -> int:
    from agkit.runner import run_stage
    from agkit.stage import Stage

    assert isinstance(stage, Stage)
    return run_stage(stage, on_error=on_error, merge=merge or ())


@feed_app.command("sim")
def sim(
    seed: Annotated[int, typer.Option(help="Random seed: the same seed and options give the same stream, byte for byte.")] = 1,
    markets: Annotated[int, typer.Option("--markets", metavar="N", help="Number of binary markets (YES/NO token pairs).")] = 3,
    max_records: Annotated[int, typer.Option("--max-records", metavar="N", help="Stop after N records; 0 = no limit.")] = 0,
    duration: Annotated[float, typer.Option(metavar="SECONDS", help="Stop after this much simulated time; 0 = until every market has resolved.")] = 0.0,
    expiry: Annotated[float, typer.Option(metavar="SECONDS", help="Simulated time until the last market resolves (market i of N resolves at (i+1)/N of it).")] = 21600.0,
    event_rate: Annotated[float, typer.Option("--event-rate", metavar="PER_S", help="Market events per simulated second, per market.")] = 5.0,
    depth: Annotated[int, typer.Option(metavar="N", help="Levels per side in each book record.")] = 10,
    realtime: Annotated[bool, typer.Option("--realtime", help="Pace records in wall-clock time (see --speed) instead of as fast as the pipe drains.")] = False,
    speed: Annotated[float, typer.Option(help="With --realtime: simulated seconds per wall second.")] = 1.0,
    start: Annotated[str | None, typer.Option(metavar="TIME", help="Simulated start time (epoch s/ms/µs or ISO-8601). Default 2026-01-01T00:00:00Z, or now with --realtime.")] = None,
    venue: Annotated[str, typer.Option(help="The `venue` field of the records.")] = "sim",
    metrics_every: MetricsOpt = 10.0,
    record: RecordOpt = None,
    on_error: OnErrorOpt = OnError.SKIP,
    merge: MergeOpt = None,
) -> int:
    """Simulate binary prediction markets: the embedded, offline default feed.

    N markets with YES/NO tokens: a latent probability with drift, jumps and news
    shocks; makers quoting on the tick grid (0.01, 0.001 near 0 and 1, with
    tick_size_changed records); informed and noise trades; every level at least the
    minimum size; the NO book mirrors the YES book (YES bid = 1 - NO ask); resolution
    at expiry. Timestamps are simulated, so a seed gives the same bytes every run.
    Emits feed_status, book, trade, tick_size_changed, market_resolved and metric
    records. Exit status 0 when the simulation ends or the reader goes away.

    Example: agkit feed sim --seed 7 --markets 2 --max-records 5000 > day.ndjson
    """
    from agkit.errors import UsageError
    from agkit.feed.sim import DEFAULT_START_US, SimConfig, SimFeed
    from agkit.records import now_us

    start_us = parse_time_us(start, "--start")
    if start_us is None:
        start_us = now_us() if realtime else DEFAULT_START_US
    if max_records < 0 or duration < 0 or metrics_every < 0:
        raise UsageError("--max-records, --duration and --metrics-every cannot be negative")
    try:
        cfg = SimConfig(
            seed=seed,
            markets=markets,
            depth=depth,
            start_us=start_us,
            expiry_s=expiry,
            event_rate=event_rate,
            metrics_every_s=metrics_every,
            venue=venue,
            max_records=max_records,
            duration_s=duration,
        )
        from agkit.feed.sim import Simulator

        Simulator(cfg)  # validates the options before the pipe starts
        stage = SimFeed(cfg, realtime=realtime, speed=speed, record=record)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return _run(stage, on_error, merge)


@feed_app.command("replay")
def replay(
    files: Annotated[list[str], typer.Argument(metavar="FILE...", help="Recorded NDJSON files (.gz too; - for stdin). Several are merged by ts_event.")],
    speed: Annotated[float, typer.Option(help="Pace: recorded seconds per wall second (10 = ten times faster).")] = 1.0,
    max_speed: Annotated[bool, typer.Option("--max", help="As fast as the pipe drains, ignoring timestamps.")] = False,
    from_: Annotated[str | None, typer.Option("--from", metavar="TIME", help="Skip records with ts_event before TIME (epoch s/ms/µs or ISO-8601).")] = None,
    to: Annotated[str | None, typer.Option("--to", metavar="TIME", help="Stop at the first record with ts_event after TIME.")] = None,
    limit: Annotated[int, typer.Option("--limit", metavar="N", help="Stop after N records; 0 = no limit.")] = 0,
    record: RecordOpt = None,
    on_error: OnErrorOpt = OnError.SKIP,
    merge: MergeOpt = None,
) -> int:
    """Replay recorded NDJSON, paced by ts_event, byte for byte.

    Each line leaves exactly as it was recorded, so `feed replay day.ndjson --max`
    reproduces day.ndjson. Malformed lines are reported on stderr with their file
    and line number and handled per --on-error. Exit status 0 at the end of the
    files, 2 for a missing file, 3 for a bad line under --on-error=fail.

    Example: agkit feed replay day.ndjson.gz --speed 10 | agkit strategy mm | agkit exec
    """
    from agkit.feed.replay import ReplayFeed

    stage = ReplayFeed(
        files,
        speed=speed,
        max_speed=max_speed,
        from_us=parse_time_us(from_, "--from"),
        to_us=parse_time_us(to, "--to"),
        limit=limit,
        on_error=on_error,
        record=record,
    )
    return _run(stage, on_error, merge)


GammaUrlOpt = Annotated[
    str,
    typer.Option(
        "--gamma-url",
        envvar="AGKIT_GAMMA_URL",
        metavar="URL",
        help="Gamma API base URL for market metadata; empty to skip lookups.",
    ),
]


@feed_app.command("polymarket")
def polymarket(
    asset: Annotated[list[str] | None, typer.Option("--asset", metavar="TOKEN_ID", help="A token id to subscribe to (repeatable).")] = None,
    market: Annotated[list[str] | None, typer.Option("--market", metavar="CONDITION_ID", help="A market's condition id: both its tokens (repeatable).")] = None,
    slug: Annotated[list[str] | None, typer.Option("--slug", metavar="SLUG", help="A market or event slug, resolved through Gamma (repeatable).")] = None,
    depth: Annotated[int, typer.Option(metavar="N", help="Levels per side in each book record.")] = 10,
    url: Annotated[str, typer.Option("--url", envvar="AGKIT_POLYMARKET_WS_URL", metavar="URL", help="Market-channel WebSocket URL.")] = "wss://ws-subscriptions-clob.polymarket.com/ws/market",
    gamma_url: GammaUrlOpt = "https://gamma-api.polymarket.com",
    shard_size: Annotated[int, typer.Option("--shard-size", metavar="N", help="Assets per WebSocket connection.")] = 200,
    ping_every: Annotated[float, typer.Option("--ping-every", metavar="SECONDS", help="Send the text keep-alive PING this often.")] = 10.0,
    silence_timeout: Annotated[float, typer.Option("--silence-timeout", metavar="SECONDS", help="Reconnect when nothing (not even PONG) arrived for this long.")] = 30.0,
    backoff: Annotated[float, typer.Option(metavar="SECONDS", help="First reconnect delay; doubles per failed attempt, with jitter.")] = 0.5,
    backoff_max: Annotated[float, typer.Option("--backoff-max", metavar="SECONDS", help="Longest reconnect delay.")] = 30.0,
    max_retries: Annotated[int, typer.Option("--max-retries", metavar="N", help="Give up (exit 4) after N failed attempts in a row; 0 = never.")] = 0,
    max_records: Annotated[int, typer.Option("--max-records", metavar="N", help="Stop after N records; 0 = no limit.")] = 0,
    duration: Annotated[float, typer.Option(metavar="SECONDS", help="Stop after this long; 0 = run until stopped.")] = 0.0,
    conflate: Annotated[bool, typer.Option("--conflate/--no-conflate", help="Under downstream back-pressure keep only the latest book per asset (trades and status records are never dropped).")] = True,
    metrics_every: MetricsOpt = 10.0,
    record: RecordOpt = None,
    on_error: OnErrorOpt = OnError.SKIP,
    merge: MergeOpt = None,
) -> int:
    """Stream the Polymarket CLOB market WebSocket as book/trade/... records.

    Keeps a full L2 book per asset from snapshots and price_change updates and emits
    the top --depth levels, best first, after every change; trades (last_trade_price),
    tick_size_changed, market_resolved; feed_status on every state change
    (reconnecting, stale, live) and as a heartbeat with the metrics. Reconnects with
    exponential backoff and jitter, resubscribes and reseeds the books from fresh
    snapshots. More than --shard-size assets are spread over several connections.
    Exit status 0 when stopped, 2 for bad selectors, 4 when the venue is unreachable
    after --max-retries.

    Example: agkit feed polymarket --slug will-it-rain --record rain.ndjson.gz | agkit strategy mm
    """
    from agkit.errors import UsageError
    from agkit.feed.gamma import GammaClient, resolve
    from agkit.feed.polymarket import PolymarketFeed
    from agkit.runner import log

    if not (asset or market or slug):
        raise UsageError("name what to subscribe to: --asset, --market or --slug")
    client = GammaClient(gamma_url) if gamma_url else None
    try:
        assets, meta = resolve(client, assets=asset or [], markets=market or [], slugs=slug or [],
                               log=lambda m: log(f"agkit feed polymarket: {m}"))
    finally:
        if client is not None:
            client.close()
    try:
        stage = PolymarketFeed(
            assets,
            url=url,
            depth=depth,
            meta=meta,
            shard_size=shard_size,
            ping_every=ping_every,
            silence=silence_timeout,
            backoff=backoff,
            backoff_max=backoff_max,
            max_retries=max_retries,
            metrics_every=metrics_every,
            max_records=max_records,
            duration=duration,
            conflate=conflate,
            record=record,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return _run(stage, on_error, merge)


@feed_app.command("rtds")
def rtds(
    topic: Annotated[list[str] | None, typer.Option("--topic", metavar="TOPIC", help="crypto_prices, crypto_prices_chainlink, equity_prices, comments, ... (repeatable).")] = None,
    type_: Annotated[list[str] | None, typer.Option("--type", metavar="TYPE", help="Message type for the topic at the same position (default *).")] = None,
    filter_: Annotated[list[str] | None, typer.Option("--filter", metavar="FILTER", help='Filter for the topic at the same position, e.g. \'{"symbol":"btcusdt"}\' (re-encoded compactly).')] = None,
    url: Annotated[str, typer.Option("--url", envvar="AGKIT_RTDS_URL", metavar="URL", help="RTDS WebSocket URL.")] = "wss://ws-live-data.polymarket.com",
    ping_every: Annotated[float, typer.Option("--ping-every", metavar="SECONDS", help="Send the text keep-alive PING this often.")] = 5.0,
    silence_timeout: Annotated[float, typer.Option("--silence-timeout", metavar="SECONDS", help="Reconnect when no frame arrived for this long; 0 disables (quiet topics).")] = 60.0,
    backoff: Annotated[float, typer.Option(metavar="SECONDS", help="First reconnect delay; doubles per failed attempt, with jitter.")] = 0.5,
    backoff_max: Annotated[float, typer.Option("--backoff-max", metavar="SECONDS", help="Longest reconnect delay.")] = 30.0,
    max_retries: Annotated[int, typer.Option("--max-retries", metavar="N", help="Give up (exit 4) after N failed attempts in a row; 0 = never.")] = 0,
    max_records: Annotated[int, typer.Option("--max-records", metavar="N", help="Stop after N records; 0 = no limit.")] = 0,
    duration: Annotated[float, typer.Option(metavar="SECONDS", help="Stop after this long; 0 = run until stopped.")] = 0.0,
    metrics_every: MetricsOpt = 10.0,
    record: RecordOpt = None,
    on_error: OnErrorOpt = OnError.SKIP,
    merge: MergeOpt = None,
) -> int:
    """Stream Polymarket's real-time data socket (RTDS) as records.

    Price topics become reference_price records (source = topic, symbol, value);
    other topics pass through as rtds_event records (topic, event, payload). Each
    subscription is sent on its own, so one unknown topic cannot refuse the rest.
    Reconnects with exponential backoff and jitter, resubscribes, and marks each gap
    with feed_status reconnecting -> live. Exit status 0 when stopped, 2 for bad
    options, 4 when the socket is unreachable or refuses everything after --max-retries.

    Example: agkit feed rtds --topic crypto_prices --type update --filter '{"symbol":"btcusdt"}'
    """
    from agkit.feed.rtds import RtdsFeed, subscriptions

    subs = subscriptions(topic or [], type_ or [], filter_ or [])
    stage = RtdsFeed(
        subs,
        url=url,
        ping_every=ping_every,
        silence=silence_timeout,
        backoff=backoff,
        backoff_max=backoff_max,
        max_retries=max_retries,
        metrics_every=metrics_every,
        max_records=max_records,
        duration=duration,
        record=record,
    )
    return _run(stage, on_error, merge)


def markets(
    query: Annotated[str | None, typer.Argument(metavar="[QUERY]", help="Text to search for (Gamma public search).")] = None,
    slug: Annotated[list[str] | None, typer.Option("--slug", metavar="SLUG", help="Resolve a market slug (repeatable).")] = None,
    market: Annotated[list[str] | None, typer.Option("--market", metavar="CONDITION_ID", help="Look up a condition id (repeatable).")] = None,
    token: Annotated[list[str] | None, typer.Option("--token", metavar="TOKEN_ID", help="Look up the market of a token id (repeatable).")] = None,
    tag: Annotated[str | None, typer.Option(metavar="TAG_SLUG", help="Only markets with this tag (e.g. politics).")] = None,
    status: Annotated[str, typer.Option(help="active (open for trading), closed, or all.")] = "active",
    limit: Annotated[int, typer.Option(metavar="N", help="At most N markets.")] = 20,
    order: Annotated[str | None, typer.Option(metavar="FIELD", help="Sort by a Gamma field, descending (e.g. volume24hr, liquidity).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="NDJSON even when stdout is a terminal.")] = False,
    gamma_url: GammaUrlOpt = "https://gamma-api.polymarket.com",
) -> int:
    """Discover Polymarket markets (Gamma API) and resolve slugs to ids.

    Shows each market's condition id, token id per outcome, tick size, minimum order
    size, neg-risk flag and end date: a table when stdout is a terminal, otherwise one
    `market_info` record per market (NDJSON). Exit status 0 (also when nothing
    matches), 2 for an unknown slug, id or tag, 4 when Gamma fails after retries.

    Example: agkit markets --slug will-it-rain | jq -r '.assets[0]'
    """
    import orjson

    from agkit.errors import UsageError
    from agkit.feed.gamma import GammaClient, discover, market_info_record, table
    from agkit.records import now_us

    if not gamma_url:
        raise UsageError("--gamma-url cannot be empty for markets")
    if limit < 1:
        raise UsageError("--limit must be at least 1")
    with GammaClient(gamma_url) as client:
        infos = discover(
            client, query=query, slugs=slug, markets=market, tokens=token, tag=tag,
            status=status, limit=limit, order=order,
        )
    if sys.stdout.isatty() and not json_out:
        sys.stdout.write(table(infos) if infos else "no markets found\n")
        return 0
    now = now_us()
    out = sys.stdout.buffer
    for info in infos:
        out.write(orjson.dumps(market_info_record(info, now), option=orjson.OPT_APPEND_NEWLINE))
    out.flush()
    return 0


def register(app: typer.Typer) -> None:
    app.add_typer(feed_app, name="feed")
    app.command("markets")(markets)

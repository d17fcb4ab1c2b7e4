"""The backtest engine: strategy → risk-check → paper exec in one process.

    cfg = BacktestConfig(data=["day.ndjson"], strategy="mm", policy="policies/default.yaml")
    result = run_backtest(cfg)            # a dict: the `backtest_result` record

The stages are the very objects the pipe commands run, linked by `agkit.runner.Chain`
with `feedback_from` = exec and an `EventClock`: exec's events reach the strategy (and
the risk check) before the next market record. The paper venue (agkit.exec.paper) gives
the queue-position fill model, latency, fees; `market_resolved` pays 1 to the winning
token. Nothing reads the wall clock, so the same inputs give the same bytes.

Accounting is done here from the output stream, independently of the stages: a
`Portfolio` with `initial_cash`, fed with every `order_filled`, marked to the mid of
every `book`, settled by every `market_resolved`. Equity is sampled every `sample_s`
seconds of event time (and at the end) for the returns behind Sharpe and Sortino; the
drawdowns are measured at every change of equity, between the samples too.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from agkit.backtest import metrics
from agkit.clock import MAX_TS_US, EventClock
from agkit.errors import BadInputError, InvalidRecord
from agkit.portfolio import Portfolio
from agkit.records import error_record
from agkit.stage import Stage
from agkit.stream import MAX_LINE, LineSplitter, OnError, decode_line, iter_records, open_input

READ_SIZE = 1 << 20
MARKET_TYPES = frozenset({"book", "trade", "tick_size_changed", "market_resolved", "feed_status"})


@dataclass(frozen=True)
class BacktestConfig:
    data: tuple[str, ...]
    strategy: str = "mm"
    params: tuple[tuple[str, Any], ...] = ()
    policy: str | None = None
    seed: int = 0
    latency_us: int = 0
    cancel_latency_us: int | None = None
    jitter_us: int = 0
    fee_rate: float = 0.0
    fee_exponent: float = 1.0
    initial_cash: float = 10_000.0
    sample_s: float = 60.0
    from_us: int | None = None
    to_us: int | None = None
    id_prefix: str | None = None
    on_error: OnError = OnError.SKIP

    def with_params(self, extra: dict[str, Any]) -> BacktestConfig:
        merged = dict(self.params)
        merged.update(extra)
        return replace(self, params=tuple(sorted(merged.items())))


@dataclass
class Curve:
    """Equity sampled every `sample_s`; `drawdown`: the deepest fall below the running
    peak within each interval ending at a sample (≤ 0, from the whole path)."""

    times: list[int] = field(default_factory=list)
    equity: list[float] = field(default_factory=list)
    drawdown: list[float] = field(default_factory=list)


def build_stages(cfg: BacktestConfig) -> tuple[list[Stage], int]:
    """[strategy, risk-check (if a policy), exec(paper)] and the exec index."""
    from agkit.exec.paper import PaperVenue
    from agkit.exec.stage import ExecStage
    from agkit.strategy import build

    stages: list[Stage] = [build(cfg.strategy, dict(cfg.params), id_prefix=cfg.id_prefix)]
    if cfg.policy:
        from agkit.risk.policy import load_policy
        from agkit.risk.stage import RiskCheck

        stages.append(RiskCheck(load_policy(cfg.policy), signals=False))
    venue = PaperVenue(
        latency_us=cfg.latency_us,
        cancel_latency_us=cfg.cancel_latency_us,
        jitter_us=cfg.jitter_us,
        fee_rate=cfg.fee_rate,
        fee_exponent=cfg.fee_exponent,
        seed=cfg.seed,
    )
    stages.append(ExecStage(venue))
    return stages, len(stages) - 1


class BadInput:
    """--on-error for a backtest: lines of the data that do not decode and records a stage
    refuses (a malformed book...). Each is reported with its line (the first
    REPORT_FIRST, then a count at the end) and skipped; under `emit` an `error` record
    goes on in its place (into --output); under `fail` the run stops (exit 3)."""

    def __init__(self, on_error: OnError) -> None:
        self.on_error = on_error
        self.count = 0
        self.path = ""  # where the record read last came from
        self.lineno = 0
        self.record: dict[str, Any] | None = None
        self.stages: list[str] = []
        self.now: Callable[[], int] = lambda: 0  # event time, for error records

    def line(self, path: str, lineno: int, reason: str, raw: bytes) -> dict[str, Any] | None:
        """A line that does not decode: the error record to read in its place, or None."""
        return self._bad(f"{path} line {lineno}", reason, lineno, raw)

    def refused(self, index: int, rec: dict[str, Any], exc: InvalidRecord) -> list[Any]:
        """Chain's on_invalid: stage `index` refused `rec`."""
        if rec is self.record:
            where, line = f"{self.path} line {self.lineno}", self.lineno
        else:  # a record the chain made (an order, a fill...)
            where, line = f"a {rec.get('type')!s} record at ts_event {rec.get('ts_event')!s}", None
        err = self._bad(where, f"{self.stages[index]} refused it: {exc}", line, orjson.dumps(rec, default=str))
        return [err] if err is not None else []

    def _bad(self, where: str, reason: str, line: int | None, raw: bytes) -> dict[str, Any] | None:
        from agkit.runner import OUTCOME, REPORT_FIRST

        self.count += 1
        if self.on_error is OnError.FAIL:
            raise BadInputError(f"{where}: {reason}")
        if self.count <= REPORT_FIRST:
            sys.stderr.write(f"agkit backtest: {where}: {reason} ({OUTCOME[self.on_error]})\n")
        if self.on_error is not OnError.EMIT:
            return None
        return error_record(self.now(), line, reason, raw, "backtest")

    def finish(self) -> None:
        from agkit.runner import OUTCOME, REPORT_FIRST

        if self.count > REPORT_FIRST:
            sys.stderr.write(f"agkit backtest: {self.count} bad records in all ({OUTCOME[self.on_error]})\n")


def read_data(
    cfg: BacktestConfig, progress: Callable[[int], None] | None = None, bad: BadInput | None = None
) -> Iterator[dict[str, Any]]:
    """The records of every data file in order, within [from_us, to_us)."""
    lo, hi = cfg.from_us, cfg.to_us
    bad = bad or BadInput(cfg.on_error)
    for path in cfg.data:
        for rec in _file_records(path, bad, progress):
            if lo is not None or hi is not None:
                ts = rec.get("ts_event")
                if type(ts) is int and ((lo is not None and ts < lo) or (hi is not None and ts >= hi)):
                    continue
            yield rec


def _file_records(
    path: str, bad: BadInput, progress: Callable[[int], None] | None
) -> Iterator[dict[str, Any]]:
    """Decode a data file in large chunks, one orjson pass per well-formed line.

    A line that is not a JSON object with a string `type` (or carries `_fb`) takes the
    careful path of `decode_line`, which validates it and says what is wrong: the same
    records and the same messages as `iter_records`, for a third of the decoding time.
    `bad` learns where each record came from, and handles the lines that do not decode."""
    loads = orjson.loads
    done = 0
    lineno = 0
    bad.path = path
    with open_input(path) as stream:
        splitter = LineSplitter(path)
        while True:
            chunk = stream.read(READ_SIZE)
            if chunk:
                lines, dropped = splitter.split(chunk)
                done += len(chunk)
            else:
                last = splitter.finish()
                lines, dropped = ([last] if last is not None else []), False
            for line in lines:
                lineno += 1
                try:
                    rec = loads(line)
                except orjson.JSONDecodeError:
                    rec = None
                if type(rec) is not dict or type(rec.get("type")) is not str or "_fb" in rec:
                    if not line.strip():
                        continue
                    rec, reason = decode_line(line)
                    if rec is None:
                        rec = bad.line(path, lineno, reason or "not a record", line)
                        if rec is None:
                            continue
                bad.lineno = lineno
                bad.record = rec
                yield rec
            if dropped:
                lineno += 1
                err = bad.line(path, lineno, f"line longer than {MAX_LINE} bytes, discarded", b"")
                if err is not None:
                    yield err
            if not chunk:
                return
            if progress is not None:
                progress(done)


class Accounting:
    """Fills, marks, resolutions and the equity curve, from the output stream."""

    def __init__(self, cfg: BacktestConfig) -> None:
        self.cfg = cfg
        self.pf = Portfolio(cash=cfg.initial_cash)
        self.equity = cfg.initial_cash  # kept current at every mark, fill and payout
        self.drawdown = metrics.PathDrawdown(cfg.initial_cash)
        self.curve = Curve()
        self.sample_us = max(1, int(cfg.sample_s * 1e6))
        self.next_sample: int | None = None
        self.now = 0
        self.first = 0
        self.submitted = 0
        self.submitted_size = 0.0
        self.filled_size = 0.0
        self.fills = 0
        self.maker_fills = 0
        self.volume = 0.0
        self.denied = 0
        self.rejected = 0
        self.canceled = 0
        self.orders_filled: set[str] = set()
        self.wins = 0
        self.losses = 0
        self.market_records = 0
        # by record type; the rest (metrics, positions, acknowledgements) is not counted
        self._handlers: dict[str, Callable[[dict[str, Any]], None]] = {
            **dict.fromkeys(MARKET_TYPES, self._time),
            "book": self._book,
            "market_resolved": self._resolved,
            "order_filled": self._filled,
            "submit_order": self._submitted,
            "order_denied": self._denied,
            "order_rejected": self._rejected,
            "order_canceled": self._canceled,
        }
        self.resolutions = 0

    def observe(self, rec: dict[str, Any]) -> None:
        handler = self._handlers.get(rec["type"])
        if handler is not None:
            handler(rec)

    def _book(self, rec: dict[str, Any]) -> None:
        bids, asks = rec["bids"], rec["asks"]
        if bids and asks:
            pos = self.pf.positions.get(rec["asset"])
            if pos is not None:
                mark = (bids[0][0] + asks[0][0]) / 2.0
                old = pos.mark
                pos.mark = mark
                if pos.size:
                    if old is None:  # valued at cost until now
                        old = pos.avg_price
                    if mark != old:
                        self._moved(self.equity + pos.size * (mark - old), rec)
        self._time(rec)

    def _moved(self, equity: float, rec: dict[str, Any]) -> None:
        self.equity = equity
        ts = rec.get("ts_event")
        self.drawdown.move(equity, ts if type(ts) is int else self.now)

    def _filled(self, rec: dict[str, Any]) -> None:
        if rec.get("settlement") == "failed":
            self.pf.reverse_fill(rec["asset"], rec["trade_id"])
            self._moved(self.pf.equity(), rec)
            return
        pos = self.pf.positions.get(rec["asset"])
        before = pos.realized_pnl if pos is not None else 0.0
        pos = self.pf.apply_fill_record(rec)
        gained = pos.realized_pnl - before
        if gained > 1e-12:
            self.wins += 1
        elif gained < -1e-12:
            self.losses += 1
        self.fills += 1
        size = rec["size"]
        self.filled_size += size
        self.volume += size * rec["price"]
        self.orders_filled.add(rec["id"])
        if rec.get("liquidity") == "maker":
            self.maker_fills += 1
        self._moved(self.pf.equity(), rec)

    def _submitted(self, rec: dict[str, Any]) -> None:
        self.submitted += 1
        self.submitted_size += rec["size"]

    def _resolved(self, rec: dict[str, Any]) -> None:
        for pos in self.pf.resolve(rec["market"], rec["winning_asset"]):
            self.resolutions += 1
            if pos.realized_pnl > 0:
                self.wins += 1
        self._moved(self.pf.equity(), rec)
        self._time(rec)

    def _denied(self, rec: dict[str, Any]) -> None:
        self.denied += 1

    def _rejected(self, rec: dict[str, Any]) -> None:
        self.rejected += 1

    def _canceled(self, rec: dict[str, Any]) -> None:
        self.canceled += 1

    def _time(self, rec: dict[str, Any]) -> None:
        self.market_records += 1
        ts = rec.get("ts_event")
        if type(ts) is not int or ts > MAX_TS_US:  # not a time: it must not sample until 2255
            return
        if self.next_sample is None:
            self.first = ts
            self.next_sample = ts
        while ts >= self.next_sample:
            self._sample(self.next_sample)
            self.next_sample += self.sample_us
        if ts > self.now:
            self.now = ts

    def _sample(self, ts: int) -> None:
        # the sum again, not the running figure: float drift does not build up
        self.equity = equity = self.pf.equity()
        self.curve.times.append(ts)
        self.curve.equity.append(equity)
        self.curve.drawdown.append(self.drawdown.sample(equity))

    def finish(self) -> None:
        if not self.curve.times or self.curve.times[-1] < self.now:
            self._sample(self.now)
        self.drawdown.finish(self.now)

    def result(self, cfg: BacktestConfig) -> dict[str, Any]:
        import numpy as np

        eq = np.asarray(self.curve.equity, dtype=np.float64)
        times = np.asarray(self.curve.times, dtype=np.int64)
        perf = metrics.summary(eq, (self.now - self.first) / 1e6, cfg.sample_s, self.drawdown)
        pf = self.pf
        final = float(eq[-1]) if eq.size else cfg.initial_cash
        inventory = {
            a: round(p.size, 6) for a, p in sorted(pf.positions.items()) if abs(p.size) > 1e-9
        }
        closed = self.wins + self.losses
        by_day: dict[str, float] = {}
        if eq.size:
            days = times // 86_400_000_000
            prev = cfg.initial_cash
            for d in np.unique(days):
                last = float(eq[days == d][-1])
                by_day[_day(int(d))] = round(last - prev, 6)
                prev = last
        return {
            "type": "backtest_result",
            "ts_event": self.now,
            "ts_init": self.now,
            "strategy": cfg.strategy,
            "params": dict(cfg.params),
            "seed": cfg.seed,
            "from_us": self.first,
            "to_us": self.now,
            "market_records": self.market_records,
            "initial_cash": cfg.initial_cash,
            "final_equity": _r(final),
            "total_return": _r(final - cfg.initial_cash),
            "total_return_pct": _r((final / cfg.initial_cash - 1.0) * 100.0) if cfg.initial_cash else None,
            "net_pnl": _r(pf.realized_pnl + pf.unrealized_pnl - pf.fees),
            "realized_pnl": _r(pf.realized_pnl),
            "unrealized_pnl": _r(pf.unrealized_pnl),
            "fees": _r(pf.fees),
            "volume": _r(self.volume),
            "orders": self.submitted + self.denied,
            "orders_sent": self.submitted,
            "orders_filled": len(self.orders_filled),
            "fills": self.fills,
            "maker_fills": self.maker_fills,
            "fill_ratio": _r(self.filled_size / self.submitted_size) if self.submitted_size else None,
            "order_fill_ratio": _r(len(self.orders_filled) / self.submitted) if self.submitted else None,
            "denied": self.denied,
            "rejected": self.rejected,
            "canceled": self.canceled,
            "inventory": inventory,
            "gross_inventory": _r(sum(abs(v) for v in inventory.values())),
            "resolutions": self.resolutions,
            "win_rate": _r(self.wins / closed) if closed else None,
            "avg_trade_pnl": _r((final - cfg.initial_cash) / self.fills) if self.fills else None,
            **perf,
            "pnl_by_day": by_day,
        }


def _r(x: float) -> float:
    return round(x, 8) if math.isfinite(x) else 0.0


def _day(day: int) -> str:
    import datetime as dt

    return (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()


def run_backtest(
    cfg: BacktestConfig,
    *,
    records: Iterable[dict[str, Any]] | None = None,
    sink: Callable[[Any], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[dict[str, Any], Curve]:
    """Run one backtest; `sink` gets every output record of the chain (for --output)."""
    from agkit.runner import Chain

    stages, exec_index = build_stages(cfg)
    bad = BadInput(cfg.on_error)
    bad.stages = [stage.name for stage in stages]
    source = iter(records if records is not None else read_data(cfg, progress, bad))
    # Start the event clock at the first record's time: stage timers are due from there
    # (a clock at 0 would make the chain fire them for every interval since 1970).
    first = next(source, None)
    start = first.get("ts_event") if first is not None else None
    clock = EventClock(start if type(start) is int and start <= MAX_TS_US else 0)
    if first is not None:
        source = itertools.chain((first,), source)
    chain = Chain(stages, feedback_from=exec_index, clock=clock, on_invalid=bad.refused)
    bad.now = clock.now_us
    acct = Accounting(cfg)
    observe = acct.observe
    for rec in chain.process(source):
        if type(rec) is not dict:
            from agkit.records import Record, to_builtins

            assert isinstance(rec, Record)
            rec = to_builtins(rec)
        observe(rec)
        if sink is not None:
            sink(rec)
    acct.finish()
    bad.finish()
    result = acct.result(cfg)
    params = getattr(stages[0], "params", None)
    result["params"] = {k: getattr(params, k, v) for k, v in cfg.params}
    return result, acct.curve


def data_span(paths: Iterable[str]) -> tuple[int, int]:
    """(first, last) ts_event of the data files (a quick scan)."""
    lo, hi = None, None
    for path in paths:
        with open_input(path) as stream:
            for _n, rec, _raw, _reason in iter_records(stream, OnError.SKIP, path):
                if rec is None:
                    continue
                ts = rec.get("ts_event")
                if type(ts) is int:
                    lo = ts if lo is None else min(lo, ts)
                    hi = ts if hi is None else max(hi, ts)
    if lo is None or hi is None:
        from agkit.errors import BadInputError

        raise BadInputError("no timestamped records in the data")
    return lo, hi


def file_size(paths: Iterable[str]) -> int:
    total = 0
    for p in paths:
        with contextlib.suppress(OSError):
            total += os.path.getsize(p)
    return total

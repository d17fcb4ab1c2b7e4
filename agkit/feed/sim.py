"""`agkit feed sim`: a seeded simulator of binary prediction markets.

Each market has a YES and a NO token. A latent probability p moves as a random walk
in logit space with per-market drift, small jumps and rare news shocks; its volatility
rises as expiry nears so markets end near 0 or 1, and each resolves at expiry (YES wins
with probability p). Market makers quote around a lagged estimate m of p (they learn
from trades and catch up with a time constant), so after a jump informed traders take
the stale quotes; noise traders trade either token at random. Books live on the tick
grid (0.01, finer 0.001 near 0 and 1, with a `tick_size_changed` record at each
switch), every level is at least `min_size`, and the NO book is the mirror of the YES
book (NO bid = 1 - YES ask, same sizes), so YES bid + NO ask = 1 exactly.

Time is simulated: ts_event = ts_init = the simulated instant, starting at `start_us`.
The same seed and options give the same stream, byte for byte (Python's Mersenne
Twister and integer tick arithmetic; no wall clock, no hash randomisation).

`Simulator(cfg).records()` yields record dicts: the library form used in process by
`backtest` and `run`; `blocks()` yields the same stream as encoded lines (what the
command writes: book lines are joined from level bytes cached per book side, since a
step changes a side a little or not at all); `SimFeed` is the stage behind the command.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import itertools
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import orjson

from agkit.feed.base import FeedMetrics, SourceStage
from agkit.stage import Context

UNIT = 1000  # prices are integers in units of 0.001 (the finest tick)
PRICE = [round(k / UNIT, 3) for k in range(UNIT + 1)]
PRICE_JSON = [orjson.dumps(p) for p in PRICE]
LEVEL_OPEN = [b"[%b," % p for p in PRICE_JSON]  # a level as JSON, up to its size
DEFAULT_START_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
MAX_LEVEL_SIZE = 10_000  # the largest size of one level, in units of min_size
COARSE, FINE = 10, 1  # tick sizes in units: 0.01 and 0.001
FINE_BELOW, FINE_ABOVE = 0.04, 0.96  # the tick becomes 0.001 outside this band ...
COARSE_FROM, COARSE_TO = 0.06, 0.94  # ... and 0.01 again once back inside this one
_NEVER = 1 << 62  # a time (µs) the simulation never reaches


@dataclass(frozen=True)
class SimConfig:
    seed: int = 1
    markets: int = 3
    depth: int = 10  # levels per side in each book record
    start_us: int = DEFAULT_START_US
    expiry_s: float = 6 * 3600.0  # the last market resolves this long after start
    event_rate: float = 5.0  # market events per simulated second, per market
    min_size: float = 5.0
    volatility: float = 0.6  # logit units per sqrt(hour)
    metrics_every_s: float = 10.0  # 0 disables metric records
    venue: str = "sim"
    max_records: int = 0  # 0 = no limit
    duration_s: float = 0.0  # simulated seconds; 0 = until every market resolved


def _token_id(seed: int, index: int, outcome: str) -> str:
    digest = hashlib.sha256(f"agkit-sim:{seed}:{index}:{outcome}".encode()).digest()
    return str(int.from_bytes(digest, "big") % 10**77)


def _condition_id(seed: int, index: int) -> str:
    return "0x" + hashlib.sha256(f"agkit-sim:{seed}:{index}:condition".encode()).hexdigest()


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


class _Side(dict[int, float]):
    """One side of a YES book (price units -> size) that keeps, until it next changes, its
    prices best first and its best levels as JSON (as YES levels, and mirrored as NO levels:
    price 1 - p, same size). Most steps change a side a little or not at all, so a book line
    is mostly cached bytes instead of lists rebuilt, sorted and encoded on every step."""

    __slots__ = ("_ranked", "_top", "depth", "descending", "no_json", "yes_json")

    def __init__(self, descending: bool, depth: int) -> None:
        super().__init__()
        self.descending = descending  # bids: the best price is the highest
        self.depth = depth  # levels in a book record
        self.yes_json: dict[int, bytes] = {}  # price -> the level as JSON, "[0.42,120.5]"
        self.no_json: dict[int, bytes] = {}  # the same level in the NO book, "[0.58,120.5]"
        self._ranked: list[int] | None = None
        self._top: tuple[bytes, bytes] | None = None

    def __setitem__(self, k: int, size: float, /) -> None:
        if k not in self:  # a new price: the ranking changes too
            self._ranked = None
        dict.__setitem__(self, k, size)
        s = orjson.dumps(size) + b"]"
        self.yes_json[k] = LEVEL_OPEN[k] + s
        self.no_json[k] = LEVEL_OPEN[UNIT - k] + s
        self._top = None

    def __delitem__(self, k: int, /) -> None:
        dict.__delitem__(self, k)
        del self.yes_json[k]
        del self.no_json[k]
        self._ranked = self._top = None

    # Hot callers read the caches first (`side._ranked or side.ranked()`): no call when valid.

    def ranked(self) -> list[int]:
        """The prices, best first."""
        if self._ranked is None:
            self._ranked = sorted(self, reverse=self.descending)
        return self._ranked

    def top_json(self) -> tuple[bytes, bytes]:
        """The best `depth` levels, comma-separated JSON: as YES levels, as NO levels."""
        if self._top is None:
            keys = self.ranked()[: self.depth]
            if len(keys) > 1:  # itemgetter of one key gives the item, not a 1-tuple
                get = itemgetter(*keys)
                self._top = (b",".join(get(self.yes_json)), b",".join(get(self.no_json)))
            else:
                self._top = (b"".join([self.yes_json[k] for k in keys]), b"".join([self.no_json[k] for k in keys]))
        return self._top


class _Market:
    __slots__ = (
        "asks",
        "bids",
        "condition",
        "drift",
        "expiry_us",
        "half_units",
        "horizon",
        "ids_no",
        "ids_yes",
        "index",
        "last_us",
        "m",
        "no",
        "p",
        "resolved",
        "tick",
        "x",
        "yes",
    )

    def __init__(self, cfg: SimConfig, index: int, rng: random.Random) -> None:
        self.index = index
        self.condition = _condition_id(cfg.seed, index)
        self.yes = _token_id(cfg.seed, index, "yes")
        self.no = _token_id(cfg.seed, index, "no")
        p0 = rng.uniform(0.12, 0.88)
        self.x = _logit(p0)  # latent probability, logit space
        self.p = _sigmoid(self.x)
        self.m = p0  # the market makers' estimate
        self.drift = rng.gauss(0.0, 0.15) / 3600.0  # logit units per second
        self.half_units = rng.choice((0.01, 0.015, 0.02)) * UNIT  # the makers' half spread
        n = cfg.markets
        self.expiry_us = cfg.start_us + int(cfg.expiry_s * 1e6 * (index + 1) / n)
        self.horizon = max((self.expiry_us - cfg.start_us) / 1e6, 1.0)  # seconds, start to expiry
        self.last_us = cfg.start_us
        self.tick = COARSE
        self.bids = _Side(descending=True, depth=cfg.depth)  # YES book: price units -> size
        self.asks = _Side(descending=False, depth=cfg.depth)
        self.resolved = False
        # the fixed middle of this market's book lines: venue, market, asset, up to the bids
        ids = b'"venue":%b,"market":%b,"asset":' % (orjson.dumps(cfg.venue), orjson.dumps(self.condition))
        self.ids_yes = ids + orjson.dumps(self.yes) + b',"bids":['
        self.ids_no = ids + orjson.dumps(self.no) + b',"bids":['



class Simulator:
    """The stream of one simulation, as record dicts in time order."""

    def __init__(self, cfg: SimConfig) -> None:
        if cfg.markets < 1:
            raise ValueError("--markets must be at least 1")
        if cfg.depth < 1:
            raise ValueError("--depth must be at least 1")
        if cfg.event_rate <= 0 or cfg.expiry_s <= 0:
            raise ValueError("--event-rate and --expiry must be positive")
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.markets = [_Market(cfg, i, self.rng) for i in range(cfg.markets)]
        self.metrics = FeedMetrics("feed.sim", {"source": "sim"})
        self.trade_seq = 0
        self._emit_books: Callable[[_Market, int], list[Any]] = self._books
        # the end of a book line, from the asks on, by tick size
        self._book_tails = {
            tick: b'],"tick_size":%b,"min_size":%b}' % (PRICE_JSON[tick], orjson.dumps(cfg.min_size))
            for tick in (COARSE, FINE)
        }
        self._vol_per_minute = cfg.volatility / 60.0
        self._min_size = cfg.min_size
        self._max_size = cfg.min_size * MAX_LEVEL_SIZE

    # -- the stream -----------------------------------------------------------------

    def records(self) -> Iterator[dict[str, Any]]:
        """Every record of the run, bounded by max_records / duration / the last expiry."""
        recs = itertools.chain.from_iterable(self._events(self._books))
        return itertools.islice(recs, self.cfg.max_records) if self.cfg.max_records else recs

    def blocks(self, size: int = 2048) -> Iterator[list[bytes]]:
        """The same stream as `records()` in lists of about `size` JSON lines (no newlines),
        each the bytes `orjson.dumps(record)` gives; book lines come from cached level bytes."""
        dumps = orjson.dumps
        left = self.cfg.max_records or -1
        block: list[bytes] = []
        for items in self._events(self._book_lines):
            block += items
            if len(block) >= size:
                block = [x if type(x) is bytes else dumps(x) for x in block]
                if 0 <= left <= len(block):
                    yield block[:left]
                    return
                left -= len(block)
                yield block
                block = []
        if left >= 0:
            del block[left:]
        if block:
            yield [x if type(x) is bytes else dumps(x) for x in block]

    def _events(self, books: Callable[[_Market, int], list[Any]]) -> Iterator[list[Any]]:
        """The records of each event in turn, books made by `books` (records or lines)."""
        cfg = self.cfg
        rng = self.rng
        end_us = cfg.start_us + int(cfg.duration_s * 1e6) if cfg.duration_s > 0 else None
        self._emit_books = books
        t0 = cfg.start_us
        yield [{
            "type": "feed_status",
            "ts_event": t0,
            "ts_init": t0,
            "source": "sim",
            "state": "live",
            "lag_ms": 0.0,
            "detail": f"seed={cfg.seed} markets={cfg.markets}",
        }]
        for mk in self.markets:  # opening books
            self._requote(mk, rng, fill=0.85)
            yield books(mk, t0)
        metrics_us = int(cfg.metrics_every_s * 1e6)
        next_metrics = t0 + metrics_us if metrics_us > 0 else _NEVER
        last_us = _NEVER if end_us is None else end_us
        self.metrics.records(t0)  # opens the first window
        mean_gap_us = 1e6 / cfg.event_rate
        log, random_ = math.log, rng.random
        heap = [(min(t0 + self._gap(mean_gap_us), mk.expiry_us), mk.index) for mk in self.markets]
        heapq.heapify(heap)
        markets, step = self.markets, self._step
        while heap:
            due, i = heap[0]
            if next_metrics <= due:
                if next_metrics > last_us:
                    return
                yield self._metric_records(next_metrics)
                next_metrics += metrics_us
                continue
            if due > last_us:
                return
            mk = markets[i]
            if due >= mk.expiry_us:
                heapq.heappop(heap)
                self._evolve(mk, due)
                yield self._resolve(mk, due)
                continue
            yield step(mk, due)
            # _gap inlined (random.expovariate(1.0) is -log(1 - random()))
            gap = int(-log(1.0 - random_()) * mean_gap_us)
            heapq.heapreplace(heap, (min(due + (gap if gap > 1 else 1), mk.expiry_us), i))

    def _gap(self, mean_us: float) -> int:
        return max(1, int(self.rng.expovariate(1.0) * mean_us))

    # -- dynamics ---------------------------------------------------------------------

    def _evolve(self, mk: _Market, t: int) -> None:
        """Advance the latent probability and the makers' estimate to time t."""
        dt = (t - mk.last_us) / 1e6
        if dt <= 0:
            return
        mk.last_us = t
        rng = self.rng
        left = max((mk.expiry_us - t) / 1e6, 0.0) / mk.horizon
        sigma = self._vol_per_minute / math.sqrt(max(left, 0.02))  # per sqrt(second)
        x = mk.x + mk.drift * dt + sigma * math.sqrt(dt) * rng.gauss(0.0, 1.0)
        u = rng.random()
        if u < dt / 1200.0:  # small jumps, ~every 20 minutes
            x += rng.gauss(0.0, 0.35)
        elif u > 1.0 - dt / 7200.0:  # news shocks, ~every 2 hours
            x += rng.choice((-1.0, 1.0)) * rng.uniform(0.8, 2.0)
        if left < 0.1:  # information arrives as expiry nears: the market heads for 0 or 1
            tau = max((mk.expiry_us - t) / 1e6, 30.0)
            x += math.copysign(2.0 * dt / tau, x)
        mk.x = x = -7.0 if x < -7.0 else (7.0 if x > 7.0 else x)
        if x >= 0:  # _sigmoid, inlined
            p = 1.0 / (1.0 + math.exp(-x))
        else:
            e = math.exp(x)
            p = e / (1.0 + e)
        mk.p = p
        catch_up = 1.0 - math.exp(-dt / 8.0)  # makers learn p with an 8 s time constant
        mk.m += (p - mk.m) * catch_up

    def _step(self, mk: _Market, t: int) -> list[dict[str, Any]]:
        self._evolve(mk, t)
        rng = self.rng
        out = self._retick(mk, t) if (mk.m < COARSE_FROM or mk.m > COARSE_TO) == (mk.tick == COARSE) else []
        trades: list[dict[str, Any]] = []
        bids, asks = mk.bids, mk.asks
        best_bid = (bids._ranked or bids.ranked())[0] if bids else None
        best_ask = (asks._ranked or asks.ranked())[0] if asks else None
        p_units = mk.p * UNIT
        edge = 1.5 * mk.tick
        if best_ask is not None and p_units > best_ask + edge and rng.random() < 0.7:
            trades = self._take(mk, t, buy_yes=True, informed=True)
        elif best_bid is not None and p_units < best_bid - edge and rng.random() < 0.7:
            trades = self._take(mk, t, buy_yes=False, informed=True)
        elif rng.random() < 0.25:
            trades = self._take(mk, t, buy_yes=rng.random() < 0.5, informed=False)
        if trades:
            out += trades
        self._requote(mk, rng)
        out += self._emit_books(mk, t)
        return out

    def _retick(self, mk: _Market, t: int) -> list[dict[str, Any]]:
        m = mk.m
        new = mk.tick
        if mk.tick == COARSE and (m < FINE_BELOW or m > FINE_ABOVE):
            new = FINE
        elif mk.tick == FINE and COARSE_FROM <= m <= COARSE_TO:
            new = COARSE
        if new == mk.tick:
            return []
        old, mk.tick = mk.tick, new
        if new == COARSE:  # levels between the coarse ticks are no longer valid prices
            for side in (mk.bids, mk.asks):
                for k in [k for k in side if k % COARSE]:
                    del side[k]
        return [
            {
                "type": "tick_size_changed",
                "ts_event": t,
                "ts_init": t,
                "venue": self.cfg.venue,
                "market": mk.condition,
                "asset": asset,
                "old_tick_size": PRICE[old],
                "new_tick_size": PRICE[new],
            }
            for asset in (mk.yes, mk.no)
        ]

    def _take(self, mk: _Market, t: int, buy_yes: bool, informed: bool) -> list[dict[str, Any]]:
        """An aggressive order sweeping up to three levels; one trade record per level.

        Buying YES takes YES asks; buying NO takes NO asks, i.e. the mirrored YES bids.
        Selling YES / selling NO are the same two book sides, so the aggressor token is
        drawn at random and the trade is reported on that token."""
        rng = self.rng
        cfg = self.cfg
        size = round(cfg.min_size * math.exp(rng.gauss(1.3 if informed else 0.8, 0.8)), 2)
        size = max(size, cfg.min_size)
        on_yes = rng.random() < 0.5
        if buy_yes:
            book, levels = mk.asks, mk.asks.ranked()[:3]
            asset, side = (mk.yes, "buy") if on_yes else (mk.no, "sell")
        else:
            book, levels = mk.bids, mk.bids.ranked()[:3]
            asset, side = (mk.yes, "sell") if on_yes else (mk.no, "buy")
        out: list[dict[str, Any]] = []
        for k in levels:
            if size <= 0:
                break
            avail = book[k]
            q = min(size, avail)
            rest = round(avail - q, 2)
            if rest < cfg.min_size:
                del book[k]
            else:
                book[k] = rest
            size = round(size - q, 2)
            self.trade_seq += 1
            price = PRICE[k] if asset == mk.yes else PRICE[UNIT - k]
            out.append(
                {
                    "type": "trade",
                    "ts_event": t,
                    "ts_init": t,
                    "venue": cfg.venue,
                    "market": mk.condition,
                    "asset": asset,
                    "price": price,
                    "size": round(q, 2),
                    "side": side,
                    "trade_id": f"sim-{cfg.seed}-{self.trade_seq}",
                }
            )
        # makers read the flow: each trade moves their estimate a little
        mk.m = min(max(mk.m + (0.002 if buy_yes else -0.002) * len(out), 0.002), 0.998)
        return out

    def _requote(self, mk: _Market, rng: random.Random, fill: float = 0.35) -> None:
        """Makers re-centre on m: pull crossing levels, refill the top, jiggle sizes."""
        tick = mk.tick
        lo, hi = tick, UNIT - tick
        half = mk.half_units
        if half < tick:
            half = tick
        m_units = mk.m * UNIT
        bid0 = math.floor((m_units - half) / tick) * tick
        ask0 = math.ceil((m_units + half) / tick) * tick
        if bid0 < lo:
            bid0 = lo
        elif bid0 > hi - tick:
            bid0 = hi - tick
        if ask0 <= bid0:
            ask0 = bid0 + tick
        elif ask0 > hi:
            ask0 = hi
        bids, asks = mk.bids, mk.asks
        if bids and (bids._ranked or bids.ranked())[0] > bid0:
            for k in [k for k in bids if k > bid0]:
                del bids[k]
        if asks and (asks._ranked or asks.ranked())[0] < ask0:
            for k in [k for k in asks if k < ask0]:
                del asks[k]
        depth = self.cfg.depth
        random_ = rng.random
        deep = fill > 0.5 or random_() < 0.3  # the deeper book is refilled now and then
        for side, top, step in ((bids, bid0, -tick), (asks, ask0, tick)):
            if top not in side:
                side[top] = self._size(0)
            if deep:
                k = top
                for j in range(1, depth):
                    k += step
                    if k < lo or k > hi:
                        break
                    if k not in side and random_() < fill:
                        side[k] = self._size(j)
            if len(side) > depth + 4:  # the far end thins out
                for k in side.ranked()[depth + 4 :]:
                    del side[k]
        min_size, max_size = self._min_size, self._max_size
        getrandbits = rng.getrandbits
        for side in (bids, asks):  # a few makers resize
            if side and random_() < 0.6:
                # k = rng.choice(tuple(side)), inlined: the same draws as random._randbelow
                n = len(side)
                bits = n.bit_length()
                r = getrandbits(bits)
                while r >= n:
                    r = getrandbits(bits)
                k = tuple(side)[r]
                size = round(side[k] * (0.6 + 1.0 * random_()), 2)  # rng.uniform(0.6, 1.6)
                # clamped both ways: resizing drifts upwards, so a level that lives long (the
                # 0.999 ask of a market heading to 1) would grow to inf, which JSON writes as null
                side[k] = min_size if size < min_size else (max_size if size > max_size else size)

    def _size(self, level: int) -> float:
        min_size = self._min_size
        size = min_size * math.exp(self.rng.gauss(2.0 + 0.15 * level, 0.9))
        return round(size if size > min_size else min_size, 2)

    def _books(self, mk: _Market, t: int) -> list[dict[str, Any]]:
        depth = self.cfg.depth
        bid_keys = sorted(mk.bids, reverse=True)
        ask_keys = sorted(mk.asks)
        bids, asks = mk.bids, mk.asks
        tick = PRICE[mk.tick]
        venue, market, min_size = self.cfg.venue, mk.condition, self.cfg.min_size
        self.metrics.messages += 2
        self.metrics._window_messages += 2
        return [{
            "type": "book",
            "ts_event": t,
            "ts_init": t,
            "venue": venue,
            "market": market,
            "asset": mk.yes,
            "bids": [[PRICE[k], bids[k]] for k in bid_keys[:depth]],
            "asks": [[PRICE[k], asks[k]] for k in ask_keys[:depth]],
            "tick_size": tick,
            "min_size": min_size,
        }, {
            "type": "book",
            "ts_event": t,
            "ts_init": t,
            "venue": venue,
            "market": market,
            "asset": mk.no,
            "bids": [[PRICE[UNIT - k], asks[k]] for k in ask_keys[:depth]],
            "asks": [[PRICE[UNIT - k], bids[k]] for k in bid_keys[:depth]],
            "tick_size": tick,
            "min_size": min_size,
        }]

    def _book_lines(self, mk: _Market, t: int) -> list[bytes]:
        """`_books` encoded: the same two records as JSON lines, from cached bytes."""
        bids, asks = mk.bids, mk.asks
        bids_yes, bids_no = bids._top or bids.top_json()  # YES bids; mirrored, the NO asks
        asks_yes, asks_no = asks._top or asks.top_json()
        head = b'{"type":"book","ts_event":%d,"ts_init":%d,' % (t, t)
        tail = self._book_tails[mk.tick]
        self.metrics.messages += 2
        self.metrics._window_messages += 2
        return [
            b"".join((head, mk.ids_yes, bids_yes, b'],"asks":[', asks_yes, tail)),
            b"".join((head, mk.ids_no, asks_no, b'],"asks":[', bids_no, tail)),
        ]

    def _resolve(self, mk: _Market, t: int) -> list[dict[str, Any]]:
        mk.resolved = True
        yes_wins = self.rng.random() < mk.p
        return [{
            "type": "market_resolved",
            "ts_event": t,
            "ts_init": t,
            "venue": self.cfg.venue,
            "market": mk.condition,
            "winning_asset": mk.yes if yes_wins else mk.no,
            "winning_outcome": "Yes" if yes_wins else "No",
            "assets": [mk.yes, mk.no],
        }]

    def _metric_records(self, t: int) -> list[dict[str, Any]]:
        levels = {}
        for mk in self.markets:
            if not mk.resolved:
                n = min(len(mk.bids), self.cfg.depth) + min(len(mk.asks), self.cfg.depth)
                levels[mk.yes] = n
                levels[mk.no] = n
        return self.metrics.records(t, book_levels=levels)

    def market_info(self) -> list[dict[str, Any]]:
        """The simulated markets in the form `agkit markets` prints."""
        return [
            {
                "condition_id": mk.condition,
                "slug": f"sim-market-{self.cfg.seed}-{mk.index}",
                "tokens": [
                    {"token_id": mk.yes, "outcome": "Yes"},
                    {"token_id": mk.no, "outcome": "No"},
                ],
                "tick_size": PRICE[mk.tick],
                "min_size": self.cfg.min_size,
                "neg_risk": False,
                "end_date_us": mk.expiry_us,
            }
            for mk in self.markets
        ]


class SimFeed(SourceStage):
    """The `feed sim` stage: as fast as the pipe drains, or paced (`realtime`, `speed`)."""

    name = "feed sim"

    def __init__(
        self,
        cfg: SimConfig,
        *,
        realtime: bool = False,
        speed: float = 1.0,
        record: str | None = None,
    ) -> None:
        super().__init__(record)
        if speed <= 0:
            raise ValueError("--speed must be positive")
        self.cfg = cfg
        self.realtime = realtime
        self.speed = speed

    async def run(self, ctx: Context) -> None:
        sim = Simulator(self.cfg)
        emit = self.emit
        if not self.realtime:
            if self.raw_output:  # the hot path: encoded lines, in blocks
                for block in sim.blocks():
                    self.emit_lines(block)
                    self.flush_now()
                    await self.wait_writable()
                return
            n = 0
            for rec in sim.records():
                emit(rec)
                n += 1
                if n >= 4096:
                    n = 0
                    await self.wait_writable()
            return
        t0 = self.cfg.start_us
        w0 = time.monotonic()
        speed = self.speed
        for rec in sim.records():
            due = w0 + (rec["ts_event"] - t0) / 1e6 / speed
            delay = due - time.monotonic()
            if delay > 0:
                self.flush_record()
                await asyncio.sleep(delay)
            emit(rec)
            if self.backlog() > 0:
                await self.wait_writable()

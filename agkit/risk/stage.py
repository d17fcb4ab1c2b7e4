"""The `risk-check` stage: pre-trade checks between strategy and exec.

- `submit_order`: approved orders are forwarded byte-for-byte (the input dict is
  returned); refused ones become one `order_denied` (id, policy, reason; plus
  `violations` naming every policy that refused it, `strategy`, `market`, `asset`).
- `order_filled` (positions, via agkit.portfolio), `order_accepted/canceled/expired/
  rejected` (open orders), `book` (marks, mids, data freshness) and `market_resolved`
  are tracked and forwarded unchanged.
- Time is `ctx.clock` (event time under `agkit run`/`backtest`, or with
  `--clock event` in a pipe): the stale-data guard, the rate limit and the daily loss
  window never read the wall clock.

The hot path is one function generated per policy set (on_record, RECORD_HANDLER
below): orders and their ends are handled inline on plain dicts, with each policy's
cheap pass test inlined and its closure consulted only when that test fails; see
docs/risk.md for every policy's exact semantics.
"""

from __future__ import annotations

import contextlib
import signal
from collections import deque
from collections.abc import Callable
from typing import Any

from agkit.clock import MAX_TS_US
from agkit.errors import InvalidRecord
from agkit.portfolio import Portfolio, PositionState
from agkit.records import metric_record
from agkit.risk.killswitch import KillSwitchState
from agkit.risk.policy import PolicySet, PolicySpec
from agkit.stage import Context, Out, Stage, Timer

DAY_US = 86_400_000_000
EPS = 1e-9

# A check gets (market, asset, sgn, price, size, cur, reducing, now) and returns a
# human-readable violation message or None.
Check = Callable[[str, str, float, float, float, float, bool, int], "str | None"]

_NUMBER = (int, float)


class RiskCheck(Stage):
    """Pre-trade risk checks and kill switch, driven by a PolicySet."""

    name = "risk-check"
    # generated per policy set in __init__ (see _generate): an attribute holding a plain
    # function, so a record costs the runner's call and nothing more
    on_record: Callable[[dict[str, Any]], Out]  # type: ignore[assignment]
    # False: every policy's closure decides every order, no inline pass test (the
    # reference the tests compare the generated fast path with)
    prefilter = True
    consumes = frozenset(
        {
            "submit_order",
            "book",
            "order_filled",
            "order_accepted",
            "order_canceled",
            "order_expired",
            "order_rejected",
            "market_resolved",
        }
    )

    def __init__(
        self,
        policy: PolicySet,
        *,
        kill_file: str | None = None,
        kill_file_interval_ms: int = 250,
        metrics_interval_ms: int = 1000,
        advance_clock: bool = False,
        signals: bool = True,
    ) -> None:
        self.policy = policy
        self.pf = Portfolio()
        self.kill = KillSwitchState(kill_file)
        self.kill_file_interval_us = max(1, kill_file_interval_ms) * 1000
        self.metrics_interval_us = metrics_interval_ms * 1000
        self.advance_clock = advance_clock
        self.use_signals = signals
        self._signals_installed: list[int] = []
        # market data
        self.mid: dict[str, float] = {}
        self.book_ts: dict[str, int] = {}
        self.asset_market: dict[str, str] = {}
        self.market_assets: dict[str, set[str]] = {}
        # open orders: id -> (asset, sgn, remaining, market)
        # (tuples of atoms: the garbage collector stops tracking them, which matters with many open orders)
        self.open: dict[str, tuple[str, float, float, str]] = {}
        self.open_buy: dict[str, float] = {}
        self.open_sell: dict[str, float] = {}
        self.open_n_asset: dict[str, int] = {}
        self.seen_trades: set[tuple[str, str]] = set()
        # exposure totals, kept incrementally: per asset (mark value, worst-case loss, net pnl)
        self.contrib: dict[str, tuple[float, float, float]] = {}
        self.inv_mark = 0.0
        self.inv_worst = 0.0
        self.net_pnl = 0.0
        self.peak_pnl = 0.0
        # the current UTC day [day_start_us, day_end_us): a range test per order is
        # cheaper than dividing a 16-digit timestamp
        self.day_start_us = self.day_end_us = 0
        self.day_start_pnl = 0.0
        self.loss_breach: str | None = None  # level: why non-reducing orders are refused
        # counters
        self.approved = 0
        self.denied_by: dict[str, int] = {}
        self._rate_by_spec: dict[int, deque[int]] = {}
        # Per market, kept incrementally when a market- or event-scoped PositionLimit
        # needs them: mkt_excl = sum of |position| over its assets; mkt_incl = the same
        # plus every open order's remaining size, an upper bound of the gross with open
        # orders that an order's approval or cancel moves by one addition.
        self._track_gross = any(
            p.type == "PositionLimit" and p.params["scope"] != "asset" for p in policy.policies
        )
        self.held: dict[str, float] = {}  # asset -> |position| as counted in the totals
        self.mkt_incl: dict[str, float] = {}
        self.mkt_excl: dict[str, float] = {}
        self.loss_policies: list[PolicySpec] = policy.of_type("LossLimit")
        # (name, max daily loss, max drawdown, max drawdown %, capital): read once, since
        # the stops are evaluated on every mark of a held asset
        self._loss_limits: list[tuple[str, Any, Any, Any, Any]] = [
            (
                spec.name,
                spec.params.get("max_daily_loss_usd"),
                spec.params.get("max_drawdown_usd"),
                spec.params.get("max_drawdown_pct"),
                spec.params.get("capital_usd"),
            )
            for spec in self.loss_policies
        ]
        compiled: list[tuple[PolicySpec, Check]] = []
        for spec in policy.policies:
            check = self._compile(spec)
            if check is not None:
                compiled.append((spec, check))
        # an open-order count per asset only when a policy reads it
        self._count_per_asset = any(
            p.type == "OpenOrderLimit" and p.params.get("max_per_asset") is not None for p in policy.policies
        )
        for markets in policy.events.values():
            for mk in markets:
                self.mkt_incl[mk] = self.mkt_excl[mk] = 0.0
        # Event time: with advance_clock (a pipe with --clock event) the stage owns the
        # time itself, the latest ts_event seen, kept in `now` with one comparison per
        # record; otherwise it reads ctx.clock when it needs the time.
        self.now = 0
        self._clock_now: Callable[[], int] = _zero
        # the less frequent types; on_record handles orders and their ends inline
        self._handlers: dict[str, Callable[[dict[str, Any]], Out]] = {
            "book": self._on_book,
            "order_filled": self._on_fill,
            "order_accepted": self._on_accepted,
            "market_resolved": self._on_resolved,
        }
        self.on_record = self._generate(compiled)

    # -- lifecycle -------------------------------------------------------------------

    def start(self, ctx: Context) -> Out:
        self.ctx = ctx
        self.clock = ctx.clock
        self.now = ctx.clock.now_us()
        self._clock_now = self._event_now if self.advance_clock else ctx.clock.now_us
        now = self._clock_now()
        out: list[dict[str, Any]] = []
        for spec in self.policy.of_type("KillSwitch"):
            if spec.params.get("enabled"):
                out += self.kill.engage("policy", f"policy {spec.name} enabled in {self.policy.path}", now)
        if self.kill.kill_file_present():
            out += self.kill.engage("kill_file", f"kill file {self.kill.kill_file} exists", now)
        if self.use_signals:
            self._install_signals()
        if out:
            out.append(self._kill_metric(now))
        return out

    def _event_now(self) -> int:
        return self.now

    def stop(self) -> Out:
        for sig in self._signals_installed:
            with contextlib.suppress(Exception):
                import asyncio

                asyncio.get_running_loop().remove_signal_handler(sig)
        self._signals_installed = []
        return self.metrics() if self.metrics_interval_us > 0 else None

    def timers(self) -> list[Timer]:
        timers = []
        if self.kill.kill_file:
            timers.append(Timer(self.kill_file_interval_us, self.check_kill_file))
        if self.metrics_interval_us > 0:
            timers.append(Timer(self.metrics_interval_us, self.metrics))
        return timers

    def _install_signals(self) -> None:
        import asyncio

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # a synchronous chain (tests, library use): no signals
        for sig, fn in ((signal.SIGUSR1, self._sig_engage), (signal.SIGUSR2, self._sig_disengage)):
            try:
                loop.add_signal_handler(sig, fn)
            except (NotImplementedError, RuntimeError, ValueError):
                continue
            self._signals_installed.append(sig)

    def _sig_engage(self) -> None:
        for rec in self.engage("signal", "SIGUSR1 received"):
            self.ctx.emit(rec)

    def _sig_disengage(self) -> None:
        for rec in self.disengage("SIGUSR2"):
            self.ctx.emit(rec)

    # -- kill switch -----------------------------------------------------------------

    def engage(self, source: str, reason: str) -> list[dict[str, Any]]:
        """Engage the kill switch; returns the records to emit (none if already engaged)."""
        now = self._clock_now()
        out = self.kill.engage(source, reason, now)
        if out:
            self.ctx.log(f"agkit risk-check: kill switch ENGAGED ({source}): {reason}")
            out.append(self._kill_metric(now))
        return out

    def disengage(self, source: str) -> list[dict[str, Any]]:
        """Disengage explicitly; refused (with a log line) while the kill file exists."""
        now = self._clock_now()
        out, refused = self.kill.disengage(source, now)
        if refused:
            self.ctx.log(f"agkit risk-check: kill switch not disengaged: {refused}")
            return []
        self.ctx.log(f"agkit risk-check: kill switch disengaged by {source}")
        out.append(self._kill_metric(now))
        return out

    def check_kill_file(self) -> Out:
        if not self.kill.engaged and self.kill.kill_file_present():
            return self.engage("kill_file", f"kill file {self.kill.kill_file} appeared")
        return None

    def _kill_metric(self, now: int) -> dict[str, Any]:
        return metric_record(now, "risk.kill_switch", 1.0 if self.kill.engaged else 0.0, "gauge", {})

    # -- metrics ---------------------------------------------------------------------

    def metrics(self) -> list[dict[str, Any]]:
        now = self._clock_now()
        out = [
            metric_record(now, "risk.decisions", float(self.approved), "counter", {"policy": "all", "decision": "approved"}),
        ]
        for name, n in self.denied_by.items():
            out.append(metric_record(now, "risk.decisions", float(n), "counter", {"policy": name, "decision": "denied"}))
        out += [
            metric_record(now, "risk.exposure_usd", self.inv_mark, "gauge", {"basis": "mark"}),
            metric_record(now, "risk.exposure_usd", self.inv_worst, "gauge", {"basis": "worst_case"}),
            metric_record(now, "risk.open_orders", float(len(self.open)), "gauge", {}),
            metric_record(now, "risk.pnl_usd", self.net_pnl, "gauge", {}),
            metric_record(now, "risk.daily_pnl_usd", self.net_pnl - self.day_start_pnl, "gauge", {}),
            self._kill_metric(now),
        ]
        return out

    # -- records -----------------------------------------------------------------------

    def _bad_order(self, rec: dict[str, Any]) -> InvalidRecord:
        """Why a submit_order cannot be checked at all (the generated handler's slow path)."""
        for key in ("id", "asset", "market", "side", "price", "size"):
            if key not in rec:
                return InvalidRecord(f"submit_order without {key!r}")
        if type(rec["price"]) not in _NUMBER or type(rec["size"]) not in _NUMBER:
            return InvalidRecord("submit_order: price and size must be numbers")
        if type(rec["id"]) is not str or type(rec["asset"]) is not str or type(rec["market"]) is not str:
            return InvalidRecord("submit_order: id, market and asset must be strings")
        return InvalidRecord(f"submit_order: side must be buy or sell, got {rec['side']!r}")

    def _refuse(self, rec: dict[str, Any], oid: str, now: int, reducing: bool) -> Out:
        """Refusals before any policy: a senseless order, a duplicate id, the kill switch."""
        price, size = rec["price"], rec["size"]
        if not (0.0 < price < 1.0 and size > 0.0):
            return self._deny(rec, oid, now, [("OrderSanity", f"OrderSanity: price {price} must be in (0, 1) and size {size} > 0")])
        if oid in self.open:
            return self._deny(rec, oid, now, [("OrderSanity", f"OrderSanity: duplicate client order id {oid!r} (still open)")])
        assert self.kill.engaged and not reducing
        return self._deny(
            rec, oid, now, [("KillSwitch", f"KillSwitch (active, {self.kill.source}): {self.kill.reason}; only exposure-reducing orders pass")]
        )

    def _deny(self, rec: dict[str, Any], oid: str, now: int, violations: list[tuple[str, str]]) -> Out:
        denied_by = self.denied_by
        for name, _ in violations:
            denied_by[name] = denied_by.get(name, 0) + 1
        out: dict[str, Any] = {
            "type": "order_denied",
            "ts_event": now,
            "ts_init": now,
            "id": oid,
            "policy": violations[0][0],
            "reason": "; ".join(m for _, m in violations),
            "strategy": rec.get("strategy"),
            "market": rec.get("market"),
            "asset": rec.get("asset"),
        }
        if len(violations) > 1:
            out["violations"] = [n for n, _ in violations]
        return (out,)

    def _learn(self, market: str, asset: str) -> None:
        self.asset_market[asset] = market
        self.market_assets.setdefault(market, set()).add(asset)
        self.mkt_incl.setdefault(market, 0.0)
        self.mkt_excl.setdefault(market, 0.0)

    def _on_book(self, rec: dict[str, Any]) -> Out:
        try:
            asset = rec["asset"]
            bids = rec["bids"]
            asks = rec["asks"]
            ts = rec["ts_event"]
            if bids:
                mid = (bids[0][0] + asks[0][0]) * 0.5 if asks else bids[0][0]
            elif asks:
                mid = asks[0][0]
            else:
                mid = None
            if mid is not None and not 0.0 <= mid <= 1.0:  # NaN fails too, a str raises
                raise InvalidRecord(f"book: a price outside [0, 1] (mid {mid!r})")
        except (KeyError, IndexError, TypeError) as exc:
            raise InvalidRecord(f"book: malformed ({type(exc).__name__}: {exc})") from None
        if type(ts) is not int or ts > MAX_TS_US:
            raise InvalidRecord("book: ts_event must be an integer of µs before 2100")
        if type(asset) is not str:
            raise InvalidRecord(f"book: asset must be a string, not {asset!r}")
        if self.asset_market.get(asset) is None:
            market = rec.get("market")
            if type(market) is str:
                self._learn(market, asset)
        self.book_ts[asset] = ts
        if mid is None:
            self.mid.pop(asset, None)
            return (rec,)
        self.mid[asset] = mid
        pos = self.pf.positions.get(asset)
        if pos is not None and pos.size != 0.0:
            pos.mark = mid
            self._refresh(asset, pos)
            if self.loss_policies:
                stop = self._check_loss()
                if stop:
                    return [rec, *stop]
        return (rec,)

    def _on_fill(self, rec: dict[str, Any]) -> Out:
        try:
            oid = rec["id"]
            asset = rec["asset"]
            market = rec["market"]
            size = rec["size"]
            price = rec["price"]
            side = rec["side"]
            trade_id = str(rec.get("trade_id", ""))
        except KeyError as exc:
            raise InvalidRecord(f"order_filled without {exc.args[0]!r}") from None
        if type(size) not in _NUMBER or type(price) not in _NUMBER or side not in ("buy", "sell"):
            raise InvalidRecord("order_filled: price/size must be numbers and side buy or sell")
        fee = rec.get("fee") or 0.0
        key = (str(oid), trade_id)
        if rec.get("settlement") == "failed":
            if key in self.seen_trades:
                self.seen_trades.discard(key)
                pos = self.pf.reverse_fill(asset, trade_id)
                if pos is not None:
                    pos.mark = self.mid.get(asset)
                self._refresh(asset)
                if self._track_gross:
                    self._sync_held(asset)
            return [rec, *self._check_loss()] if self.loss_policies else (rec,)
        if key in self.seen_trades:  # a settlement update of a fill already counted
            return (rec,)
        self.seen_trades.add(key)
        if asset not in self.asset_market:
            self._learn(market, asset)
        pos = self.pf.apply_fill(market, asset, side, float(price), float(size), float(fee), trade_id)
        m = self.mid.get(asset)
        if m is not None:
            pos.mark = m
        if self._track_gross:
            self._sync_held(asset)
        order = self.open.get(oid)
        if order is not None:
            left = order[2] - size
            self._reduce_open(order, size)
            self.open[oid] = (order[0], order[1], left, order[3])
            if left <= EPS:
                self._release(self.open.pop(oid))
        self._refresh(asset)
        if self.loss_policies:
            return [rec, *self._check_loss()]
        return (rec,)

    def _reduce_open(self, order: tuple[str, float, float, str], size: float) -> None:
        asset = order[0]
        book = self.open_buy if order[1] > 0 else self.open_sell
        had = book.get(asset, 0.0)
        left = had - size
        if left <= EPS:
            left = 0.0
        book[asset] = left
        if self._track_gross:
            self.mkt_incl[self.asset_market[asset]] -= had - left

    def _release(self, order: tuple[str, float, float, str]) -> None:
        """An order is no longer open (already popped from `open`): drop what it held."""
        if order[2] > EPS:
            self._reduce_open(order, order[2])
        if self._count_per_asset:
            asset = order[0]
            n = self.open_n_asset.get(asset, 1) - 1
            self.open_n_asset[asset] = n if n > 0 else 0

    def _on_accepted(self, rec: dict[str, Any]) -> Out:
        return (rec,)

    def _on_resolved(self, rec: dict[str, Any]) -> Out:
        market = rec.get("market")
        winner = rec.get("winning_asset")
        if type(market) is not str or type(winner) is not str:
            raise InvalidRecord("market_resolved: market and winning_asset must be strings")
        for pos in self.pf.resolve(market, winner):
            self._refresh(pos.asset)
            if self._track_gross:
                self._sync_held(pos.asset)
        for oid in [o for o, v in self.open.items() if v[3] == market]:
            self._release(self.open.pop(oid))
        return [rec, *self._check_loss()] if self.loss_policies else (rec,)

    # -- exposure and losses -------------------------------------------------------------

    def _refresh(self, asset: str, pos: PositionState | None = None) -> None:
        """Recompute one asset's contribution to the exposure and PnL totals."""
        if pos is None:
            pos = self.pf.positions.get(asset)
            if pos is None:
                return
        s = pos.size
        if s == 0.0:
            new = (0.0, 0.0, pos.realized_pnl - pos.fees)
        else:
            avg = pos.avg_price
            held_mark = pos.mark
            mark = held_mark if held_mark is not None else avg
            worst = s * avg if s > 0 else -s * (1.0 - avg)
            # pos.net_pnl, written out (this runs on every mark of a held asset)
            unrealized = (held_mark - avg) * s if held_mark is not None else 0.0
            new = (abs(s) * mark, worst, pos.realized_pnl + unrealized - pos.fees)
        old = self.contrib.get(asset, (0.0, 0.0, 0.0))
        self.contrib[asset] = new
        self.inv_mark += new[0] - old[0]
        self.inv_worst += new[1] - old[1]
        self.net_pnl += new[2] - old[2]
        if self.net_pnl > self.peak_pnl:
            self.peak_pnl = self.net_pnl

    def _roll_day(self, now: int) -> None:
        self.day_start_us = now - now % DAY_US
        self.day_end_us = self.day_start_us + DAY_US
        self.day_start_pnl = self.net_pnl
        if self.loss_policies:
            self.loss_breach = self._loss_reason()

    def _loss_reason(self) -> str | None:
        pnl = self.net_pnl
        daily = pnl - self.day_start_pnl
        dd = self.peak_pnl - pnl
        for name, daily_lim, dd_lim, pct, cap in self._loss_limits:
            if daily_lim is not None and -daily > daily_lim:
                return f"{name}: daily loss {-daily:.2f} USD exceeds max {daily_lim:.2f}"
            if dd_lim is not None and dd > dd_lim:
                return f"{name}: drawdown {dd:.2f} USD from the peak exceeds max {dd_lim:.2f}"
            if pct is not None:
                frac = dd / (cap + self.peak_pnl) * 100.0 if cap + self.peak_pnl > 0 else 100.0
                if frac > pct:
                    return f"{name}: drawdown {frac:.2f}% of equity exceeds max {pct:.2f}%"
        return None

    def _check_loss(self) -> list[dict[str, Any]]:
        """Re-evaluate the loss stops after a fill, a mark or a resolution."""
        now = self._clock_now()
        if not self.day_start_us <= now < self.day_end_us:
            self._roll_day(now)
        was = self.loss_breach
        self.loss_breach = reason = self._loss_reason()
        if reason is None or was is not None:
            return []
        for spec in self.loss_policies:
            if spec.params.get("kill_switch", True) is not False and reason.startswith(spec.name + ":"):
                return self.engage("loss_stop", reason)
        return []

    def exposure(self) -> dict[str, float]:
        """Current totals (for tests, metrics and `agkit run` users)."""
        return {
            "inventory_mark_usd": self.inv_mark,
            "worst_case_loss_usd": self.inv_worst,
            "net_pnl_usd": self.net_pnl,
            "open_orders": float(len(self.open)),
        }

    # -- policy compilation ---------------------------------------------------------------

    def _compile(self, spec: PolicySpec) -> Check | None:
        p = spec.params
        name = spec.name
        t = spec.type
        if t == "KillSwitch":
            return None  # engaged at start when enabled
        if t == "PositionLimit":
            return self._position_check(spec)
        if t == "InventoryLimit":
            return self._inventory_check(spec)
        if t == "OrderLimit":
            max_size = p.get("max_size")
            max_notional = p.get("max_notional_usd")
            min_size = p.get("min_size")

            def order_limit(m: str, a: str, sgn: float, price: float, size: float, cur: float, red: bool, now: int) -> str | None:
                if max_size is not None and size > max_size:
                    return f"{name}: order size {size:.2f} exceeds max {max_size:.2f}"
                if max_notional is not None and size * price > max_notional:
                    return f"{name}: order notional {size * price:.2f} USD exceeds max {max_notional:.2f}"
                if min_size is not None and size < min_size:
                    return f"{name}: order size {size:.2f} below min {min_size:.2f}"
                return None

            return order_limit
        if t == "PriceBand":
            dev = float(p["max_deviation"])
            mids = self.mid

            def price_band(m: str, a: str, sgn: float, price: float, size: float, cur: float, red: bool, now: int) -> str | None:
                mid = mids.get(a)
                if mid is None:
                    return f"{name}: no two-sided book for asset {a}, mid unknown"
                if abs(price - mid) > dev + EPS:
                    return f"{name}: price {price:.4f} is {abs(price - mid):.4f} from mid {mid:.4f} (max {dev:.4f})"
                return None

            return price_band
        if t == "OpenOrderLimit":
            max_orders = p.get("max_orders")
            max_per_asset = p.get("max_per_asset")
            open_ = self.open
            per_asset = self.open_n_asset

            def open_limit(m: str, a: str, sgn: float, price: float, size: float, cur: float, red: bool, now: int) -> str | None:
                if max_orders is not None and len(open_) >= max_orders:
                    return f"{name}: {len(open_)} open orders, max {max_orders}"
                if max_per_asset is not None and per_asset.get(a, 0) >= max_per_asset:
                    return f"{name}: {per_asset.get(a, 0)} open orders on asset {a}, max {max_per_asset}"
                return None

            return open_limit
        if t == "RateLimit":
            max_n = int(p["max_orders"])
            window_us = int(p["window_ms"]) * 1000
            window: deque[int] = deque()
            self._rate_by_spec[id(spec)] = window

            def rate_limit(m: str, a: str, sgn: float, price: float, size: float, cur: float, red: bool, now: int) -> str | None:
                cutoff = now - window_us
                while window and window[0] <= cutoff:
                    window.popleft()
                if len(window) >= max_n:
                    return f"{name}: {len(window)} orders in the last {window_us // 1000} ms, max {max_n}"
                return None

            return rate_limit
        if t == "LossLimit":

            def loss_limit(m: str, a: str, sgn: float, price: float, size: float, cur: float, red: bool, now: int) -> str | None:
                if red:
                    return None
                return self.loss_breach

            return loss_limit
        if t == "StaleData":
            max_us = int(p["max_age_ms"]) * 1000
            book_ts = self.book_ts

            def stale(m: str, a: str, sgn: float, price: float, size: float, cur: float, red: bool, now: int) -> str | None:
                ts = book_ts.get(a)
                if ts is None:
                    return f"{name}: no book seen for asset {a}"
                if now - ts > max_us:
                    return f"{name}: last book for asset {a} is {(now - ts) // 1000} ms old (max {max_us // 1000} ms)"
                return None

            return stale
        if t == "ReduceOnly":
            if not p.get("enabled"):
                return None
            only_market = p.get("market_id")
            only_asset = p.get("asset")

            def reduce_only(m: str, a: str, sgn: float, price: float, size: float, cur: float, red: bool, now: int) -> str | None:
                if red or (only_market is not None and m != only_market) or (only_asset is not None and a != only_asset):
                    return None
                return f"{name}: reduce-only mode; this order would increase the position ({cur:.2f}) of asset {a}"

            return reduce_only
        raise AssertionError(f"policy type {t} has no check")

    # -- the generated record handler ----------------------------------------------------

    def _generate(self, compiled: list[tuple[PolicySpec, Check]]) -> Callable[[dict[str, Any]], Out]:
        """on_record (RECORD_HANDLER) with every policy's cheap pass test inlined into
        the submit_order branch, in policy order, and only the bookkeeping these
        policies read, kept on approval and undone in the branch for an order's end.

        Each policy's closure (above) is the single source of truth: it runs only when
        the inline test says the order may violate it, and returns the message (or None
        when the closer look passes). This keeps the per-order cost to a few dict lookups
        per policy instead of a call each; values several tests share (the new
        |position|, the mid, the last book time) are computed once."""
        ns: dict[str, Any] = {"_add": _add, "EPS": EPS, "NUMBER": _NUMBER, "S": self,
                              "MIDS": self.mid, "BT": self.book_ts, "OPEN": self.open, "BUY": self.open_buy,
                              "SELL": self.open_sell, "POS": self.pf.positions, "KILL": self.kill,
                              "PA": self.open_n_asset, "AM": self.asset_market,
                              "MKI": self.mkt_incl, "MKE": self.mkt_excl}
        shared = {
            "ni": "    ni = abs(cur + sgn * (size + same_open))",  # new |position| with open orders
            "ne": "    ne = abs(cur + sgn * size)",  # ... without
            "mid": "    mid = MIDS.get(a)",
            "ts": "    ts = BT.get(a)",
            "pa": "    pa = PA.get(a, 0)",  # open orders on the asset
        }
        used: set[str] = set()

        def use(name: str) -> str:
            used.add(name)
            return name

        body: list[str] = []
        approve: list[str] = []
        call = "v = _add(v, N{i}, C{i}(m, a, sgn, price, size, cur, red, now))"
        for i, (spec, check) in enumerate(compiled):
            ns[f"N{i}"] = spec.name
            ns[f"C{i}"] = check
            p = spec.params
            t = spec.type
            incl = p.get("include_open_orders", True) is not False
            tests: list[str] = []
            if t == "OrderLimit":
                if p.get("max_size") is not None:
                    tests.append(f"size > {float(p['max_size'])!r}")
                if p.get("max_notional_usd") is not None:
                    tests.append(f"size * price > {float(p['max_notional_usd'])!r}")
                if p.get("min_size") is not None:
                    tests.append(f"size < {float(p['min_size'])!r}")
                cond = " or ".join(tests)
            elif t == "PriceBand":
                dev = float(p["max_deviation"]) + EPS
                cond = f"{use('mid')} is None or not {-dev!r} <= price - mid <= {dev!r}"
            elif t == "OpenOrderLimit":
                if p.get("max_orders") is not None:
                    tests.append(f"len(OPEN) >= {int(p['max_orders'])}")
                if p.get("max_per_asset") is not None:
                    tests.append(f"{use('pa')} >= {int(p['max_per_asset'])}")
                cond = " or ".join(tests)
            elif t == "RateLimit":
                ns[f"W{i}"] = self._rate_by_spec[id(spec)]
                cond = f"len(W{i}) >= {int(p['max_orders'])}"  # only then can trimming matter
                # the window keeps only the last window_ms of approvals: memory stays
                # bounded by the order rate, however large max_orders is
                approve.append(
                    f"        W{i}.append(now)\n"
                    f"        while W{i}[0] <= now - {int(p['window_ms']) * 1000}:\n"
                    f"            W{i}.popleft()"
                )
            elif t == "LossLimit":
                cond = "not red and S.loss_breach is not None"
            elif t == "StaleData":
                cond = f"{use('ts')} is None or now - ts > {int(p['max_age_ms']) * 1000}"
            elif t == "PositionLimit":
                # upper bound of the closure's total: the other assets' gross is at most the
                # whole market's (or event's) total, which the incremental sums give
                new = use("ni" if incl else "ne")
                table = "MKI" if incl else "MKE"
                # (every market seen and every event's markets have a total, 0.0 at first)
                if p["scope"] == "market":
                    new += f" + {table}[AM[a]]"
                elif p["scope"] == "event":
                    events = sorted(self.policy.events.get(p["event"], ()))
                    new += "".join(f" + {table}[{mk!r}]" for mk in events)
                cond = f"not red and {new} > {float(p['max_size']) + EPS!r}"
            elif t == "InventoryLimit":
                # upper bounds: the order's asset is counted again on top of the current total;
                # a share's mark and its worst-case loss per share are both at most 1 (mark: the mid)
                new = use("ni" if incl else "ne")
                if p.get("basis") == "worst_case":
                    cond = f"not red and S.inv_worst + {new} > {float(p['max_value_usd']) + EPS!r}"
                else:
                    use("mid")
                    cond = f"not red and S.inv_mark + {new} * (price if mid is None else mid) > {float(p['max_value_usd']) + EPS!r}"
            elif t == "ReduceOnly":
                tests.append("not red")
                if p.get("market_id") is not None:
                    tests.append(f"m == {p['market_id']!r}")
                if p.get("asset") is not None:
                    tests.append(f"a == {p['asset']!r}")
                cond = " and ".join(tests)
            else:
                cond = "True"
            if not self.prefilter:
                cond = "True"
            body.append(f"    if {cond}:")
            body.append("        " + call.format(i=i))
        # when an order ends, the same bookkeeping undone: of its remaining size, and of its count
        release_open: list[str] = []
        release: list[str] = []
        if self._count_per_asset:
            approve.append(f"        PA[a] = {'pa' if 'pa' in used else 'PA.get(a, 0)'} + 1")
            release.append("            n = PA[a] - 1\n            PA[a] = n if n > 0 else 0")
        if self._track_gross:
            approve.append("        MKI[AM[a]] += size")
            release_open.append("                MKI[AM[a]] -= had - rest")
        ns["HANDLERS"] = self._handlers
        src = RECORD_HANDLER.format(
            advance=ADVANCE if self.advance_clock else "",
            now="S.now" if self.advance_clock else "S._clock_now()",
            tests="\n".join("    " + line for line in [*(line for name, line in shared.items() if name in used), *body]),
            approve="\n".join(approve),
            release_open="\n".join(release_open),
            release="\n".join(release),
        )
        exec(compile(src, f"<risk-check policies {self.policy.path}>", "exec"), ns)
        fn: Callable[[dict[str, Any]], Out] = ns["on_record"]
        return fn

    def _new_abs(self, a: str, sgn: float, size: float, cur: float, include_open: bool) -> float:
        extra = size
        if include_open:
            extra += self.open_buy.get(a, 0.0) if sgn > 0 else self.open_sell.get(a, 0.0)
        return abs(cur + sgn * extra)

    def _sync_held(self, asset: str) -> None:
        """Move the market totals by the change in this asset's |position|."""
        market = self.asset_market.get(asset)
        if market is None:
            return
        pos = self.pf.positions.get(asset)
        new = abs(pos.size) if pos is not None else 0.0
        d = new - self.held.get(asset, 0.0)
        if d:
            self.held[asset] = new
            self.mkt_incl[market] = self.mkt_incl.get(market, 0.0) + d
            self.mkt_excl[market] = self.mkt_excl.get(market, 0.0) + d

    def _gross_other(self, markets: list[str], skip: str, include_open: bool) -> float:
        """Gross shares over these markets' assets except `skip`, counted from scratch
        (each asset's worse side: position plus open buys, or minus open sells)."""
        positions = self.pf.positions
        buys = self.open_buy
        sells = self.open_sell
        total = 0.0
        for mk in markets:
            for x in self.market_assets.get(mk, ()):
                if x == skip:
                    continue
                pos = positions.get(x)
                s = pos.size if pos is not None else 0.0
                if include_open:
                    total += max(abs(s + buys.get(x, 0.0)), abs(s - sells.get(x, 0.0)))
                else:
                    total += abs(s)
        return total

    def _position_check(self, spec: PolicySpec) -> Check:
        p = spec.params
        name = spec.name
        max_size = float(p["max_size"])
        only_market = p.get("market_id")
        only_asset = p.get("asset")
        scope = p["scope"]
        include_open = p.get("include_open_orders", True) is not False
        event = p.get("event")
        event_markets = set(self.policy.events.get(event, ())) if event is not None else None
        new_abs = self._new_abs
        gross_other = self._gross_other
        event_list = sorted(event_markets) if event_markets is not None else []
        label = f"{name} (market: {only_market})" if only_market is not None else name

        def position_limit(m: str, a: str, sgn: float, price: float, size: float, cur: float, red: bool, now: int) -> str | None:
            if red:
                return None
            if only_market is not None and m != only_market:
                return None
            if only_asset is not None and a != only_asset:
                return None
            if event_markets is not None and m not in event_markets:
                return None
            new = new_abs(a, sgn, size, cur, include_open)
            if scope == "asset":
                if new > max_size + EPS:
                    return f"{label}: new position {new:.2f} exceeds max {max_size:.2f} on asset {a}"
                return None
            if scope == "market":
                total = new + gross_other([self.asset_market.get(a, m)], a, include_open)
                if total > max_size + EPS:
                    return f"{label}: gross position {total:.2f} in market {m} exceeds max {max_size:.2f}"
                return None
            total = new + gross_other(event_list, a, include_open)
            if total > max_size + EPS:
                return f"{label}: gross position {total:.2f} in event {event} exceeds max {max_size:.2f}"
            return None

        return position_limit

    def _inventory_check(self, spec: PolicySpec) -> Check:
        p = spec.params
        name = spec.name
        limit = float(p["max_value_usd"])
        worst = p.get("basis") == "worst_case"
        include_open = p.get("include_open_orders", True) is not False
        mids = self.mid
        contrib = self.contrib
        positions = self.pf.positions

        def inventory_limit(m: str, a: str, sgn: float, price: float, size: float, cur: float, red: bool, now: int) -> str | None:
            if red:
                return None
            extra = size
            if include_open:
                extra += self.open_buy.get(a, 0.0) if sgn > 0 else self.open_sell.get(a, 0.0)
            new = cur + sgn * extra
            old = contrib.get(a)
            if worst:
                pos = positions.get(a)
                if cur == 0.0 or pos is None:
                    avg = price
                elif (cur > 0) == (sgn > 0):
                    avg = (abs(cur) * pos.avg_price + extra * price) / abs(new)
                elif (new > 0) != (cur > 0):
                    avg = price
                else:
                    avg = pos.avg_price
                value = new * avg if new > 0 else -new * (1.0 - avg)
                total = self.inv_worst - (old[1] if old is not None else 0.0) + value
                basis = "worst case"
            else:
                mark = mids.get(a, price)
                total = self.inv_mark - (old[0] if old is not None else 0.0) + abs(new) * mark
                basis = "mark"
            if total > limit + EPS:
                return f"{name}: inventory value {total:.2f} USD at {basis} would exceed max {limit:.2f}"
            return None

        return inventory_limit


# on_record, generated: the time update (under --clock event), then submit_order and
# the three ways an order ends inline, other types to their handler. _generate fills in
# the time source, the policies' tests (which add (name, message) to v) and the
# bookkeeping the policies read, kept on approval and undone when the order ends.
ADVANCE = """\
    try:
        ts = rec["ts_event"]
    except KeyError:
        ts = None
    if type(ts) is int and ts > S.now:
        S.now = ts"""

RECORD_HANDLER = """\
def on_record(rec):
{advance}
    kind = rec["type"]
    if kind == "submit_order":
        try:
            oid = rec["id"]
            a = rec["asset"]
            m = rec["market"]
            side = rec["side"]
            price = rec["price"]
            size = rec["size"]
        except KeyError:
            raise S._bad_order(rec) from None
        if type(price) not in NUMBER or type(size) not in NUMBER or type(oid) is not str or type(a) is not str or type(m) is not str:
            raise S._bad_order(rec)
        if side == "buy":
            sgn = 1.0
            same_open = BUY.get(a, 0.0)
        elif side == "sell":
            sgn = -1.0
            same_open = SELL.get(a, 0.0)
        else:
            raise S._bad_order(rec)
        now = {now}
        pos = POS.get(a)
        cur = pos.size if pos is not None else 0.0
        red = cur * sgn < 0.0 and size + same_open <= abs(cur) + EPS
        if a not in AM:
            S._learn(m, a)
        if not (0.0 < price < 1.0 and size > 0.0) or oid in OPEN or (KILL.engaged and not red):
            return S._refuse(rec, oid, now, red)
        if not S.day_start_us <= now < S.day_end_us:
            S._roll_day(now)
        v = None
{tests}
        if v is not None:
            return S._deny(rec, oid, now, v)
        # approved: open until exec says otherwise
        OPEN[oid] = (a, sgn, size, m)
        if sgn > 0.0:
            BUY[a] = same_open + size
        else:
            SELL[a] = same_open + size
{approve}
        S.approved += 1
        return (rec,)
    if kind == "order_canceled" or kind == "order_expired" or kind == "order_rejected":
        oid = rec.get("id")
        order = OPEN.pop(oid, None) if type(oid) is str else None
        if order is not None:
            a = order[0]
            left = order[2]
            if left > EPS:
                book = BUY if order[1] > 0.0 else SELL
                had = book[a]
                rest = had - left
                if rest <= EPS:
                    rest = 0.0
                book[a] = rest
{release_open}
{release}
        return (rec,)
    return HANDLERS[kind](rec)
"""


def _add(v: list[tuple[str, str]] | None, name: str, msg: str | None) -> list[tuple[str, str]] | None:
    if msg is None:
        return v
    if v is None:
        return [(name, msg)]
    v.append((name, msg))
    return v


def _zero() -> int:
    return 0



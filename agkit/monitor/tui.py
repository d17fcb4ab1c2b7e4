"""The terminal dashboard (`agkit monitor --tui`), drawn with rich on /dev/tty.

It never writes to stdout: the screen is the controlling terminal (/dev/tty), or
stderr when that is a terminal and /dev/tty cannot be opened. Keys are read from the
same terminal in cbreak mode, so stdin stays the record stream.

Views: 1 overview (per market book top and last trade, positions and PnL, risk and the
kill switch, feed lag and message-rate charts, stage health), 2 orders and fills,
3 risk, 4 metrics (every series). Tab cycles; p pauses (the picture freezes, ingest
goes on); q quits. The layout is rebuilt for the terminal's size on every redraw, so it
resizes cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from agkit.errors import UsageError
from agkit.monitor.state import MonitorState

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.live import Live

VIEWS = ("overview", "orders", "risk", "metrics")
VIEW_TITLES = {"overview": "1 overview", "orders": "2 orders & fills", "risk": "3 risk", "metrics": "4 metrics"}
BLOCKS = " ▁▂▃▄▅▆▇█"
LAG_NAMES = ("feed.lag_ms", "polymarket.rtds.lag_ms")
RATE_NAMES = ("polymarket.rtds.msgs_per_second",)  # then *.msgs_per_second, then the monitor's own rate


def block_chart(values: Sequence[float], width: int, height: int) -> list[str]:
    """A bar chart of the newest `width` values in `height` rows of block characters."""
    vals = list(values)[-width:] if width > 0 else []
    if not vals:
        return [" " * max(width, 0)] * height
    lo, hi = min(vals), max(vals)
    top = height * 8
    if hi == lo:
        levels = [top // 2] * len(vals)
    else:  # the smallest value still gets a sliver, so a bar is always visible
        levels = [1 + round((v - lo) / (hi - lo) * (top - 1)) for v in vals]
    rows = []
    for r in range(height - 1, -1, -1):
        rows.append("".join(BLOCKS[max(0, min(8, lv - r * 8))] for lv in levels).ljust(width))
    return rows


def _short(ident: str, n: int = 10) -> str:
    return ident if len(ident) <= n else ident[: n - 1] + "…"


def _num(v: float | None, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.{digits}g}" if abs(v) < 1e6 else f"{v:.3e}"


def _age(ts_us: int, now_us: int) -> str:
    if not ts_us:
        return "–"
    s = max(0.0, (now_us - ts_us) / 1e6)
    return f"{s:.1f}s" if s < 120 else f"{s / 60:.0f}m"


class Tui:
    """Full-screen rich dashboard over a MonitorState."""

    def __init__(self, state: MonitorState, quit: Callable[[], None], web_url: str | None = None) -> None:
        self.state = state
        self.quit = quit
        self.web_url = web_url
        self.view = "overview"
        self.paused = False
        self.active = False
        self._fd = -1
        self._file: io.TextIOWrapper | Any = None
        self._saved: Any = None
        self._live: Live | None = None
        self._console: Console | None = None
        self._frozen: RenderableType | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- terminal ---------------------------------------------------------------------

    def _open_terminal(self) -> None:
        try:
            self._fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
        except OSError:
            if not sys.stderr.isatty():
                raise UsageError("--tui needs a terminal (no /dev/tty, and stderr is not one)") from None
            self._fd = os.dup(sys.stderr.fileno())
        self._file = open(self._fd, "w", encoding="utf-8", buffering=1 << 16, closefd=False)  # noqa: SIM115

    def start(self) -> None:
        from rich.console import Console
        from rich.live import Live

        self._open_terminal()
        self._console = Console(file=self._file, force_terminal=True, color_system="256", highlight=False)
        self._resize()
        with contextlib.suppress(Exception):
            import termios
            import tty

            self._saved = termios.tcgetattr(self._fd)
            tty.setcbreak(self._fd)
        self._live = Live(
            console=self._console, screen=True, auto_refresh=False, redirect_stdout=False, redirect_stderr=False
        )
        self._live.start()
        self.active = True
        try:
            self._loop = asyncio.get_running_loop()
            self._loop.add_reader(self._fd, self._on_input)
        except RuntimeError:
            self._loop = None
        self.draw()

    def stop(self) -> None:
        if not self.active:
            return
        self.active = False
        if self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._fd)
        if self._live is not None:
            with contextlib.suppress(Exception):
                self._live.stop()
        if self._saved is not None:
            import termios

            with contextlib.suppress(Exception):
                termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
        with contextlib.suppress(Exception):
            self._file.flush()
            os.close(self._fd)
        for line in list(self.state.errors)[-5:]:  # what was shown in the dashboard only
            sys.stderr.write(line + "\n")

    def _resize(self) -> None:
        assert self._console is not None
        try:
            cols, rows = os.get_terminal_size(self._fd)
        except OSError:
            cols, rows = 100, 30
        self._console.size = (max(cols, 20), max(rows, 5))

    def _on_input(self) -> None:
        try:
            data = os.read(self._fd, 64)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the terminal went away
            if self._loop is not None:
                self._loop.remove_reader(self._fd)
            return
        for ch in data.decode("utf-8", "ignore"):
            self.key(ch)

    def key(self, ch: str) -> None:
        if ch in ("q", "Q", "\x03"):
            self.quit()
            return
        if ch in ("p", "P", " "):
            self.paused = not self.paused
        elif ch == "\t":
            self.view = VIEWS[(VIEWS.index(self.view) + 1) % len(VIEWS)]
        elif ch in "1234":
            self.view = VIEWS[int(ch) - 1]
        else:
            return
        self._frozen = None
        self.draw()

    # -- drawing ------------------------------------------------------------------------

    def draw(self) -> None:
        if not self.active or self._live is None:
            return
        self._resize()
        if not self.paused or self._frozen is None:
            self._frozen = self.render()
        from rich.layout import Layout

        screen = Layout()
        screen.split_column(
            Layout(self._header(), size=1), Layout(self._frozen, name="body"), Layout(self._footer(), size=1)
        )
        self._live.update(screen, refresh=True)
        self._file.flush()

    def _header(self) -> RenderableType:
        from rich.text import Text

        st = self.state
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(" agkit monitor ", style="bold white on blue")
        t.append(f"  records {st.records}  rate {st.rate:,.0f}/s  series {len(st.store)}  rejected {st.rejected}  ")
        if self.paused:
            t.append(" PAUSED ", style="bold black on yellow")
            t.append("  ")
        if st.kill_engaged:
            t.append(f" KILL SWITCH ENGAGED: {st.kill_reason} ", style="bold white on red blink")
        else:
            t.append(" kill switch off ", style="black on green")
        if self.web_url:
            t.append(f"  web {self.web_url}", style="dim")
        return t

    def _footer(self) -> RenderableType:
        from rich.text import Text

        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(" q quit  p pause  tab next ", style="bold")
        for v in VIEWS:
            style = "bold reverse" if v == self.view else "dim"
            t.append(f" [{VIEW_TITLES[v]}]", style=style)
        return t

    def render(self) -> Any:
        assert self._console is not None
        width, height = self._console.size
        body = height - 2
        if self.view == "orders":
            return self._orders_view(width, body)
        if self.view == "risk":
            return self._risk_view(width, body)
        if self.view == "metrics":
            return self._metrics_view(width, body)
        return self._overview(width, body)

    def _table(self, title: str, *cols: str, **kw: Any) -> Any:
        from rich.table import Table

        table = Table(title=title, title_justify="left", title_style="bold", expand=True, pad_edge=True,
                      show_edge=False, header_style="bold cyan", box=None, **kw)
        for c in cols:
            table.add_column(c, no_wrap=True, overflow="ellipsis", justify="left" if c in ("market", "asset", "stage", "reason", "series", "id", "status", "side", "state", "kind", "liq", "source") else "right")
        return table

    def _markets(self, rows: int) -> Any:
        st = self.state
        now = time.time_ns() // 1000
        t = self._table("Markets: book top and last trade", "market", "asset", "bid", "size", "ask", "size", "last", "side", "age")
        for m in list(st.markets.values())[-rows:]:
            t.add_row(_short(m.market), _short(m.asset), _num(m.bid), _num(m.bid_size), _num(m.ask), _num(m.ask_size),
                      _num(m.last_price), m.last_side or "–", _age(max(m.book_ts, m.trade_ts), now))
        if not st.markets:
            t.add_row("(no book or trade records yet)", "", "", "", "", "", "", "", "")
        return t

    def _positions(self, rows: int) -> Any:
        st = self.state
        t = self._table("Positions and PnL", "market", "asset", "size", "avg", "mark", "unreal", "realized", "fees")
        for key, p in list(st.positions.items())[-rows:]:
            m = st.markets.get(key)
            mark = m.mid if m is not None and m.mid is not None else p.avg_price
            unreal = (mark - p.avg_price) * p.size
            t.add_row(_short(p.market), _short(p.asset), _num(p.size), _num(p.avg_price), _num(mark),
                      _num(unreal), _num(p.realized_pnl), _num(p.fees))
        realized, unrealized, inventory = st.pnl()
        t.add_row("TOTAL", "", "", "", f"inv {_num(inventory)}", _num(unrealized), _num(realized), "", style="bold")
        return t

    def _risk_panel(self, rows: int) -> Any:
        from rich.console import Group
        from rich.text import Text

        st = self.state
        head = Text(no_wrap=True)
        if st.kill_engaged:
            head.append(f" KILL SWITCH ENGAGED: {st.kill_reason} ", style="bold white on red")
        else:
            head.append(" kill switch off ", style="black on green")
        head.append(f"  accepted {st.accepted}  denied {st.denied}")
        t = self._table("Risk decisions", "id", "status", "reason")
        for d in list(st.decisions)[-rows:][::-1]:
            t.add_row(str(d["id"]), "allowed" if d["allowed"] else "DENIED", d["reason"],
                      style=None if d["allowed"] else "red")
        return Group(head, t)

    def _series_values(self, names: Sequence[str], n: int, suffix: str) -> tuple[str, list[float]]:
        """The freshest series of the first name found, else of any name ending in suffix."""
        found: list[Any] = []
        for name in names:
            found = self.state.store.find(name)
            if found:
                break
        if not found:
            found = [s for s in self.state.store if s.name.endswith(suffix) and not s.name.startswith("monitor.")]
        if not found and suffix == ".msgs_per_second":
            found = self.state.store.find("monitor.records_per_second")
        if found:
            s = max(found, key=lambda s: s.last_ts)
            return f"{s.name}{_fmt_labels(s.labels)}", s.ring.values()[-n:].tolist()
        return names[0], []

    def _chart(self, title: str, names: Sequence[str], suffix: str, width: int, height: int) -> Any:
        from rich.console import Group
        from rich.padding import Padding
        from rich.text import Text

        name, vals = self._series_values(names, max(width - 1, 1), suffix)
        cur = f"{vals[-1]:,.1f}" if vals else "–"
        peak = f"{max(vals):,.1f}" if vals else "–"
        head = Text(f"{title}: {cur} (max {peak})  {name}", style="bold", no_wrap=True, overflow="ellipsis")
        lines = [Text(row, style="green") for row in block_chart(vals, width, height)]
        return Padding(Group(head, *lines), (0, 1, 0, 0))

    def _health(self, rows: int) -> Any:
        st = self.state
        now = time.time_ns() // 1000
        t = self._table("Stage health", "stage", "status", "seen", "records", "errors", "detail")
        for h in sorted(st.stages.values(), key=lambda h: h.name)[:rows]:
            status = h.status(now)
            style = {"ok": "green", "stale": "yellow", "error": "bold red"}[status]
            t.add_row(h.name, f"[{style}]{status}[/]", _age(h.last_seen, now), str(h.records), str(h.errors), h.detail)
        for source, f in st.feeds.items():
            if f"feed:{source}" not in st.stages:
                t.add_row(f"feed:{source}", f["state"], _age(f["ts"], now), "", "", "")
        if not st.stages and not st.feeds:
            t.add_row("(no stage reported yet)", "", "", "", "", "")
        return t

    def _overview(self, width: int, height: int) -> Any:
        from rich.layout import Layout

        st = self.state
        wide = width >= 120
        need_m = max(1, len(st.markets)) + 3
        need_p = len(st.positions) + 4
        need = max(need_m, need_p) if wide else need_m + need_p
        top = max(5, min(need, height // 2 if not wide else height // 3))
        mid = max(6, (height - top) // 2)
        layout = Layout()
        layout.split_column(Layout(name="top", size=top), Layout(name="mid", size=mid), Layout(name="bottom"))
        half = max(10, width // 2 - 2)
        if wide:
            layout["top"].split_row(Layout(self._markets(top - 2)), Layout(self._positions(top - 3)))
        else:  # narrow: one above the other, full width each
            layout["top"].split_column(Layout(self._markets(top // 2 - 2)), Layout(self._positions(top - top // 2 - 3)))
        chart_h = max(1, mid - 2)
        layout["mid"].split_row(
            Layout(self._chart("feed lag ms", LAG_NAMES, ".lag_ms", half - 1, chart_h)),
            Layout(self._chart("msgs/s", RATE_NAMES, ".msgs_per_second", half - 1, chart_h)),
        )
        bottom = max(3, height - top - mid)
        layout["bottom"].split_row(Layout(self._risk_panel(bottom - 3)), Layout(self._health(bottom - 2)))
        return layout

    def _orders_view(self, width: int, height: int) -> Any:
        from rich.layout import Layout

        st = self.state
        orders = self._table(f"Open orders ({len(st.orders)})", "id", "market", "side", "price", "size", "filled", "status")
        for o in list(st.orders.values())[-(height - 3):][::-1]:
            orders.add_row(o["id"], _short(o["market"]), o["side"], _num(o["price"]), _num(o["size"]),
                           _num(o["filled"]), o["status"])
        fills = self._table(f"Fills tape ({len(st.fills)})", "id", "market", "side", "price", "size", "fee", "liq")
        for f in list(st.fills)[-(height - 3):][::-1]:
            fills.add_row(str(f["id"]), _short(f["market"]), f["side"], _num(f["price"]), _num(f["size"]),
                          _num(f["fee"]), f["liquidity"], style="green" if f["side"] == "buy" else "red")
        layout = Layout()
        layout.split_row(Layout(orders), Layout(fills))
        return layout

    def _risk_view(self, width: int, height: int) -> Any:
        from rich.layout import Layout
        from rich.text import Text

        layout = Layout()
        errors = Text("Errors and rejected input\n", style="bold")
        for e in list(self.state.errors)[-(height - 2):]:
            errors.append(e + "\n", style="red")
        layout.split_row(Layout(self._risk_panel(height - 3)), Layout(errors))
        return layout

    def _metrics_view(self, width: int, height: int) -> Any:
        t = self._table(f"Series ({len(self.state.store)})", "series", "kind", "count", "last", "min", "mean", "max", "chart")
        spark_w = max(8, min(40, width // 5))
        for s in list(self.state.store)[: max(1, height - 3)]:
            if not s.count:
                continue
            ring = s.ring
            chart = block_chart(ring.values()[-spark_w:].tolist(), spark_w, 1)[0]
            t.add_row(f"{s.name}{_fmt_labels(s.labels)}", s.kind, str(s.count), _num(s.last), _num(ring.min()),
                      _num(ring.mean()), _num(ring.max()), f"[green]{chart}[/]")
        return t


def _fmt_labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f"{k}={v}" for k, v in sorted(labels.items())) + "}"

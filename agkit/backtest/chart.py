"""The equity and drawdown chart: one self-contained HTML file with inline SVG.

No script, no CDN, no external file: it opens offline in any browser and can be
attached to a report as is.
"""

from __future__ import annotations

import datetime as dt
import html
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agkit.backtest.engine import Curve

W, H, PAD = 960, 260, 56


def _path(xs: list[float], ys: list[float], x0: float, x1: float, y0: float, y1: float) -> str:
    sx = (W - 2 * PAD) / (x1 - x0 or 1.0)
    sy = (H - 2 * PAD) / (y1 - y0 or 1.0)
    pts = [f"{PAD + (x - x0) * sx:.1f},{H - PAD - (y - y0) * sy:.1f}" for x, y in zip(xs, ys, strict=True)]
    return " ".join(pts)


def _panel(title: str, times: list[int], values: list[float], color: str, fill: bool) -> str:
    if not values:
        return f"<p>{html.escape(title)}: no data</p>"
    x0, x1 = float(times[0]), float(times[-1])
    lo, hi = min(values), max(values)
    if fill:
        lo = min(lo, 0.0)
    if hi == lo:
        hi, lo = hi + 1.0, lo - 1.0
    pts = _path([float(t) for t in times], values, x0, x1, lo, hi)
    shape = (
        f'<polygon fill="{color}" fill-opacity="0.35" stroke="{color}" '
        f'points="{PAD},{H - PAD - (0 - lo) * (H - 2 * PAD) / (hi - lo):.1f} {pts} '
        f'{W - PAD},{H - PAD - (0 - lo) * (H - 2 * PAD) / (hi - lo):.1f}"/>'
        if fill
        else f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{pts}"/>'
    )

    def when(t: float) -> str:
        return dt.datetime.fromtimestamp(t / 1e6, dt.UTC).strftime("%Y-%m-%d %H:%M")

    return (
        f'<h2>{html.escape(title)}</h2><svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'viewBox="0 0 {W} {H}" role="img" aria-label="{html.escape(title)}">'
        f'<rect x="{PAD}" y="{PAD}" width="{W - 2 * PAD}" height="{H - 2 * PAD}" fill="#fafafa" stroke="#ccc"/>'
        f"{shape}"
        f'<text x="4" y="{PAD + 4}" font-size="11">{hi:,.2f}</text>'
        f'<text x="4" y="{H - PAD}" font-size="11">{lo:,.2f}</text>'
        f'<text x="{PAD}" y="{H - PAD + 16}" font-size="11">{when(x0)}</text>'
        f'<text x="{W - PAD}" y="{H - PAD + 16}" font-size="11" text-anchor="end">{when(x1)}</text>'
        "</svg>"
    )


def render(result: dict[str, Any], curve: Curve) -> str:
    """Equity at the samples; drawdown: the deepest point of each interval between two
    samples (the path's, so a fall and recovery between samples shows)."""
    times = curve.times
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{'–' if v is None else html.escape(str(v))}</td></tr>"
        for k, v in result.items()
        if k not in ("type", "pnl_by_day", "inventory") and not isinstance(v, dict)
    )
    title = f"agkit backtest: {result.get('strategy', '')}"
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "th,td{border:1px solid #ddd;padding:2px 8px;text-align:left;font-size:13px}</style>"
        f"</head><body><h1>{html.escape(title)}</h1>"
        + _panel("Equity (USDC)", times, curve.equity, "#1f77b4", False)
        + _panel("Drawdown (USDC)", times, curve.drawdown, "#d62728", True)
        + f"<h2>Summary</h2><table>{rows}</table></body></html>\n"
    )


def write_chart(path: str, result: dict[str, Any], curve: Curve) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(render(result, curve))

"""Prometheus text exposition (format 0.0.4) of the series store.

Metric names are sanitised (`polymarket.rtds.lag_ms` -> `polymarket_rtds_lag_ms`);
counters get the `_total` suffix; histograms (the window's observations) are exposed as
summaries with 0.5/0.9/0.99 quantiles over the ring window plus `_sum`/`_count` over every
observation ever received. Each family has one HELP and one TYPE line; a name used with
two kinds keeps the kind of the series seen first.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from agkit.monitor.series import Series

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BAD = re.compile(r"[^a-zA-Z0-9_:]")
_BAD_LABEL = re.compile(r"[^a-zA-Z0-9_]")
QUANTILES = (0.5, 0.9, 0.99)


def metric_name(name: str) -> str:
    out = _BAD.sub("_", name)
    if not out or out[0].isdigit():
        out = "_" + out
    return out


def label_name(name: str) -> str:
    out = _BAD_LABEL.sub("_", name)
    if not out or out[0].isdigit():
        out = "_" + out
    if out.startswith("__"):
        out = "x" + out  # names starting with __ are reserved
    return out


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict[str, str], extra: tuple[str, str] | None = None) -> str:
    items = [(label_name(k), v) for k, v in sorted(labels.items())]
    if extra is not None:
        items.append(extra)
    if not items:
        return ""
    seen: set[str] = set()
    parts = []
    for k, v in items:
        if k in seen:  # two raw names sanitised to the same label name
            continue
        seen.add(k)
        parts.append(f'{k}="{_escape(v)}"')
    return "{" + ",".join(parts) + "}"


def _num(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v)) if not float(v).is_integer() or abs(v) >= 1e15 else str(int(v))


def exposition(series: Iterable[Series], extra: Iterable[tuple[str, str, str, float]] = ()) -> str:
    """The text page. `extra`: (name, kind, help, value) of the monitor's own figures."""
    families: dict[str, tuple[str, str, list[Series]]] = {}
    for s in series:
        if not s.count:
            continue
        base = metric_name(s.name)
        if s.kind == "counter" and not base.endswith("_total"):
            base += "_total"
        fam = families.get(base)
        if fam is None:
            families[base] = (s.kind, s.name, [s])
        elif fam[0] == s.kind:
            fam[2].append(s)
    out: list[str] = []
    for base, (kind, raw, members) in families.items():
        ptype = "summary" if kind == "histogram" else kind
        out.append(f"# HELP {base} agkit metric {raw}")
        out.append(f"# TYPE {base} {ptype}")
        for s in members:
            if kind == "histogram":
                values = s.ring.values()
                if len(values):
                    import numpy as np

                    qs = np.quantile(values, QUANTILES)
                    for q, v in zip(QUANTILES, qs.tolist(), strict=True):
                        out.append(f"{base}{_labels(s.labels, ('quantile', str(q)))} {_num(v)}")
                out.append(f"{base}_sum{_labels(s.labels)} {_num(s.sum)}")
                out.append(f"{base}_count{_labels(s.labels)} {s.count}")
            else:
                out.append(f"{base}{_labels(s.labels)} {_num(s.last)}")
    for name, kind, help_text, value in extra:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")
        out.append(f"{name} {_num(value)}")
    return "\n".join(out) + "\n"

"""Stress tests: the original's named scenarios, YAML scenarios, prediction-market outcomes.

A position is (market, asset, size in shares, price/mark, optional outcome yes/no). A
scenario moves prices; the impact of a position is size × (new price − price) in USD,
and a scenario's impact is the sum. Prices of outcome shares stay in [0, 1].

- Named scenarios (the original's five) carry fractional shocks on factors (SPY, QQQ,
  IWM, TLT). An asset map ties assets to factors with a beta: the new price is
  clip(p·(1 + beta·shock), 0, 1). Assets not mapped are not shocked. Volatility and
  correlation shocks are reported with the scenario; they do not move the price of a
  position (a share has no volatility exposure of its own in this linear model).
- YAML scenarios (`--scenarios FILE`)::

      scenarios:
        - name: btc-crash
          description: BTC -20%
          shocks: {BTC: -0.20, "0xtoken": -0.5}   # factor or asset -> fractional shock
          prices: {"0xtoken2": 0.05}              # asset -> absolute new price
          resolve: {"0xmarket": "0xwinning-token"} # market -> winning asset
      asset_map:                                   # optional, merged with --map
        "0xtoken": {factor: BTC, beta: 1.5}
      events:                                      # neg-risk events: name -> markets
        election: ["0xm1", "0xm2"]

- Prediction-market scenarios (`--pm`, on by default): each market resolving to each
  of its held assets (the winner pays 1, the market's other assets 0; with a single
  held asset, also the case where it loses), every price gapping to 0, every price
  gapping to 1, and each neg-risk event resolving to each of its markets (that
  market's YES token pays 1, every other YES 0; NO tokens the reverse — positions need
  `outcome: yes|no` for this).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from agkit.errors import ConfigError, UsageError


@dataclass
class StressPosition:
    market: str
    asset: str
    size: float
    price: float
    outcome: str | None = None  # "yes" | "no" when known

    @property
    def value(self) -> float:
        return self.size * self.price


@dataclass
class Scenario:
    name: str
    description: str = ""
    shocks: dict[str, float] = field(default_factory=dict)  # factor or asset -> fractional shock
    prices: dict[str, float] = field(default_factory=dict)  # asset -> new absolute price
    resolve: dict[str, str] = field(default_factory=dict)  # market -> winning asset
    volatility_shocks: dict[str, float] = field(default_factory=dict)
    correlation_shock: float | None = None
    kind: str = "custom"


NAMED: list[Scenario] = [
    Scenario(
        "2008 Financial Crisis",
        "Lehman: equities -34..-42%, long bonds +14%",
        {"SPY": -0.38, "QQQ": -0.42, "IWM": -0.34, "TLT": 0.14},
        volatility_shocks={"SPY": 2.5},
        correlation_shock=0.95,
        kind="named",
    ),
    Scenario(
        "2020 COVID Crash",
        "Feb-Mar 2020: equities -27..-41%",
        {"SPY": -0.34, "QQQ": -0.27, "IWM": -0.41},
        volatility_shocks={"SPY": 3.0},
        correlation_shock=0.90,
        kind="named",
    ),
    Scenario(
        "2022 Inflation Shock",
        "2022: equities and long bonds down together",
        {"SPY": -0.19, "QQQ": -0.33, "TLT": -0.25},
        kind="named",
    ),
    Scenario(
        "Flash Crash",
        "May 2010 style intraday crash",
        {"SPY": -0.10, "QQQ": -0.12, "IWM": -0.15},
        volatility_shocks={"SPY": 4.0},
        correlation_shock=0.98,
        kind="named",
    ),
    Scenario("Mild Correction", "A routine 5-7% pullback", {"SPY": -0.05, "QQQ": -0.06, "IWM": -0.07}, kind="named"),
]


def traffic_light(impact_pct: float) -> str:
    """The original's action table on |loss| as a % of gross value: <10 green, <20 yellow, <30 orange, else red."""
    loss = max(0.0, -impact_pct)
    if loss < 10:
        return "green"
    if loss < 20:
        return "yellow"
    if loss < 30:
        return "orange"
    return "red"


def _clip(p: float) -> float:
    return 0.0 if p < 0.0 else 1.0 if p > 1.0 else p


def apply(positions: list[StressPosition], sc: Scenario, asset_map: dict[str, tuple[str, float]]) -> dict[str, Any]:
    """Run one scenario; returns the result dict (impact, per-position impacts, worst)."""
    impacts: dict[str, float] = {}
    gross = sum(abs(p.value) for p in positions)
    for p in positions:
        new = p.price
        if p.market in sc.resolve:
            new = 1.0 if sc.resolve[p.market] == p.asset else 0.0
        elif p.asset in sc.prices:
            new = _clip(sc.prices[p.asset])
        else:
            shock = sc.shocks.get(p.asset)
            if shock is None and p.asset in asset_map:
                factor, beta = asset_map[p.asset]
                f = sc.shocks.get(factor)
                shock = None if f is None else beta * f
            if shock is not None:
                new = _clip(p.price * (1.0 + shock))
        impacts[p.asset] = impacts.get(p.asset, 0.0) + p.size * (new - p.price)
    total = sum(impacts.values())
    worst = min(impacts.items(), key=lambda kv: kv[1]) if impacts else (None, 0.0)
    pct = total / gross * 100.0 if gross > 0 else 0.0
    return {
        "scenario": sc.name,
        "kind": sc.kind,
        "description": sc.description,
        "impact_usd": total,
        "impact_pct": pct,
        "traffic_light": traffic_light(pct),
        "worst_position": worst[0],
        "worst_position_impact_usd": worst[1],
        "position_impacts": impacts,
        "volatility_shocks": sc.volatility_shocks,
        "correlation_shock": sc.correlation_shock,
    }


def prediction_market_scenarios(positions: list[StressPosition], events: dict[str, list[str]] | None = None) -> list[Scenario]:
    """Resolutions of every market, gaps to 0 and 1, and neg-risk event resolutions."""
    out: list[Scenario] = []
    by_market: dict[str, list[str]] = {}
    for p in positions:
        assets = by_market.setdefault(p.market, [])
        if p.asset not in assets:
            assets.append(p.asset)
    for market, assets in by_market.items():
        for a in assets:
            out.append(Scenario(f"{market} resolves to {a}", "the winner pays 1, the others 0", resolve={market: a}, kind="resolution"))
        if len(assets) == 1:
            out.append(
                Scenario(f"{market} resolves against {assets[0]}", "the held asset pays 0", resolve={market: "\0none"}, kind="resolution")
            )
    everything = {p.asset for p in positions}
    out.append(Scenario("all prices gap to 0", "every held share goes to 0", prices=dict.fromkeys(everything, 0.0), kind="gap"))
    out.append(Scenario("all prices gap to 1", "every held share goes to 1", prices=dict.fromkeys(everything, 1.0), kind="gap"))
    for ev, markets in (events or {}).items():
        held = [p for p in positions if p.market in markets]
        for m in markets:
            prices: dict[str, float] = {}
            for p in held:
                if p.outcome not in ("yes", "no"):
                    raise UsageError(
                        f"event {ev}: position in asset {p.asset} has no outcome (yes/no); cannot resolve the event"
                    )
                wins = (p.market == m) == (p.outcome == "yes")
                prices[p.asset] = 1.0 if wins else 0.0
            out.append(Scenario(f"event {ev} resolves to {m}", f"{m} YES pays 1, every other market NO", prices=prices, kind="event"))
    return out


def report(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Worst/best scenario and the average impact over all results."""
    if not results:
        return {"scenarios": 0}
    worst = min(results, key=lambda r: r["impact_usd"])
    best = max(results, key=lambda r: r["impact_usd"])
    return {
        "scenarios": len(results),
        "worst_scenario": worst["scenario"],
        "max_loss_usd": -min(0.0, worst["impact_usd"]),
        "worst_impact_usd": worst["impact_usd"],
        "best_scenario": best["scenario"],
        "max_gain_usd": max(0.0, best["impact_usd"]),
        "average_impact_usd": sum(r["impact_usd"] for r in results) / len(results),
    }


def run(
    positions: list[StressPosition],
    scenarios: Iterable[Scenario],
    asset_map: dict[str, tuple[str, float]] | None = None,
) -> list[dict[str, Any]]:
    return [apply(positions, sc, asset_map or {}) for sc in scenarios]


def load_scenarios(path: str) -> tuple[list[Scenario], dict[str, tuple[str, float]], dict[str, list[str]]]:
    """Scenarios, asset map and events from a YAML file (strict keys)."""
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh)
    except OSError as exc:
        raise ConfigError(f"scenario file {path}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"scenario file {path}: invalid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"scenario file {path}: expected a mapping with `scenarios`")
    unknown = set(doc) - {"scenarios", "asset_map", "events"}
    if unknown:
        raise ConfigError(f"scenario file {path}: unknown key(s) {sorted(unknown)} (scenarios, asset_map, events)")
    scenarios = []
    for i, s in enumerate(doc.get("scenarios") or []):
        where = f"scenario file {path}: scenarios[{i}]"
        if not isinstance(s, dict) or "name" not in s:
            raise ConfigError(f"{where}: expected a mapping with a name")
        bad = set(s) - {"name", "description", "shocks", "prices", "resolve", "volatility_shocks", "correlation_shock"}
        if bad:
            raise ConfigError(f"{where}: unknown key(s) {sorted(bad)}")
        try:
            scenarios.append(
                Scenario(
                    str(s["name"]),
                    str(s.get("description") or ""),
                    {str(k): float(v) for k, v in (s.get("shocks") or {}).items()},
                    {str(k): float(v) for k, v in (s.get("prices") or {}).items()},
                    {str(k): str(v) for k, v in (s.get("resolve") or {}).items()},
                    {str(k): float(v) for k, v in (s.get("volatility_shocks") or {}).items()},
                    None if s.get("correlation_shock") is None else float(s["correlation_shock"]),
                )
            )
        except (TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
    amap: dict[str, tuple[str, float]] = {}
    for asset, spec in (doc.get("asset_map") or {}).items():
        if isinstance(spec, str):
            amap[str(asset)] = (spec, 1.0)
        elif isinstance(spec, dict) and "factor" in spec:
            amap[str(asset)] = (str(spec["factor"]), float(spec.get("beta", 1.0)))
        else:
            raise ConfigError(f"scenario file {path}: asset_map.{asset}: expected a factor name or {{factor, beta}}")
    events = {str(k): [str(m) for m in v] for k, v in (doc.get("events") or {}).items()}
    return scenarios, amap, events


def parse_map(items: Iterable[str]) -> dict[str, tuple[str, float]]:
    """`ASSET=FACTOR` or `ASSET=FACTOR:BETA` flags."""
    out = {}
    for item in items:
        asset, sep, rest = item.partition("=")
        if not sep or not asset or not rest:
            raise UsageError(f"--map wants ASSET=FACTOR[:BETA], got {item!r}")
        factor, _, beta = rest.partition(":")
        try:
            out[asset] = (factor, float(beta) if beta else 1.0)
        except ValueError:
            raise UsageError(f"--map: beta must be a number in {item!r}") from None
    return out

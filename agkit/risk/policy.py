"""Risk policy files: strict YAML (or JSON) loading with file, line and key in every error.

The original ag-botkit format is accepted verbatim::

    policies:
      - type: PositionLimit
        market_id: "0x123abc"   # optional; omitted or null = every market
        max_size: 500
      - type: InventoryLimit
        max_value_usd: 10000
      - type: KillSwitch
        enabled: false

and extended with more policy types (see docs/risk.md for every field). Unlike the
original, an unknown key is an error (a typo must not silently disable a limit), and
so is a value of the wrong type.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agkit.errors import ConfigError

NUM = "number"
INT = "integer"
STR = "string"
BOOL = "boolean"

# type -> {key: (kind, required, allowed values or None)}; `name` is allowed everywhere.
SCHEMA: dict[str, dict[str, tuple[str, bool, tuple[str, ...] | None]]] = {
    "PositionLimit": {
        "max_size": (NUM, True, None),
        "market_id": (STR, False, None),
        "asset": (STR, False, None),
        "event": (STR, False, None),
        "scope": (STR, False, ("asset", "market", "event")),
        "include_open_orders": (BOOL, False, None),
    },
    "InventoryLimit": {
        "max_value_usd": (NUM, True, None),
        "basis": (STR, False, ("mark", "worst_case")),
        "include_open_orders": (BOOL, False, None),
    },
    "KillSwitch": {"enabled": (BOOL, True, None)},
    "OrderLimit": {
        "max_size": (NUM, False, None),
        "max_notional_usd": (NUM, False, None),
        "min_size": (NUM, False, None),
    },
    "PriceBand": {"max_deviation": (NUM, True, None)},
    "OpenOrderLimit": {"max_orders": (INT, False, None), "max_per_asset": (INT, False, None)},
    "RateLimit": {"max_orders": (INT, True, None), "window_ms": (INT, True, None)},
    "LossLimit": {
        "max_daily_loss_usd": (NUM, False, None),
        "max_drawdown_usd": (NUM, False, None),
        "max_drawdown_pct": (NUM, False, None),
        "capital_usd": (NUM, False, None),
        "kill_switch": (BOOL, False, None),
    },
    "StaleData": {"max_age_ms": (INT, True, None)},
    "ReduceOnly": {
        "enabled": (BOOL, True, None),
        "market_id": (STR, False, None),
        "asset": (STR, False, None),
    },
}

# keys of which at least one must be present
ONE_OF: dict[str, tuple[str, ...]] = {
    "OrderLimit": ("max_size", "max_notional_usd", "min_size"),
    "OpenOrderLimit": ("max_orders", "max_per_asset"),
    "LossLimit": ("max_daily_loss_usd", "max_drawdown_usd", "max_drawdown_pct"),
}

TOP_KEYS = {"policies", "events", "name", "description"}


@dataclass
class PolicySpec:
    """One policy entry as loaded: its type, display name, parameters and source line."""

    type: str
    name: str
    params: dict[str, Any]
    line: int

    def get(self, key: str, default: Any = None) -> Any:
        value = self.params.get(key)
        return default if value is None else value


@dataclass
class PolicySet:
    """A whole policy file."""

    path: str
    name: str
    policies: list[PolicySpec]
    events: dict[str, list[str]] = field(default_factory=dict)  # event -> market ids
    description: str = ""

    def of_type(self, type_: str) -> list[PolicySpec]:
        return [p for p in self.policies if p.type == type_]


class _Loader:
    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.loader = yaml.SafeLoader(text)

    def fail(self, node: yaml.Node | None, key: str, message: str) -> ConfigError:
        line = f":{node.start_mark.line + 1}" if node is not None else ""
        where = f" {key}:" if key else ""
        return ConfigError(f"policy file {self.path}{line}:{where} {message}")

    def scalar(self, node: yaml.Node) -> Any:
        return self.loader.construct_object(node, deep=True)


def _kind_ok(kind: str, value: Any) -> bool:
    if kind == NUM:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == STR:
        return isinstance(value, str | int) and not isinstance(value, bool)
    if kind == BOOL:
        return isinstance(value, bool)
    return False


def _yaml12_number(node: yaml.Node, value: Any) -> Any:
    """A plain scalar like 1e6 or 1.0e12 is a number in YAML 1.2 (and JSON), a string in
    PyYAML's YAML 1.1: read it as the number a person meant."""
    if isinstance(value, str) and isinstance(node, yaml.ScalarNode) and node.style is None:
        try:
            number = float(value)
        except ValueError:
            return value
        if math.isfinite(number):
            return int(number) if number.is_integer() and "." not in value and "e" not in value.lower() else number
    return value


def _show(value: Any) -> str:
    return repr(value) if not isinstance(value, dict | list) else type(value).__name__


def load_policy(path: str | Path) -> PolicySet:
    """Load and validate a policy file; raises ConfigError naming file, line and key."""
    path = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"policy file {path}: cannot read: {exc.strerror or exc}") from None
    return parse_policy(text, path)


def parse_policy(text: str, path: str = "<policy>") -> PolicySet:
    """Validate policy text (YAML or JSON)."""
    ld = _Loader(path, text)
    try:
        root = ld.loader.get_single_node()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"policy file {path}{line}: invalid YAML: {problem}") from None
    finally:
        ld.loader.dispose()
    if root is None:
        raise ConfigError(f"policy file {path}: empty; expected a mapping with a `policies` list")
    if not isinstance(root, yaml.MappingNode):
        raise ld.fail(root, "", "expected a mapping with a `policies` list at the top level")
    top: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for knode, vnode in root.value:
        key = ld.scalar(knode)
        if not isinstance(key, str) or key not in TOP_KEYS:
            raise ld.fail(
                knode, str(key), f"unknown key (expected one of: {', '.join(sorted(TOP_KEYS))})"
            )
        if key in top:
            raise ld.fail(knode, key, "duplicate key")
        top[key] = (knode, vnode)
    if "policies" not in top:
        raise ld.fail(root, "policies", "missing (a list of policies)")
    pnode = top["policies"][1]
    if not isinstance(pnode, yaml.SequenceNode):
        if isinstance(pnode, yaml.ScalarNode) and ld.scalar(pnode) is None:
            items: list[yaml.Node] = []
        else:
            raise ld.fail(pnode, "policies", "expected a list of policies")
    else:
        items = list(pnode.value)

    events: dict[str, list[str]] = {}
    if "events" in top:
        enode = top["events"][1]
        if not isinstance(enode, yaml.MappingNode):
            raise ld.fail(enode, "events", "expected a mapping of event name -> list of market ids")
        for knode, vnode in enode.value:
            ename = str(ld.scalar(knode))
            if not isinstance(vnode, yaml.SequenceNode):
                raise ld.fail(vnode, f"events.{ename}", "expected a list of market ids")
            markets = []
            for m in vnode.value:
                value = ld.scalar(m) if isinstance(m, yaml.ScalarNode) else None
                if not _kind_ok(STR, value):
                    raise ld.fail(m, f"events.{ename}", "expected a market id string")
                markets.append(str(value))
            events[ename] = markets
    meta: dict[str, str] = {}
    for key in ("name", "description"):
        if key in top:
            vnode = top[key][1]
            value = ld.scalar(vnode) if isinstance(vnode, yaml.ScalarNode) else None
            if not _kind_ok(STR, value):
                raise ld.fail(vnode, key, f"expected a string, got {_show(value)}")
            meta[key] = str(value)

    policies: list[PolicySpec] = []
    for i, item in enumerate(items):
        where = f"policies[{i}]"
        if not isinstance(item, yaml.MappingNode):
            raise ld.fail(item, where, "expected a mapping with a `type`")
        raw: dict[str, tuple[yaml.Node, Any]] = {}
        for knode, vnode in item.value:
            key = ld.scalar(knode)
            if not isinstance(key, str):
                raise ld.fail(knode, where, f"keys must be strings, got {key!r}")
            if key in raw:
                raise ld.fail(knode, f"{where}.{key}", "duplicate key")
            if not isinstance(vnode, yaml.ScalarNode):
                raise ld.fail(
                    vnode, f"{where}.{key}", "expected a single value, not a list or mapping"
                )
            raw[key] = (knode, _yaml12_number(vnode, ld.scalar(vnode)))
        if "type" not in raw:
            raise ld.fail(item, f"{where}.type", "missing (one of: " + ", ".join(SCHEMA) + ")")
        tnode, ptype = raw.pop("type")
        if ptype not in SCHEMA:
            raise ld.fail(
                tnode,
                f"{where}.type",
                f"unknown policy type {ptype!r} (one of: {', '.join(SCHEMA)})",
            )
        spec = SCHEMA[ptype]
        name = ptype
        if "name" in raw:
            nnode, nvalue = raw.pop("name")
            if not _kind_ok(STR, nvalue):
                raise ld.fail(nnode, f"{where}.name", f"expected a string, got {_show(nvalue)}")
            name = str(nvalue)
        params: dict[str, Any] = {}
        for key, (knode, value) in raw.items():
            if key not in spec:
                allowed = ", ".join(["name", *spec])
                raise ld.fail(
                    knode, f"{where}.{key}", f"unknown key for {ptype} (allowed: {allowed})"
                )
            kind, _required, choices = spec[key]
            if value is None and not _required:
                params[key] = None
                continue
            if not _kind_ok(kind, value):
                raise ld.fail(
                    knode,
                    f"{where}.{key}",
                    f"expected {'an' if kind == INT else 'a'} {kind}, got {_show(value)}",
                )
            if kind == STR:
                value = str(value)
            if choices is not None and value not in choices:
                raise ld.fail(
                    knode, f"{where}.{key}", f"expected one of {', '.join(choices)}, got {value!r}"
                )
            if kind in (NUM, INT) and float(value) < 0:
                raise ld.fail(knode, f"{where}.{key}", f"must not be negative, got {value!r}")
            params[key] = float(value) if kind == NUM else value
        for key, (_kind, required, _c) in spec.items():
            if required and params.get(key) is None:
                raise ld.fail(item, f"{where}.{key}", f"missing (required by {ptype})")
        need = ONE_OF.get(ptype)
        if need and all(params.get(k) is None for k in need):
            raise ld.fail(item, where, f"{ptype} needs at least one of: {', '.join(need)}")
        if (
            ptype == "LossLimit"
            and params.get("max_drawdown_pct") is not None
            and not params.get("capital_usd")
        ):
            raise ld.fail(item, f"{where}.capital_usd", "required (and > 0) with max_drawdown_pct")
        ev = params.get("event")
        if ev is not None and ev not in events:
            raise ld.fail(
                raw["event"][0],
                f"{where}.event",
                f"unknown event {ev!r}; define it under `events:`",
            )
        if ptype == "PositionLimit":
            scope = params.get("scope") or ("event" if ev is not None else "asset")
            if scope == "event" and ev is None:
                raise ld.fail(item, f"{where}.event", "required with scope: event")
            params["scope"] = scope
        policies.append(PolicySpec(ptype, name, params, item.start_mark.line + 1))
    return PolicySet(
        path=path,
        name=meta.get("name", Path(path).stem),
        policies=policies,
        events=events,
        description=meta.get("description", ""),
    )

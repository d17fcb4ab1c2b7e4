"""Strategies: the API (`Strategy`), the built-ins (mm, bands, arb) and plug-in loading.

A strategy is found by name among the built-ins, then among the installed entry points
of the group `agkit.strategies` (`name = "package.module:Class"`), or from a file with
`path.py:ClassName`.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from agkit.errors import UsageError
from agkit.strategy.api import MarketState, OrderState, Strategy, StrategyContext, snap
from agkit.strategy.params import NoParams, param, parse_params

ENTRY_POINT_GROUP = "agkit.strategies"

BUILTINS: dict[str, str] = {
    "mm": "agkit.strategy.mm:MarketMaker",
    "bands": "agkit.strategy.bands:Bands",
    "arb": "agkit.strategy.arb:Arbitrage",
    "noop": "agkit.strategy.api:Noop",
}


def _entry_points() -> dict[str, Any]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available() -> dict[str, str]:
    """name -> where it comes from, built-ins first."""
    out = dict(BUILTINS)
    for name, ep in _entry_points().items():
        out.setdefault(name, ep.value)
    return out


def _import_target(target: str) -> type[Strategy]:
    mod_name, _, attr = target.partition(":")
    mod = importlib.import_module(mod_name)
    return _check(getattr(mod, attr), target)


def _check(obj: Any, where: str) -> type[Strategy]:
    if not (isinstance(obj, type) and issubclass(obj, Strategy)):
        raise UsageError(f"{where} is not a Strategy subclass (agkit.strategy.Strategy)")
    return obj


def load_file(spec: str) -> type[Strategy]:
    """`path.py:ClassName` (the class name may be omitted when the file has one strategy)."""
    path_str, sep, cls_name = spec.rpartition(":")
    if not sep or not path_str.endswith(".py"):
        path_str, cls_name = spec, ""
    path = Path(path_str)
    if not path.is_file():
        raise UsageError(f"strategy file {path} not found")
    mod_name = f"agkit_user_strategy_{abs(hash(str(path.resolve())))}"
    loader_spec = importlib.util.spec_from_file_location(mod_name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise UsageError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[mod_name] = module
    try:
        loader_spec.loader.exec_module(module)
    except Exception as exc:
        raise UsageError(f"{path}: {type(exc).__name__}: {exc}") from None
    if cls_name:
        if not hasattr(module, cls_name):
            raise UsageError(f"{path} has no class {cls_name}")
        return _check(getattr(module, cls_name), f"{path}:{cls_name}")
    found = [
        v
        for v in vars(module).values()
        if isinstance(v, type) and issubclass(v, Strategy) and v.__module__ == mod_name
    ]
    if len(found) != 1:
        raise UsageError(f"{path}: name the class as {path}:ClassName ({len(found)} strategies found)")
    return found[0]


def load(name: str) -> type[Strategy]:
    """A strategy class by built-in name, entry-point name or `file.py:Class`."""
    if name.endswith(".py") or ".py:" in name:
        return load_file(name)
    if name in BUILTINS:
        return _import_target(BUILTINS[name])
    eps = _entry_points()
    if name in eps:
        try:
            obj = eps[name].load()
        except Exception as exc:
            raise UsageError(f"strategy entry point {name}: {type(exc).__name__}: {exc}") from None
        return _check(obj, f"entry point {name}")
    raise UsageError(f"unknown strategy {name!r}; known: {', '.join(available())} (or --file path.py:Class)")


def build(
    name: str, values: dict[str, Any] | None = None, *, id_prefix: str | None = None
) -> Strategy:
    """Load a strategy and instantiate it with parameters (text or typed values)."""
    cls = load(name)
    params = parse_params(cls.Params, values or {})
    return cls(params, id_prefix=id_prefix)


__all__ = [
    "BUILTINS",
    "ENTRY_POINT_GROUP",
    "MarketState",
    "NoParams",
    "OrderState",
    "Strategy",
    "StrategyContext",
    "available",
    "build",
    "load",
    "load_file",
    "param",
    "parse_params",
    "snap",
]

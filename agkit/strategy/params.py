"""Strategy parameters: a frozen dataclass per strategy, typed, with defaults.

    @dataclass(frozen=True)
    class Params:
        quote_size: float = 100.0   # shares per quote
        post_only: bool = True

`parse_params(Params, {"quote_size": "50"})` converts text (from `--param k=v`) or YAML
values to the declared types and refuses unknown names and ill-typed values with a
`UsageError` that names the parameter, the expected type and the known names.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agkit.errors import UsageError


@dataclasses.dataclass(frozen=True)
class NoParams:
    """A strategy without parameters."""


def _field_types(cls: type[Any]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def type_name(tp: Any) -> str:
    if tp in (int, float, str, bool):
        return str(tp.__name__)
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return "|".join(str(a) for a in typing.get_args(tp))
    return str(tp).replace("typing.", "")


def _convert(name: str, tp: Any, value: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        is_none = value is None or (isinstance(value, str) and value.lower() in ("none", "null", ""))
        if is_none and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(name, arg, value)
            except UsageError:
                pass
        raise UsageError(f"parameter {name}: {value!r} is not a {type_name(tp)}")
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        for a in allowed:
            if value == a or (isinstance(value, str) and str(a) == value):
                return a
        raise UsageError(f"parameter {name}: {value!r} is not one of {', '.join(map(str, allowed))}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
            return False
        raise UsageError(f"parameter {name}: {value!r} is not a bool (true/false)")
    if tp is int:
        if isinstance(value, bool):
            raise UsageError(f"parameter {name}: {value!r} is not an int")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        try:
            return int(str(value).replace("_", ""))
        except ValueError:
            raise UsageError(f"parameter {name}: {value!r} is not an int") from None
    if tp is float:
        if isinstance(value, bool):
            raise UsageError(f"parameter {name}: {value!r} is not a number")
        if isinstance(value, int | float):
            out = float(value)
        else:
            try:
                out = float(str(value))
            except ValueError:
                raise UsageError(f"parameter {name}: {value!r} is not a number") from None
        if out != out or out in (float("inf"), float("-inf")):
            raise UsageError(f"parameter {name}: {value!r} is not a finite number")
        return out
    if tp is str:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)
        raise UsageError(f"parameter {name}: {value!r} is not a string")
    if origin in (list, tuple):
        (inner, *_) = typing.get_args(tp) or (str,)
        items = value if isinstance(value, list | tuple) else [v for v in str(value).split(",") if v]
        conv = [_convert(name, inner, v) for v in items]
        return tuple(conv) if origin is tuple else conv
    return value


def parse_params(cls: type[Any], values: Mapping[str, Any]) -> Any:
    """An instance of the Params dataclass `cls` with `values` converted to their types."""
    fields = _field_types(cls)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        known = ", ".join(fields) or "(none)"
        raise UsageError(f"unknown parameter {', '.join(unknown)}; known: {known}")
    kwargs = {k: _convert(k, fields[k], v) for k, v in values.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"invalid parameters: {exc}") from None


def parse_assignments(items: list[str] | None) -> dict[str, str]:
    """`["a=1", "b=x"]` from repeated `--param k=v` flags."""
    out: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--param wants key=value, got {item!r}")
        out[key.strip().replace("-", "_")] = value
    return out


def load_params_file(path: str) -> dict[str, Any]:
    """A YAML (or JSON) mapping of parameter values."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise UsageError(f"cannot read params file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"params file {path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"params file {path} must hold a mapping of name: value")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def describe(cls: type[Any]) -> list[tuple[str, str, Any, str]]:
    """(name, type, default, help) per parameter; help from a `# comment` in `__doc__`-less
    classes is not available at runtime, so each field may carry metadata={"help": ...}."""
    out = []
    hints = _field_types(cls)
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default: Any = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        out.append((f.name, type_name(hints[f.name]), default, str(f.metadata.get("help", ""))))
    return out


def param(default: Any, help: str) -> Any:
    """A dataclass field with a help text shown by `agkit strategy NAME --list-params`."""
    return dataclasses.field(default=default, metadata={"help": help})

"""Policy files: the original format verbatim, our extensions, and strict errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from agkit.errors import ConfigError
from agkit.exit_codes import ExitCode
from agkit.risk.policy import load_policy, parse_policy
from tests.helpers import ROOT, run_agkit

ORIGINAL_EXAMPLE = """\
policies:
  - type: PositionLimit
    market_id: null
    max_size: 1000.0
  - type: PositionLimit
    market_id: "0x123abc"
    max_size: 500.0
  - type: InventoryLimit
    max_value_usd: 10000.0
  - type: KillSwitch
    enabled: false
"""


def test_original_format_verbatim() -> None:
    ps = parse_policy(ORIGINAL_EXAMPLE, "example_policy.yaml")
    assert [p.type for p in ps.policies] == ["PositionLimit", "PositionLimit", "InventoryLimit", "KillSwitch"]
    assert ps.policies[0].params["market_id"] is None
    assert ps.policies[1].params["market_id"] == "0x123abc"
    assert ps.policies[1].params["max_size"] == 500.0
    assert ps.policies[2].params["max_value_usd"] == 10000.0
    assert ps.policies[3].params["enabled"] is False


def test_json_is_accepted() -> None:
    ps = parse_policy('{"policies": [{"type": "PositionLimit", "max_size": 5}]}')
    assert ps.policies[0].params["max_size"] == 5.0


@pytest.mark.parametrize("name", ["default", "conservative", "market-maker"])
def test_templates_load(name: str) -> None:
    ps = load_policy(ROOT / "policies" / f"{name}.yaml")
    assert ps.name == name
    types = {p.type for p in ps.policies}
    assert {"PositionLimit", "InventoryLimit", "KillSwitch", "OrderLimit", "PriceBand", "RateLimit", "LossLimit", "StaleData"} <= types


def _error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_policy(text, "bad.yaml")
    return str(info.value)


def test_unknown_key_names_file_line_key() -> None:
    msg = _error("policies:\n  - type: PositionLimit\n    max_size: 10\n    max_sise: 20\n")
    assert "bad.yaml:4" in msg and "policies[0].max_sise" in msg and "unknown key" in msg


def test_wrong_type_names_file_line_key() -> None:
    msg = _error("policies:\n  - type: InventoryLimit\n    max_value_usd: lots\n")
    assert "bad.yaml:3" in msg and "policies[0].max_value_usd" in msg and "expected a number" in msg


def test_bool_is_not_a_number() -> None:
    assert "expected a number" in _error("policies:\n  - type: PositionLimit\n    max_size: true\n")


def test_number_is_not_a_bool() -> None:
    assert "expected a boolean" in _error("policies:\n  - type: KillSwitch\n    enabled: 1\n")


def test_missing_required_field() -> None:
    msg = _error("policies:\n  - type: PositionLimit\n    market_id: x\n")
    assert "policies[0].max_size" in msg and "missing" in msg


def test_unknown_type() -> None:
    msg = _error("policies:\n  - type: VarLimit\n    max: 1\n")
    assert "bad.yaml:2" in msg and "unknown policy type 'VarLimit'" in msg


def test_unknown_top_level_key() -> None:
    assert "bad.yaml:1" in _error("polices:\n  - type: KillSwitch\n    enabled: true\n")


def test_bad_choice_and_negative() -> None:
    assert "expected one of mark, worst_case" in _error(
        "policies:\n  - type: InventoryLimit\n    max_value_usd: 1\n    basis: best\n"
    )
    assert "must not be negative" in _error("policies:\n  - type: PositionLimit\n    max_size: -1\n")


def test_one_of_required() -> None:
    assert "at least one of" in _error("policies:\n  - type: OrderLimit\n")


def test_event_must_be_defined() -> None:
    assert "unknown event" in _error("policies:\n  - type: PositionLimit\n    max_size: 1\n    event: election\n")
    ps = parse_policy(
        "events:\n  election: [m1, m2]\npolicies:\n  - type: PositionLimit\n    max_size: 1\n    event: election\n"
    )
    assert ps.policies[0].params["scope"] == "event" and ps.events == {"election": ["m1", "m2"]}


def test_invalid_yaml_has_line() -> None:
    assert "bad.yaml:2" in _error("policies:\n  - type: a: b\n")


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_policy("/nonexistent/policy.yaml")


def test_cli_malformed_policy_exits_config(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("policies:\n  - type: PositionLimit\n    max_size: 10\n    colour: red\n")
    proc = run_agkit("risk-check", "-p", str(bad))
    assert proc.returncode == ExitCode.CONFIG
    err = proc.stderr.decode()
    assert f"{bad}:4" in err and "policies[0].colour" in err
    assert "Traceback" not in err


def test_cli_check_flag() -> None:
    proc = run_agkit("risk-check", "-p", "policies/default.yaml", "--check")
    assert proc.returncode == 0 and proc.stdout == b""
    assert b"ok" in proc.stderr


def test_yaml12_exponent_numbers() -> None:
    ps = parse_policy("policies:\n  - type: PositionLimit\n    max_size: 1e6\n  - type: InventoryLimit\n    max_value_usd: 1.0e12\n")
    assert ps.policies[0].params["max_size"] == 1e6 and ps.policies[1].params["max_value_usd"] == 1e12
    assert "expected a number" in _error('policies:\n  - type: PositionLimit\n    max_size: "1e6"\n')

"""Configuration: flags > AGKIT_* environment > ~/.config/agkit/config.yaml.

The config file maps command names to their option defaults, e.g.

    risk-check:
      policy: policies/default.yaml
    store:
      db: postgresql://localhost/agkit

Venue secrets come from the environment or a `.env` file in the working directory
(or AGKIT_ENV_FILE); they are read on demand and never logged.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from agkit.errors import ConfigError


def config_dir() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "agkit"


def data_dir() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "agkit"


def config_path() -> Path:
    return Path(os.environ.get("AGKIT_CONFIG") or config_dir() / "config.yaml")


def load_config(path: Path | None = None) -> dict[str, Any]:
    """The config file as {command: {option: value}}; {} when there is none."""
    path = path or config_path()
    if not path.is_file():
        return {}
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ConfigError(f"{path}: expected a mapping of command names to option mappings")
    return {
        str(k): {str(o).replace("-", "_"): v for o, v in opts.items()} for k, opts in data.items()
    }


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a .env file (comments, `export ` and quotes allowed)."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def secret(name: str, *aliases: str) -> str | None:
    """A secret from the environment, else from .env; None when absent."""
    for key in (name, *aliases):
        if os.environ.get(key):
            return os.environ[key]
    dotenv = read_dotenv(Path(os.environ.get("AGKIT_ENV_FILE", ".env")))
    for key in (name, *aliases):
        if dotenv.get(key):
            return dotenv[key]
    return None

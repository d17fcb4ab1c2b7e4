"""The `agkit` command: a thin typer layer over the library.

Each command module under agkit/cli/ has a `register(app)`; add new ones to
COMMAND_MODULES. Command bodies import the library lazily: every stage in a pipe
pays start-up, so importing `agkit.cli.app` must stay cheap.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Annotated

import typer

from agkit import __version__

COMMAND_MODULES = [
    "agkit.cli.basic",
    "agkit.cli.exec",
    "agkit.cli.risk",
    "agkit.cli.feed",
    "agkit.cli.monitor",
    "agkit.cli.store",
    "agkit.cli.strategy",
    "agkit.cli.backtest",
    "agkit.cli.venue",
    "agkit.cli.run",
]

EPILOG = "Exit status: 0 ok, 1 error, 2 usage, 3 bad input, 4 venue, 5 config, 130 interrupted. See man agkit."

app = typer.Typer(
    name="agkit",
    help="Polymarket trading-bot toolkit: composable commands over NDJSON pipes.\n\n"
    "Example: agkit feed sim | agkit strategy mm | agkit risk-check -p policies/default.yaml | agkit exec",
    epilog=EPILOG,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,  # never print locals: they can hold venue secrets
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"agkit {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Polymarket trading-bot toolkit: composable commands over NDJSON pipes."""


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def command() -> object:
    """The click command tree (for man pages and tests)."""
    return typer.main.get_command(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run, translate library errors once, exit with the enum's status."""
    sys.exit(run(argv))


def run(argv: list[str] | None = None) -> int:
    import click

    from agkit.errors import AgkitError
    from agkit.exit_codes import ExitCode

    cmd = typer.main.get_command(app)
    default_map = _config_defaults()
    try:
        rv = cmd.main(args=argv, prog_name="agkit", standalone_mode=False, default_map=default_map)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.exceptions.Abort:
        return int(ExitCode.INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        return int(ExitCode.USAGE) if isinstance(exc, click.UsageError) else int(ExitCode.ERROR)
    except AgkitError as exc:
        _error(str(exc))
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        _silence_stdout()
        return int(ExitCode.OK)
    except Exception as exc:  # a bug: one line, no locals; AGKIT_TRACEBACK=1 for the trace
        if os.environ.get("AGKIT_TRACEBACK"):
            raise
        _error(
            f"internal error: {type(exc).__name__}: {exc} (set AGKIT_TRACEBACK=1 for a traceback)"
        )
        return int(ExitCode.ERROR)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
    return int(rv) if isinstance(rv, int) else 0


def _config_defaults() -> dict[str, object] | None:
    from agkit.config import load_config
    from agkit.errors import AgkitError

    try:
        cfg = load_config()
    except AgkitError as exc:
        _error(str(exc))
        return None
    if not cfg:
        return None
    # click nests default maps by command path: {"store": {"ingest": {...}}}
    out: dict[str, object] = {}
    for name, opts in cfg.items():
        node: dict[str, object] = out
        parts = name.split()
        for part in parts[:-1]:
            node = node.setdefault(part, {})  # type: ignore[assignment]
        node[parts[-1]] = opts
    return out


def _error(message: str) -> None:
    sys.stderr.write(f"agkit: error: {message}\n")


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass

"""The `agkit` command: a thin typer layer over the library.

Each command module under agkit/cli/ has a `register(app)`. COMMANDS maps every
top-level command name to the module that registers it, so a stage in a pipe imports
and builds only its own command: every stage pays Python's start-up, and building
the whole tree would cost more than the rest of it. `tests/test_cli.py` fails when
the map and the modules disagree. Command bodies import the library lazily too.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Annotated

import click
import typer
import typer.core
import typer.main

from agkit import __version__

COMMANDS = {  # name -> module, in the order `agkit --help` lists them
    "feed": "agkit.cli.feed",
    "markets": "agkit.cli.feed",
    "strategy": "agkit.cli.strategy",
    "risk-check": "agkit.cli.risk",
    "risk": "agkit.cli.risk",
    "exec": "agkit.cli.exec",
    "orders": "agkit.cli.venue",
    "cancel": "agkit.cli.venue",
    "balance": "agkit.cli.venue",
    "auth": "agkit.cli.venue",
    "store": "agkit.cli.store",
    "monitor": "agkit.cli.monitor",
    "backtest": "agkit.cli.backtest",
    "run": "agkit.cli.run",
    "schema": "agkit.cli.basic",
    "validate": "agkit.cli.basic",
    "pass": "agkit.cli.basic",
}
COMMAND_MODULES = list(dict.fromkeys(COMMANDS.values()))


def module_commands(module: str) -> click.Group:
    """The click commands one module registers (built on demand)."""
    sub = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
    sub.callback()(lambda: None)  # a callback keeps typer from collapsing one command into the root
    importlib.import_module(module).register(sub)
    group = typer.main.get_command(sub)
    assert isinstance(group, click.Group)
    return group


class LazyGroup(typer.core.TyperGroup):
    """The root group: imports a command's module only when that command is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            for name, cmd in module_commands(COMMANDS[cmd_name]).commands.items():
                cmd.name = name
                self.commands[name] = cmd
        return self.commands.get(cmd_name)

    def load_all(self) -> None:
        for name in COMMANDS:
            self.get_command(click.Context(self), name)


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
    cls=LazyGroup,
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


def command() -> LazyGroup:
    """The whole click command tree, every module loaded (for man pages, `run`, tests)."""
    root = typer.main.get_command(app)
    assert isinstance(root, LazyGroup)
    root.load_all()
    return root


def main(argv: list[str] | None = None) -> None:
    """Entry point: run, translate library errors once, exit with the enum's status."""
    sys.exit(run(argv))


def run(argv: list[str] | None = None) -> int:
    import click

    from agkit.errors import AgkitError
    from agkit.exit_codes import ExitCode

    cmd = typer.main.get_command(app)  # commands load lazily, as they are invoked
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
    from agkit.stream import silence_fd

    silence_fd(sys.stdout.fileno())

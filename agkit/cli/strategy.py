"""`agkit strategy NAME`: run a strategy as a pipe stage."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import click
import typer
from typer.core import TyperCommand

from agkit.cli.options import MergeOpt, OnErrorOpt
from agkit.stream import OnError

ParamOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--param",
        "-P",
        metavar="KEY=VALUE",
        help="Set one strategy parameter (repeatable); see the parameter list below.",
    ),
]
ParamsFileOpt = Annotated[
    str | None,
    typer.Option("--params", metavar="FILE.yaml", help="Strategy parameters from a YAML mapping."),
]


def params_table(name: str) -> str:
    """The parameter list of one strategy, for --help and --list-params."""
    from agkit.strategy import load
    from agkit.strategy.params import describe

    cls = load(name)
    rows = describe(cls.Params)
    head = f"{name}: {cls.description or (cls.__doc__ or '').strip().splitlines()[0]}"
    if not rows:
        return head + "\n  (no parameters)"
    width = max(len(f"{n}={d}") for n, _t, d, _h in rows)
    width = min(width, 34)
    lines = [head]
    for n, t, d, h in rows:
        shown = str(d) if len(str(d)) <= 40 else str(d)[:37] + "..."
        lines.append(f"  {f'{n}={shown}':<{width}}  ({t}) {h}")
    return "\n".join(lines)


class StrategyCommand(TyperCommand):
    """Adds the parameters of the named strategy (or of every built-in) to --help."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["agkit_strategy_args"] = list(args)
        return super().parse_args(ctx, args)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from agkit.errors import AgkitError
        from agkit.strategy import BUILTINS

        args: list[str] = ctx.meta.get("agkit_strategy_args", [])
        names = [a for a in args if not a.startswith("-")][:1]
        if "--file" in args:
            i = args.index("--file")
            names = args[i + 1 : i + 2]
        if not names:
            names = [n for n in BUILTINS if n != "noop"]
        with formatter.section("Strategy parameters"):
            for n in names:
                try:
                    text = params_table(n)
                except AgkitError as exc:
                    text = f"{n}: {exc}"
                for line in text.splitlines():
                    formatter.write(" " * formatter.current_indent + line + "\n")
                formatter.write("\n")
        super().format_epilog(ctx, formatter)


def strategy(
    name: Annotated[
        str | None,
        typer.Argument(
            metavar="[NAME]",
            help="mm, bands, arb, an installed plug-in (entry point group agkit.strategies), "
            "or path.py:ClassName.",
        ),
    ] = None,
    file: Annotated[
        str | None,
        typer.Option("--file", metavar="PATH.py:CLASS", help="Load the strategy class from a Python file."),
    ] = None,
    param: ParamOpt = None,
    params_file: ParamsFileOpt = None,
    list_params: Annotated[
        bool, typer.Option("--list-params", help="Print the strategy's parameters and exit.")
    ] = False,
    list_: Annotated[bool, typer.Option("--list", help="List the available strategies and exit.")] = False,
    id_prefix: Annotated[
        str | None,
        typer.Option(
            "--id-prefix",
            help="Prefix of the client order ids (default NAME-); ids are PREFIX1, PREFIX2, ... "
            "Use a fresh prefix per run when orders of an earlier run may still be open.",
        ),
    ] = None,
    lockstep: Annotated[
        bool,
        typer.Option(
            "--lockstep",
            help="Deterministic feedback: after each input record wait until exec (with "
            "--feedback on the --merge FIFO) has answered a barrier, so the pipe gives the "
            "same fills as `agkit backtest`. Needs exactly one --merge.",
        ),
    ] = False,
    lockstep_timeout: Annotated[
        float, typer.Option("--lockstep-timeout", metavar="SECONDS", help="Give up waiting for a barrier after this.")
    ] = 30.0,
    merge: MergeOpt = None,
    on_error: OnErrorOpt = OnError.SKIP,
) -> int:
    """Run a trading strategy: read market records and exec's events, emit submit_order
    and cancel_order records right after the record that caused them.

    Every record passes through unchanged. Orders carry unique, deterministic client
    ids; time is the stream's event time, never the wall clock. Put exec's feedback
    FIFO on --merge so fills reach the strategy; at end of input every open order is
    canceled.

    Example: agkit feed sim | agkit strategy mm --merge /tmp/fb -P quote_size=50 |
    agkit risk-check -p policies/default.yaml | agkit exec --feedback /tmp/fb
    """
    from agkit.errors import UsageError
    from agkit.strategy import available, build
    from agkit.strategy.params import load_params_file, parse_assignments

    if list_:
        for n, where in available().items():
            sys.stdout.write(f"{n}\t{where}\n")
        return 0
    target = file or name
    if file and name:
        raise UsageError("give a strategy NAME or --file PATH.py:CLASS, not both")
    if not target:
        raise UsageError("which strategy? give NAME (see --list) or --file PATH.py:CLASS")
    if list_params:
        sys.stdout.write(params_table(target) + "\n")
        return 0
    values: dict[str, Any] = {}
    if params_file:
        values.update(load_params_file(params_file))
    values.update(parse_assignments(param))
    stage = build(target, values, id_prefix=id_prefix)
    import agkit.runner

    # under `agkit run` the stage joins an in-process Chain, whose feedback is already
    # delivered in lockstep: the pipe handshake does not apply there
    if lockstep and getattr(agkit.runner, "_captured", None) is None:
        if len(merge or ()) != 1:
            raise UsageError("--lockstep needs exactly one --merge FIFO (exec's --feedback)")
        from agkit.strategy.lockstep import LockstepRunner

        assert merge is not None
        return LockstepRunner(stage, merge[0], on_error=on_error, timeout_s=lockstep_timeout).run()
    from agkit.runner import run_stage

    return run_stage(stage, on_error=on_error, merge=merge or ())


def register(app: typer.Typer) -> None:
    app.command(cls=StrategyCommand)(strategy)

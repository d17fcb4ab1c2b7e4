"""`agkit run`: a whole pipeline in one process (or as processes with the FIFO wired)."""

from __future__ import annotations

from typing import Annotated

import typer


def run(
    pipeline: Annotated[
        str,
        typer.Argument(
            metavar="PIPELINE",
            help="The pipeline as you would type it without the `agkit` prefixes, in one quoted "
            "string (`feed sim | strategy mm | exec`), or a YAML file with `pipeline:` or `stages:`.",
        ),
    ],
    processes: Annotated[
        bool,
        typer.Option(
            "--processes",
            help="Start every stage as its own process, connected by pipes, with the feedback FIFO "
            "between exec and the head stage wired automatically.",
        ),
    ] = False,
) -> int:
    """Run a pipeline of agkit stages in one process.

    Every command line is parsed by the real command, with the same flags it takes on
    its own. In one process, exec's events reach the strategy and the risk check before
    the next market record: deterministic, and no serialisation between stages.

    Example: agkit run "feed sim --seed 7 --duration 60 | strategy mm | risk-check -p policies/default.yaml | exec"
    """
    from agkit.pipeline import load_pipeline, run_in_process, run_processes

    segments = load_pipeline(pipeline)
    return run_processes(segments) if processes else run_in_process(segments)


def register(app: typer.Typer) -> None:
    app.command("run")(run)

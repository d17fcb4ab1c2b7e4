"""Flags shared by every stage command, defined once."""

from __future__ import annotations

from typing import Annotated

import typer

from agkit.stream import OnError

OnErrorOpt = Annotated[
    OnError,
    typer.Option(
        "--on-error",
        envvar="AGKIT_ON_ERROR",
        help="What to do with a malformed or invalid input line: fail (exit 3), "
        "skip (report on stderr and go on) or emit (also forward an `error` record).",
        case_sensitive=False,
    ),
]
MergeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--merge",
        metavar="PATH",
        help="Merge the records written to this FIFO (by `exec --feedback PATH`) into the "
        "stage's input, so fills reach the strategy. Repeatable; the FIFO is created if missing.",
    ),
]

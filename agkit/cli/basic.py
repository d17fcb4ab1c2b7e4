"""Commands about the stream itself: schema, validate, pass."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from agkit.cli.options import MergeOpt, OnErrorOpt
from agkit.stream import OnError


def schema(
    record_type: Annotated[
        str | None,
        typer.Argument(metavar="[TYPE]", help="One record type; all of them when omitted."),
    ] = None,
) -> int:
    """Print the JSON Schema of the record types (one JSON document on stdout).

    The schema is generated from the same definitions the stages use.
    Example: agkit schema submit_order
    """
    import orjson

    from agkit.errors import UsageError
    from agkit.records import RECORD_TYPES, json_schema

    try:
        doc = json_schema(record_type)
    except KeyError:
        raise UsageError(
            f"unknown record type {record_type!r}; known: {', '.join(sorted(RECORD_TYPES))}"
        ) from None
    option = orjson.OPT_INDENT_2 if sys.stdout.isatty() else 0
    sys.stdout.buffer.write(orjson.dumps(doc, option=option | orjson.OPT_APPEND_NEWLINE))
    return 0


def validate(
    files: Annotated[
        list[str] | None, typer.Argument(help="NDJSON files (.gz too); stdin when omitted.")
    ] = None,
    strict: Annotated[
        bool, typer.Option(help="Treat record types outside the vocabulary as errors.")
    ] = False,
    max_errors: Annotated[int, typer.Option(help="How many errors to list on stderr.")] = 20,
) -> int:
    """Check a stream against the record schema.

    Prints a summary (counts per type) on stdout, lists the first errors with their
    line numbers on stderr, and exits 3 when any record is invalid.
    Example: agkit feed sim --max-records 1000 | agkit validate
    """
    import orjson

    from agkit.exit_codes import ExitCode
    from agkit.stream import open_input
    from agkit.validate import validate_lines

    failed = False
    for path in files or ["-"]:
        with open_input(path) as stream:
            report = validate_lines(stream, max_errors=max_errors, strict=strict)
        for lineno, reason in report.errors:
            sys.stderr.write(f"agkit validate: {path} line {lineno}: {reason}\n")
        if report.invalid > len(report.errors):
            sys.stderr.write(
                f"agkit validate: {path}: {report.invalid - len(report.errors)} more errors\n"
            )
        summary = {
            "file": path,
            "lines": report.lines,
            "valid": report.valid,
            "invalid": report.invalid,
            "unknown_type": report.unknown,
            "per_type": dict(sorted(report.per_type.items())),
        }
        sys.stdout.buffer.write(orjson.dumps(summary, option=orjson.OPT_APPEND_NEWLINE))
        failed |= not report.ok(strict)
    sys.stdout.flush()
    return int(ExitCode.BAD_INPUT if failed else ExitCode.OK)


def pass_(
    on_error: OnErrorOpt = OnError.SKIP,
    merge: MergeOpt = None,
) -> int:
    """Forward every record unchanged: the plumbing of every stage, and nothing else.

    Useful as a pipeline head that merges a feedback FIFO (--merge), to drop
    malformed lines between stages, or as the baseline of the stage benchmarks.
    Example: agkit feed replay day.ndjson | agkit pass --merge /tmp/fb | ...
    """
    from agkit.runner import run_stage
    from agkit.stage import Stage

    class PassThrough(Stage):
        name = "pass"
        consumes = frozenset()

    return run_stage(PassThrough(), on_error=on_error, merge=merge or ())


def register(app: typer.Typer) -> None:
    app.command()(schema)
    app.command()(validate)
    app.command("pass")(pass_)

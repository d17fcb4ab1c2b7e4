"""`agkit run`: a pipeline of agkit commands, in one process or as separate processes.

A pipeline is the text you would type in a shell, without the `agkit` prefixes:

    feed sim --seed 7 | strategy mm | risk-check -p policies/default.yaml | exec

or a YAML file with `pipeline: "<that text>"`, or `stages:` as a list of command lines.
Each command line is parsed by the real command with its real flags; instead of
running, its PipeRunner is captured (agkit.runner.capture_runners) and the stage
objects are chained in one process, with exec's records fed back to the head before
the next input record (deterministic, no serialisation). `--processes` starts the
same command lines as separate processes and wires the feedback FIFO itself.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import click
import orjson

from agkit.clock import EventClock
from agkit.errors import BadInputError, InvalidRecord, UsageError
from agkit.records import error_record
from agkit.runner import OUTCOME, REPORT_FIRST, Chain, OnInvalid, PipeRunner, capture_runners, log
from agkit.stage import Rec
from agkit.stream import OnError


def split_pipeline(text: str) -> list[list[str]]:
    """Command lines of a pipeline string, quotes respected, `agkit` prefixes dropped."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars="|")
    lexer.whitespace_split = True
    segments: list[list[str]] = [[]]
    for token in lexer:
        if token == "|":
            segments.append([])
        else:
            segments[-1].append(token)
    segments = [seg[1:] if seg and seg[0] == "agkit" else seg for seg in segments]
    if any(not seg for seg in segments):
        raise UsageError(f"empty stage in pipeline {text!r}")
    return segments


def load_pipeline(spec: str) -> list[list[str]]:
    """A pipeline string, or the path of a YAML file describing one."""
    path = Path(spec)
    if "|" not in spec and path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise UsageError(f"no pipeline file {spec}")
        import yaml

        doc = yaml.safe_load(path.read_text())
        if isinstance(doc, dict) and isinstance(doc.get("pipeline"), str):
            return split_pipeline(doc["pipeline"])
        if isinstance(doc, dict) and isinstance(doc.get("stages"), list):
            return [
                shlex.split(s) if isinstance(s, str) else [str(a) for a in s] for s in doc["stages"]
            ]
        raise UsageError(f"{spec}: expected `pipeline: <text>` or `stages: [command lines]`")
    return split_pipeline(spec)


def _command_for(segment: list[str]) -> click.Command:
    from agkit.cli.app import command

    cmd: click.Command = command()
    for token in segment:
        if not isinstance(cmd, click.Group) or token not in cmd.commands:
            break
        cmd = cmd.commands[token]
    return cmd


def build_runners(segments: list[list[str]]) -> list[PipeRunner]:
    """Parse every command line with its own command; one captured runner each."""
    from agkit.cli.app import command

    root = command()
    runners = []
    for seg in segments:
        with capture_runners() as got:
            try:
                root.main(args=list(seg), prog_name="agkit", standalone_mode=False)
            except click.ClickException as exc:
                raise UsageError(f"in `{' '.join(seg)}`: {exc.format_message()}") from None
        if len(got) != 1:
            raise UsageError(
                f"`{' '.join(seg)}` is not a stage (it does not read and write records)"
            )
        runners.append(got[0])
    return runners


def _exec_index(names: list[str]) -> int | None:
    """The stage whose records go back around: the last exec."""
    hits = [i for i, name in enumerate(names) if name == "exec"]
    return hits[-1] if hits else None


def build_chain(segments: list[list[str]]) -> tuple[Chain, PipeRunner]:
    runners = build_runners(segments)
    stages = [r.stage for r in runners]
    for r in runners[1:]:
        if not r.stage.reads_input:
            raise UsageError(f"`{r.stage.name}` is a source; it can only be the first stage")
    fb = _exec_index([s.name for s in stages])
    chain = Chain(stages, feedback_from=fb, clock=EventClock())
    chain.on_invalid = _refusals(chain, runners)
    return chain, runners[0]


def _refusals(chain: Chain, runners: list[PipeRunner]) -> OnInvalid:
    """A record a stage refuses follows that stage's own --on-error, as in a pipe, and the
    rest of what its input caused goes on. An input line the head refuses goes back to
    the runner that read it, which knows its line number."""
    said = [0]

    def refused(index: int, rec: dict[str, Any], exc: InvalidRecord) -> list[Rec]:
        if index == 0 and rec is chain.input:
            raise exc
        on_error, name = runners[index].on_error, runners[index].stage.name
        what = f"a {rec.get('type')!s} record at ts_event {rec.get('ts_event')!s}"
        if on_error is OnError.FAIL:
            raise BadInputError(f"{name}: {what}: {exc}")
        said[0] += 1
        if said[0] <= REPORT_FIRST:
            log(f"agkit {name}: {what}: {exc} ({OUTCOME[on_error]})")
        if on_error is not OnError.EMIT:
            return []
        return [error_record(chain.clock.now_us(), None, str(exc), orjson.dumps(rec, default=str), name)]

    return refused


def run_in_process(segments: list[list[str]]) -> int:
    chain, head = build_chain(segments)
    return PipeRunner(chain, on_error=head.on_error, merge=head.merge_paths).run()


def run_processes(segments: list[list[str]]) -> int:
    """Each command line as its own process; the feedback FIFO wired automatically."""
    runners = build_runners(segments)  # validates every command line first
    names = [r.stage.name for r in runners]
    fb = _exec_index(names)
    segments = [list(seg) for seg in segments]
    tmp = tempfile.mkdtemp(prefix="agkit-run-")
    fifo = os.path.join(tmp, "feedback")
    if fb is not None and fb > 0:
        if "--feedback" not in segments[fb]:
            segments[fb] += ["--feedback", fifo]
        if "--merge" not in segments[0]:
            if not any(p.name == "merge" for p in _command_for(segments[0]).params):
                raise UsageError(
                    f"`{' '.join(segments[0])}` takes no --merge, so fills cannot reach the strategy"
                )
            segments[0] += ["--merge", fifo]
    procs: list[subprocess.Popen[bytes]] = []
    stdin: Any = None
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        proc = subprocess.Popen(
            [sys.executable, "-m", "agkit", *seg],
            stdin=stdin,
            stdout=None if last else subprocess.PIPE,
        )
        if stdin is not None:
            stdin.close()  # the child holds it now
        stdin = proc.stdout
        procs.append(proc)

    def forward(signum: int, _frame: Any) -> None:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM if signum == signal.SIGTERM else signal.SIGINT)

    old = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        codes = [p.wait() for p in procs]
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(fifo)
        os.rmdir(tmp)
    return next((c for c in codes if c not in (0, -signal.SIGPIPE)), 0)

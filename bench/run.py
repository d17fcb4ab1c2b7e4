"""`make bench`: run every bench/bench_*.py and print one table.

Each script prints JSON rows (bench/common.py); a failing script is reported and the
others still run. Extra arguments are passed to every script.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
SCRIPT_LIMIT_S = 900  # one hung benchmark must not hang `make bench`


def fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if abs(v) >= 1e6:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:,.1f}"
    return f"{v:.3g}"


def main() -> int:
    only = sys.argv[1:]
    scripts = sorted((ROOT / "bench").glob("bench_*.py"))
    if only:
        scripts = [s for s in scripts if any(o in s.name for o in only)]
    rows: list[dict[str, object]] = []
    failed = []
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for script in scripts:
        sys.stderr.write(f"running {script.name} ...\n")
        try:
            proc = subprocess.run(
                [sys.executable, str(script)], capture_output=True, env=env, cwd=ROOT, timeout=SCRIPT_LIMIT_S
            )
        except subprocess.TimeoutExpired:
            failed.append(f"{script.name} (over {SCRIPT_LIMIT_S} s)")
            continue
        for line in proc.stdout.splitlines():
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            row["script"] = script.stem.removeprefix("bench_")
            rows.append(row)
        if proc.returncode != 0:
            failed.append(script.name)
            sys.stderr.write(proc.stderr.decode(errors="replace")[-2000:] + "\n")
    header = ("area", "figure", "value", "unit", "baseline", "baseline value", "ratio")
    table = [header]
    for r in rows:
        ratio = r.get("ratio")
        table.append((
            str(r["script"]), str(r["figure"]), fmt(r["value"]), str(r["unit"]),  # type: ignore[arg-type]
            str(r.get("baseline") or "-"), fmt(r.get("baseline_value")),  # type: ignore[arg-type]
            f"{ratio:.2f}x" if isinstance(ratio, float) else "-",
        ))
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for i, row in enumerate(table):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

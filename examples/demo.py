"""`make demo`: a paper-trading bot on the simulated market, stored in SQLite, no network.

    feed sim -> strategy mm -> risk-check -> exec (paper) -> store ingest (SQLite)

On a terminal the run is paced (one simulated hour in about 30 s) and watched with
`agkit monitor --tui` (press q to leave it); otherwise it runs as fast as it can and
prints a summary. Either way it ends by saying where the data is and what to try next.
Options: --db PATH (default: demo.db under the agkit data directory), --sim-seconds N.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agkit.config import data_dir  # noqa: E402

AGKIT = [sys.executable, "-m", "agkit"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default=str(data_dir() / "demo.db"))
    ap.add_argument("--sim-seconds", type=int, default=3600)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-tui", action="store_true", help="never start the terminal dashboard")
    args = ap.parse_args()
    Path(args.db).parent.mkdir(parents=True, exist_ok=True)
    tui = sys.stdout.isatty() and sys.stdin.isatty() and not args.no_tui
    pace = " --realtime --speed 120" if tui else ""
    pipeline = (
        f"feed sim --seed {args.seed} --markets 3 --duration {args.sim_seconds}{pace}"
        " | strategy mm"
        " | risk-check -p policies/default.yaml"
        " | exec --latency-us 50000 --fee-rate 0.02"
        f" | store ingest --db {shlex.quote(args.db)}" + (" --tee" if tui else "")
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    print(f"agkit demo: agkit run {shlex.quote(pipeline)}", file=sys.stderr)
    run = subprocess.Popen([*AGKIT, "run", pipeline], cwd=ROOT, env=env, stdout=subprocess.PIPE if tui else None)
    if tui:
        print("agkit demo: the dashboard follows; press q to leave it", file=sys.stderr)
        subprocess.run([*AGKIT, "monitor", "--tui"], stdin=run.stdout, cwd=ROOT, env=env)
        if run.stdout:
            run.stdout.close()
    code = run.wait()
    if code != 0:
        print(f"agkit demo: the pipeline failed with exit status {code}", file=sys.stderr)
        return code
    print("\nPositions at the end of the run (agkit store query positions):")
    sys.stdout.flush()
    subprocess.run([*AGKIT, "store", "query", "positions", "--db", args.db], cwd=ROOT, env=env, check=False)
    print("\nWhat was stored (agkit store stats):")
    sys.stdout.flush()
    subprocess.run([*AGKIT, "store", "stats", "--db", args.db], cwd=ROOT, env=env, check=False)
    db = shlex.quote(args.db)
    print(
        f"""
The data is in {args.db} (SQLite). Next:
  agkit store query fills --db {db}              # every fill
  agkit store rollup --db {db}                   # OHLCV bars, daily PnL and fees (cron-safe)
  agkit store query pnl --db {db}
  agkit store export --db {db} > day.ndjson      # back out, in time order
  agkit backtest --data day.ndjson --strategy mm -p policies/default.yaml
  agkit risk perf < day.ndjson                   # or var, stress, greeks, portfolio
  agkit run examples/minibot/minibot.yaml        # the original demo bot, rebuilt"""
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

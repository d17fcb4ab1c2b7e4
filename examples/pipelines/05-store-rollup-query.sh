#!/usr/bin/env bash
# After a run: roll the stored stream up and query it (what cron does every few minutes,
# see examples/cron and examples/systemd).
#
#   agkit feed sim ... | ... | agkit store ingest --db DB
#   agkit store rollup --db DB           # OHLCV bars, daily PnL per strategy and market, metric aggregates
#   agkit store query bars|pnl|fills --db DB
#   agkit store export --db DB ...       # back to NDJSON, e.g. for `agkit backtest --data`
#
# Environment: AGKIT_EXAMPLE_DIR, AGKIT_EXAMPLE_RECORDS (default 20000)
# Output (NDJSON on stdout): the 1-minute bars, then the daily PnL rows.
set -euo pipefail
dir="${AGKIT_EXAMPLE_DIR:-$(mktemp -d)}"
records="${AGKIT_EXAMPLE_RECORDS:-20000}"
db="$dir/rollup.db"
fb="$dir/rollup-feedback.fifo"
trap 'rm -f "$fb"' EXIT
cd "$(dirname "$0")/../.."

agkit feed sim --seed 3 --markets 2 --max-records "$records" --merge "$fb" \
  | agkit strategy mm \
  | agkit risk-check -p policies/default.yaml --clock event \
  | agkit exec --feedback "$fb" \
  | agkit store ingest --db "$db"

agkit store rollup --db "$db"
agkit store rollup --db "$db"      # idempotent: a second run changes nothing
agkit store query bars --period 1m --db "$db" --format ndjson
agkit store query pnl --db "$db" --format ndjson

#!/usr/bin/env bash
# The bot of DESIGN.md, offline: market data -> market maker -> risk check -> paper exec -> SQLite.
#
#   agkit feed polymarket --market M | agkit strategy mm | agkit risk-check -p P | agkit exec | agkit store ingest
#
# Offline, `feed sim` stands in for `feed polymarket` (same record types) and `exec` is the
# paper venue (its default). Fills come back to the strategy and the risk check through the
# loop-back FIFO: `exec --feedback F` writes them, the head stage's `--merge F` reads them.
# risk-check runs on the event clock because the simulated timestamps are not "now"
# (live, drop `--clock event`: the wall clock is the default and the right stale-data guard).
#
# Environment: AGKIT_EXAMPLE_DIR   where the database goes (default: a new temp dir)
#              AGKIT_EXAMPLE_RECORDS  how many simulated records (default 20000)
# Output: `agkit store stats` (NDJSON) and the positions, on stdout.
# Live: replace the first stage by `agkit feed polymarket --slug <slug> --merge "$fb"`,
# and drop `--clock event`.
set -euo pipefail
dir="${AGKIT_EXAMPLE_DIR:-$(mktemp -d)}"
records="${AGKIT_EXAMPLE_RECORDS:-20000}"
db="$dir/bot.db"
fb="$dir/feedback.fifo"
trap 'rm -f "$fb"' EXIT
cd "$(dirname "$0")/../.."   # policies/ is relative to the repository

agkit feed sim --seed 7 --markets 2 --max-records "$records" --merge "$fb" \
  | agkit strategy mm \
  | agkit risk-check -p policies/default.yaml --clock event \
  | agkit exec --feedback "$fb" --latency-us 50000 \
  | agkit store ingest --db "$db"

echo "stored in $db" >&2
agkit store stats --db "$db" --format ndjson
agkit store query positions --db "$db" --format ndjson

#!/usr/bin/env bash
# Record once, then replay the same data through the pipes and through `agkit backtest`.
#
#   agkit feed sim --record day.ndjson ...                       # (live: feed polymarket --record)
#   agkit feed replay day.ndjson --max | agkit strategy mm | agkit risk-check -p P | agkit exec | agkit store ingest
#   agkit backtest --data day.ndjson --strategy mm -p P
#
# `feed replay --max` ignores the recorded pacing (drop it to replay in recorded time, or use
# --speed 10). The pipe run and the backtest read the same file; `strategy --lockstep` makes
# the pipe's fills equal the backtest's (see docs/strategy.md).
#
# Environment: AGKIT_EXAMPLE_DIR, AGKIT_EXAMPLE_RECORDS (default 20000)
# Output: the backtest_result record, then `store stats` of the replayed run (NDJSON).
set -euo pipefail
dir="${AGKIT_EXAMPLE_DIR:-$(mktemp -d)}"
records="${AGKIT_EXAMPLE_RECORDS:-20000}"
day="$dir/day.ndjson.gz"
db="$dir/replay.db"
fb="$dir/replay-feedback.fifo"
trap 'rm -f "$fb"' EXIT
cd "$(dirname "$0")/../.."

agkit feed sim --seed 11 --markets 2 --max-records "$records" --record "$day" > /dev/null

agkit feed replay "$day" --max --merge "$fb" \
  | agkit strategy mm \
  | agkit risk-check -p policies/default.yaml --clock event \
  | agkit exec --feedback "$fb" \
  | agkit store ingest --db "$db"

agkit backtest --data "$day" --strategy mm -p policies/default.yaml
agkit store stats --db "$db" --format ndjson

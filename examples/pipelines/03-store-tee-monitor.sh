#!/usr/bin/env bash
# The README's pipeline: store everything and watch it, in one pipe.
#
#   agkit feed polymarket --slug S | agkit strategy mm | agkit risk-check -p P | agkit exec \
#     | agkit store ingest --tee | agkit monitor --tui
#
# `store ingest --tee` stores every record and forwards it; `monitor` consumes the stream.
# On a terminal it draws the dashboard (`--tui`, q quits); otherwise (cron, CI, a test) it
# prints a table of the series on stderr when the input ends. Offline: `feed sim`.
#
# Environment: AGKIT_EXAMPLE_DIR, AGKIT_EXAMPLE_RECORDS (default 20000)
# Output: the monitor's summary on stderr; `store stats` on stdout.
set -euo pipefail
dir="${AGKIT_EXAMPLE_DIR:-$(mktemp -d)}"
records="${AGKIT_EXAMPLE_RECORDS:-20000}"
db="$dir/watched.db"
fb="$dir/watched-feedback.fifo"
trap 'rm -f "$fb"' EXIT
cd "$(dirname "$0")/../.."
if [ -t 1 ] && [ -t 0 ]; then view="--tui"; else view="--summary"; fi

agkit feed sim --seed 5 --markets 3 --max-records "$records" --merge "$fb" \
  | agkit strategy mm \
  | agkit risk-check -p policies/default.yaml --clock event \
  | agkit exec --feedback "$fb" \
  | agkit store ingest --tee --db "$db" \
  | agkit monitor "$view"

agkit store stats --db "$db" --format ndjson

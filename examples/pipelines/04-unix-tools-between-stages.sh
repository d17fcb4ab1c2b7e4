#!/usr/bin/env bash
# Plain Unix tools between stages: every stage forwards what it does not consume, so jq,
# grep and tee can sit anywhere in the pipe.
#
#   feed | jq (drop the metric records) | strategy | tee (keep the orders) | risk-check | exec | grep (fills)
#
# Here: jq drops the feed's metric records before the strategy, tee keeps a copy of the
# stream after the strategy (orders.ndjson), and grep keeps only the fills at the end
# (fills.ndjson), which `agkit validate` checks against the record schema.
#
# Environment: AGKIT_EXAMPLE_DIR, AGKIT_EXAMPLE_RECORDS (default 20000)
# Output: `agkit validate`'s summary of the fills (NDJSON) on stdout.
set -euo pipefail
dir="${AGKIT_EXAMPLE_DIR:-$(mktemp -d)}"
records="${AGKIT_EXAMPLE_RECORDS:-20000}"
cd "$(dirname "$0")/../.."

agkit feed sim --seed 9 --markets 2 --max-records "$records" \
  | jq -c --unbuffered 'select(.type != "metric")' \
  | agkit strategy mm \
  | tee "$dir/after-strategy.ndjson" \
  | agkit risk-check -p policies/default.yaml --clock event \
  | agkit exec --latency-us 20000 \
  | grep --line-buffered '"type":"order_filled"' > "$dir/fills.ndjson" || true

agkit validate --strict "$dir/fills.ndjson"

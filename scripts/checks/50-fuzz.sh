#!/usr/bin/env bash
# Bounded fuzzing of the core (cargo fuzz, nightly): each target FUZZ_SECONDS (default 20 s);
# a crash, a leak assertion or a model mismatch fails the check.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v cargo-fuzz >/dev/null 2>&1 || { echo "cargo-fuzz is missing: bash scripts/setup.sh all"; exit 1; }
secs=${FUZZ_SECONDS:-20}
cd fuzz
log=$(mktemp)
for t in decode roundtrip model link; do
  mkdir -p "corpus/$t"
  if ! cargo +nightly fuzz run "$t" -- -max_total_time="$secs" -rss_limit_mb=2048 \
      -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz target $t failed"
    exit 1
  fi
  execs=$(grep -E "^stat::number_of_executed_units" "$log" | awk '{print $2}')
  echo "fuzz $t: ${execs:-?} inputs in ${secs} s, no failure"
done
rm -f "$log"

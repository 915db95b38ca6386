#!/usr/bin/env bash
# Bounded fuzzing of the core (cargo fuzz, nightly): each target ~20 s; any crash fails.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
secs=${FUZZ_SECONDS:-20}
cd fuzz
for t in decode roundtrip model; do
  mkdir -p "corpus/$t"
  cargo +nightly fuzz run "$t" --locked -- -max_total_time="$secs" -rss_limit_mb=2048 \
    -print_final_stats=1 2>&1 | grep -E "^(Done|stat::number_of_executed_units)|panicked|SUMMARY|ERROR" || true
  # cargo fuzz exits non-zero on a crash; the pipe above hides it, so check for artifacts.
  if ls "artifacts/$t"/crash-* "artifacts/$t"/oom-* "artifacts/$t"/timeout-* >/dev/null 2>&1; then
    echo "fuzz target $t found a failing input:"; ls "artifacts/$t"; exit 1
  fi
done

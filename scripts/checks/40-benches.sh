#!/usr/bin/env bash
# Benches: they build (criterion benches and the report), the report runs in quick mode (a few
# iterations; figures not meaningful), and the benches and mux-std check for Apple Silicon.
# Benchmarks themselves never run here.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo bench -p mux-benches --locked --no-run
# The quick run is also compared with a made-up baseline in which one figure (mux-nostd's
# Original at 1 KiB) is ten times better than any machine measures and another one far worse:
# the report must flag exactly the first as a regression and exit with status 1.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo '{"quick":true,"write_nostd_1KiB_original_vs_floor":0.1,"write_nostd_1KiB_hybrid_vs_floor":1000}' \
  >"$work/made-up.jsonl"
status=0
cargo run --release -p mux-benches --locked --bin report -- --quick \
  --baseline made-up --baseline-dir "$work" >"$work/report.txt" || status=$?
tail -n 40 "$work/report.txt" | cut -c1-200
[ "$status" -eq 1 ] || { echo "report --baseline: exit status $status, not 1"; exit 1; }
grep -qx 'REGRESSION in 1 figure(s): write_nostd_1KiB_original_vs_floor' "$work/report.txt" ||
  { echo "report --baseline did not flag exactly the slowed figure"; exit 1; }
echo "report --baseline flags the regressed figure and no other"
cargo check -p mux-benches -p mux-std --all-targets --locked --target aarch64-apple-darwin

#!/usr/bin/env bash
# Benches: they build (criterion benches and the report), the report runs in quick mode (a few
# iterations; figures not meaningful), and the benches and mux-std check for Apple Silicon.
# Benchmarks themselves never run here.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo bench -p mux-benches --locked --no-run
cargo run --release -p mux-benches --locked --bin report -- --quick
cargo check -p mux-benches -p mux-std --all-targets --locked --target aarch64-apple-darwin

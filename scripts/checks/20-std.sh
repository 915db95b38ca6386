#!/usr/bin/env bash
# mux-std beyond the workspace-wide run of 10-core.sh: the tokio feature (lints, docs, tests),
# the full-size stress test in release, and a build for a non-x86 target.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo clippy -p mux-std --all-targets --all-features --locked -- -D warnings
# Default features alone (in the workspace-wide run the benches turn tokio on): no code left
# unused without it.
cargo clippy -p mux-std --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc -p mux-std --no-deps --all-features --locked
# Every mux-std test with tokio on: unit, doc (crate example: a child-process exchange),
# golden vectors, muxpipe shell pipes and child process, allocation counts, tokio round trips.
cargo test -p mux-std --all-features --locked
# The stress test at full size (32 threads x 1000 messages up to 256 KiB; debug builds run
# 32 x 100). Prints its figures.
cargo test -p mux-std --release --locked --test stress -- --nocapture
# The same with several Data frames per write-lock hold (one vectored write each).
MUX_STRESS_HOLD_BUDGET=65536 cargo test -p mux-std --release --locked --test stress -- --nocapture
# Nothing x86-only.
cargo check -p mux-std --all-features --all-targets --locked --target aarch64-apple-darwin

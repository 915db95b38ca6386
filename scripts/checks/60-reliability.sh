#!/usr/bin/env bash
# Reliability on std (docs/RELIABILITY.md):
# - faults over real sockets: peer closes mid-header/payload/message (Unix, TCP), peer gone
#   mid-send, writer failing after k bytes, flaky and failing readers, stalled peer;
# - load: 64 sending threads for 6 s, mixed sizes, random cancellation (prints its figures);
# - 200 connections (400 nodes): memory per node within the configured bound (prints it);
# - a noisy pipe: `muxpipe write | injector | muxpipe read` at 10^-4 flipped, dropped and
#   inserted bytes, 10^6 messages of 1 KiB with the serial link profile (prints its figures),
#   and the plain format measured on the same noise;
# - the receive memory budget: 256 unfinished messages of 8 MiB through `muxpipe echo` and
#   `muxpipe read`, peak resident size checked (prints it);
# - model checking with shuttle: the core's critical-section pool, the std sender's shared
#   state and buffer pool (a build with --cfg mux_shuttle, in a target dir of its own so the
#   normal build cache stays valid).
# The debug-build run of the same tests (short load) is part of `cargo test --workspace`.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo test -p mux-tests --release --locked --test faults --test load --test connections \
  -- --nocapture
cargo build -p mux-std --release --locked --bin muxpipe
NOISY_MESSAGES=1000000 cargo test -p mux-tests --release --locked --test noisy -- --nocapture
cargo test -p mux-std --release --locked --test muxpipe flood -- --nocapture
RUSTFLAGS="--cfg mux_shuttle" CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}/shuttle" \
  cargo test -p mux-tests --release --locked --test model -- --nocapture

#!/usr/bin/env bash
# The minimum supported Rust version, as the workspace's `rust-version` says: the libraries'
# tests pass on it, and the no_std core builds for the smallest target (Cortex-M0).
# The toolchain is installed by scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
msrv=$(sed -n 's/^rust-version *= *"\(.*\)"/\1/p' Cargo.toml)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}/msrv"
echo "MSRV $msrv"
cargo "+$msrv" test -p mux-nostd -p mux-std --all-features --locked
cargo "+$msrv" build -p mux-nostd --locked --target thumbv6m-none-eabi

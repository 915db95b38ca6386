#!/usr/bin/env bash
# mux-nostd and the workspace: formatting, lints, docs, tests, no_std builds, Miri.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
cargo test --workspace --locked
# no_std, no alloc: the core builds for Cortex-M0 (no atomic CAS), Cortex-M4F and RISC-V,
# with and without defmt.
for t in thumbv6m-none-eabi thumbv7em-none-eabihf riscv32imac-unknown-none-elf; do
  cargo build -p mux-nostd --locked --target "$t"
  cargo build -p mux-nostd --locked --target "$t" --features defmt
  cargo clippy -p mux-nostd --locked --target "$t" --features defmt -- -D warnings
done
# Miri: the core's unit tests (the pool's unsafe code) and its protocol tests.
MIRIFLAGS="-Zmiri-strict-provenance" cargo +nightly miri test -p mux-nostd --lib --locked

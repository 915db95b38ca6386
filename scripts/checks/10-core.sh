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
cargo clippy -p mux-nostd --locked --features log --all-targets -- -D warnings
# Miri: everything that reaches the pool's unsafe code: the unit tests (pool, codec), the
# bad-input rows (reassembly into pool chains) and the cancel-safety tests.
export MIRIFLAGS="-Zmiri-strict-provenance"
cargo +nightly miri test -p mux-nostd --locked --lib
cargo +nightly miri test -p mux-nostd --locked --test bad_input -- row_
cargo +nightly miri test -p mux-nostd --locked --test cancel
# The overflow guards where usize is 32 bits (a Cortex-M's width): the codec's unit tests under
# Miri for i686 (Miri builds that target's library itself; no rustup target needed).
cargo +nightly miri test -p mux-nostd --locked --lib --target i686-unknown-linux-gnu -- encode::

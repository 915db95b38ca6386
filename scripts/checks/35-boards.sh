#!/usr/bin/env bash
# The firmware for real boards, examples-embedded/boards/: Raspberry Pi Pico (rp2040:
# thumbv6m-none-eabi, embassy-rp) and ESP32-C3 (esp32c3: riscv32imc-unknown-none-elf, esp-hal).
# No board is attached here, so nothing runs on one:
# - each board is built in release with --locked (its own workspace, Cargo.lock and target dir
#   under its folder), then checked with rustfmt and clippy (-D warnings);
# - the loop they share (mux-sensor-app) runs on the host against a simulated 115200-baud link
#   whose receive FIFO is as small as the boards' UARTs' and drops bytes when it overflows;
# - each board's flash and RAM are printed (footprint.py --boards reads the ELF files itself).
set -euo pipefail
cd "$(dirname "$0")/../.."
for board in rp2040 esp32c3; do
  echo "--- board: $board"
  (
    cd "examples-embedded/boards/$board"
    export CARGO_TARGET_DIR="$PWD/target"
    cargo build --release --locked
    cargo fmt --check
    cargo clippy -q --release --locked -- -D warnings
  )
done

echo "--- the boards' loop on a simulated serial link (host test of mux-sensor-app)"
host=$(rustc -vV | sed -n 's/^host: //p')
(
  cd examples-embedded
  export CARGO_TARGET_DIR="$PWD/target"
  cargo clippy -q --locked -p mux-sensor-app --target "$host" --all-targets -- -D warnings
  cargo test --locked -p mux-sensor-app --target "$host"
  # The same loop with the serial link profile (the feature QEMU's sensor_node can turn on).
  cargo clippy -q --locked -p mux-sensor-app --target "$host" --all-targets --features cobs-link \
    -- -D warnings
  cargo test --locked -p mux-sensor-app --target "$host" --features cobs-link
)

echo "--- flash and RAM of the boards"
python3 examples-embedded/footprint.py --boards --no-build

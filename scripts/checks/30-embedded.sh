#!/usr/bin/env bash
# The embedded examples: firmware built for Cortex-M3 and Cortex-M0 and run under QEMU.
# - the demo, non-interactively: sensor_node (blocking) and async_node (embassy), each on a
#   Cortex-M3 (thumbv7m build) and a Cortex-M0 core (thumbv6m build), against the mux-std host;
#   both with the serial link profile, and sensor_node with it over a noisy line; both again
#   with the UART paced at 115,200 baud (Adaptive framing);
# - plugin_node as a plugin on both cores: mux-tests' plugin_firmware test starts
#   examples-embedded/plugin-node.sh as a child process (QEMU on its stdin and stdout), and
#   `muxplug call` gets a reading from it;
# - selftest (the core's conformance on the target) on both cores;
# - the footprint report (builds everything in release, checks the core's flash/RAM goals);
# - rustfmt and clippy (both targets) in the examples-embedded workspace.
# Every QEMU run has a timeout.
set -euo pipefail
cd "$(dirname "$0")/../.."
for cpu in cortex-m3 cortex-m0; do
  for fw in sensor_node async_node; do
    echo "--- demo: $fw on $cpu"
    bash scripts/demo.sh --check --firmware "$fw" --cpu "$cpu"
  done
done
# The paced link (115,200 baud) with Adaptive framing, both firmware on the Cortex-M0 build.
for fw in sensor_node async_node; do
  echo "--- demo: $fw on cortex-m0, paced at 11520 B/s"
  bash scripts/demo.sh --check --firmware "$fw" --cpu cortex-m0 --pace 11520
done

# The serial link profile: the same exchange, then a noisy line from the firmware to the host
# (bits flipped, bytes dropped and inserted at 2·10^-3 per byte; nothing damaged delivered,
# every untouched message delivered, the rest reported lost).
echo "--- demo: sensor_node and async_node on cortex-m3, --link cobs"
bash scripts/demo.sh --check --link cobs
bash scripts/demo.sh --check --firmware async_node --link cobs
echo "--- demo: sensor_node on cortex-m3, --link cobs over a noisy line"
bash scripts/demo.sh --check --link cobs --noise 2e-3 --seed 1

for pair in thumbv7m-none-eabi:cortex-m3 thumbv6m-none-eabi:cortex-m0; do
  echo "--- plugin_node as a plugin on ${pair##*:}"
  # Built here so that the test runs this tree's firmware (plugin-node.sh only builds a missing
  # one).
  (cd examples-embedded && CARGO_TARGET_DIR="$PWD/target" \
    cargo build -q --release --locked --target "${pair%%:*}" --bin plugin_node)
  PLUGIN_NODE_CPU="${pair##*:}" MUX_REQUIRE_QEMU=1 timeout 300 \
    cargo test -q --locked -p mux-tests --test plugin_firmware -- --nocapture
done
echo "--- muxplug call examples-embedded/plugin-node.sh reading ''"
reading=$(timeout 120 cargo run -q --locked -p mux-std --bin muxplug -- \
  call examples-embedded/plugin-node.sh reading '')
echo "$reading"
grep -q '^{"seq":[0-9]*,"t_ms":[0-9]*,"temp_c":[0-9.-]*,"humidity":[0-9.]*}$' <<<"$reading"

cd examples-embedded
export CARGO_TARGET_DIR="$PWD/target"
qemu=(qemu-system-arm -machine lm3s6965evb -nographic -monitor none
      -semihosting-config enable=on,target=native)
for pair in thumbv7m-none-eabi:cortex-m3 thumbv6m-none-eabi:cortex-m0; do
  target=${pair%%:*}
  cpu=${pair##*:}
  echo "--- selftest: $target on $cpu"
  cargo build -q --release --locked --target "$target" --bin selftest
  log="target/selftest-$target.log"
  # QEMU's exit status is the firmware's verdict (semihosting exit).
  if ! timeout 120 "${qemu[@]}" -cpu "$cpu" -kernel "target/$target/release/selftest" >"$log" 2>&1; then
    cat "$log"
    echo "selftest failed on $cpu"
    exit 1
  fi
  grep -c '^ok ' "$log" | sed 's/^/cases passed: /'
  tail -n 1 "$log"
done

echo "--- footprint"
python3 footprint.py

echo "--- rustfmt, clippy"
cargo fmt --check
for target in thumbv7m-none-eabi thumbv6m-none-eabi; do
  cargo clippy -q --release --locked --target "$target" --bins --lib -- -D warnings
  cargo clippy -q --release --locked --target "$target" --bins --lib --features histograms -- -D warnings
done

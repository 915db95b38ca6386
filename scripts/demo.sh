#!/usr/bin/env bash
# The demo: sensor-node firmware for Cortex-M running under QEMU (lm3s6965evb), its UART0 wired
# to a loopback TCP port where a mux-std host peer (tests/src/bin/demo_host.rs) runs a fixed
# exchange and shows it live: readings, command round trips with their latency, the 20 KiB log
# dump's progress with readings arriving between its frames, a cancelled dump, a message the
# host aborts. Ends with a summary; exits non-zero if anything was lost or corrupted.
#
#   bash scripts/demo.sh [--check] [--firmware sensor_node|async_node] [--cpu cortex-m3|cortex-m0]
#                        [--link plain|cobs] [--noise RATE [--seed S]]
#                        [--pace BYTES_PER_S [--strategy adaptive|original]]
#
# --check: non-interactive run for the test scripts (shorter opening watch).
# --cpu cortex-m0: the thumbv6m-none-eabi build, on a Cortex-M0 core of the same board.
# --link cobs: both ends speak the serial link profile (COBS framing, a CRC-32C per link
#   frame); the firmware is built with its feature `cobs-link`.
# --noise RATE: with --link cobs, a noisy line from the firmware to the host (bits flipped,
#   bytes dropped and inserted at RATE per byte, seeded by --seed) and an exchange that checks
#   that nothing damaged is delivered and every untouched message is (see demo_host).
# --pace 11520: the firmware's UART sends at that rate (115,200 baud) and frames its log dump
#   with Adaptive (--strategy original: Original's 1 KiB frames, for contrast); the summary
#   shows how long readings waited during the log dumps.
#
# Installs only what it needs when missing: the firmware's rustup target and Debian's
# qemu-system-arm (scripts/setup.sh demo).
set -euo pipefail
cd "$(dirname "$0")/.."
fw=sensor_node
cpu=cortex-m3
check=()
link=plain
host_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --check) check=(--check) ;;
    --firmware) fw="$2"; shift ;;
    --cpu) cpu="$2"; shift ;;
    --link) link="$2"; shift ;;
    --noise|--seed) host_args+=("$1" "$2"); shift ;;
    --pace|--strategy) host_args+=("$1" "$2"); shift ;;
    *) echo "usage: $0 [--check] [--firmware sensor_node|async_node] [--cpu cortex-m3|cortex-m0] [--link plain|cobs] [--noise RATE [--seed S]] [--pace BYTES_PER_S [--strategy adaptive|original]]" >&2; exit 2 ;;
  esac
  shift
done
features=(--features histograms)
case "$link" in
  plain) ;;
  cobs) features=(--features histograms,cobs-link) ;;
  *) echo "--link: plain or cobs" >&2; exit 2 ;;
esac
host_args+=(--link "$link")
case "$cpu" in
  cortex-m0) target=thumbv6m-none-eabi ;;
  *) target=thumbv7m-none-eabi ;;
esac
# Plain `cargo` runs on the stable toolchain, which setup.sh checks for (whatever the default).
export RUSTUP_TOOLCHAIN=stable
bash scripts/setup.sh demo "$target"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
built() { [ -x "$1" ] && echo " (already built: quick)" || echo " (about a minute the first time)"; }
echo "demo: building the firmware $fw for $target$(built "examples-embedded/target/$target/release/$fw")"
# A build with other features replaces the same file: both builds stay quick (cargo caches).
(cd examples-embedded && CARGO_TARGET_DIR="$PWD/target" cargo build --release --locked --target "$target" --bin "$fw" "${features[@]}")
echo "demo: building the host peer (mux-tests' demo_host)$(built target/release/demo_host)"
cargo build --release --locked -p mux-tests --bin demo_host
echo "demo: running"
# The host starts QEMU itself, gives the whole run 90 s, and kills QEMU if it is still there;
# the outer timeout is a last resort so that nothing can hang.
timeout 120 target/release/demo_host \
  --firmware "examples-embedded/target/$target/release/$fw" --cpu "$cpu" --timeout 90 "${check[@]}" \
  "${host_args[@]}"

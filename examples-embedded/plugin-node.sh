#!/usr/bin/env bash
# The plugin_node firmware as a plugin executable: give this script's path to a plugin host
# (mux-std's, or the Go library's). It runs the firmware under QEMU (lm3s6965evb) with UART0 on
# this script's stdin and stdout, so the host talks to the firmware through the multiplexer.
#
# - stdout carries only the protocol's bytes: QEMU's own messages, the firmware's semihosting
#   output and the build's output go to stderr;
# - the script ends when the firmware leaves QEMU (after `shutdown` or `force_shutdown`), with
#   its status, or when stdin reaches its end (QEMU is then stopped, status 0);
# - the script's process becomes QEMU itself (exec), so a host that kills the plugin kills
#   QEMU.
#
# Environment:
#   PLUGIN_NODE_ELF   a prebuilt firmware to run (default: the release build in this folder's
#                     target directory, built first with `cargo build --release` if missing)
#   PLUGIN_NODE_CPU   cortex-m3 (default, the thumbv7m-none-eabi build) or cortex-m0 (the
#                     thumbv6m-none-eabi build)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cpu=${PLUGIN_NODE_CPU:-cortex-m3}
case "$cpu" in
  cortex-m3) target=thumbv7m-none-eabi ;;
  cortex-m0) target=thumbv6m-none-eabi ;;
  *) echo "plugin-node.sh: PLUGIN_NODE_CPU must be cortex-m3 or cortex-m0, not $cpu" >&2; exit 2 ;;
esac
elf=${PLUGIN_NODE_ELF:-$here/target/$target/release/plugin_node}
if [ ! -f "$elf" ]; then
  if [ -n "${PLUGIN_NODE_ELF:-}" ]; then
    echo "plugin-node.sh: PLUGIN_NODE_ELF=$elf: no such file" >&2
    exit 1
  fi
  echo "plugin-node.sh: building plugin_node for $target" >&2
  (cd "$here" && CARGO_TARGET_DIR="$here/target" \
    cargo build -q --release --locked --target "$target" --bin plugin_node) 1>&2
fi

# QEMU's stdio chardev ignores the end of its input, so a copy of stdin feeds it instead and,
# at the end of stdin, stops QEMU (the process this script becomes), unless QEMU has already
# gone (this copy is then no longer its child).
qemu_pid=$$
feed() {
  cat
  local stat
  read -r stat <"/proc/$BASHPID/stat" || exit 0
  # Field 4 of stat is the parent's pid (field 2, the command, is "(bash)": no spaces).
  set -- $stat
  if [ "$4" = "$qemu_pid" ]; then
    kill -TERM "$qemu_pid" 2>/dev/null || true
  fi
}

exec qemu-system-arm -machine lm3s6965evb -cpu "$cpu" -display none -monitor none -nodefaults \
  -chardev stdio,id=uart0,signal=off -serial chardev:uart0 \
  -chardev file,id=semihosting,path=/dev/stderr,append=on \
  -semihosting-config enable=on,target=native,chardev=semihosting \
  -kernel "$elf" < <(feed)

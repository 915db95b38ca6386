#!/usr/bin/env bash
# ARM servers: mux-nostd's and mux-std's test suites built for aarch64-unknown-linux-gnu and run
# under QEMU user mode (Debian's qemu-user, linked with gcc-aarch64-linux-gnu). Tests that start
# a child process (muxpipe in shell pipes) run an aarch64 program too, so qemu-aarch64 is
# registered with the kernel's binfmt_misc when it is not already (root only; Linux keeps the
# registration until reboot).
set -euo pipefail
cd "$(dirname "$0")/../.."
sysroot=/usr/aarch64-linux-gnu
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L $sysroot"
export QEMU_LD_PREFIX=$sysroot

binfmt=/proc/sys/fs/binfmt_misc
if [ ! -e "$binfmt/qemu-aarch64" ]; then
  [ -e "$binfmt/register" ] || mount -t binfmt_misc binfmt_misc "$binfmt"
  # An aarch64 ELF executable: the ELF magic, 64-bit, little-endian, e_machine 0xb7.
  magic='\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
  mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
  echo ":qemu-aarch64:M::$magic:$mask:$(command -v qemu-aarch64):" >"$binfmt/register"
fi
echo "qemu-aarch64 registered: $(head -n 1 "$binfmt/qemu-aarch64")"

# The plugin tests (mux-std/tests/plugin.rs, module `processes`) are built but not run here:
# they start many child processes from a test process running many threads, and a child that
# qemu-user forks then can hang before its `exec` (seen: one hung test in a run). They run
# natively in 20-std.sh.
cargo test -p mux-nostd -p mux-std --all-features --locked --target aarch64-unknown-linux-gnu \
  -- --skip processes::

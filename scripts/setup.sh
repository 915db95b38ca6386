#!/usr/bin/env bash
# Installs what the checks and the demo need on a fresh machine; quick when already there.
set -euo pipefail
targets="thumbv6m-none-eabi thumbv7m-none-eabi thumbv7em-none-eabihf riscv32imac-unknown-none-elf aarch64-apple-darwin"
missing=""
installed=$(rustup target list --installed)
for t in $targets; do grep -qx "$t" <<<"$installed" || missing="$missing $t"; done
[ -z "$missing" ] || rustup target add $missing
if ! rustup +nightly --version >/dev/null 2>&1; then rustup toolchain install nightly --profile minimal; fi
nightly_components=$(rustup +nightly component list --installed)
for c in miri rust-src; do
  grep -q "^$c" <<<"$nightly_components" || rustup +nightly component add "$c"
done
# The workspace's rust-version (its MSRV), for scripts/checks/70-msrv.sh.
msrv=$(sed -n 's/^rust-version *= *"\(.*\)"/\1/p' Cargo.toml)
if ! rustup "+$msrv" --version >/dev/null 2>&1; then
  rustup toolchain install "$msrv" --profile minimal
fi
rustup target list --toolchain "$msrv" --installed | grep -qx thumbv6m-none-eabi ||
  rustup target add --toolchain "$msrv" thumbv6m-none-eabi
if ! command -v qemu-system-arm >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq qemu-system-arm >/dev/null
fi

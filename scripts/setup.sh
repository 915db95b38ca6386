#!/usr/bin/env bash
# Installs what a command needs, and only what is missing. It asks rustup, dpkg and cargo what is
# installed (their lists, never whether a `+toolchain` call happens to run), so it works where
# rustup's auto-install is off (RUSTUP_AUTO_INSTALL=0).
#
#   bash scripts/setup.sh demo TARGET   the demo: TARGET (a firmware target) and QEMU for Arm
#   bash scripts/setup.sh all           the test suite: everything below
#
# What `all` installs when missing:
# - on the default (stable) toolchain: clippy, rustfmt, and the targets the checks build for;
# - nightly (minimal profile) with miri and rust-src, for Miri and cargo-fuzz;
# - the workspace's minimum supported toolchain (`rust-version`), with thumbv6m-none-eabi;
# - Debian packages: qemu-system-arm (firmware), qemu-user and an aarch64 cross toolchain
#   (the aarch64 Linux test suites); prometheus (with promtool) and curl (the observability
#   check: a real Prometheus scraping the metrics example);
# - cargo-fuzz (built from crates.io).
# scripts/checks/00-setup.sh runs this script against stand-in commands to check all of that.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "setup: $*"; }

installed_toolchains=$(rustup toolchain list)

# True when rustup lists toolchain $1 (listed as `NAME-HOST`, maybe with " (default)" after).
has_toolchain() { grep -q "^$1-" <<<"$installed_toolchains"; }

ensure_toolchain() { # NAME
  if ! has_toolchain "$1"; then
    say "installing the $1 toolchain"
    rustup toolchain install "$1" --profile minimal
    installed_toolchains=$(rustup toolchain list)
  fi
}

ensure_rustup() { # target|component TOOLCHAIN NAME...
  local kind=$1 tc=$2 have missing=()
  shift 2
  have=$(rustup "$kind" list --installed --toolchain "$tc")
  # Targets are listed by name; components as NAME-HOST (miri-x86_64-…) or NAME (rust-src).
  for n in "$@"; do grep -qE "^$n(-|\$)" <<<"$have" || missing+=("$n"); done
  if [ ${#missing[@]} -gt 0 ]; then
    say "adding ${kind}s to $tc: ${missing[*]}"
    rustup "$kind" add --toolchain "$tc" "${missing[@]}"
  fi
}
ensure_targets() { ensure_rustup target "$@"; }
ensure_components() { ensure_rustup component "$@"; }

ensure_packages() { # DEBIAN-PACKAGE...
  local missing=()
  for p in "$@"; do
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" = "install ok installed" ] ||
      missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

ensure_cargo_tool() { # CRATE
  local tools
  tools=$(cargo install --list)
  if ! grep -q "^$1 " <<<"$tools"; then
    say "building $1 from crates.io (a few minutes, once)"
    cargo install --locked "$1"
  fi
}

# The default toolchain: the checks run plain `cargo` on it.
ensure_toolchain stable

case "${1:-}" in
  demo)
    [ -n "${2:-}" ] || { echo "usage: $0 demo TARGET" >&2; exit 2; }
    ensure_targets stable "$2"
    ensure_packages qemu-system-arm
    ;;
  all)
    ensure_components stable clippy rustfmt
    ensure_targets stable thumbv6m-none-eabi thumbv7m-none-eabi thumbv7em-none-eabihf \
      riscv32imac-unknown-none-elf riscv32imc-unknown-none-elf aarch64-unknown-linux-gnu \
      aarch64-apple-darwin
    ensure_toolchain nightly
    ensure_components nightly miri rust-src
    msrv=$(sed -n 's/^rust-version *= *"\(.*\)"/\1/p' Cargo.toml)
    ensure_toolchain "$msrv"
    ensure_targets "$msrv" thumbv6m-none-eabi
    ensure_packages qemu-system-arm qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross \
      prometheus curl
    ensure_cargo_tool cargo-fuzz
    ;;
  *)
    echo "usage: $0 demo TARGET | all" >&2
    exit 2
    ;;
esac

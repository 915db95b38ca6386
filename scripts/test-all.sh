#!/usr/bin/env bash
# The whole test suite. Installs what it needs when missing (scripts/setup.sh all: rustup
# toolchains, targets and components, Debian packages, cargo-fuzz), then runs every check in
# scripts/checks/ in order, timing each. Stops at the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
# Plain `cargo` runs on the stable toolchain, which setup.sh checks for (whatever the default);
# the checks name nightly and the minimum supported toolchain with `+` where they need them.
export RUSTUP_TOOLCHAIN=stable
start=$(date +%s)
t0=$start
echo "=== setup"
bash scripts/setup.sh all
echo "=== setup done in $(( $(date +%s) - t0 )) s"
for check in scripts/checks/*.sh; do
  t0=$(date +%s)
  echo "=== ${check##*/}"
  bash "$check"
  echo "=== ${check##*/} passed in $(( $(date +%s) - t0 )) s"
done
echo "all checks passed in $(( $(date +%s) - start )) s"

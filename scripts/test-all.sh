#!/usr/bin/env bash
# The whole test suite. Installs what it needs (rustup targets and components, apt packages),
# then runs every check in scripts/checks/ in order. Stops at the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
start=$(date +%s)
bash scripts/setup.sh
for check in scripts/checks/*.sh; do
  t0=$(date +%s)
  echo "=== ${check##*/}"
  bash "$check"
  echo "=== ${check##*/} passed in $(( $(date +%s) - t0 )) s"
done
echo "all checks passed in $(( $(date +%s) - start )) s"

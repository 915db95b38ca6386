#!/usr/bin/env bash
# scripts/setup.sh against stand-in `rustup`, `dpkg-query`, `apt-get` and `cargo` that log their
# calls: on a machine that reports nothing installed (and refuses any `+toolchain` call, as
# rustup does with RUSTUP_AUTO_INSTALL=0) it must install every toolchain, target, component,
# package and tool its command needs, and nothing more; on a machine that has everything it must
# install nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bin="$work/bin"
mkdir -p "$bin"
msrv=$(sed -n 's/^rust-version *= *"\(.*\)"/\1/p' Cargo.toml)
host=x86_64-unknown-linux-gnu

cat >"$bin/rustup" <<STUB
#!/usr/bin/env bash
echo "rustup \$*" >>"\$FAKE_LOG"
# Like rustup itself: \`rustup +X --version\` prints rustup's version and exits 0 even when X is
# missing; anything else run on a missing toolchain fails.
case "\$1 \$2" in
  +*" --version") echo "rustup 1.28.2 (stand-in)"; exit 0 ;;
  +*) echo "error: toolchain '\${1#+}' is not installed" >&2; exit 1 ;;
esac
full() { [ "\$FAKE_STATE" = full ]; }
case "\$1 \$2" in
  "toolchain list")
    if full; then printf '%s\n' "stable-$host (default)" "nightly-$host" "$msrv-$host"
    else echo "no installed toolchains"; fi ;;
  "target list")
    full && printf '%s\n' $host thumbv6m-none-eabi thumbv7m-none-eabi thumbv7em-none-eabihf \
      riscv32imac-unknown-none-elf riscv32imc-unknown-none-elf aarch64-unknown-linux-gnu \
      aarch64-apple-darwin ;;
  "component list")
    full && printf '%s\n' cargo-$host clippy-$host rustfmt-$host miri-$host rust-src rust-std-$host ;;
esac
exit 0
STUB
cat >"$bin/dpkg-query" <<'STUB'
#!/usr/bin/env bash
[ "$FAKE_STATE" = full ] || { echo "dpkg-query: no packages found matching ${*: -1}" >&2; exit 1; }
printf 'install ok installed'
STUB
cat >"$bin/apt-get" <<'STUB'
#!/usr/bin/env bash
echo "apt-get $*" >>"$FAKE_LOG"
STUB
cat >"$bin/cargo" <<'STUB'
#!/usr/bin/env bash
echo "cargo $*" >>"$FAKE_LOG"
if [ "$1 $2" = "install --list" ] && [ "$FAKE_STATE" = full ]; then
  printf 'cargo-fuzz v0.13.1:\n    cargo-fuzz\n'
fi
exit 0
STUB
chmod +x "$bin"/*

failures=0
run() { # STATE ARGS...
  local state=$1
  shift
  : >"$work/log"
  FAKE_STATE=$state FAKE_LOG="$work/log" RUSTUP_AUTO_INSTALL=0 PATH="$bin:$PATH" \
    bash "$root/scripts/setup.sh" "$@" >"$work/out" 2>&1 || {
    echo "setup.sh $* failed on a '$state' machine:"
    cat "$work/out"
    exit 1
  }
}
expect() { # PATTERN (an extended regex over the logged calls)
  grep -qE "$1" "$work/log" || { echo "  missing: $1"; failures=$((failures + 1)); }
}
expect_none() { # PATTERN
  if grep -E "$1" "$work/log"; then echo "  unexpected: $1"; failures=$((failures + 1)); fi
}
installs='toolchain install|target add|component add|^apt-get|^cargo install --locked'

echo "--- setup.sh all, nothing installed"
run empty all
expect '^rustup toolchain install stable '
expect '^rustup toolchain install nightly '
expect "^rustup toolchain install $msrv "
for t in thumbv6m-none-eabi thumbv7m-none-eabi thumbv7em-none-eabihf riscv32imac-unknown-none-elf \
  riscv32imc-unknown-none-elf aarch64-unknown-linux-gnu aarch64-apple-darwin; do
  expect "^rustup target add --toolchain stable .*$t"
done
expect "^rustup target add --toolchain $msrv thumbv6m-none-eabi"
expect '^rustup component add --toolchain stable clippy rustfmt'
expect '^rustup component add --toolchain nightly miri rust-src'
for p in qemu-system-arm qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross prometheus curl; do
  expect "^apt-get install .*$p"
done
expect '^cargo install --locked cargo-fuzz'
expect_none '^rustup \+'

echo "--- setup.sh demo thumbv7m-none-eabi, nothing installed"
run empty demo thumbv7m-none-eabi
expect '^rustup toolchain install stable '
expect '^rustup target add --toolchain stable thumbv7m-none-eabi$'
expect '^apt-get install .*qemu-system-arm$'
expect_none 'nightly|miri|rust-src|qemu-user|aarch64|prometheus|cargo install|component add'
expect_none "toolchain install $msrv"

for args in all "demo thumbv6m-none-eabi"; do
  echo "--- setup.sh $args, everything installed"
  # shellcheck disable=SC2086
  run full $args
  expect_none "$installs"
done

if [ "$failures" -gt 0 ]; then
  echo "setup.sh: $failures expectation(s) failed"
  exit 1
fi
echo "setup.sh installs what is missing and nothing else"

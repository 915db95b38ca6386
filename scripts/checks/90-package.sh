#!/usr/bin/env bash
# Ready for users: every README's Rust examples compile as shown (they are doc tests, run by
# 10-core.sh; here: no hidden `# ` lines that a reader would not see), and the two libraries
# package as crates.io would take them (`cargo package` builds each from its packaged sources).
set -euo pipefail
cd "$(dirname "$0")/../.."
hidden=0
while IFS= read -r readme; do
  # Lines starting with "# " (or a lone "#") inside ```rust blocks are hidden by rustdoc.
  if awk -v f="$readme" '/^```/ { inb = ($0 ~ /^```rust/) && !inb; next }
       inb && /^#( |$)/ { print f ":" NR ": hidden doc-test line: " $0; bad = 1 }
       END { exit bad }' "$readme"; then :; else hidden=1; fi
done < <(git ls-files '*README.md')
[ "$hidden" -eq 0 ] || { echo "README examples must compile as shown"; exit 1; }
echo "README examples: no hidden lines"
cargo package -p mux-nostd -p mux-std --locked --allow-dirty

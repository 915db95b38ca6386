#!/usr/bin/env bash
# Observability: the core's histograms (feature `histograms`), the alert rules under promtool,
# and a real Prometheus (Debian's package, installed by setup.sh) scraping the `metrics_server`
# example: the counters and histograms are there and move, each scraped value is one that
# `Node::metrics()` returned just before the scrape, histogram counts agree with the counters
# of the same snapshot, the alert rules load, and the Grafana dashboard names only series the
# exporter serves. Every process it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

cargo test -p mux-nostd --locked --features histograms --lib --test histograms
cargo build -p mux-nostd --locked --target thumbv6m-none-eabi --features defmt,histograms
cargo clippy -p mux-nostd --locked --all-targets --features histograms -- -D warnings

promtool check rules docs/alerts.yml
(cd docs && promtool test rules alerts.test.yml)

cargo build --release -p mux-std --locked --example metrics_server --features metrics
server_bin="${CARGO_TARGET_DIR:-$root/target}/release/examples/metrics_server"

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { # a loopback port nobody listens on
  local p
  while :; do
    p=$((20000 + RANDOM % 20000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}
mport=$(free_port)
pport=$(free_port)
[ "$mport" != "$pport" ] || pport=$((mport + 1))

"$server_bin" "127.0.0.1:$mport" >"$work/server.log" 2>&1 &
pids+=($!)
cat >"$work/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $root/docs/alerts.yml
scrape_configs:
  - job_name: mux
    static_configs:
      - targets: ["127.0.0.1:$mport"]
YML
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$pport" >"$work/prometheus.log" 2>&1 &
pids+=($!)

api="http://127.0.0.1:$pport/api/v1"
query() { curl -sf --get "$api/query" --data-urlencode "query=$1"; }
# The samples of a range-vector query, one "TIMESTAMP VALUE" per line (first series only).
samples() {
  query "$1" | sed 's/^.*"values":\[//' | grep -o '\[[0-9.]*,"[^"]*"\]' | tr -d '[]"' | tr ',' ' '
}
fail() {
  echo "observability: $*"
  echo "--- metrics_server log (tail)"; tail -5 "$work/server.log"
  echo "--- prometheus log (tail)"; tail -20 "$work/prometheus.log"
  exit 1
}

# Two scrapes (the first comes about 5 s after start).
for _ in $(seq 60); do
  n=$(samples 'mux_tx_messages_total{link="a"}[1m]' 2>/dev/null | wc -l || true)
  [ "${n:-0}" -ge 2 ] && break
  sleep 0.5
done
[ "${n:-0}" -ge 2 ] || fail "Prometheus did not scrape metrics_server twice within 30 s"

# Counters move, and each scraped value is one the node reported at most 1.5 s before the
# scrape (published every 100 ms; the exporter serves the last publication).
mapfile -t tx < <(samples 'mux_tx_messages_total{link="a"}[1m]')
mapfile -t rx < <(samples 'mux_rx_messages_total{link="b"}[1m]')
[ "${#tx[@]}" -ge 2 ] && [ "${#rx[@]}" -ge 2 ] || fail "fewer than two scraped samples"
first=${tx[0]#* } last=${tx[-1]#* }
[ "$last" -gt "$first" ] || fail "mux_tx_messages_total did not move: $first then $last"
[ "${rx[-1]#* }" -gt "${rx[0]#* }" ] || fail "mux_rx_messages_total did not move"
for s in "${tx[@]}"; do
  ts=${s% *} v=${s#* }
  pub=$(grep " a.tx_messages=$v " "$work/server.log" | tail -1 | cut -d' ' -f2 || true)
  [ -n "$pub" ] || fail "scraped a.tx_messages=$v is no value Node::metrics() reported"
  frac=000
  [[ $ts == *.* ]] && frac=$(printf '%-3s' "${ts#*.}" | tr ' ' 0 | cut -c1-3)
  scrape_ms=$((${ts%.*} * 1000 + 10#$frac))
  lag=$((scrape_ms - pub))
  [ "$lag" -ge -50 ] && [ "$lag" -le 1500 ] ||
    fail "a.tx_messages=$v was published ${lag} ms before the scrape"
done
echo "scraped mux_tx_messages_total{link=\"a\"}: ${#tx[@]} samples from $first to $last, each a value Node::metrics() gave within 1.5 s before its scrape"

# Histograms: present, counted from the same snapshot as the counters, and readable.
for h in mux_tx_message_bytes mux_tx_message_frames mux_send_wait_seconds mux_rx_message_bytes \
  mux_rx_latency_seconds mux_pool_buffers_in_use_samples; do
  link=a
  case $h in mux_rx_*) link=b ;; esac
  c=$(query "${h}_count{link=\"$link\"}" | grep -o '"value":\[[^]]*\]' | grep -o '"[0-9.e+]*"' | tr -d '"' || true)
  [ -n "$c" ] && [ "$c" != 0 ] || fail "$h has no samples"
done
diff=$(query 'mux_tx_message_bytes_count{link="a"} - mux_tx_messages_total{link="a"}' |
  grep -o '"value":\[[^]]*\]' | grep -o '"[-0-9.e+]*"' | tr -d '"' || true)
[ "$diff" = 0 ] || fail "message-size histogram count differs from mux_tx_messages_total by $diff"
diff=$(query 'mux_rx_latency_seconds_count{link="b"} - mux_rx_messages_total{link="b"}' |
  grep -o '"value":\[[^]]*\]' | grep -o '"[-0-9.e+]*"' | tr -d '"' || true)
[ "$diff" = 0 ] || fail "latency histogram count differs from mux_rx_messages_total by $diff"
p99=$(query 'histogram_quantile(0.99, sum by (le) (mux_tx_message_bytes_bucket{link="a"}))' |
  grep -o '"value":\[[^]]*\]' | grep -o '"[0-9.e+]*"' | tr -d '"' || true)
# The traffic's largest messages are 1 MiB (bucket up to 2^21 - 1); at least 1 in 16 is 100 KB+.
awk -v q="$p99" 'BEGIN { exit !(q >= 65536 && q <= 2097151) }' ||
  fail "p99 of sent message sizes is $p99, not in the 64 KiB..2 MiB buckets"
echo "histograms: counts agree with the counters of the same snapshot; p99 sent size bucket $p99"

# The alert rules are loaded and evaluate without error.
rules=$(curl -sf "$api/rules")
for a in MuxLinkBroken MuxProtocolErrors MuxPoolExhausted MuxSendWaitHigh; do
  grep -q "\"name\":\"$a\"" <<<"$rules" || fail "rule $a not loaded"
done
if grep -q '"health":"err"' <<<"$rules"; then fail "a rule fails to evaluate: $rules"; fi
if grep -q '"alertname":"MuxLinkBroken"' <<<"$(curl -sf "$api/alerts")"; then
  fail "MuxLinkBroken fires on a working link"
fi

# The dashboard names only series the exporter serves.
curl -sf "http://127.0.0.1:$mport/metrics" | grep -o '^mux_[a-z_]*' | sort -u >"$work/served"
grep -o 'mux_[a-z_]*' docs/grafana-dashboard.json | sort -u >"$work/dashboard"
missing=$(comm -23 "$work/dashboard" "$work/served")
[ -z "$missing" ] || fail "the dashboard names series the exporter does not serve: $missing"
echo "dashboard: $(wc -l <"$work/dashboard") series, all served"
echo "observability checks passed"

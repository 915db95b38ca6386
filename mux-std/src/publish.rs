//! Publishing a node's metrics through the [`metrics`] facade (feature `metrics`), so that
//! whatever exporter a server runs (Prometheus, StatsD, OpenTelemetry, …) serves them.
//!
//! A node does not call the facade per message: it keeps its own counters and histograms
//! (cheap enough to stay on, see [`observe`](crate::observe)), and [`publish`] hands a
//! snapshot of them to the facade. Call it periodically (every second, or before each scrape
//! if your exporter lets you) from any thread; every series carries a `link` label with the
//! name you give. Counters are set with `absolute`, gauges with `set`.
//!
//! Distributions are published as Prometheus histogram series: cumulative `NAME_bucket`
//! counters with an `le` label (the power-of-two bucket bounds, `+Inf` last) and
//! `NAME_count`, which `histogram_quantile()` reads as they are. The facade's own histogram
//! type takes one call per sample, and exporters keep each sample until the next scrape
//! (metrics-exporter-prometheus does): publishing a million messages a second through it
//! would cost a million calls a second, where bucket counters cost one call per bucket.
//!
//! The series (all with `link`): see `docs/OBSERVABILITY.md` for their meaning.

use metrics::{Label, counter, gauge};

use std::io::Write;

use crate::observe::{BUCKETS, Histogram};
use crate::{Metrics, Node};
use mux_nostd::histogram::bucket_max;

/// Every counter and gauge name [`publish`] sets (histograms: see [`HISTOGRAMS`]).
pub const SERIES: [&str; 14] = [
    "mux_tx_messages_total",
    "mux_tx_bytes_total",
    "mux_tx_aborted_total",
    "mux_tx_writes_total",
    "mux_link_broken",
    "mux_rx_messages_total",
    "mux_rx_bytes_total",
    "mux_rx_aborted_total",
    "mux_rx_protocol_errors_total",
    "mux_rx_held_bytes",
    "mux_pool_buffers_in_use",
    "mux_pool_buffers_high_water",
    "mux_pool_exhausted_total",
    "mux_pool_misses_total",
];

/// The histograms [`publish`] sets, each as `NAME_bucket{le}` and `NAME_count`: name, the
/// highest power-of-two bucket published below `+Inf`, and the divisor of the unit
/// (durations are recorded in nanoseconds and published in seconds).
pub const HISTOGRAMS: [(&str, usize, f64); 6] = [
    ("mux_tx_message_bytes", 32, 1.0),
    ("mux_tx_message_frames", 24, 1.0),
    ("mux_send_wait_seconds", 36, 1e9),
    ("mux_rx_message_bytes", 32, 1.0),
    ("mux_rx_latency_seconds", 36, 1e9),
    ("mux_pool_buffers_in_use_samples", 24, 1.0),
];

/// Publishes `node`'s metrics through the `metrics` facade, every series labelled
/// `link = link`.
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
/// let node = mux_std::Node::unix(a, mux_std::Config::default())?;
/// // With no recorder installed the facade drops everything; a server installs its exporter
/// // first (e.g. metrics_exporter_prometheus::PrometheusBuilder::new().install()).
/// mux_std::publish::publish_node("uplink", &node);
/// # Ok(())
/// # }
/// ```
pub fn publish_node<W: Write + Send + 'static>(link: &str, node: &Node<W>) {
    publish(link, &node.metrics(), node.sender().is_broken());
}

/// Publishes `m` (a node's [`Metrics`](crate::Node::metrics)) and whether its link is
/// `broken` through the `metrics` facade, every series labelled `link = link`.
pub fn publish(link: &str, m: &Metrics, broken: bool) {
    let l = || vec![Label::new("link", link.to_owned())];
    let set = |name: &'static str, v: u64| counter!(name, l()).absolute(v);
    set("mux_tx_messages_total", m.tx.messages);
    set("mux_tx_bytes_total", m.tx.bytes);
    set("mux_tx_aborted_total", m.tx.aborted);
    set("mux_tx_writes_total", m.tx.writes);
    set("mux_rx_messages_total", m.rx.messages);
    set("mux_rx_bytes_total", m.rx.bytes);
    set("mux_rx_aborted_total", m.rx.aborted);
    set("mux_pool_exhausted_total", m.pool.exhausted);
    set("mux_pool_misses_total", m.pool.misses);
    let e = &m.rx.errors;
    for (kind, n) in [
        ("unknown-type", e.unknown_type),
        ("unknown-id", e.unknown_id),
        ("frame-too-large", e.frame_too_large),
        ("message-too-large", e.message_too_large),
        ("duplicate-start", e.duplicate_start),
        ("too-many-streams", e.too_many_streams),
        ("pool-exhausted", e.pool_exhausted),
        ("truncated", e.truncated),
        ("unfinished", e.unfinished),
    ] {
        let mut labels = l();
        labels.push(Label::new("kind", kind));
        counter!("mux_rx_protocol_errors_total", labels).absolute(u64::from(n));
    }
    let g = |name: &'static str, v: f64| gauge!(name, l()).set(v);
    g("mux_link_broken", f64::from(u8::from(broken)));
    g("mux_rx_held_bytes", m.rx.held_bytes as f64);
    g("mux_pool_buffers_in_use", m.pool.in_use as f64);
    g("mux_pool_buffers_high_water", m.pool.high_water as f64);
    let d = &m.dist;
    let hists: [&Histogram; 6] = [
        &d.tx_bytes,
        &d.tx_frames,
        &d.send_wait_ns,
        &d.rx_bytes,
        &d.rx_latency_ns,
        &d.pool_in_use,
    ];
    for ((name, top, scale), h) in HISTOGRAMS.iter().zip(hists) {
        publish_histogram(link, name, *top, *scale, h);
    }
}

/// `h` as `NAME_bucket{le}` (cumulative, buckets 0 to `top`, then `+Inf`) and `NAME_count`.
fn publish_histogram(link: &str, name: &str, top: usize, scale: f64, h: &Histogram) {
    let bucket = format!("{name}_bucket");
    let mut cumulative = 0u64;
    for (i, &c) in h.counts().iter().enumerate().take(top.min(BUCKETS - 1) + 1) {
        cumulative = cumulative.saturating_add(c);
        let le = bucket_max(i) as f64 / scale;
        let labels = vec![
            Label::new("link", link.to_owned()),
            Label::new("le", le.to_string()),
        ];
        counter!(bucket.clone(), labels).absolute(cumulative);
    }
    let total = h.count();
    let labels = vec![
        Label::new("link", link.to_owned()),
        Label::new("le", "+Inf"),
    ];
    counter!(bucket, labels).absolute(total);
    counter!(format!("{name}_count"), "link" => link.to_owned()).absolute(total);
}

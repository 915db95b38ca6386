//! A pair of nodes under steady mixed traffic, their metrics served for Prometheus at ADDR
//! until the process is killed:
//!
//! `cargo run --release -p mux-std --example metrics_server --features metrics -- 127.0.0.1:9464`
//!
//! Node `a` sends messages of mixed sizes (64 B to 1 MiB, mostly small) from two threads to
//! node `b` over a Unix socket pair; `b` answers every 16th with 64 bytes. Both are published
//! every 100 ms through the `metrics` facade (links `a` and `b`) and served at
//! `http://ADDR/metrics` by metrics-exporter-prometheus. After each publication it prints one
//! line: `published UNIX_MS a.tx_messages=N b.rx_messages=N`, from the same `Node::metrics`
//! snapshots it published.

use std::io::Write as _;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use metrics_exporter_prometheus::PrometheusBuilder;
use mux_std::publish::publish;
use mux_std::{Config, Node, Received};

/// Message sizes, cycled: mostly small, a few large.
const SIZES: [usize; 16] = [
    64,
    64,
    300,
    1024,
    4096,
    64,
    20_000,
    64,
    64,
    300,
    1024,
    64,
    64,
    100_000,
    64,
    1 << 20,
];

fn main() {
    let addr: std::net::SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9464".into())
        .parse()
        .expect("usage: metrics_server ADDR (e.g. 127.0.0.1:9464)");
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .expect("start the Prometheus exporter");

    let (x, y) = UnixStream::pair().expect("socket pair");
    let a = Arc::new(Node::unix(x, Config::default()).expect("node a"));
    let b = Arc::new(Node::unix(y, Config::default()).expect("node b"));

    for t in 0..2 {
        let a = a.clone();
        std::thread::spawn(move || {
            let payload = vec![0xA5u8; 1 << 20];
            for i in t.. {
                let n = SIZES[i % SIZES.len()];
                if a.send(&payload[..n]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        });
    }
    {
        let b = b.clone();
        std::thread::spawn(move || {
            let mut seen = 0u64;
            while let Ok(item) = b.recv() {
                if let Received::Message(_) = item {
                    seen += 1;
                    if seen.is_multiple_of(16) && b.send(&[7u8; 64]).is_err() {
                        return;
                    }
                }
            }
        });
    }
    {
        let a = a.clone();
        // `a` takes the answers.
        std::thread::spawn(move || while a.recv().is_ok() {});
    }

    let mut out = std::io::stdout();
    println!("serving http://{addr}/metrics");
    loop {
        // The snapshots published are the ones printed.
        let (ma, mb) = (a.metrics(), b.metrics());
        publish("a", &ma, a.sender().is_broken());
        publish("b", &mb, b.sender().is_broken());
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let _ = writeln!(
            out,
            "published {ms} a.tx_messages={} b.rx_messages={}",
            ma.tx.messages, mb.rx.messages
        );
        let _ = out.flush();
        std::thread::sleep(Duration::from_millis(100));
    }
}

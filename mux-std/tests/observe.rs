//! A node's distributions, recorded from real traffic over a Unix socket pair.
#![cfg(unix)]

use std::os::unix::net::UnixStream;
use std::sync::Arc;

use mux_std::{Config, Node, Original, Received};

fn pair(config: &Config) -> (Node<UnixStream>, Node<UnixStream>) {
    let (a, b) = UnixStream::pair().unwrap();
    let a = Node::unix(a, config.clone()).unwrap();
    let b = Node::unix(b, config.clone()).unwrap();
    (a, b)
}

fn recv_n(node: &Node<UnixStream>, n: usize) {
    for _ in 0..n {
        assert!(matches!(node.recv().unwrap(), Received::Message(_)));
    }
}

#[test]
fn sizes_frames_latency_and_pool_use_follow_the_traffic() {
    let config = Config::with_strategy(Original);
    let (a, b) = pair(&config);
    let sizes = [0usize, 64, 64, 1000, 5000, 100_000];
    for &n in &sizes {
        a.send(&vec![1u8; n]).unwrap();
    }
    recv_n(&b, sizes.len());
    let tx = a.metrics().dist;
    let rx = b.metrics().dist;
    // Sizes: 0 → bucket 0, 64 → 7, 1000 → 10, 5000 → 13, 100000 → 17.
    let c = tx.tx_bytes.counts();
    assert_eq!((c[0], c[7], c[10], c[13], c[17]), (1, 2, 1, 1, 1));
    assert_eq!(
        rx.rx_bytes, tx.tx_bytes,
        "the receiver sees the sender's sizes"
    );
    // Frames with 1 KiB chunks: 2, 3, 3, 3, 7, 100 → buckets 2, 2, 2, 2, 3, 7.
    let f = tx.tx_frames.counts();
    assert_eq!((f[2], f[3], f[7]), (4, 1, 1));
    // No contention: every send waited 0.
    assert_eq!(tx.send_wait_ns.count(), 6);
    assert_eq!(tx.send_wait_ns.counts()[0], 6);
    assert_eq!(rx.rx_latency_ns.count(), 6);
    assert!(rx.pool_in_use.count() > 0, "sampled after every read");
    assert_eq!(rx.tx_bytes.count(), 0, "b sent nothing");
}

#[test]
fn histograms_off_records_nothing() {
    let config = Config {
        histograms: false,
        ..Config::default()
    };
    let (a, b) = pair(&config);
    a.send(&[5u8; 3000]).unwrap();
    recv_n(&b, 1);
    assert_eq!(a.metrics().dist, Default::default());
    assert_eq!(b.metrics().dist, Default::default());
    assert_eq!(b.metrics().rx.messages, 1, "the counters still count");
}

#[test]
fn contended_sends_record_their_waits() {
    let (a, b) = pair(&Config::default());
    let a = Arc::new(a);
    let threads = 4;
    let per = 20;
    let reader = std::thread::spawn(move || {
        recv_n(&b, threads * per);
        b
    });
    std::thread::scope(|s| {
        for _ in 0..threads {
            let a = &a;
            s.spawn(move || {
                let msg = vec![9u8; 256 << 10];
                for _ in 0..per {
                    a.send(&msg).unwrap();
                }
            });
        }
    });
    let b = reader.join().unwrap();
    let w = a.metrics().dist.send_wait_ns;
    assert!(w.count() >= (threads * per) as u64);
    let waited: u64 = w.counts()[1..].iter().sum();
    assert!(
        waited > 0,
        "4 senders of 256 KiB over one socket wait: {w:?}"
    );
    // A 256 KiB message over a socket takes microseconds: some wait is at least 1 µs.
    assert!(w.max().unwrap() >= 1023, "{w:?}");
    assert_eq!(
        b.metrics().dist.rx_latency_ns.count(),
        (threads * per) as u64
    );
}

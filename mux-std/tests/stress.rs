//! Stress over a real socket pair: 32 sending threads, mixed sizes (0 to 256 KiB), mixed
//! strategies, some messages cancelled mid-way.
//!
//! Full size (32 × 1000 messages) in release builds:
//! `cargo test -p mux-std --release --test stress -- --nocapture`. Debug builds run 32 × 100
//! so that `cargo test --workspace` stays quick; `MUX_STRESS_MESSAGES` overrides the count per
//! thread.

use std::collections::HashSet;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use mux_std::{AnyStrategy, Config, Node, Received, SendError};

const THREADS: u32 = 32;

fn per_thread() -> u32 {
    if let Ok(n) = std::env::var("MUX_STRESS_MESSAGES") {
        return n.parse().expect("MUX_STRESS_MESSAGES is a number");
    }
    if cfg!(debug_assertions) { 100 } else { 1000 }
}

/// xorshift32: deterministic sizes per thread.
fn next(state: &mut u32) -> u32 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    x
}

fn size_of_message(t: u32, i: u32) -> usize {
    let mut s = (t + 1).wrapping_mul(0x9E37_79B9) ^ (i + 1).wrapping_mul(0x85EB_CA6B) | 1;
    next(&mut s);
    let r = next(&mut s);
    let pick = next(&mut s) % 100;
    (match pick {
        0..=49 => r % 1025,                   // small: 0 to 1 KiB
        50..=79 => 1025 + r % 15_360,         // to 16 KiB
        80..=94 => 16_385 + r % 49_152,       // to 64 KiB
        _ => 65_537 + r % (262_144 - 65_536), // to 256 KiB
    }) as usize
}

fn id_of(t: u32, i: u32) -> u32 {
    (t << 16) | i
}

/// `MUX_STRESS_HOLD_BUDGET`: the sender's `Config::hold_budget` (default 0).
fn budget() -> usize {
    static BUDGET: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *BUDGET.get_or_init(|| {
        std::env::var("MUX_STRESS_HOLD_BUDGET").map_or(0, |b| b.parse().expect("a number"))
    })
}

/// Every tenth message too large for one write-lock hold (at least 20000 bytes, more than
/// the hold budget plus a chunk) is cancelled after its first hold: Start and some Data are
/// on the wire, more follows.
fn is_cancelled(t: u32, i: u32) -> bool {
    i % 10 == 3 && size_of_message(t, i) >= 20_000.max(budget() + 16_385)
}

use mux_test_support::stream_byte as byte;

fn fill(id: u32, buf: &mut Vec<u8>, size: usize) {
    buf.clear();
    buf.extend((0..size).map(|k| byte(id, k)));
}

fn strategy_of(t: u32) -> AnyStrategy {
    ["original", "optimized", "hybrid", "hybrid8k"][t as usize % 4]
        .parse()
        .unwrap()
}

#[test]
fn stress_32_threads_mixed_sizes_with_cancellations() {
    let n = per_thread();
    let budget = budget();
    let (a, b) = UnixStream::pair().unwrap();
    let cfg = Config {
        hold_budget: budget,
        ..Config::default()
    };
    let sender = Node::unix(a, cfg).unwrap();
    let receiver = Node::unix(b, Config::default()).unwrap();

    let mut want_ok = 0u64;
    let mut want_aborted = 0u64;
    let mut want_bytes = 0u64;
    for t in 0..THREADS {
        for i in 0..n {
            if is_cancelled(t, i) {
                want_aborted += 1;
            } else {
                want_ok += 1;
                want_bytes += size_of_message(t, i) as u64;
            }
        }
    }

    let started = Instant::now();
    let (got_ok, got_aborted, got_bytes) = std::thread::scope(|s| {
        for t in 0..THREADS {
            let node = &sender;
            s.spawn(move || {
                let mut payload = Vec::new();
                for i in 0..n {
                    let id = id_of(t, i);
                    let size = size_of_message(t, i);
                    fill(id, &mut payload, size);
                    let cancel = is_cancelled(t, i);
                    let mut checks = 0;
                    let r = node.send_cancellable(id, &payload, Some(strategy_of(t)), || {
                        checks += 1;
                        (cancel && checks == 2).then_some(SendError::Cancelled)
                    });
                    match r {
                        Ok(()) => assert!(!cancel, "message {id:#x} should have been cancelled"),
                        Err(SendError::Cancelled) => assert!(cancel),
                        Err(e) => panic!("send {id:#x}: {e}"),
                    }
                }
            });
        }
        let mut seen = HashSet::new();
        let (mut ok, mut aborted, mut bytes) = (0u64, 0u64, 0u64);
        while ok + aborted < want_ok + want_aborted {
            // A bounded wait: a failed sender thread must fail the test, not hang it.
            let item = receiver.recv_timeout(Duration::from_secs(60));
            match item.expect("an item within 60 s") {
                Received::Message(m) => {
                    let (t, i) = (m.id() >> 16, m.id() & 0xFFFF);
                    assert!(t < THREADS && i < n, "unexpected id {:#x}", m.id());
                    assert!(seen.insert(m.id()), "id {:#x} delivered twice", m.id());
                    assert!(!is_cancelled(t, i), "cancelled {:#x} delivered", m.id());
                    assert_eq!(m.len(), size_of_message(t, i), "size of {:#x}", m.id());
                    let bad = m
                        .body()
                        .iter()
                        .enumerate()
                        .position(|(k, &x)| x != byte(m.id(), k));
                    assert_eq!(bad, None, "payload of {:#x} differs at that offset", m.id());
                    ok += 1;
                    bytes += m.len() as u64;
                }
                Received::Aborted { id } => {
                    let (t, i) = (id >> 16, id & 0xFFFF);
                    assert!(is_cancelled(t, i), "unexpected abort of {id:#x}");
                    assert!(seen.insert(id), "id {id:#x} reported twice");
                    aborted += 1;
                }
                Received::Error(e) => panic!("protocol error: {e}"),
                other => panic!("unexpected {other:?}"),
            }
        }
        (ok, aborted, bytes)
    });
    let elapsed = started.elapsed();
    assert_eq!(
        (got_ok, got_aborted, got_bytes),
        (want_ok, want_aborted, want_bytes)
    );

    let m = receiver.metrics();
    assert!(m.pool.is_full(), "buffers still out: {:?}", m.pool);
    assert_eq!(m.rx.errors.total(), 0);
    assert_eq!(m.rx.messages, want_ok);
    assert_eq!(m.rx.aborted, want_aborted);
    let tx = sender.metrics().tx;
    assert_eq!((tx.messages, tx.aborted), (want_ok, want_aborted));

    receiver.close_write().unwrap();
    let report = sender.close().unwrap();
    assert!(report.aborted.is_empty() && report.unfinished.is_empty());
    assert!(report.undelivered.is_empty() && report.read_error.is_none());
    let report = receiver.close().unwrap();
    assert!(report.undelivered.is_empty(), "{:?}", report.undelivered);

    let secs = elapsed.as_secs_f64();
    println!(
        "stress (hold budget {budget}): {} threads x {n} messages: {want_ok} completed ({:.1} MiB payload), \
         {want_aborted} cancelled, in {secs:.2} s ({:.0} messages/s, {:.0} MiB/s); \
         {} write calls; pool: {} buffers max, {} hits, {} misses",
        THREADS,
        want_bytes as f64 / 1048576.0,
        (want_ok + want_aborted) as f64 / secs,
        want_bytes as f64 / 1048576.0 / secs,
        tx.writes,
        m.pool.high_water,
        m.pool.hits,
        m.pool.misses,
    );
}

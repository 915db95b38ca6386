//! Load: 64 sending threads on one node over a Unix socket pair, mixed
//! sizes (0 to 256 KiB), mixed strategies, random cancellation (10 % of the sends carry a
//! cancel token that a canceller thread fires 0 to 1 ms after the send began; 5 % have a
//! deadline 0 to 3 ms away), for a bounded time.
//!
//! Checked: every send that returned `Ok` is delivered exactly once and byte-exact (each
//! message has a unique id; its payload is a stream seeded by the id, checked byte for byte);
//! a cancelled or timed-out send is never delivered as a message (the peer sees its Abort, or
//! nothing when it was cancelled before its Start); no protocol error; the counters agree on
//! both sides; the receive pool is back to full.
//!
//! `MUX_LOAD_SECS` sets the sending time (default 6 s in release builds, 1 s in debug
//! builds); `scripts/checks/60-reliability.sh` runs it in release with `--nocapture` for the
//! figures.

mod common;

use std::collections::{HashMap, HashSet};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Rng, fill_payload, is_payload, within};
use mux_std::{AnyStrategy, CancelToken, Config, Node, Received, SendError, SendOptions};

const THREADS: u32 = 64;

fn seconds() -> u64 {
    match std::env::var("MUX_LOAD_SECS") {
        Ok(s) => s.parse().expect("MUX_LOAD_SECS is a number of seconds"),
        Err(_) if cfg!(debug_assertions) => 1,
        Err(_) => 6,
    }
}

/// Half small (to 1 KiB), then to 16 KiB, to 64 KiB, to 256 KiB.
fn pick_size(rng: &mut Rng) -> usize {
    (match rng.below(100) {
        0..=49 => rng.below(1025),
        50..=79 => 1025 + rng.below(15_360),
        80..=94 => 16_385 + rng.below(49_152),
        _ => 65_537 + rng.below(196_608),
    }) as usize
}

/// How a send ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Outcome {
    Sent,
    Cancelled,
    TimedOut,
}

#[test]
fn load_64_threads_mixed_sizes_random_cancellation() {
    let secs = seconds();
    within(secs + 120, "load test", move || run(secs));
}

fn run(secs: u64) {
    let (a, b) = UnixStream::pair().unwrap();
    let tx = Node::unix(a, Config::default()).unwrap();
    let rx = Node::unix(b, Config::default()).unwrap();
    let strategies: Vec<AnyStrategy> = ["original", "optimized", "hybrid", "hybrid8k"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    let stop_at = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();

    let (sent, delivered, aborted, send_time) = std::thread::scope(|s| {
        // The canceller: fires each token it is given when its time comes (0 to 1 ms after
        // the send began).
        let (cancel_tx, cancel_rx) = mpsc::channel::<(Instant, CancelToken)>();
        s.spawn(move || {
            let mut due: Vec<(Instant, CancelToken)> = Vec::new();
            let mut open = true;
            while open || !due.is_empty() {
                loop {
                    match cancel_rx.try_recv() {
                        Ok(entry) => due.push(entry),
                        Err(mpsc::TryRecvError::Empty) => break,
                        Err(mpsc::TryRecvError::Disconnected) => {
                            open = false;
                            break;
                        }
                    }
                }
                let now = Instant::now();
                due.retain(|(at, token)| {
                    let fire = *at <= now;
                    if fire {
                        token.cancel();
                    }
                    !fire
                });
                std::thread::sleep(Duration::from_micros(50));
            }
        });
        // The receiver: checks every message as it arrives.
        let receiver = s.spawn(|| {
            let mut delivered: HashMap<u32, usize> = HashMap::new();
            let mut aborted: HashSet<u32> = HashSet::new();
            let mut scratch = Vec::new();
            for item in rx.iter() {
                match item.expect("no read error") {
                    Received::Message(m) => {
                        assert!(
                            is_payload(m.id(), m.len(), m.body(), &mut scratch),
                            "message {:#x} ({} bytes) is not byte-exact",
                            m.id(),
                            m.len()
                        );
                        let again = delivered.insert(m.id(), m.len());
                        assert!(again.is_none(), "message {:#x} delivered twice", m.id());
                    }
                    Received::Aborted { id } => {
                        assert!(aborted.insert(id), "abort {id:#x} reported twice");
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            (delivered, aborted)
        });
        let senders: Vec<_> = (0..THREADS)
            .map(|t| {
                let (tx, cancel_tx, strategies) = (&tx, cancel_tx.clone(), &strategies);
                s.spawn(move || {
                    let mut rng = Rng::new(u64::from(t) + 1);
                    let mut log = Vec::new();
                    let mut buf = Vec::new();
                    for seq in 0u32.. {
                        if Instant::now() >= stop_at {
                            break;
                        }
                        let id = (t << 24) | seq;
                        let size = pick_size(&mut rng);
                        fill_payload(id, size, &mut buf);
                        let mut opts = SendOptions {
                            id: Some(id),
                            strategy: Some(strategies[rng.below(4) as usize]),
                            ..SendOptions::default()
                        };
                        match rng.below(100) {
                            0..=9 => {
                                let token = CancelToken::new();
                                let at = Instant::now() + Duration::from_micros(rng.below(1000));
                                cancel_tx.send((at, token.clone())).unwrap();
                                opts.cancel = Some(token);
                            }
                            10..=14 => {
                                let us = rng.below(3000);
                                opts.deadline = Some(Instant::now() + Duration::from_micros(us));
                            }
                            _ => {}
                        }
                        let outcome = match tx.send_with(&buf, &opts) {
                            Ok(_) => Outcome::Sent,
                            Err(SendError::Cancelled) => Outcome::Cancelled,
                            Err(SendError::TimedOut) => Outcome::TimedOut,
                            Err(e) => panic!("send {id:#x}: {e}"),
                        };
                        log.push((id, size, outcome));
                    }
                    log
                })
            })
            .collect();
        drop(cancel_tx);
        let sent: Vec<_> = senders
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        let send_time = started.elapsed();
        // Every send has returned: end our stream; the receiver drains and stops.
        assert!(tx.close_write().unwrap().is_empty());
        let (delivered, aborted) = receiver.join().unwrap();
        (sent, delivered, aborted, send_time)
    });

    let mut counts = HashMap::new();
    let mut bytes = 0u64;
    for &(id, size, outcome) in &sent {
        *counts.entry(outcome).or_insert(0u64) += 1;
        match outcome {
            Outcome::Sent => {
                assert_eq!(delivered.get(&id), Some(&size), "message {id:#x} lost");
                assert!(!aborted.contains(&id));
                bytes += size as u64;
            }
            Outcome::Cancelled | Outcome::TimedOut => {
                assert!(
                    !delivered.contains_key(&id),
                    "{outcome:?} message {id:#x} delivered"
                );
            }
        }
    }
    let ok = counts.get(&Outcome::Sent).copied().unwrap_or(0);
    let cancelled = counts.get(&Outcome::Cancelled).copied().unwrap_or(0);
    let timed_out = counts.get(&Outcome::TimedOut).copied().unwrap_or(0);
    assert_eq!(
        delivered.len() as u64,
        ok,
        "a message nobody sent was delivered"
    );
    let refused: HashSet<u32> = sent
        .iter()
        .filter(|e| e.2 != Outcome::Sent)
        .map(|e| e.0)
        .collect();
    assert!(
        aborted.is_subset(&refused),
        "an abort for a message sent whole"
    );
    assert!(ok > 0 && cancelled + timed_out > 0, "the mix happened");

    let m_tx = tx.metrics();
    let m_rx = rx.metrics();
    assert_eq!((m_tx.tx.messages, m_tx.tx.bytes), (ok, bytes));
    assert_eq!(m_tx.tx.aborted, aborted.len() as u64);
    assert_eq!(
        (m_rx.rx.messages, m_rx.rx.aborted),
        (ok, aborted.len() as u64)
    );
    assert_eq!(m_rx.rx.errors.total(), 0);
    assert!(m_rx.pool.is_full(), "buffers still out: {:?}", m_rx.pool);
    rx.close_write().unwrap();
    let report = rx.close().unwrap();
    assert!(report.unfinished.is_empty() && report.undelivered.is_empty());
    let report = tx.close().unwrap();
    assert!(report.undelivered.is_empty() && report.read_error.is_none());

    let t = send_time.as_secs_f64();
    println!(
        "load: {THREADS} threads for {secs} s: {} sends, {ok} delivered exactly once and \
         byte-exact ({:.1} MiB), {cancelled} cancelled + {timed_out} timed out ({} Aborts on \
         the wire, the rest before their Start); {:.0} messages/s, {:.0} MiB/s; {} write \
         calls; receive pool: {} buffers at most, {} hits, {} misses, back to full",
        sent.len(),
        bytes as f64 / 1048576.0,
        aborted.len(),
        sent.len() as f64 / t,
        bytes as f64 / 1048576.0 / t,
        m_tx.tx.writes,
        m_rx.pool.high_water,
        m_rx.pool.hits,
        m_rx.pool.misses,
    );
}

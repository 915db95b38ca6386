//! Flow control between two default nodes over a Unix socket pair:
//!
//! - the sender's cap on messages under way (`Config::max_sending`): more threads sending at
//!   once than the peer admits messages in flight (`Config::max_in_flight`, 256) must not
//!   make the peer refuse any of them; every `Ok` send is delivered, with no protocol error;
//! - the receiver's memory budget (`Config::rx_budget`): a receiver whose application does
//!   not call `recv` stops reading once it holds the budget (the sender is held back by the
//!   socket), and its pool keeps at most `Config::pool_idle_bytes` of idle buffers after a
//!   burst.

mod common;

use mux_test_support::rule_r;
use std::collections::HashSet;
use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::within;
use mux_std::{Config, Node, Received, RecvError};

/// A source that reads nothing until `open` is set: the peer's writes fill the socket and
/// block, so that every sending thread queues up behind them.
struct Gate {
    inner: UnixStream,
    open: Arc<AtomicBool>,
}

impl Read for Gate {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while !self.open.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(1));
        }
        self.inner.read(buf)
    }
}

/// 400 threads each send 1 MiB at once; the peer admits 256 messages in flight. The peer
/// starts reading only once all of them are sending, so they all queue up for the write
/// lock and take turns. Before the sender had a cap, every one of them started its message
/// and the peer refused the ones past 256 (`TooManyStreams`) although their `send` returned
/// `Ok` (and the rejected-id memory of 8 made most of their later frames `UnknownId`
/// errors). The 256 messages under way hold up to 256 MiB at the peer, past its default
/// `assembly_budget` (64 MiB), so the peer's budget is raised here: this test is about the
/// cap on messages, not the memory budget.
#[test]
fn more_senders_than_the_peer_admits_every_ok_send_is_delivered_no_protocol_error() {
    within(240, "400 senders of 1 MiB", || {
        const THREADS: usize = 400;
        const SIZE: usize = 1 << 20;
        let (a, b) = UnixStream::pair().unwrap();
        let tx = Node::unix(a, Config::default()).unwrap();
        let open = Arc::new(AtomicBool::new(false));
        let gate = Gate {
            inner: b.try_clone().unwrap(),
            open: open.clone(),
        };
        let roomy = Config {
            assembly_budget: 1 << 30,
            ..Config::default()
        };
        let rx = Node::new(gate, b, roomy).unwrap();
        let payload = rule_r(SIZE);
        let barrier = Barrier::new(THREADS);
        let (sent, delivered, errors) = std::thread::scope(|s| {
            let receiver = s.spawn(|| {
                let mut delivered = HashSet::new();
                let mut errors = Vec::new();
                loop {
                    match rx.recv() {
                        Ok(Received::Message(m)) => {
                            assert!(m.body() == &payload[..], "message {} intact", m.id());
                            assert!(delivered.insert(m.id()), "message {} twice", m.id());
                        }
                        Ok(other) => errors.push(format!("{other:?}")),
                        Err(RecvError::Closed) => break,
                        Err(e) => panic!("{e}"),
                    }
                }
                (delivered, errors)
            });
            let senders: Vec<_> = (0..THREADS)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        tx.send(&payload)
                    })
                })
                .collect();
            // All threads are past the barrier and blocked in `send` (the socket is full).
            std::thread::sleep(Duration::from_millis(300));
            open.store(true, Ordering::Relaxed);
            let mut sent = HashSet::new();
            for h in senders {
                match h.join().unwrap() {
                    Ok(id) => assert!(sent.insert(id)),
                    Err(e) => panic!("send failed: {e}"),
                }
            }
            tx.close_write().unwrap();
            let (delivered, errors) = receiver.join().unwrap();
            (sent, delivered, errors)
        });
        let m = rx.metrics();
        println!(
            "{} sends Ok, {} delivered, {} other items, rx errors {:?}",
            sent.len(),
            delivered.len(),
            errors.len(),
            m.rx.errors
        );
        assert!(
            errors.is_empty(),
            "no protocol error: {:?}",
            &errors[..errors.len().min(5)]
        );
        assert_eq!(m.rx.errors.total(), 0);
        assert_eq!(sent.len(), THREADS);
        assert_eq!(sent, delivered, "every Ok send is delivered");
    });
}

/// Resident memory of this process (`/proc/self/statm`), 0 where it cannot be read.
fn rss() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// A sender pushes 40 messages of 8 MiB while the application does not call `recv`. Before
/// the budget, the reader read on until the queue was full (1024 items): all 320 MiB were
/// accepted and held (the sender finished without the application taking anything), and the
/// pool then kept all 40 buffers idle. Now the reader stops at the budget (the sender is held
/// back by the socket); every message still arrives intact once the application receives;
/// and the pool keeps at most `pool_idle_bytes` of idle buffers.
#[test]
fn a_receiver_that_does_not_recv_holds_at_most_its_budget_and_then_delivers_everything() {
    within(240, "40 x 8 MiB to a receiver that waits", || {
        const COUNT: u64 = 40;
        const SIZE: usize = 8 << 20;
        // Buffers of 8 MiB may be pooled (the default keeps up to 4 MiB each), so that what
        // bounds the idle memory after the burst is the pool's idle limit.
        let cfg = Config {
            retain_capacity: 16 << 20,
            ..Config::default()
        };
        let bound = (cfg.rx_budget + SIZE) as u64;
        let (a, b) = UnixStream::pair().unwrap();
        let tx = Node::unix(a, Config::default()).unwrap();
        let rx = Node::unix(b, cfg.clone()).unwrap();
        let base = rule_r(SIZE);
        let rss_before = rss();
        std::thread::scope(|s| {
            let sender = s.spawn(|| {
                let mut p = base.clone();
                for k in 0..COUNT {
                    p[..8].copy_from_slice(&k.to_le_bytes());
                    tx.send(&p).unwrap();
                }
            });
            // Not receiving: wait until the reader has stopped (nothing more is read for a
            // while), checking the bytes held all along.
            let mut last = (0, Instant::now());
            while last.1.elapsed() < Duration::from_millis(500) {
                let m = rx.metrics().rx;
                assert!(m.held_bytes <= bound, "held {} > {bound}", m.held_bytes);
                if m.bytes != last.0 {
                    last = (m.bytes, Instant::now());
                }
                assert!(!sender.is_finished(), "the sender was not held back");
                std::thread::sleep(Duration::from_millis(5));
            }
            let m = rx.metrics();
            println!(
                "stalled: {} of {COUNT} messages read, held {} MiB (peak {} MiB, budget {} MiB), \
                 RSS +{} MiB",
                m.rx.messages,
                m.rx.held_bytes >> 20,
                m.rx.held_peak >> 20,
                cfg.rx_budget >> 20,
                rss().saturating_sub(rss_before) >> 20
            );
            assert!(m.rx.messages < COUNT);
            assert!(
                m.rx.held_bytes >= cfg.rx_budget as u64,
                "stopped at the budget"
            );
            for k in 0..COUNT {
                match rx.recv().unwrap() {
                    Received::Message(m) => {
                        assert_eq!(m.len(), SIZE);
                        assert_eq!(m[..8], k.to_le_bytes(), "message {k} in order");
                        assert!(m[8..] == base[8..], "message {k} intact");
                    }
                    other => panic!("{other:?}"),
                }
                assert!(rx.metrics().rx.held_bytes <= bound);
            }
            sender.join().unwrap();
        });
        let m = rx.metrics();
        println!(
            "after: held {} B, peak {} MiB; pool {} idle buffers, {} MiB idle (limit {} MiB); \
             RSS +{} MiB",
            m.rx.held_bytes,
            m.rx.held_peak >> 20,
            m.pool.idle,
            m.pool.idle_bytes >> 20,
            cfg.pool_idle_bytes >> 20,
            rss().saturating_sub(rss_before) >> 20
        );
        assert!(m.rx.held_peak <= bound, "peak {} > {bound}", m.rx.held_peak);
        assert_eq!(m.rx.held_bytes, 0);
        assert_eq!(m.rx.errors.total(), 0);
        assert!(m.pool.idle_bytes <= cfg.pool_idle_bytes);
        assert!(m.pool.idle < COUNT as usize);
    });
}

/// A message larger than the whole budget is still delivered: the reader only stops while
/// the queue holds something `recv` can take, never while it is assembling the only
/// messages it has.
#[test]
fn a_message_larger_than_the_budget_is_delivered() {
    within(120, "messages over the budget", || {
        const SIZE: usize = 4 << 20;
        let cfg = Config {
            rx_budget: 1 << 20,
            ..Config::default()
        };
        let (a, b) = UnixStream::pair().unwrap();
        let tx = Node::unix(a, Config::default()).unwrap();
        let rx = Node::unix(b, cfg).unwrap();
        let payload: Vec<u8> = (0..SIZE).map(|i| (i * 7 + 1) as u8).collect();
        std::thread::scope(|s| {
            let sender = s.spawn(|| {
                for _ in 0..3 {
                    tx.send(&payload).unwrap();
                }
            });
            std::thread::sleep(Duration::from_millis(200));
            let m = rx.metrics().rx;
            // The first message was assembled and queued; then the reader stopped.
            assert_eq!(m.messages, 1);
            assert!(
                m.held_bytes <= (SIZE + (1 << 20)) as u64,
                "{}",
                m.held_bytes
            );
            for _ in 0..3 {
                match rx.recv().unwrap() {
                    Received::Message(m) => assert!(m.body() == &payload[..]),
                    other => panic!("{other:?}"),
                }
            }
            sender.join().unwrap();
        });
    });
}

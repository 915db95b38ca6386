//! Model checking with shuttle: many schedules of small concurrent scenarios,
//! each checked for the invariants of the shared state.
//!
//! Built only with `--cfg mux_shuttle` (an empty test binary otherwise):
//!
//! ```sh
//! RUSTFLAGS="--cfg mux_shuttle" CARGO_TARGET_DIR=target/shuttle \
//!     cargo test -p mux-tests --release --test model -- --nocapture
//! ```
//!
//! Under that cfg, mux-std's `sync` facade is shuttle's: the sender's write lock, its waiting
//! counter, id counter and cancel flags, and the buffer pool's two locks are shuttle primitives, so
//! every lock and atomic access is a point where shuttle may switch threads. The core's
//! critical-section pool runs unchanged over a critical-section implementation defined here
//! whose acquire and release are scheduling points.
//!
//! Shuttle explores interleavings under sequential consistency only (it does not model weak
//! memory orderings); Miri, which runs the core pool's threaded test, covers data races there.
//! `MUX_SHUTTLE_ITERS` sets the schedules per scenario and scheduler (default 50 000).
#![cfg(mux_shuttle)]

use std::collections::{HashMap, HashSet};
use std::io::{self, IoSlice, Write};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use mux_nostd::{Chain, FrameType, Pool};
use mux_std::{BufferPool, CancelToken, Config, SendError, SendOptions, Sender};
use shuttle::thread;

// ---------------------------------------------------------------------------------------------
// A critical section for the model: one lock, taken and released at scheduling points.

struct ModelCs;
critical_section::set_impl!(ModelCs);

/// Whether some model thread is inside a critical section. Shuttle runs one thread at a time,
/// so a plain atomic flag is the lock; waiting for it yields to the other threads.
static CS_HELD: AtomicBool = AtomicBool::new(false);

// SAFETY: `acquire` returns only once this thread owns the flag, and `release` clears it, so
// critical sections never overlap; nesting is not used by the pool.
unsafe impl critical_section::Impl for ModelCs {
    unsafe fn acquire() -> critical_section::RawRestoreState {
        loop {
            thread::yield_now();
            if CS_HELD
                .compare_exchange(false, true, SeqCst, SeqCst)
                .is_ok()
            {
                return;
            }
        }
    }

    unsafe fn release(_: critical_section::RawRestoreState) {
        CS_HELD.store(false, SeqCst);
        thread::yield_now();
    }
}

fn iterations() -> usize {
    std::env::var("MUX_SHUTTLE_ITERS")
        .map(|s| s.parse().expect("MUX_SHUTTLE_ITERS is a number"))
        .unwrap_or(50_000)
}

/// Runs `f` under shuttle's random scheduler and its PCT scheduler (depth 3).
fn check(name: &str, f: impl Fn() + Send + Sync + 'static) {
    let f = Arc::new(f);
    let n = iterations();
    let g = f.clone();
    let t = std::time::Instant::now();
    shuttle::check_random(move || g(), n);
    shuttle::check_pct(move || f(), n, 3);
    println!(
        "model {name}: {n} random + {n} PCT schedules in {:.1} s, no failure",
        t.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------------------------------------
// (i) The core's critical-section pool.

/// Three threads append to chains of a 4-block pool (8 bytes a block) in two steps each,
/// check their bytes after yielding to the others, and drop them; a full pool at the end.
#[test]
fn core_pool_chains_from_three_threads() {
    check("core pool", || {
        let pool: Arc<Pool<4, 8>> = Arc::new(Pool::new());
        let hs: Vec<_> = (0..3u8)
            .map(|t| {
                let pool = pool.clone();
                thread::spawn(move || {
                    for round in 0..2u8 {
                        let n = [5usize, 12, 20][usize::from((t + round) % 3)];
                        let data: Vec<u8> = (0..n).map(|i| t * 64 + round * 32 + i as u8).collect();
                        let (x, y) = data.split_at(n / 2);
                        let mut c = Chain::new(&*pool);
                        let held: &[u8] = match c.extend_from_slice(x) {
                            Err(_) => &[],
                            Ok(()) => match c.extend_from_slice(y) {
                                Ok(()) => &data,
                                Err(_) => x, // all or nothing: the first half stays
                            },
                        };
                        assert!(c.eq_slice(held), "thread {t}: chain bytes changed");
                        thread::yield_now();
                        assert!(c.eq_slice(held), "thread {t}: another owner wrote a block");
                        let s = pool.stats();
                        assert!(s.in_use <= 4 && s.high_water <= 4, "{s:?}");
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let s = pool.stats();
        assert_eq!(s.in_use, 0, "{s:?}");
        // The free list lost nothing: all four blocks in one chain, bytes intact.
        let mut c = Chain::new(&*pool);
        let all: Vec<u8> = (0..32).collect();
        c.extend_from_slice(&all).unwrap();
        assert!(c.eq_slice(&all));
        drop(c);
        assert_eq!(pool.stats().in_use, 0);
    });
}

// ---------------------------------------------------------------------------------------------
// (ii) mux-std: the sender's shared state and the buffer pool.

/// An in-memory sink that takes at most 700 bytes per call (a scheduling point before each)
/// and can fail for good after `fail_after` bytes.
#[derive(Clone)]
struct Sink {
    out: Arc<Mutex<Vec<u8>>>,
    fail_after: Option<usize>,
}

impl Sink {
    fn new(fail_after: Option<usize>) -> Self {
        Self {
            out: Arc::new(Mutex::new(Vec::new())),
            fail_after,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        self.out.lock().unwrap().clone()
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        thread::yield_now();
        let mut out = self.out.lock().unwrap();
        let room = self.fail_after.map_or(usize::MAX, |k| k - out.len());
        if room == 0 && !buf.is_empty() {
            return Err(io::Error::other("injected"));
        }
        let n = buf.len().min(700).min(room);
        out.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match bufs.iter().find(|b| !b.is_empty()) {
            Some(b) => self.write(b),
            None => Ok(0),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn body(id: u32, n: usize) -> Vec<u8> {
    (0..n).map(|i| (i as u32 * 7 + id * 31) as u8).collect()
}

/// What a byte stream says, checked frame by frame: every frame whole (a cut only at the very
/// end, `cut`), Data only inside an open message, no Start for an open id.
#[derive(Debug, Default)]
struct Wire {
    complete: HashMap<u32, Vec<u8>>,
    aborted: HashSet<u32>,
    open: HashMap<u32, Vec<u8>>,
    cut: bool,
}

fn parse(wire: &[u8]) -> Wire {
    let mut w = Wire::default();
    let mut at = 0;
    while at < wire.len() {
        if wire.len() - at < 9 {
            w.cut = true;
            break;
        }
        let id = u32::from_be_bytes(wire[at + 1..at + 5].try_into().unwrap());
        let len = u32::from_be_bytes(wire[at + 5..at + 9].try_into().unwrap()) as usize;
        let kind = wire[at];
        at += 9;
        match kind {
            k if k == FrameType::Start as u8 => {
                assert!(w.open.insert(id, Vec::new()).is_none(), "Start({id}) twice");
                assert!(!w.complete.contains_key(&id) && !w.aborted.contains(&id));
            }
            k if k == FrameType::Data as u8 => {
                let Some(data) = w.open.get_mut(&id) else {
                    panic!("Data({id}) outside its message");
                };
                if wire.len() - at < len {
                    w.cut = true;
                    break;
                }
                data.extend_from_slice(&wire[at..at + len]);
                at += len;
            }
            k if k == FrameType::End as u8 => {
                let data = w.open.remove(&id).expect("End of an open message");
                w.complete.insert(id, data);
            }
            k if k == FrameType::Abort as u8 => {
                w.open.remove(&id).expect("Abort of an open message");
                w.aborted.insert(id);
            }
            k => panic!("frame type {k} on the wire"),
        }
    }
    w
}

fn config() -> Config {
    Config {
        // Small enough that the shared buffer fills and holds end at several points.
        write_buffer: 2048,
        coalesce_frame: 1100,
        ..Config::default()
    }
}

/// Three senders (a three-hold message, a one-hold message, a buffered one) and a fourth
/// thread cancelling a fourth message mid-way. After the joins and before any flush, each
/// write-through send that returned `Ok` is whole on the wire; after a flush everything is; a
/// cancelled send is an Abort or absent; the counters agree with the wire.
#[test]
fn std_sender_interleaves_whole_frames_and_keeps_its_word() {
    check("std sender", || {
        let sink = Sink::new(None);
        let tx = Sender::new(sink.clone(), &config()).unwrap();
        let token = CancelToken::new();
        let sizes = [(1u32, 3000usize, false), (2, 10, false), (3, 20, true)];
        let mut hs = Vec::new();
        for (id, n, buffered) in sizes {
            let tx = tx.clone();
            hs.push(thread::spawn(move || {
                let opts = SendOptions {
                    id: Some(id),
                    buffered,
                    ..SendOptions::default()
                };
                (id, tx.send_with(&body(id, n), &opts).map(|_| ()))
            }));
        }
        let (tx4, t4) = (tx.clone(), token.clone());
        hs.push(thread::spawn(move || {
            let opts = SendOptions {
                id: Some(4),
                cancel: Some(t4),
                ..SendOptions::default()
            };
            (4, tx4.send_with(&body(4, 2500), &opts).map(|_| ()))
        }));
        let canceller = thread::spawn(move || token.cancel());
        let results: HashMap<u32, Result<(), SendError>> =
            hs.into_iter().map(|h| h.join().unwrap()).collect();
        canceller.join().unwrap();

        let before_flush = parse(&sink.bytes());
        assert!(!before_flush.cut);
        for id in [1, 2, 4] {
            if results[&id].is_ok() {
                assert!(
                    before_flush.complete.contains_key(&id),
                    "send {id} returned Ok but is not whole on the wire: {before_flush:?}"
                );
            }
        }
        tx.flush().unwrap();
        let w = parse(&sink.bytes());
        assert!(w.open.is_empty() && !w.cut, "{w:?}");
        for (id, n) in [(1, 3000), (2, 10), (3, 20), (4, 2500)] {
            match &results[&id] {
                Ok(()) => assert_eq!(w.complete.get(&id), Some(&body(id, n)), "message {id}"),
                Err(SendError::Cancelled) => {
                    assert_eq!(id, 4);
                    assert!(!w.complete.contains_key(&id));
                }
                Err(e) => panic!("send {id}: {e}"),
            }
        }
        let c = tx.counts();
        assert_eq!(c.messages, w.complete.len() as u64);
        assert_eq!(c.aborted, w.aborted.len() as u64);
    });
}

/// Two senders of multi-hold messages race `close()`: each send is either whole (`Ok`) or
/// ended with Abort or absent (`Closed`); `close` names exactly the messages it aborted.
#[test]
fn std_close_races_with_sends() {
    check("std close", || {
        let sink = Sink::new(None);
        let tx = Sender::new(sink.clone(), &config()).unwrap();
        let hs: Vec<_> = [(1u32, 2500usize), (2, 1500)]
            .into_iter()
            .map(|(id, n)| {
                let tx = tx.clone();
                thread::spawn(move || (id, tx.send_with_id(id, &body(id, n))))
            })
            .collect();
        let closer = {
            let tx = tx.clone();
            thread::spawn(move || tx.close().unwrap())
        };
        let results: HashMap<u32, Result<(), SendError>> =
            hs.into_iter().map(|h| h.join().unwrap()).collect();
        let mut aborted_by_close = closer.join().unwrap();
        aborted_by_close.sort_unstable();
        let w = parse(&sink.bytes());
        assert!(w.open.is_empty() && !w.cut, "{w:?}");
        let mut on_wire: Vec<u32> = w.aborted.iter().copied().collect();
        on_wire.sort_unstable();
        assert_eq!(aborted_by_close, on_wire);
        for (id, n) in [(1, 2500), (2, 1500)] {
            match &results[&id] {
                Ok(()) => assert_eq!(w.complete.get(&id), Some(&body(id, n))),
                Err(SendError::Closed) => assert!(!w.complete.contains_key(&id)),
                Err(e) => panic!("send {id}: {e}"),
            }
        }
        assert!(matches!(tx.send(b"late"), Err(SendError::Closed)));
    });
}

/// Three senders over a sink that fails after 1500 bytes: exactly one send gets the I/O
/// error, the others finished before it or are told `Broken`; what reached the wire is whole
/// frames (a cut only at the end); nothing told `Broken` is whole on the wire; the counters
/// count the `Ok` sends (and at most the one that met the error).
///
/// Not asserted, because it is not so: an `Ok` message is whole on the wire. A write-through
/// send whose last small frames went into the shared buffer while another sender waited
/// returns `Ok` and leaves them for that sender to write; if that write fails, they are lost
/// with the link, like bytes in a kernel socket buffer (shuttle found the schedule; see
/// docs/RELIABILITY.md).
#[test]
fn std_write_failure_with_concurrent_senders() {
    check("std write failure", || {
        let sink = Sink::new(Some(1500));
        let tx = Sender::new(sink.clone(), &config()).unwrap();
        let hs: Vec<_> = [(1u32, 1200usize), (2, 30), (3, 700)]
            .into_iter()
            .map(|(id, n)| {
                let tx = tx.clone();
                thread::spawn(move || (id, tx.send_with_id(id, &body(id, n))))
            })
            .collect();
        let results: HashMap<u32, Result<(), SendError>> =
            hs.into_iter().map(|h| h.join().unwrap()).collect();
        let io = results
            .values()
            .filter(|r| matches!(r, Err(SendError::Io(_))))
            .count();
        assert_eq!(io, 1, "{results:?}");
        assert!(tx.is_broken());
        let ok = results.values().filter(|r| r.is_ok()).count();
        // A message whose End sat in the shared buffer when the flush failed is counted as
        // sent (the send itself returns the I/O error): one more at most.
        let counted = tx.counts().messages;
        assert!(
            counted == ok as u64 || counted == ok as u64 + 1,
            "{counted} vs {ok}"
        );
        let w = parse(&sink.bytes());
        for (id, r) in &results {
            match r {
                Ok(()) | Err(SendError::Io(_)) => {}
                Err(SendError::Broken) => assert!(!w.complete.contains_key(id), "{id}"),
                Err(e) => panic!("{e}"),
            }
        }
        assert!(matches!(tx.send(b"x"), Err(SendError::Broken)));
    });
}

/// Three threads take, fill and drop buffers of a 2-buffer pool: never more than two out,
/// every request counted once (hit, miss or exhausted), all back at the end.
#[test]
fn std_buffer_pool_from_three_threads() {
    check("std buffer pool", || {
        let pool = BufferPool::new(2, 64);
        let hs: Vec<_> = (0..3u8)
            .map(|t| {
                let pool = pool.clone();
                thread::spawn(move || {
                    let mut got = 0u64;
                    for i in 0..2u8 {
                        if let Some(mut b) = pool.take() {
                            got += 1;
                            assert!(b.is_empty());
                            b.extend_from_slice(&[t; 40][..usize::from(10 + i * 30)]);
                            thread::yield_now();
                            assert!(b.iter().all(|&x| x == t), "buffer shared by two owners");
                            assert!(pool.stats().in_use <= 2);
                        }
                    }
                    got
                })
            })
            .collect();
        let got: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
        let s = pool.stats();
        assert_eq!(s.in_use, 0, "{s:?}");
        assert!(s.high_water <= 2 && s.idle <= 2, "{s:?}");
        assert_eq!(s.hits + s.misses, got, "{s:?}");
        assert_eq!(s.hits + s.misses + s.exhausted, 6, "{s:?}");
    });
}

use std::io::{self, IoSlice, Write};
use std::time::{Duration, Instant};

use super::inner::*;
use super::options::*;
use super::sender::*;
use crate::config::Config;
use crate::error::SendError;
use crate::sync::atomic::Ordering;
use crate::sync::{Arc, Mutex};
use mux_nostd::{AnyStrategy, FrameType, HEADER_LEN, Header, Hybrid, Original, encode_into};

/// A sink that takes at most `step` bytes per call (and records the calls).
struct Trickle {
    out: Arc<Mutex<Vec<u8>>>,
    step: usize,
}

impl Write for Trickle {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(self.step);
        self.out.lock().unwrap().extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn payload(n: usize) -> Vec<u8> {
    mux_test_support::rule_r(n)
}

#[test]
fn any_write_sizes_coalescing_and_budgets_give_the_core_bytes() {
    let cases = [
        (1, 0, 0),
        (7, 2048, 0),
        (4096, 0, 0),
        (1 << 20, 2048, 0),
        (5, 100, 0),
    ];
    let budgets = [
        (1, 0, 3000),
        (7, 2048, 5000),
        (4096, 0, 1 << 20),
        (1 << 20, 2048, 9999),
    ];
    for (step, coalesce, budget) in cases.into_iter().chain(budgets) {
        let out = Arc::new(Mutex::new(Vec::new()));
        let cfg = Config {
            coalesce_frame: coalesce,
            write_buffer: 300,
            hold_budget: budget,
            ..Config::with_strategy(Original)
        };
        let tx = Sender::new(
            Trickle {
                out: out.clone(),
                step,
            },
            &cfg,
        )
        .unwrap();
        let mut want = vec![0u8; 1 << 17];
        let mut at = 0;
        for (id, n) in [(1, 0), (2, 1), (3, 1000), (4, 3000), (5, 50), (6, 40_000)] {
            let p = payload(n);
            tx.send_with_id(id, &p).unwrap();
            at += encode_into(&Original, id, &p, &mut want[at..]).unwrap();
        }
        tx.close().unwrap();
        let got = out.lock().unwrap();
        assert!(got.as_slice() == &want[..at], "step {step} budget {budget}");
    }
}

#[test]
fn cancel_before_start_writes_nothing_after_start_aborts() {
    let out = Arc::new(Mutex::new(Vec::new()));
    let sink = Trickle {
        out: out.clone(),
        step: usize::MAX,
    };
    let tx = Sender::new(sink, &Config::with_strategy(Hybrid::<4096>)).unwrap();
    let p = payload(10_000); // S0 D4096 D4096 D1808 E0: holds S+D, D, D+E
    let r = tx.send_cancellable(1, &p, None, || Some(SendError::Cancelled));
    assert!(matches!(r, Err(SendError::Cancelled)));
    assert!(out.lock().unwrap().is_empty());
    let mut calls = 0;
    let r = tx.send_cancellable(2, &p, None, || {
        calls += 1;
        (calls == 2).then_some(SendError::TimedOut)
    });
    assert!(matches!(r, Err(SendError::TimedOut)));
    let wire = out.lock().unwrap().clone();
    assert_eq!(wire.len(), 9 + 9 + 4096 + 9);
    assert_eq!(&wire[wire.len() - 9..], &[6, 0, 0, 0, 2, 0, 0, 0, 0]);
    let c = tx.counts();
    assert_eq!((c.messages, c.aborted), (0, 1));
}

/// A sink that takes everything offered and records the size of each write call.
struct Vectored(Arc<Mutex<Vec<usize>>>);

impl Write for Vectored {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().push(buf.len());
        Ok(buf.len())
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let n = bufs.iter().map(|b| b.len()).sum();
        self.0.lock().unwrap().push(n);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn an_uncontended_message_leaves_in_few_vectored_writes() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let tx = Sender::new(Vectored(calls.clone()), &Config::default()).unwrap();
    // Hybrid, 100000 bytes: S0 D16384×6 D1696 E0, nine frames: one write.
    tx.send(&payload(100_000)).unwrap();
    assert_eq!(*calls.lock().unwrap(), [100_000 + 9 * 9]);
    // Hybrid, 1 MiB: S0 D16384×64 E0, 66 frames; a write call carries at most
    // GATHER_BYTES (256 KiB) of payload: 16 chunks per write, the End with the last.
    calls.lock().unwrap().clear();
    tx.send(&payload(1 << 20)).unwrap();
    let chunk = 9 + 16384;
    assert_eq!(
        *calls.lock().unwrap(),
        [9 + 16 * chunk, 16 * chunk, 16 * chunk, 16 * chunk + 9]
    );
    // Original, 1 MiB: 1024 Data frames of 1 KiB, 1026 frames: 17 writes.
    calls.lock().unwrap().clear();
    let opts = SendOptions {
        strategy: Some(Original.into()),
        ..SendOptions::default()
    };
    tx.send_with(&payload(1 << 20), &opts).unwrap();
    let calls = calls.lock().unwrap();
    assert_eq!(calls.len(), 17, "{calls:?}");
    assert_eq!(calls.iter().sum::<usize>(), (1 << 20) + 1026 * 9);
    assert_eq!(tx.counts().writes, 1 + 4 + 17);
}

/// A sink that records every write call (the address and length of each slice) and the
/// bytes.
#[derive(Default)]
struct Slices {
    calls: Vec<Vec<(usize, usize)>>,
    bytes: Vec<u8>,
}

impl Write for Slices {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.calls.push(
            bufs.iter()
                .map(|b| (b.as_ptr() as usize, b.len()))
                .collect(),
        );
        for b in bufs {
            self.bytes.extend_from_slice(b);
        }
        Ok(bufs.iter().map(|b| b.len()).sum())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn an_uncontended_small_message_is_one_write_of_three_slices_from_the_payload() {
    for strategy in ["original", "optimized", "hybrid"] {
        let strategy: AnyStrategy = strategy.parse().unwrap();
        let mut sink = Slices::default();
        let p = payload(1024);
        {
            let tx = Sender::new(&mut sink, &Config::with_strategy(strategy)).unwrap();
            tx.send_with_id(9, &p).unwrap();
            assert_eq!(tx.counts().writes, 1);
            tx.close().unwrap();
        }
        // Start and Data headers, the caller's payload itself (not a copy), End header.
        assert_eq!(sink.calls.len(), 1, "{strategy:?}: {:?}", sink.calls);
        let call = &sink.calls[0];
        assert_eq!(call.len(), 3, "{strategy:?}: {call:?}");
        assert_eq!(call[0].1, 2 * HEADER_LEN);
        assert_eq!(call[1], (p.as_ptr() as usize, p.len()));
        assert_eq!(call[2].1, HEADER_LEN);
        let mut want = vec![0; 1024 + 3 * HEADER_LEN];
        encode_into(&strategy, 9, &p, &mut want).unwrap();
        assert_eq!(sink.bytes, want);
    }
}

#[test]
fn a_cancellable_send_writes_one_chunk_per_call_plus_the_budget() {
    for (budget, per_call) in [(0, 1), (65536, 4)] {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let cfg = Config {
            hold_budget: budget,
            ..Config::default()
        };
        let tx = Sender::new(Vectored(calls.clone()), &cfg).unwrap();
        // Hybrid, 1 MiB: S0 D16384×64 E0; Start rides with the first Data frame, End with
        // the last.
        tx.send_cancellable(1, &payload(1 << 20), None, || None)
            .unwrap();
        let calls = calls.lock().unwrap();
        let n = 64 / per_call;
        assert_eq!(calls.len(), n, "{calls:?}");
        assert_eq!(calls[0], 9 + per_call * (9 + 16384));
        assert!(calls[1..n - 1].iter().all(|&c| c == per_call * (9 + 16384)));
        assert_eq!(calls[n - 1], per_call * (9 + 16384) + 9);
    }
}

#[test]
fn buffered_small_messages_wait_for_a_full_buffer_or_flush() {
    let mut sink = Slices::default();
    let p = payload(1024);
    let mut want = vec![0; 100 * (1024 + 27)];
    let mut at = 0;
    {
        let tx = Sender::new(&mut sink, &Config::default()).unwrap();
        for _ in 0..100 {
            let id = tx.send_buffered(&p).unwrap();
            at += encode_into(&Hybrid::<4096>, id, &p, &mut want[at..]).unwrap();
        }
        // 62 messages of 1051 bytes fill the 64 KiB buffer: one write so far.
        assert_eq!(tx.counts().writes, 1);
        tx.flush().unwrap();
        assert_eq!(tx.counts().writes, 2);
    }
    assert_eq!(sink.bytes, want);
}

/// Buffered sends of every size, between plain ones, under configurations where a small
/// message fits the shared buffer whole, in part (a frame too large to copy, a buffer that
/// fills in the middle of a message) or not at all: the core's bytes, in order, and the
/// counters of every message.
#[test]
fn buffered_sends_of_any_size_give_the_core_bytes() {
    let sizes = [0, 1, 64, 100, 250, 1024, 1025, 5000, 64, 0, 9];
    let configs = [
        Config::default(),
        Config {
            write_buffer: 300,
            ..Config::default()
        },
        Config {
            coalesce_frame: 40,
            ..Config::default()
        },
        Config {
            coalesce_frame: 0,
            ..Config::default()
        },
        Config {
            write_buffer: 100,
            coalesce_frame: 100,
            ..Config::with_strategy(Original)
        },
    ];
    for config in configs {
        let mut sink = Slices::default();
        let mut want = Vec::new();
        let sent = {
            let tx = Sender::new(&mut sink, &config).unwrap();
            for round in 0..3 {
                for &n in &sizes {
                    let p = payload(n);
                    let id = if round == 1 && n == 64 {
                        tx.send(&p).unwrap()
                    } else {
                        tx.send_buffered(&p).unwrap()
                    };
                    let mut frames = vec![0; n + 64 * HEADER_LEN];
                    let k = encode_into(&config.strategy, id, &p, &mut frames).unwrap();
                    want.extend_from_slice(&frames[..k]);
                }
            }
            tx.flush().unwrap();
            tx.counts()
        };
        assert_eq!(sink.bytes, want, "{config:?}");
        assert_eq!(sent.messages, 3 * sizes.len() as u64);
        assert_eq!(sent.bytes, 3 * sizes.iter().sum::<usize>() as u64);
        assert_eq!(sent.writes, sink.calls.len() as u64);
    }
}

/// A sink that takes at most `step` bytes per call; on call `pause_at` it reports the
/// bytes it holds and waits to be resumed.
struct Gate {
    out: Arc<Mutex<Vec<u8>>>,
    step: usize,
    calls: usize,
    pause_at: usize,
    reached: std::sync::mpsc::Sender<usize>,
    resume: std::sync::mpsc::Receiver<()>,
}

impl Gate {
    /// A sink taking 10,000 bytes per call that pauses in its fifth call: it reports
    /// that on `reached` and waits for a `resume`. Returns it, what it captures, and
    /// both ends of the pause.
    #[allow(clippy::type_complexity)]
    fn new() -> (
        Self,
        Arc<Mutex<Vec<u8>>>,
        std::sync::mpsc::Receiver<usize>,
        std::sync::mpsc::Sender<()>,
    ) {
        let (reached_tx, reached) = std::sync::mpsc::channel();
        let (resume, resume_rx) = std::sync::mpsc::channel();
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink = Gate {
            out: out.clone(),
            step: 10_000,
            calls: 0,
            pause_at: 5,
            reached: reached_tx,
            resume: resume_rx,
        };
        (sink, out, reached, resume)
    }
}

impl Write for Gate {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut out = self.out.lock().unwrap();
        let mut n = 0;
        for b in bufs {
            let take = b.len().min(self.step - n);
            out.extend_from_slice(&b[..take]);
            n += take;
        }
        let len = out.len();
        drop(out);
        self.calls += 1;
        if self.calls == self.pause_at {
            self.reached.send(len).unwrap();
            self.resume.recv().unwrap();
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A wire's frames as `(type, id, position)`, and its messages' payloads.
type Parsed = (
    Vec<(u8, u32, usize)>,
    std::collections::HashMap<u32, Vec<u8>>,
);

fn parse(wire: &[u8]) -> Parsed {
    let mut frames = Vec::new();
    let mut bodies = std::collections::HashMap::<u32, Vec<u8>>::new();
    let mut at = 0;
    while at < wire.len() {
        let h = Header::parse(wire[at..at + HEADER_LEN].try_into().unwrap()).unwrap();
        frames.push((h.kind as u8, h.id, at));
        at += HEADER_LEN;
        if h.kind == FrameType::Data {
            let len = h.len as usize;
            bodies
                .entry(h.id)
                .or_default()
                .extend_from_slice(&wire[at..at + len]);
            at += len;
        }
    }
    (frames, bodies)
}

/// Sender A writes a 256 KiB message (Hybrid: 16 Data frames of 16 KiB) to a sink that
/// takes 10000 bytes per call; during its fifth call (inside the fourth Data frame)
/// sender B starts a 1 KiB message and waits for the lock. B's whole message must be on
/// the wire right after A's frame in flight plus `budget` more payload of A: asserted on
/// the byte positions of the captured wire (the test waits for B to be waiting before
/// it lets the sink go on). `cancellable`: B waits with a cancel token (the
/// `lock_or_stop` path, not counted in `waiting`). `b_len`: B's message size; one of
/// several chunks makes B a bulk waiter, for which A may write up to [`BULK_BUDGET`] more
/// (here: the rest of its message).
fn contended(budget: usize, cancellable: bool, b_len: usize) {
    let (sink, out, reached, resume) = Gate::new();
    let cfg = Config {
        hold_budget: budget,
        ..Config::default()
    };
    let tx = Sender::new(sink, &cfg).unwrap();
    let (big, small) = (payload(256 << 10), payload(b_len));
    let mark = std::thread::scope(|s| {
        s.spawn(|| tx.send_with_id(1, &big).unwrap());
        let mark = reached.recv().unwrap();
        s.spawn(|| {
            let opts = SendOptions {
                id: Some(2),
                cancel: cancellable.then(CancelToken::new),
                ..SendOptions::default()
            };
            tx.send_with(&small, &opts).unwrap()
        });
        let t = Instant::now();
        while tx.shared.contenders.load(Ordering::Relaxed) == 0 {
            assert!(t.elapsed() < Duration::from_secs(20), "B never waited");
            std::thread::sleep(Duration::from_millis(1));
        }
        resume.send(()).unwrap();
        mark
    });
    tx.flush().unwrap();
    let wire = out.lock().unwrap().clone();
    let (frames, bodies) = parse(&wire);
    assert_eq!(bodies[&1], big);
    assert_eq!(bodies[&2], small);
    let b = frames.iter().position(|f| f.1 == 2).unwrap();
    let k = frames.iter().filter(|f| f.1 == 2).count();
    assert!(
        frames[b..b + k].iter().all(|f| f.1 == 2),
        "B's frames together"
    );
    assert_eq!(frames[b].0, FrameType::Start as u8);
    assert!(frames[..b].iter().all(|f| f.1 == 1));
    let after = frames[..b].iter().filter(|f| f.2 >= mark).count();
    if b_len <= 16384 {
        // A's frames that start after the mark and before B: the budget's worth.
        assert_eq!(
            after,
            budget / 16384,
            "mark {mark}, B at {}, frames {:?}",
            frames[b].2,
            &frames[..b + 3]
        );
    } else {
        // A bulk waiter: A's remaining 12 chunks (192 KiB < BULK_BUDGET) and its End go
        // first.
        assert_eq!(frames[b - 1].0, FrameType::End as u8, "A finished first");
        assert_eq!(after, 12 + 1, "mark {mark}, frames {:?}", &frames[..b + 1]);
    }
    assert_eq!(tx.counts().messages, 2);
}

#[test]
fn a_waiting_sender_gets_the_lock_after_the_frame_in_flight() {
    contended(0, false, 1024);
}

#[test]
fn a_waiting_cancellable_sender_gets_the_lock_after_the_frame_in_flight() {
    contended(0, true, 1024);
}

#[test]
fn a_waiting_sender_gets_the_lock_after_the_budget() {
    contended(2 * 16384, false, 1024);
    contended(2 * 16384, true, 1024);
}

#[test]
fn a_waiting_bulk_sender_lets_the_holder_go_on_for_the_bulk_budget() {
    contended(0, false, 40_000);
    contended(0, true, 40_000);
}

#[test]
fn frames_left_for_a_waiter_are_written_even_by_a_buffered_send() {
    let mut g = TxInner::new(Vec::<u8>::new(), &Config::default());
    assert!(!g.should_flush(true, false), "buffered, nothing owed: keep");
    assert!(
        !g.should_flush(false, true),
        "others wait: leave it to them"
    );
    assert!(!g.should_flush(true, true), "still waiting");
    assert!(g.should_flush(true, false), "the owed write happens");
    assert!(!g.should_flush(true, false));
    assert!(g.should_flush(false, false));
}

#[test]
fn a_failed_write_is_reported_once_then_broken() {
    struct Failing;
    impl Write for Failing {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let tx = Sender::new(Failing, &Config::default()).unwrap();
    assert!(
        matches!(tx.send(b"x"), Err(SendError::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe)
    );
    assert!(matches!(tx.send(b"x"), Err(SendError::Broken)));
    assert!(tx.is_broken());
}

#[test]
fn aborts_buffered_at_close_keep_to_the_write_buffer_capacity() {
    // Coalescing with a 64-byte buffer, and coalescing off (no buffer for frames).
    for (coalesce, buffer) in [(64, 64), (0, 64 << 10)] {
        let mut sink = Slices::default();
        let cfg = Config {
            coalesce_frame: coalesce,
            write_buffer: buffer,
            ..Config::default()
        };
        {
            let tx = Sender::new(&mut sink, &cfg).unwrap();
            // 20 messages under way (each at a frame boundary between two holds).
            tx.shared.inner.lock().unwrap().sending.extend(1..=20);
            let ids = tx.close().unwrap();
            assert_eq!(ids, (1..=20).collect::<Vec<u32>>());
            let g = tx.shared.inner.lock().unwrap();
            let cap = if coalesce == 0 { HEADER_LEN } else { buffer };
            assert!(
                g.co.buf.capacity() <= cap,
                "coalesce {coalesce}: the buffer grew to {}",
                g.co.buf.capacity()
            );
        }
        let want: Vec<u8> = (1..=20)
            .flat_map(|id| Header::new(FrameType::Abort, id, 0).to_bytes())
            .collect();
        assert_eq!(sink.bytes, want, "coalesce {coalesce}");
    }
}

#[test]
fn a_send_with_an_id_in_flight_is_refused_and_writes_nothing() {
    // A sends 4 MiB as id 7; while it is under way (paused in its fifth write call), B
    // sends 1 MiB as id 7 too and waits for the lock. A yields to B (a bulk waiter) after
    // 256 KiB more: B must be refused, not splice its frames into message 7.
    let (sink, out, reached, resume) = Gate::new();
    let tx = Sender::new(sink, &Config::default()).unwrap();
    let (big, other) = (payload(4 << 20), vec![0xEE; 1 << 20]);
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| tx.send_with_id(7, &big));
        reached.recv().unwrap();
        let b = s.spawn(|| tx.send_with_id(7, &other));
        let t = Instant::now();
        while tx.shared.contenders.load(Ordering::Relaxed) == 0 {
            assert!(t.elapsed() < Duration::from_secs(20), "B never waited");
            std::thread::sleep(Duration::from_millis(1));
        }
        resume.send(()).unwrap();
        (a.join().unwrap(), b.join().unwrap())
    });
    assert!(a.is_ok(), "{a:?}");
    assert!(
        matches!(b, Err(SendError::IdInFlight { id: 7 })),
        "the second send of id 7: {b:?}"
    );
    tx.flush().unwrap();
    let wire = out.lock().unwrap().clone();
    let (frames, bodies) = parse(&wire);
    assert_eq!(bodies.len(), 1);
    assert!(bodies[&7] == big, "message 7 is A's payload, whole");
    let starts = frames
        .iter()
        .filter(|f| f.0 == FrameType::Start as u8)
        .count();
    assert_eq!(starts, 1);
    assert_eq!(tx.counts().messages, 1);
    // Once A is done, id 7 is free again.
    tx.send_with_id(7, b"again").unwrap();
}

#[test]
fn a_send_past_max_sending_waits_for_a_slot_honouring_its_deadline_and_token() {
    let out = Arc::new(Mutex::new(Vec::new()));
    let sink = Trickle {
        out: out.clone(),
        step: usize::MAX,
    };
    let cfg = Config {
        max_sending: 2,
        ..Config::default()
    };
    let tx = Sender::new(sink, &cfg).unwrap();
    // Two messages of other threads under way (Start written, their End not yet).
    tx.shared.inner.lock().unwrap().sending.extend([70, 71]);
    let t = Instant::now();
    let opts = SendOptions {
        deadline: Some(t + Duration::from_millis(50)),
        ..SendOptions::default()
    };
    let r = tx.send_with(b"late", &opts);
    assert!(matches!(r, Err(SendError::TimedOut)), "{r:?}");
    assert!(t.elapsed() >= Duration::from_millis(50));
    let token = CancelToken::new();
    let opts = SendOptions {
        cancel: Some(token.clone()),
        ..SendOptions::default()
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(30));
            token.cancel();
        });
        let r = tx.send_with(b"cancelled", &opts);
        assert!(matches!(r, Err(SendError::Cancelled)), "{r:?}");
    });
    let r = tx.send_cancellable(9, b"stopped", None, || Some(SendError::Cancelled));
    assert!(matches!(r, Err(SendError::Cancelled)), "{r:?}");
    assert!(
        out.lock().unwrap().is_empty(),
        "nothing of them was written"
    );
    // A plain send (small or not) waits until one of the two ends, woken when it does.
    std::thread::scope(|s| {
        let small = s.spawn(|| tx.send_with_id(1, b"small"));
        let large = s.spawn(|| tx.send_with_id(2, &payload(100_000)));
        std::thread::sleep(Duration::from_millis(50));
        assert!(out.lock().unwrap().is_empty(), "both wait for a slot");
        // One slot frees: each goes out in one hold (never two under way at once), so
        // both fit in it, one after the other.
        tx.shared.inner.lock().unwrap().forget(70);
        small.join().unwrap().unwrap();
        large.join().unwrap().unwrap();
    });
    let wire = out.lock().unwrap().clone();
    let (_, bodies) = parse(&wire);
    assert_eq!(bodies.len(), 2);
    assert_eq!(tx.counts().messages, 2);
}

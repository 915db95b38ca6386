//! mux-std's `Sender` with the Adaptive strategy over a slow sink: it learns the sink's rate,
//! frames at it, and keeps every write call within one latency budget (the fixed strategies
//! write a large message in one call), and what it writes decodes byte-exact.

use std::io::{self, Cursor, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mux_std::{AdaptiveConfig, AnyStrategy, Config, Received, Receiver, Sender};
use mux_test_support::rule_r;

/// A blocking sink of `rate` bytes per second: every write call takes its bytes' time (as a
/// UART write that returns once its bytes are out); records the wire and each call's size.
struct SlowSink {
    rate: u64,
    wire: Arc<Mutex<Vec<u8>>>,
    calls: Arc<Mutex<Vec<usize>>>,
}

impl Write for SlowSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[io::IoSlice::new(buf)])
    }
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let start = Instant::now();
        let mut n = 0;
        for b in bufs {
            self.wire.lock().unwrap().extend_from_slice(b);
            n += b.len();
        }
        self.calls.lock().unwrap().push(n);
        let due = Duration::from_micros(n as u64 * 1_000_000 / self.rate);
        std::thread::sleep(due.saturating_sub(start.elapsed()));
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Sends `sizes` over a sink of `rate` with `strategy`; returns the wire, the write calls'
/// sizes per message, and the sender's rate estimate at the end.
fn run(strategy: AnyStrategy, rate: u64, sizes: &[usize]) -> (Vec<u8>, Vec<Vec<usize>>, u32) {
    let wire = Arc::new(Mutex::new(Vec::new()));
    let calls = Arc::new(Mutex::new(Vec::new()));
    let sink = SlowSink {
        rate,
        wire: wire.clone(),
        calls: calls.clone(),
    };
    let tx = Sender::new(sink, &Config::with_strategy(strategy)).unwrap();
    let mut per_msg = Vec::new();
    for (k, &n) in sizes.iter().enumerate() {
        tx.send_with_id(k as u32 + 1, &rule_r(n)).unwrap();
        per_msg.push(std::mem::take(&mut *calls.lock().unwrap()));
    }
    let rate = tx.link_estimate().map_or(0, |l| l.rate());
    tx.close().unwrap();
    let wire = std::mem::take(&mut *wire.lock().unwrap());
    (wire, per_msg, rate)
}

#[test]
fn adaptive_learns_a_slow_sink_and_keeps_each_write_call_within_the_budget() {
    // 1 MB/s: the 10 ms budget is 10,000 bytes on the wire.
    let rate = 1_000_000;
    let sizes = [3000, 200_000, 50, 100_000];
    let (wire, calls, est) = run(AnyStrategy::Adaptive(AdaptiveConfig::DEFAULT), rate, &sizes);
    assert!(
        (300_000..1_250_000).contains(&est),
        "estimate {est} B/s for a 1 MB/s sink"
    );
    // After the first message (framed at the floor, measuring the link), every write call
    // carries one frame of at most a budget, where the fixed strategies' calls carry up to
    // 256 KiB (the whole message here).
    for (k, c) in calls.iter().enumerate().skip(1) {
        assert!(c.iter().all(|&n| n <= 12_000), "message {k}: {c:?}");
    }
    assert!(calls[1].len() >= 200_000 / 12_000, "{:?}", calls[1]);
    let (_, fixed, _) = run(AnyStrategy::Optimized, rate, &sizes);
    assert!(
        fixed[1].len() <= 2 && fixed[1][0] > 100_000,
        "{:?}",
        fixed[1]
    );
    // What went out decodes to the same messages.
    let rx = Receiver::spawn(Cursor::new(wire), &Config::default()).unwrap();
    for (k, &n) in sizes.iter().enumerate() {
        match rx.recv().unwrap() {
            Received::Message(m) => {
                assert_eq!((m.id(), m.body()), (k as u32 + 1, &rule_r(n)[..]));
            }
            other => panic!("{other:?}"),
        }
    }
}

/// The Data frames' ids and lengths in `wire`, in order.
fn data_frames(wire: &[u8]) -> Vec<(u32, u32)> {
    let mut frames = Vec::new();
    let mut at = 0;
    while at + 9 <= wire.len() {
        let id = u32::from_be_bytes(wire[at + 1..at + 5].try_into().unwrap());
        let len = u32::from_be_bytes(wire[at + 5..at + 9].try_into().unwrap());
        let data = wire[at] == 3;
        if data {
            frames.push((id, len));
        }
        at += 9 + if data { len as usize } else { 0 };
    }
    frames
}

#[test]
fn a_bulk_message_begun_at_a_slow_estimate_grows_its_frames_once_the_link_proves_fast() {
    // 100 kB/s for the first message (the estimate: 100 kB/s, a 10 ms budget is 1 kB), then
    // the sink speeds up a thousandfold.
    let wire = Arc::new(Mutex::new(Vec::new()));
    let calls = Arc::new(Mutex::new(Vec::new()));
    let slow = SlowSink {
        rate: 100_000,
        wire: wire.clone(),
        calls,
    };
    struct Switch(SlowSink, Arc<Mutex<u64>>);
    impl Write for Switch {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[io::IoSlice::new(buf)])
        }
        fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
            self.0.rate = *self.1.lock().unwrap();
            self.0.write_vectored(bufs)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let rate = Arc::new(Mutex::new(100_000));
    let tx = Sender::new(
        Switch(slow, rate.clone()),
        &Config::with_strategy(AnyStrategy::Adaptive(AdaptiveConfig::DEFAULT)),
    )
    .unwrap();
    tx.send_with_id(1, &rule_r(3000)).unwrap();
    let est = tx.link_estimate().unwrap().rate();
    assert!((50_000..150_000).contains(&est), "{est}");
    *rate.lock().unwrap() = 100_000_000;
    let bulk = rule_r(4 << 20);
    tx.send_with_id(2, &bulk).unwrap();
    tx.close().unwrap();
    let wire = std::mem::take(&mut *wire.lock().unwrap());
    let bulk_lens: Vec<u32> = data_frames(&wire)
        .into_iter()
        .filter_map(|(id, len)| (id == 2).then_some(len))
        .collect();
    // The bulk's first frame is cut at the slow estimate, its largest at the ceiling.
    assert!(bulk_lens[0] < 2000, "{:?}", &bulk_lens[..4]);
    assert_eq!(bulk_lens.iter().max(), Some(&65_536));
    assert!(bulk_lens.len() < 200, "{} frames", bulk_lens.len());
    let rx = Receiver::spawn(Cursor::new(wire), &Config::default()).unwrap();
    for (id, want) in [(1, rule_r(3000)), (2, bulk)] {
        match rx.recv().unwrap() {
            Received::Message(m) => assert!(m.id() == id && m.body() == &want[..]),
            other => panic!("{other:?}"),
        }
    }
}

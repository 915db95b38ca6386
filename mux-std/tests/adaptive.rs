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
    assert_decodes(wire, &sizes);
}

/// Checks that `wire` decodes to messages 1, 2, … of `sizes` bytes of `rule_r`.
fn assert_decodes(wire: Vec<u8>, sizes: &[usize]) {
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
    assert!((10_000..150_000).contains(&est), "{est}");
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

/// The tokio sender measures its link as the blocking one does.
#[cfg(feature = "tokio")]
mod tokio_sender {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use mux_std::tokio::AsyncSender;
    use tokio::io::AsyncWrite;

    use super::*;

    /// An async sink of `rate` bytes per second: a write completes once its bytes' time has
    /// passed (as an async UART driver's does), at most `max` bytes per call. The write is
    /// pending until then, and a thread wakes its task on time (tokio's timer would round
    /// every wait up to a millisecond).
    struct PacedAsync {
        rate: u64,
        max: usize,
        wire: Arc<Mutex<Vec<u8>>>,
        /// The write in progress: its length and when it completes.
        busy: Option<(usize, Instant)>,
    }

    impl AsyncWrite for PacedAsync {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let (n, due) = match self.busy {
                Some(busy) => busy,
                None => {
                    let n = buf.len().min(self.max);
                    self.wire.lock().unwrap().extend_from_slice(&buf[..n]);
                    let due =
                        Instant::now() + Duration::from_micros(n as u64 * 1_000_000 / self.rate);
                    self.busy = Some((n, due));
                    (n, due)
                }
            };
            let now = Instant::now();
            if now < due {
                let waker = cx.waker().clone();
                std::thread::spawn(move || {
                    std::thread::sleep(due - now);
                    waker.wake();
                });
                return Poll::Pending;
            }
            self.busy = None;
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn the_tokio_sender_learns_a_slow_sink_and_frames_at_its_rate() {
        // 100 kB/s: a 10 ms budget is 1,000 bytes on the wire, a write of a frame ~10 ms (a
        // task's wake-up, up to a millisecond on a loaded machine, is small beside it).
        let rate = 100_000;
        let wire = Arc::new(Mutex::new(Vec::new()));
        let sink = PacedAsync {
            rate,
            max: 64 << 10,
            wire: wire.clone(),
            busy: None,
        };
        let cfg = Config::with_strategy(AnyStrategy::Adaptive(AdaptiveConfig::DEFAULT));
        let tx = AsyncSender::new(sink, &cfg).unwrap();
        assert_eq!(tx.link_estimate().unwrap().rate(), 0);
        let sizes = [3000, 50_000];
        for (k, &n) in sizes.iter().enumerate() {
            tx.send_with_id(k as u32 + 1, &rule_r(n)).await.unwrap();
        }
        // Measured from the writes' durations.
        let est = tx.link_estimate().unwrap().rate();
        assert!(
            (30_000..125_000).contains(&est),
            "estimate {est} B/s for a 100 kB/s sink"
        );
        tx.close().await.unwrap();
        let wire = std::mem::take(&mut *wire.lock().unwrap());
        // The first frame goes at the floor (nothing measured yet), the bulk message in
        // frames of about a budget at the measured rate: more than the floor, at most a
        // budget.
        let frames = data_frames(&wire);
        let bulk: Vec<u32> = frames
            .iter()
            .filter_map(|&(id, len)| (id == 2).then_some(len))
            .collect();
        assert_eq!(frames[0], (1, 64));
        assert!(bulk.iter().all(|&len| len <= 1250), "{bulk:?}");
        assert!(bulk.iter().any(|&len| len > 300), "{bulk:?}");
        assert_decodes(wire, &sizes);
    }
}

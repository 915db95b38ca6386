//! Latency under load: small messages sent every few milliseconds by one thread while another
//! sends a bulk message, over a paced link ([`link`](crate::link)) or the unpaced socket pair,
//! through mux-std's `Sender` and `Receiver`.
//!
//! Each small message carries its send time (nanoseconds since the run's start, in its first
//! 8 bytes); its latency is from just before the send call to its complete arrival (the
//! `Receiver` hands it over). The bulk message's time is from its send call to its arrival.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use mux_std::{AnyStrategy, Config, Limits, Received, Receiver, Sender};

use crate::link::PacedWriter;

/// Size of each small message.
pub const SMALL_LEN: usize = 32;
/// Wire bytes of one small message: Start, Data and End headers and the payload.
pub const SMALL_WIRE: usize = SMALL_LEN + 27;
/// The bulk message's id (small ones count from 1).
const BULK_ID: u32 = u32::MAX;

/// The link a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// A socket pair paced at this many bytes per second.
    Paced(u64),
    /// The socket pair as it is.
    Unpaced,
}

/// What one run measured.
#[derive(Debug, Clone, Default)]
pub struct LatencyRun {
    /// The small messages' latencies during the bulk transfer, milliseconds, sorted.
    pub small_ms: Vec<f64>,
    /// Bulk payload bytes.
    pub bulk_bytes: usize,
    /// Seconds from the bulk message's send call to its arrival.
    pub bulk_secs: f64,
    /// Small messages sent while the bulk message went.
    pub small_during: usize,
    /// The paced link's error against its rate (`None` unpaced).
    pub pacing_error: Option<f64>,
    /// The paced link's largest write call, bytes (`None` unpaced).
    pub largest_call: Option<u64>,
    /// The sender's rate estimate at the end (Adaptive only), bytes per second.
    pub estimate: Option<u32>,
}

impl LatencyRun {
    /// The `q`-quantile (0–1) of the small messages' latency, ms (`NaN` without samples).
    pub fn quantile(&self, q: f64) -> f64 {
        if self.small_ms.is_empty() {
            return f64::NAN;
        }
        let i = ((self.small_ms.len() - 1) as f64 * q).round() as usize;
        self.small_ms[i]
    }

    /// The bulk payload's rate, bytes per second.
    pub fn bulk_rate(&self) -> f64 {
        self.bulk_bytes as f64 / self.bulk_secs
    }

    /// The bulk's goodput as a fraction of what the small messages leave of a link of `rate`
    /// bytes per second (their wire bytes take the rest).
    pub fn goodput_of_left(&self, rate: u64) -> f64 {
        let small = (self.small_during * SMALL_WIRE) as f64 / self.bulk_secs;
        self.bulk_rate() / (rate as f64 - small)
    }
}

/// One run: a `bulk`-byte message with `strategy` while a 32-byte one goes every `period`,
/// both from one `Sender` over `link`. A 1 KiB message goes first, alone (the link's warm-up,
/// for every strategy alike).
pub fn run(link: Link, strategy: AnyStrategy, bulk: usize, period: Duration) -> LatencyRun {
    let (a, b) = UnixStream::pair().expect("socketpair");
    let mut stats = None;
    let sink: Box<dyn Write + Send> = match link {
        Link::Paced(rate) => {
            let w = PacedWriter::new(a, rate);
            stats = Some((w.stats(), rate));
            Box::new(w)
        }
        Link::Unpaced => Box::new(a),
    };
    let big = u32::try_from(bulk + (1 << 20)).unwrap_or(u32::MAX);
    let rx_cfg = Config {
        limits: Limits::new(big),
        ..Config::default()
    };
    let tx = Sender::new(sink, &Config::with_strategy(strategy)).expect("config");
    let rx = Receiver::spawn(b, &rx_cfg).expect("receiver");
    let base = Instant::now();
    tx.send(&vec![1u8; 1024]).expect("warm-up");
    assert!(matches!(rx.recv(), Ok(Received::Message(_))));

    // Set by the receiver once the bulk message is in: the small messages stop.
    let done = AtomicBool::new(false);
    let payload = crate::payload(bulk);
    let mut out = LatencyRun {
        bulk_bytes: bulk,
        ..LatencyRun::default()
    };
    thread::scope(|s| {
        // The receiver: latencies of small messages, the bulk's arrival.
        let receiver = s.spawn(|| {
            let mut v = Vec::new();
            let mut bulk_at = None;
            while let Ok(item) = rx.recv() {
                let now = base.elapsed().as_nanos() as u64;
                match item {
                    Received::Message(m) if m.id() == BULK_ID => {
                        bulk_at = Some(Instant::now());
                        done.store(true, Ordering::Relaxed);
                        assert!(m.body() == &payload[..], "bulk message");
                    }
                    Received::Message(m) => {
                        let sent = u64::from_le_bytes(m.body()[..8].try_into().unwrap());
                        v.push((m.id(), sent, (now - sent) as f64 / 1e6));
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            (v, bulk_at)
        });
        // The small messages, every `period`, until the bulk has arrived.
        let small = s.spawn(|| {
            let mut next = Instant::now();
            let mut id = 1u32;
            while !done.load(Ordering::Relaxed) {
                let now = Instant::now();
                if next > now {
                    thread::sleep(next - now);
                }
                let mut p = [0u8; SMALL_LEN];
                p[..8].copy_from_slice(&(base.elapsed().as_nanos() as u64).to_le_bytes());
                tx.send_with_id(id, &p).expect("small send");
                id += 1;
                // A slot missed while the send waited is skipped, not made up in a burst.
                let now = Instant::now();
                while next <= now {
                    next += period;
                }
            }
        });
        thread::sleep(period * 2);
        let t0 = Instant::now();
        tx.send_with_id(BULK_ID, &payload).expect("bulk send");
        // The small messages stop once the bulk is in; closing ends the receiver.
        small.join().expect("small sender");
        out.estimate = tx.link_estimate().map(|l| l.rate());
        tx.close().expect("close");
        let (v, bulk_at) = receiver.join().expect("receiver");
        let end = bulk_at.expect("bulk arrived");
        out.bulk_secs = (end - t0).as_secs_f64();
        let (from, to) = (
            (t0 - base).as_nanos() as u64,
            (end - base).as_nanos() as u64,
        );
        for (_, sent, ms) in v {
            if sent >= from && sent <= to {
                out.small_ms.push(ms);
                out.small_during += 1;
            }
        }
    });
    out.small_ms.sort_by(f64::total_cmp);
    out.largest_call = stats.as_ref().map(|(s, _)| s.largest_call());
    out.pacing_error = stats.map(|(s, rate)| s.error(rate));
    out
}

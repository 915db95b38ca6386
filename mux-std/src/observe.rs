//! Distributions of a node: message sizes, frames per message, time a send waited for the
//! link, time from Start to End of received messages, receive pool use.
//!
//! Each is a fixed-bucket histogram with power-of-two buckets (the bucket rules of
//! [`mux_nostd::histogram`]): bucket 0 holds 0, bucket `i ≥ 1` holds `2^(i-1)..=2^i - 1`.
//! A node records them while it runs (unless [`Config::histograms`](crate::Config::histograms)
//! is off) into atomic counters that only one thread changes at a time (the sender under its
//! write lock, the reader in its thread), so a sample is a count of leading zeros, a load and a
//! store, and [`Node::metrics`](crate::Node::metrics) reads them without taking any lock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use mux_nostd::ProtocolError;
use mux_nostd::histogram::{bucket_max, bucket_of, quantile_bucket};

use crate::pool::BufferPool;

/// Buckets of a [`Histogram`]: the value 0, then one per power of two up to `u64::MAX`.
pub const BUCKETS: usize = 65;

/// Heap bytes a node's distributions take (six histograms of [`BUCKETS`] 64-bit counters,
/// 3120 bytes), allocated with the node whether [`Config::histograms`](crate::Config::histograms)
/// is on or not.
pub const NODE_BYTES: usize = 6 * BUCKETS * 8;

/// A distribution of `u64` values in power-of-two buckets (see the [module](self)).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Histogram {
    counts: [u64; BUCKETS],
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: [0; BUCKETS],
        }
    }
}

impl std::fmt::Debug for Histogram {
    /// The non-empty buckets as `upper bound: count`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.buckets().filter(|&(_, c)| c > 0))
            .finish()
    }
}

impl Histogram {
    /// The count of each bucket, bucket `i` at index `i`.
    pub const fn counts(&self) -> &[u64; BUCKETS] {
        &self.counts
    }

    /// Each bucket as (largest value it holds, count), smallest first.
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .map(|(i, &c)| (bucket_max(i), c))
    }

    /// Samples counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().fold(0, |a, &c| a.saturating_add(c))
    }

    /// An upper bound of the `per_mille`/1000 quantile: the largest value of the bucket that
    /// holds it (`quantile(990)` for p99). `None` when empty.
    pub fn quantile(&self, per_mille: u32) -> Option<u64> {
        quantile_bucket(&self.counts, per_mille).map(bucket_max)
    }

    /// The highest non-empty bucket's upper bound: every sample is at most this.
    pub fn max(&self) -> Option<u64> {
        self.counts.iter().rposition(|&c| c > 0).map(bucket_max)
    }

    /// Counts `n` samples of `value` (saturating), e.g. to build one from a capture.
    pub fn record_n(&mut self, value: u64, n: u64) {
        let c = &mut self.counts[bucket_of(value)];
        *c = c.saturating_add(n);
    }
}

/// A node's distributions (a part of [`Metrics`](crate::Metrics)). Empty when
/// [`Config::histograms`](crate::Config::histograms) is off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Distributions {
    /// Payload bytes of each message sent (completed).
    pub tx_bytes: Histogram,
    /// Frames of each message sent (Start, Data…, End).
    pub tx_frames: Histogram,
    /// Nanoseconds a blocking send waited for the link (the write lock held by another
    /// send): one sample per wait, and a 0 for each message or abort beyond those.
    pub send_wait_ns: Histogram,
    /// Payload bytes of each message received (completed).
    pub rx_bytes: Histogram,
    /// Nanoseconds from the read that brought a message's Start to the read that brought
    /// its End (0 when both came in one read).
    pub rx_latency_ns: Histogram,
    /// Receive pool buffers in use, sampled after every read.
    pub pool_in_use: Histogram,
}

/// Power-of-two histogram counters changed by one thread at a time, read by any.
#[derive(Debug)]
pub(crate) struct Counters([AtomicU64; BUCKETS]);

impl Default for Counters {
    fn default() -> Self {
        Self(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl Counters {
    /// Counts one sample: a load and a store, not a read-modify-write, since no other
    /// thread changes these counters at the same time. (A plain add: a 64-bit count of one
    /// per nanosecond takes 584 years to wrap.)
    #[inline(always)]
    pub(crate) fn record(&self, value: u64) {
        let c = &self.0[bucket_of(value)];
        c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Histogram {
        Histogram {
            counts: std::array::from_fn(|i| self.0[i].load(Ordering::Relaxed)),
        }
    }
}

/// The sender's distributions, changed under its write lock.
#[derive(Debug, Default)]
pub(crate) struct TxHistograms {
    /// Off: nothing is recorded ([`Config::histograms`](crate::Config::histograms)).
    pub(crate) on: bool,
    bytes: Counters,
    frames: Counters,
    wait: Counters,
}

impl TxHistograms {
    pub(crate) fn new(on: bool) -> Self {
        Self {
            on,
            ..Self::default()
        }
    }

    /// A message of `bytes` in `frames` frames is sent.
    #[inline(always)]
    pub(crate) fn message(&self, bytes: usize, frames: u32) {
        if self.on {
            self.bytes.record(bytes as u64);
            self.frames.record(u64::from(frames));
        }
    }

    /// A send waited for the write lock since `since` and holds it now.
    #[cold]
    pub(crate) fn waited(&self, since: Instant) {
        if self.on {
            let ns = since.elapsed().as_nanos();
            self.wait.record(u64::try_from(ns).unwrap_or(u64::MAX));
        }
    }

    /// Fills the send side of `d`; `ended`: messages sent plus aborted (the waits beyond
    /// those recorded count as 0).
    pub(crate) fn fill(&self, d: &mut Distributions, ended: u64) {
        if !self.on {
            return;
        }
        d.tx_bytes = self.bytes.snapshot();
        d.tx_frames = self.frames.snapshot();
        let mut wait = self.wait.snapshot();
        let zeros = ended.saturating_sub(wait.count());
        wait.record_n(0, zeros);
        d.send_wait_ns = wait;
    }
}

/// The receiver's distributions, changed by the reader only.
#[derive(Debug, Default)]
pub(crate) struct RxHistograms {
    bytes: Counters,
    latency: Counters,
    pool: Counters,
}

impl RxHistograms {
    /// Fills the receive side of `d`.
    pub(crate) fn fill(&self, d: &mut Distributions) {
        d.rx_bytes = self.bytes.snapshot();
        d.rx_latency_ns = self.latency.snapshot();
        d.pool_in_use = self.pool.snapshot();
    }
}

/// A node's distributions now, from its sender's and reader's counters; `tx`: the send
/// counters read just before.
pub(crate) fn distributions(
    tx: &crate::tx::TxStats,
    rx: &crate::reader::RxShared,
    counts: crate::TxCounts,
) -> Distributions {
    let mut d = Distributions::default();
    tx.hist
        .fill(&mut d, counts.messages.saturating_add(counts.aborted));
    rx.hist.fill(&mut d);
    d
}

/// Most open messages whose Start time is kept; past it the table is emptied (a message
/// dropped by a protocol error may leave its entry behind: this bounds them).
const MAX_TRACKED: usize = 2 * crate::config::TABLE_CAPACITY;

/// The reader's side: the time of the last read and the Start time of each open message.
pub(crate) struct RxObserver {
    pub(crate) hist: Option<Arc<RxHistograms>>,
    now: Option<Instant>,
    /// Open messages: id, the read that brought their Start, payload bytes so far
    /// (streaming mode; whole messages are measured when delivered).
    open: Vec<(u32, Instant, u64)>,
}

impl RxObserver {
    pub(crate) fn new(on: bool) -> Self {
        Self {
            hist: on.then(Arc::default),
            now: None,
            open: Vec::new(),
        }
    }

    /// Bytes were read: their time, and the pool's use.
    pub(crate) fn read(&mut self, pool: &BufferPool) {
        if let Some(h) = &self.hist {
            self.now = Some(Instant::now());
            h.pool.record(pool.stats().in_use as u64);
        }
    }

    #[inline]
    pub(crate) fn started(&mut self, id: u32) {
        if self.hist.is_none() {
            return;
        }
        let now = self.now.unwrap_or_else(Instant::now);
        self.forget(id);
        if self.open.len() >= MAX_TRACKED {
            self.open.clear();
        }
        self.open.push((id, now, 0));
    }

    /// A chunk of a message (streaming mode).
    #[inline]
    pub(crate) fn chunk(&mut self, id: u32, len: usize) {
        if let Some(e) = self.open.iter_mut().find(|e| e.0 == id) {
            e.2 = e.2.saturating_add(len as u64);
        }
    }

    /// Message `id` completed; `len`: its size if known (whole-message mode).
    #[inline]
    pub(crate) fn completed(&mut self, id: u32, len: Option<usize>) {
        let Some(h) = &self.hist else { return };
        let Some(i) = self.open.iter().position(|e| e.0 == id) else {
            return;
        };
        let (_, start, streamed) = self.open.swap_remove(i);
        // Start and End in one read (the common case for small messages): 0, without the
        // clock arithmetic.
        let ns = match self.now {
            Some(now) if now != start => now.saturating_duration_since(start).as_nanos(),
            _ => 0,
        };
        h.latency.record(u64::try_from(ns).unwrap_or(u64::MAX));
        h.bytes.record(len.map_or(streamed, |n| n as u64));
    }

    /// Message `id` was aborted or dropped.
    pub(crate) fn forget(&mut self, id: u32) {
        if let Some(i) = self.open.iter().position(|e| e.0 == id) {
            self.open.swap_remove(i);
        }
    }

    /// A protocol error that may have dropped a message.
    pub(crate) fn error(&mut self, e: &ProtocolError) {
        let id = match *e {
            ProtocolError::UnknownType { id, .. }
            | ProtocolError::FrameTooLarge { id, .. }
            | ProtocolError::MessageTooLarge { id, .. }
            | ProtocolError::DuplicateStart { id }
            | ProtocolError::PoolExhausted { id }
            | ProtocolError::Unfinished { id } => id,
            _ => return,
        };
        self.forget(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_reads_back_what_was_recorded() {
        let c = Counters::default();
        for v in [0, 1, 1000, 1000, 1 << 40, u64::MAX] {
            c.record(v);
        }
        let h = c.snapshot();
        assert_eq!(h.count(), 6);
        assert_eq!(h.counts()[10], 2);
        assert_eq!(h.quantile(500), Some(1023));
        assert_eq!(h.max(), Some(u64::MAX));
        assert_eq!(Histogram::default().max(), None);
        assert_eq!(h.buckets().nth(10), Some((1023, 2)));
        assert_eq!(format!("{h:?}").matches(':').count(), 5);
    }

    #[test]
    fn waits_beyond_the_recorded_ones_count_as_zero() {
        let tx = TxHistograms::new(true);
        tx.waited(Instant::now());
        let mut d = Distributions::default();
        tx.fill(&mut d, 10);
        assert_eq!(d.send_wait_ns.count(), 10);
        assert_eq!(d.send_wait_ns.counts()[0], 9);
        let off = TxHistograms::new(false);
        off.message(10, 3);
        off.waited(Instant::now());
        let mut d = Distributions::default();
        off.fill(&mut d, 5);
        assert_eq!(d, Distributions::default());
    }

    #[test]
    fn latency_is_from_the_start_read_to_the_end_read() {
        let pool = BufferPool::new(4, 1 << 10);
        let mut o = RxObserver::new(true);
        o.read(&pool);
        o.started(1);
        o.started(2);
        std::thread::sleep(std::time::Duration::from_millis(2));
        o.read(&pool);
        o.completed(1, Some(100));
        o.chunk(2, 10);
        o.chunk(2, 5);
        o.completed(2, None);
        o.completed(3, Some(5)); // never started: not counted
        let mut d = Distributions::default();
        o.hist.as_ref().unwrap().fill(&mut d);
        assert_eq!(d.rx_latency_ns.count(), 2);
        assert!(d.rx_latency_ns.quantile(0).unwrap() >= 2_000_000);
        assert_eq!((d.rx_bytes.counts()[7], d.rx_bytes.counts()[4]), (1, 1));
        assert_eq!(d.pool_in_use.count(), 2);
        o.started(4);
        o.error(&ProtocolError::PoolExhausted { id: 4 });
        assert!(o.open.is_empty());
    }
}

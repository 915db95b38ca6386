//! The Adaptive strategy: Data frames sized at run time so that one frame holds the link for at
//! most a latency budget.
//!
//! A [`LinkEstimator`] learns the link's rate from completed writes (bytes and the microseconds
//! they took, against a clock the driver supplies: [`Timed`] wraps any `embedded-io` sink with
//! a [`Clock`]) and the workload's message sizes (a fixed-bucket histogram). [`Adaptive`]
//! borrows one and cuts every message into chunks of `rate × budget − header` bytes, within
//! [`AdaptiveConfig::floor`] and [`AdaptiveConfig::ceiling`]. On a fast link the chunk is the
//! ceiling; on a UART at 115,200 baud (11,520 B/s) with the default 10 ms budget it is 106
//! bytes, so a message queued behind a bulk transfer waits at most one such frame.
//!
//! Everything is integer arithmetic, and the estimator's fields are atomics used with loads
//! and stores only (no compare-and-swap), so it is shared by reference between tasks or
//! threads and builds for Cortex-M0. Two writers recording at the same instant may lose one
//! sample: an estimate, not a count.

use core::fmt;
use core::sync::atomic::{AtomicU32, Ordering};

use crate::frame::HEADER_LEN;
use crate::strategy::Strategy;

/// The default latency budget: 10 ms.
pub const DEFAULT_BUDGET_US: u32 = 10_000;
/// The default smallest chunk (header overhead 12 % at most).
pub const DEFAULT_FLOOR: u32 = 64;
/// The default largest chunk (the Optimized table's largest).
pub const DEFAULT_CEILING: u32 = 65_536;

/// How [`Adaptive`] sizes its chunks: the latency budget and the bounds around it.
///
/// ```
/// use mux_nostd::AdaptiveConfig;
/// let uart = AdaptiveConfig { link_rate: 11_520, ..AdaptiveConfig::DEFAULT };
/// // 10 ms at 11,520 B/s is 115 bytes on the wire: a 9-byte header and 106 of payload.
/// assert_eq!(uart.chunk(), 106);
/// assert_eq!(AdaptiveConfig::DEFAULT.chunk_at(1_000_000_000), 65_536);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct AdaptiveConfig {
    /// Longest time, in microseconds, one Data frame may hold the link (default 10 ms).
    pub budget_us: u32,
    /// Smallest chunk, whatever the budget says (default 64 bytes): keeps the header overhead
    /// bounded on a very slow link, where the budget then cannot hold (below
    /// `(floor + 9) / budget` bytes per second).
    pub floor: u32,
    /// Largest chunk (default 64 KiB): bounds the memory a frame takes at the receiver.
    pub ceiling: u32,
    /// The link's rate in bytes per second when nothing has been measured (default 0:
    /// unknown, chunks are the floor until a write is measured). A firmware that knows its
    /// UART's baud rate sets it here (baud / 10 for 8N1) and needs no estimator.
    pub link_rate: u32,
}

impl AdaptiveConfig {
    /// 10 ms budget, 64-byte floor, 64 KiB ceiling, rate unknown.
    pub const DEFAULT: Self = Self {
        budget_us: DEFAULT_BUDGET_US,
        floor: DEFAULT_FLOOR,
        ceiling: DEFAULT_CEILING,
        link_rate: 0,
    };

    /// The default configuration with another budget.
    pub const fn with_budget_us(budget_us: u32) -> Self {
        Self {
            budget_us,
            ..Self::DEFAULT
        }
    }

    /// Wire bytes the link carries in one budget at `rate` bytes per second (0: unknown,
    /// then one floor-sized frame).
    #[inline]
    pub const fn budget_bytes(&self, rate: u32) -> u64 {
        if rate == 0 {
            return self.floor as u64 + HEADER_LEN as u64;
        }
        rate as u64 * self.budget_us as u64 / 1_000_000
    }

    /// The chunk at `rate` bytes per second (0: unknown): the payload of a frame that takes
    /// the budget on the wire, within the floor and the ceiling (never below 1).
    #[inline]
    pub const fn chunk_at(&self, rate: u32) -> u32 {
        let body = self.budget_bytes(rate).saturating_sub(HEADER_LEN as u64);
        let floor = if self.floor == 0 { 1 } else { self.floor };
        let ceiling = if self.ceiling < floor {
            floor
        } else {
            self.ceiling
        };
        if body < floor as u64 {
            floor
        } else if body > ceiling as u64 {
            ceiling
        } else {
            body as u32
        }
    }

    /// The chunk at [`link_rate`](Self::link_rate).
    #[inline]
    pub const fn chunk(&self) -> u32 {
        self.chunk_at(self.link_rate)
    }

    /// A rate (at least 1) from which [`chunk_at`](Self::chunk_at) is its value at the highest
    /// rate (the lowest such rate when that value is the ceiling).
    ///
    /// ```
    /// use mux_nostd::AdaptiveConfig;
    /// let c = AdaptiveConfig::DEFAULT;
    /// let r = c.top_rate();
    /// assert_eq!(r, 6_554_500); // (65,536 + 9) bytes in 10 ms
    /// assert_eq!(c.chunk_at(r), 65_536);
    /// assert!(c.chunk_at(r - 1) < 65_536);
    /// ```
    pub const fn top_rate(&self) -> u32 {
        if self.budget_us == 0 {
            return 1;
        }
        let top = self.chunk_at(u32::MAX) as u64 + HEADER_LEN as u64;
        let r = (top * 1_000_000).div_ceil(self.budget_us as u64);
        if r == 0 {
            1
        } else if r > u32::MAX as u64 {
            u32::MAX
        } else {
            r as u32
        }
    }
}

impl Default for AdaptiveConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl fmt::Display for AdaptiveConfig {
    /// `adaptive` for the default configuration, else its fields, e.g.
    /// `adaptive(budget_us=5000,floor=64,ceiling=65536,link_rate=0)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Self::DEFAULT {
            return f.write_str("adaptive");
        }
        write!(
            f,
            "adaptive(budget_us={},floor={},ceiling={},link_rate={})",
            self.budget_us, self.floor, self.ceiling, self.link_rate
        )
    }
}

/// Buckets of the message-size histogram: bucket `k` counts sizes in `(2^(k-1), 2^k]`
/// (bucket 0: 0 and 1 byte), the last one everything above 8 MiB.
pub const SIZE_BUCKETS: usize = 25;

/// A bucket's count at multiples of which the learned threshold is chosen again (its cost,
/// about 250 ns on a 2020s x86 core, spread over at least that many messages).
const RETHINK_EVERY: u32 = 256;
/// Once the histogram holds this many messages it halves every count, so that it follows a
/// workload that changes.
const DECAY_AT: u32 = 4096;
/// A write shorter than this cannot lower the rate estimate: a short write mostly measures the
/// call's own overhead, not the link.
pub const SLOW_SAMPLE_MIN_US: u32 = 100;
/// A faster rate is believed from writes that took at least this long together, or ...
pub const RISE_WINDOW_US: u32 = 1000;
/// ... that are worth at least this long at the current estimate together (a few writes
/// that went into a buffer, or that a pacing FIFO let through at once, are not enough).
pub const RISE_WORTH_US: u32 = 8000;
/// The threshold before the histogram has two populations: Hybrid's 4096.
const DEFAULT_THRESHOLD: u32 = 4096;

/// What an [`Adaptive`] strategy learns: the link's rate and the workload's message sizes.
///
/// Fed by whoever writes: [`record_write`](Self::record_write) after each completed write
/// ([`Timed`] does it for an `embedded-io` sink), [`record_message`](Self::record_message)
/// once per message ([`Adaptive`] does it when a frame plan consults it on a link where the
/// budget binds, below the top rate).
///
/// The rate is an integer estimate in bytes per second. A sample below the estimate (from a
/// write of at least [`SLOW_SAMPLE_MIN_US`]) replaces it at once: holding the budget matters
/// more than throughput, and a link that slowed down must not hold a waiting message for a
/// whole chunk sized for the old rate. Faster samples are pooled until they took
/// [`RISE_WINDOW_US`] together or are worth [`RISE_WORTH_US`] at the current estimate; the
/// pool's rate then moves the estimate half-way there, at most doubling it: from 11,520 B/s
/// to 4 GB/s in about 20 such windows (a large message's writes grow with the estimate, so it
/// takes one message of 1 MiB), and a few small writes that went into a buffer (a UART's
/// FIFO) cannot make a slow link look fast.
///
/// ```
/// use mux_nostd::LinkEstimator;
/// let link = LinkEstimator::new();
/// assert_eq!(link.rate(), 0);
/// link.record_write(115, 10_000); // 115 bytes took 10 ms: 11,500 B/s
/// assert_eq!(link.rate(), 11_500);
/// ```
#[derive(Debug)]
pub struct LinkEstimator {
    rate: AtomicU32,
    /// Bytes and microseconds of the faster samples pooled so far.
    pool_bytes: AtomicU32,
    pool_us: AtomicU32,
    hist: [AtomicU32; SIZE_BUCKETS],
    threshold: AtomicU32,
}

impl Default for LinkEstimator {
    fn default() -> Self {
        Self::new()
    }
}

/// The bucket of a message of `size` bytes.
#[inline]
pub const fn size_bucket(size: u32) -> usize {
    let k = (u32::BITS - size.saturating_sub(1).leading_zeros()) as usize;
    if k >= SIZE_BUCKETS {
        SIZE_BUCKETS - 1
    } else {
        k
    }
}

/// `bytes` in `us` microseconds (0 counts as 1) as bytes per second, saturating.
fn rate_of(bytes: u64, us: u64) -> u32 {
    let r = bytes.saturating_mul(1_000_000) / us.max(1);
    if r > u32::MAX as u64 {
        u32::MAX
    } else {
        r as u32
    }
}

/// Adds one to a counter that may race another writer (load and store: a lost update is an
/// estimate's error, and thumbv6m has no atomic read-modify-write). A histogram's count stays
/// far below `u32::MAX` (it is halved at [`DECAY_AT`]), so the addition cannot wrap.
#[inline]
fn bump(c: &AtomicU32) -> u32 {
    let n = c.load(Ordering::Relaxed).wrapping_add(1);
    c.store(n, Ordering::Relaxed);
    n
}

impl LinkEstimator {
    /// Nothing measured yet: rate unknown, empty histogram, threshold 4096.
    pub const fn new() -> Self {
        Self {
            rate: AtomicU32::new(0),
            pool_bytes: AtomicU32::new(0),
            pool_us: AtomicU32::new(0),
            hist: [const { AtomicU32::new(0) }; SIZE_BUCKETS],
            threshold: AtomicU32::new(DEFAULT_THRESHOLD),
        }
    }

    /// The estimated rate in bytes per second, 0 if nothing was measured (saturates at
    /// `u32::MAX`, about 4.3 GB/s).
    #[inline]
    pub fn rate(&self) -> u32 {
        self.rate.load(Ordering::Relaxed)
    }

    /// Records a completed write: `bytes` went out in `elapsed_us` microseconds. Call it for
    /// writes that reached the link (a blocking write to a UART, a socket); a write of 0 bytes
    /// is ignored.
    pub fn record_write(&self, bytes: usize, elapsed_us: u32) {
        if bytes == 0 {
            return;
        }
        let old = self.rate();
        let sample = rate_of(bytes as u64, elapsed_us as u64);
        if old == 0 || (sample < old && elapsed_us >= SLOW_SAMPLE_MIN_US) {
            self.rate.store(sample, Ordering::Relaxed);
            self.pool_bytes.store(0, Ordering::Relaxed);
            self.pool_us.store(0, Ordering::Relaxed);
            return;
        }
        // Pooled with the faster (or too short) samples before it.
        let pb = u64::from(self.pool_bytes.load(Ordering::Relaxed)).saturating_add(bytes as u64);
        let pu = u64::from(self.pool_us.load(Ordering::Relaxed)) + u64::from(elapsed_us);
        let worth_us = pb.saturating_mul(1_000_000) / u64::from(old);
        if worth_us < u64::from(RISE_WORTH_US) && pu < u64::from(RISE_WINDOW_US) {
            self.pool_bytes
                .store(pb.min(u64::from(u32::MAX)) as u32, Ordering::Relaxed);
            self.pool_us.store(pu as u32, Ordering::Relaxed);
            return;
        }
        self.pool_bytes.store(0, Ordering::Relaxed);
        self.pool_us.store(0, Ordering::Relaxed);
        let pooled = rate_of(pb, pu);
        let new = if pooled > old {
            (old + (pooled - old) / 2).min(old.saturating_mul(2))
        } else if pu >= u64::from(SLOW_SAMPLE_MIN_US) {
            pooled
        } else {
            old
        };
        self.rate.store(new, Ordering::Relaxed);
    }

    /// Forgets the rate (e.g. after the link was reconfigured).
    pub fn reset_rate(&self) {
        self.rate.store(0, Ordering::Relaxed);
    }

    /// Counts a message of `size` bytes in the histogram; each time a bucket's count reaches
    /// a multiple of 256 the threshold is chosen again (and once the histogram holds 4096
    /// messages, every count is halved).
    #[inline]
    pub fn record_message(&self, size: u32) {
        if bump(&self.hist[size_bucket(size)]).is_multiple_of(RETHINK_EVERY) {
            self.rethink();
        }
    }

    /// Chooses the threshold again (halving the counts first once there are many).
    #[cold]
    #[inline(never)]
    fn rethink(&self) {
        let mut counts = self.histogram();
        if counts.iter().sum::<u32>() >= DECAY_AT {
            for (n, c) in counts.iter_mut().zip(&self.hist) {
                *n /= 2;
                c.store(*n, Ordering::Relaxed);
            }
        }
        if let Some(t) = split_threshold(&counts) {
            self.threshold.store(t, Ordering::Relaxed);
        }
    }

    /// The learned small-message threshold: messages of at most this many bytes are the
    /// workload's small ones (4096 until the histogram holds two populations).
    #[inline]
    pub fn threshold(&self) -> u32 {
        self.threshold.load(Ordering::Relaxed)
    }

    /// The histogram's counts (bucket `k`: sizes in `(2^(k-1), 2^k]`).
    pub fn histogram(&self) -> [u32; SIZE_BUCKETS] {
        let mut counts = [0; SIZE_BUCKETS];
        for (n, c) in counts.iter_mut().zip(&self.hist) {
            *n = c.load(Ordering::Relaxed);
        }
        counts
    }

    /// `config` with the estimated rate as its [`link_rate`](AdaptiveConfig::link_rate)
    /// (the configured one while nothing is measured).
    #[inline]
    pub fn config_now(&self, config: &AdaptiveConfig) -> AdaptiveConfig {
        let rate = self.rate();
        AdaptiveConfig {
            link_rate: if rate == 0 { config.link_rate } else { rate },
            ..*config
        }
    }
}

/// The small-message threshold of a size histogram: the bucket edge that splits it into the
/// two classes with the least spread of log-size within each (Otsu's criterion: the split
/// with the largest `w0 · w1 · (μ0 − μ1)²`, in integers). `None` while fewer than two buckets
/// are used.
///
/// The modelled cost of a split is how far each message's size is (in powers of two) from
/// the typical size of its class: the best split puts the workload's small messages, the
/// ones a latency budget protects, on one side and its bulk on the other, wherever the gap
/// between them lies.
pub fn split_threshold(counts: &[u32; SIZE_BUCKETS]) -> Option<u32> {
    // Scaled down to at most 4096 messages in all (what decay keeps an estimator's histogram
    // near anyway), so that every product below fits a u64: no 128-bit arithmetic, which a
    // Cortex-M0 would do in software.
    let total: u64 = counts.iter().map(|&n| u64::from(n)).sum();
    let shift = (u64::BITS - total.leading_zeros()).saturating_sub(12);
    let (w, s) = counts
        .iter()
        .enumerate()
        .fold((0u64, 0u64), |(w, s), (k, &n)| {
            let n = u64::from(n) >> shift;
            (w + n, s + n * k as u64)
        });
    let (mut w0, mut s0) = (0u64, 0u64);
    let mut best: Option<(u64, usize)> = None;
    for (k, &n) in counts.iter().enumerate().take(SIZE_BUCKETS - 1) {
        let n = u64::from(n) >> shift;
        if n == 0 {
            // The same split as the bucket before: its score did not win then either.
            continue;
        }
        w0 += n;
        s0 += n * k as u64;
        let w1 = w - w0;
        if w0 == 0 || w1 == 0 {
            continue;
        }
        let s1 = s - s0;
        // (μ0 − μ1)² · w0 · w1 = (s0·w1 − s1·w0)² / (w0·w1); with w ≤ 4096 and s ≤ 24·w,
        // the difference is below 2^29 and its square below 2^58.
        let d = (s0 * w1).abs_diff(s1 * w0);
        let score = d * d / (w0 * w1);
        if best.is_none_or(|(b, _)| score > b) {
            best = Some((score, k));
        }
    }
    best.map(|(_, k)| 1u32 << k)
}

/// The Adaptive strategy over a shared [`LinkEstimator`]: chunks of
/// [`AdaptiveConfig::chunk_at`] the estimated rate; Start carries 0, as Hybrid's.
///
/// Each time a frame plan consults it (once per message) on a link slower than
/// [`AdaptiveConfig::top_rate`] it counts the message in the estimator's histogram. At the top
/// rate and above it does not: every chunk there is the ceiling and holds the link for less
/// than the budget, so the learned threshold changes nothing, and a fast link's message costs
/// a load and a comparison (Hybrid's cost). The histogram keeps what it learned while the link
/// was slower and goes on learning when it is again. The link's rate comes from whoever
/// writes: wrap the sink in [`Timed`], or call [`LinkEstimator::record_write`].
///
/// ```
/// use mux_nostd::{Adaptive, AdaptiveConfig, LinkEstimator, Strategy};
/// let link = LinkEstimator::new();
/// let s = Adaptive::new(AdaptiveConfig::DEFAULT, &link);
/// assert_eq!(s.chunk_size(16_384), 64); // nothing measured: the floor
/// link.record_write(1150, 100_000); // 11,500 B/s
/// assert_eq!(s.chunk_size(16_384), 106);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Adaptive<'a> {
    config: AdaptiveConfig,
    link: &'a LinkEstimator,
    /// The rate from which the chunk is [`top`](Self::top) (worked out once: a fast link's
    /// message then costs a load and a comparison, no arithmetic).
    top_rate: u32,
    /// The chunk at the highest rates.
    top: u32,
}

impl<'a> Adaptive<'a> {
    /// The strategy of `config` over `link`.
    pub const fn new(config: AdaptiveConfig, link: &'a LinkEstimator) -> Self {
        Self {
            config,
            link,
            top_rate: config.top_rate(),
            top: config.chunk_at(u32::MAX),
        }
    }

    /// The configuration.
    pub const fn config(&self) -> &AdaptiveConfig {
        &self.config
    }

    /// The estimator.
    pub const fn link(&self) -> &'a LinkEstimator {
        self.link
    }

    /// The chunk a message would get now (without counting it).
    #[inline]
    pub fn chunk_now(&self) -> u32 {
        if self.link.rate() >= self.top_rate {
            self.top
        } else {
            self.chunk_below_top()
        }
    }

    /// [`chunk_now`](Self::chunk_now) on a link slower than [`top_rate`](Self::top_rate)
    /// (or not measured yet).
    #[inline(never)]
    fn chunk_below_top(&self) -> u32 {
        self.link.config_now(&self.config).chunk()
    }

    /// Counts a message of `total` bytes in the histogram and returns
    /// [`chunk_below_top`](Self::chunk_below_top): a frame plan's call on a link where the
    /// budget binds.
    #[inline(never)]
    fn counted_chunk_below_top(&self, total: u32) -> u32 {
        self.link.record_message(total);
        self.chunk_below_top()
    }

    /// Whether a message of `total` bytes is one of the workload's small ones (at most the
    /// learned threshold, or one chunk).
    #[inline]
    pub fn is_small(&self, total: u32) -> bool {
        total <= self.link.threshold() || total <= self.chunk_now()
    }
}

impl Strategy for Adaptive<'_> {
    #[inline]
    fn start_len(&self, _total: u32) -> u32 {
        0
    }
    #[inline]
    fn chunk_size(&self, total: u32) -> u32 {
        if self.link.rate() >= self.top_rate {
            self.top
        } else {
            self.counted_chunk_below_top(total)
        }
    }
}

/// A monotonic microsecond clock for [`Timed`]: a hardware timer, `embassy-time`, or
/// `std::time::Instant` on a host. It may wrap around at `u32::MAX` (writes shorter than
/// about 71 minutes are timed right).
pub trait Clock {
    /// Whether this clock tells time: `false` only for [`NoClock`], so that a reader or
    /// writer without a clock compiles its timing out.
    const TIMED: bool = true;
    /// Microseconds since any fixed point.
    fn now_us(&self) -> u32;
}

impl<C: Clock + ?Sized> Clock for &C {
    const TIMED: bool = C::TIMED;
    #[inline]
    fn now_us(&self) -> u32 {
        (**self).now_us()
    }
}

/// A plain function as the clock (`fn() -> u32`, e.g. one reading a hardware timer).
impl Clock for fn() -> u32 {
    #[inline]
    fn now_us(&self) -> u32 {
        self()
    }
}

/// No clock: the default of readers and writers, whose timing distributions then stay empty
/// and cost nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoClock;

impl Clock for NoClock {
    const TIMED: bool = false;
    #[inline(always)]
    fn now_us(&self) -> u32 {
        0
    }
}

/// A sink whose writes are timed against a [`Clock`] and recorded in a [`LinkEstimator`]:
/// put it under a [`Writer`](crate::Writer) or [`AsyncWriter`](crate::AsyncWriter) that uses
/// [`Adaptive`] over the same estimator.
///
/// Only blocking (or awaited) writes measure the link; a sink that buffers (a DMA ring, a
/// driver FIFO) makes its first writes look fast until it fills, which the estimator's rule
/// tolerates (see [`LinkEstimator`]).
#[derive(Debug)]
pub struct Timed<'a, W, C> {
    io: W,
    clock: C,
    link: &'a LinkEstimator,
}

impl<'a, W, C: Clock> Timed<'a, W, C> {
    /// Times `io`'s writes with `clock` into `link`.
    pub const fn new(io: W, clock: C, link: &'a LinkEstimator) -> Self {
        Self { io, clock, link }
    }

    /// The sink.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.io
    }

    /// The sink back.
    pub fn into_inner(self) -> W {
        self.io
    }
}

impl<W: embedded_io::ErrorType, C> embedded_io::ErrorType for Timed<'_, W, C> {
    type Error = W::Error;
}

impl<W: embedded_io::Write, C: Clock> embedded_io::Write for Timed<'_, W, C> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        let t0 = self.clock.now_us();
        let n = self.io.write(buf)?;
        self.link
            .record_write(n, self.clock.now_us().wrapping_sub(t0));
        Ok(n)
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        self.io.flush()
    }
}

impl<W: embedded_io_async::Write, C: Clock> embedded_io_async::Write for Timed<'_, W, C> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        let t0 = self.clock.now_us();
        let n = self.io.write(buf).await?;
        self.link
            .record_write(n, self.clock.now_us().wrapping_sub(t0));
        Ok(n)
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        self.io.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_powers_of_two() {
        for (size, k) in [(0, 0), (1, 0), (2, 1), (3, 2), (4, 2), (5, 3), (1024, 10)] {
            assert_eq!(size_bucket(size), k, "size {size}");
        }
        assert_eq!(size_bucket(1025), 11);
        assert_eq!(size_bucket(u32::MAX), SIZE_BUCKETS - 1);
    }

    #[test]
    fn chunk_follows_the_budget_within_its_bounds() {
        let c = AdaptiveConfig::DEFAULT;
        assert_eq!(c.chunk_at(0), 64);
        assert_eq!(c.chunk_at(960), 64); // 9600 baud: the floor wins
        assert_eq!(c.chunk_at(11_520), 106);
        assert_eq!(c.chunk_at(1_000_000), 9_991);
        assert_eq!(c.chunk_at(u32::MAX), 65_536);
        let odd = AdaptiveConfig {
            floor: 0,
            ceiling: 0,
            ..c
        };
        assert_eq!(odd.chunk_at(11_520), 1);
    }

    #[test]
    fn the_chunk_above_the_top_rate_is_the_one_worked_out_in_full() {
        let configs = [
            AdaptiveConfig::DEFAULT,
            AdaptiveConfig::with_budget_us(1),
            AdaptiveConfig::with_budget_us(0),
            AdaptiveConfig::with_budget_us(u32::MAX),
            AdaptiveConfig {
                floor: 0,
                ceiling: 0,
                link_rate: 11_520,
                ..AdaptiveConfig::DEFAULT
            },
            AdaptiveConfig {
                floor: 5000,
                ceiling: 100,
                ..AdaptiveConfig::DEFAULT
            },
            AdaptiveConfig {
                ceiling: u32::MAX,
                ..AdaptiveConfig::DEFAULT
            },
        ];
        for c in configs {
            let top = c.top_rate();
            for rate in [
                0,
                1,
                960,
                11_520,
                top - 1,
                top,
                top.saturating_add(1),
                1 << 30,
                u32::MAX,
            ] {
                let l = LinkEstimator::new();
                l.rate.store(rate, Ordering::Relaxed);
                let a = Adaptive::new(c, &l);
                assert_eq!(a.chunk_now(), l.config_now(&c).chunk(), "{c} at {rate}");
            }
            assert_eq!(c.chunk_at(top), c.chunk_at(u32::MAX), "{c}");
        }
    }

    #[test]
    fn a_slower_sample_wins_at_once_a_faster_one_halfway_at_most_doubling() {
        let l = LinkEstimator::new();
        l.record_write(1_000_000, 1000); // 1 GB/s
        assert_eq!(l.rate(), 1_000_000_000);
        l.record_write(10, 1); // short: cannot lower it
        assert_eq!(l.rate(), 1_000_000_000);
        l.record_write(1152, 100_000);
        assert_eq!(l.rate(), 11_520);
        l.record_write(1_000_000, 1000);
        assert_eq!(l.rate(), 23_040);
        // Faster writes worth less than 8 ms at the estimate are pooled first.
        l.record_write(150, 1);
        assert_eq!(l.rate(), 23_040);
        l.record_write(50, 1); // 200 bytes: over 8 ms at 23,040 B/s
        assert_eq!(l.rate(), 46_080);
    }

    #[test]
    fn the_split_separates_two_populations() {
        let mut h = [0u32; SIZE_BUCKETS];
        h[size_bucket(32)] = 100;
        h[size_bucket(16_384)] = 2;
        let t = split_threshold(&h).unwrap();
        assert!((32..16_384).contains(&t), "{t}");
        h = [0; SIZE_BUCKETS];
        h[3] = 5;
        assert_eq!(split_threshold(&h), None);
        // Counts at their largest: scaled down, no overflow.
        let mut h = [u32::MAX; SIZE_BUCKETS];
        h[20] = 0;
        assert!(split_threshold(&h).is_some());
    }
}

//! The senders' side of [`Adaptive`](mux_nostd::Adaptive): the link estimator they feed, and
//! the bounds the latency budget puts on their write calls.
//!
//! When the node's strategy is [`AnyStrategy::Adaptive`], every write call of the sender (the
//! blocking [`Sender`](crate::Sender) or the tokio one; an awaited write from its first poll to
//! its completion) is timed with [`Instant`] and recorded in a [`LinkEstimator`], every
//! message sent while the link is slower than the configuration's top rate is counted in its
//! histogram, and each message is framed at the estimated rate (its
//! frames not written yet follow the estimate while it goes). Each write call of the blocking
//! sender then carries at most one budget's worth of bytes at that rate (plus the frame it
//! starts with), whoever waits: a message that starts waiting during a call waits for that
//! call, so the call is what the budget must bound. The same bound caps
//! [`Config::hold_budget`](crate::Config::hold_budget) (both senders) and the turns that large
//! messages take while only other large messages wait.

use std::io::{self, IoSlice, Write};
use std::time::Instant;

use mux_nostd::{AdaptiveConfig, AnyStrategy, LinkEstimator, Strategy};

use crate::sync::Arc;
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// On a link this fast (one budget carries at least this many bytes), only write calls of at
/// least [`ALWAYS_TIMED`] bytes and one other in [`SAMPLE_EVERY`] are timed: the chunk is the
/// ceiling anyway, and two clock reads per call would cost a small message's send about 40 ns
/// (a tenth of it at 1 KiB). A link that slows down is noticed at its first large write, or
/// within that many small ones.
const FAST_BUDGET_BYTES: u64 = 4 << 20;
/// See [`FAST_BUDGET_BYTES`].
const SAMPLE_EVERY: u32 = 256;
/// See [`FAST_BUDGET_BYTES`].
const ALWAYS_TIMED: usize = 16 << 10;

/// A sender's estimator and its Adaptive configuration.
#[derive(Debug)]
struct Link {
    est: LinkEstimator,
    config: AdaptiveConfig,
    /// Write calls left untimed before the next timed one (fast links only).
    untimed: AtomicU32,
    /// The rate from which a link counts as fast ([`FAST_BUDGET_BYTES`] per budget).
    fast_rate: u32,
    /// The rate from which `config`'s chunk is `top` ([`AdaptiveConfig::top_rate`]).
    top_rate: u32,
    /// `config`'s chunk at the highest rates.
    top: u32,
}

impl Link {
    /// The chunk of `config` at the rate estimated now.
    #[inline]
    fn chunk(&self) -> u32 {
        if self.est.rate() >= self.top_rate {
            self.top
        } else {
            self.est.config_now(&self.config).chunk()
        }
    }

    /// [`chunk`](Self::chunk) for a message of `len` bytes, counted in the histogram while
    /// the link is slower than the top rate (as [`Adaptive`](mux_nostd::Adaptive) does: at
    /// the top rate every chunk is the ceiling and the learned threshold changes nothing).
    #[inline]
    fn counted_chunk(&self, len: usize) -> u32 {
        if self.est.rate() >= self.top_rate {
            self.top
        } else {
            self.count_below_top(len)
        }
    }

    /// [`counted_chunk`](Self::counted_chunk) below the top rate.
    #[inline(never)]
    fn count_below_top(&self, len: usize) -> u32 {
        self.est
            .record_message(u32::try_from(len).unwrap_or(u32::MAX));
        self.est.config_now(&self.config).chunk()
    }
}

/// How one message is framed: its strategy resolved to the two numbers a frame plan needs
/// (under Adaptive, at the rate estimated when it is sent), worked out once per message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Resolved {
    /// The Start frame carries the total (Original).
    start_total: bool,
    /// Every Data frame but the last.
    chunk: u32,
    /// Framed by Adaptive.
    adaptive: bool,
    /// Framed by the sender's own Adaptive configuration: the chunk of the frames not
    /// written yet follows the estimate while the message goes ([`Pace::chunk`]).
    follows: bool,
}

impl Resolved {
    /// `strategy` for a message of `len` bytes, as it is (Adaptive at its configured rate).
    #[inline]
    pub(crate) fn of(strategy: AnyStrategy, len: usize) -> Self {
        Self {
            start_total: matches!(strategy, AnyStrategy::Original),
            chunk: strategy.chunk_size(u32::try_from(len).unwrap_or(u32::MAX)),
            adaptive: matches!(strategy, AnyStrategy::Adaptive(_)),
            follows: false,
        }
    }

    /// Whether the message's chunk follows the link's estimate while it goes.
    #[inline]
    pub(crate) fn follows(&self) -> bool {
        self.follows
    }
}

impl Strategy for Resolved {
    #[inline]
    fn start_len(&self, total: u32) -> u32 {
        if self.start_total { total } else { 0 }
    }
    #[inline]
    fn chunk_size(&self, _total: u32) -> u32 {
        self.chunk
    }
}

/// The estimator of a sender whose strategy is Adaptive (`None` otherwise: nothing timed,
/// nothing capped, the other strategies' paths unchanged).
#[derive(Debug, Clone, Default)]
pub(crate) struct Pace {
    link: Option<Arc<Link>>,
}

impl Pace {
    /// The pacing of a sender whose default strategy is `strategy`.
    pub(crate) fn new(strategy: AnyStrategy) -> Self {
        match strategy {
            AnyStrategy::Adaptive(config) => Self {
                link: Some(Arc::new(Link {
                    est: LinkEstimator::new(),
                    config,
                    untimed: AtomicU32::new(0),
                    fast_rate: u32::try_from(
                        FAST_BUDGET_BYTES * 1_000_000 / u64::from(config.budget_us.max(1)),
                    )
                    .unwrap_or(u32::MAX),
                    top_rate: config.top_rate(),
                    top: config.chunk_at(u32::MAX),
                })),
            },
            _ => Self::default(),
        }
    }

    /// The estimator, if the sender has one.
    pub(crate) fn estimator(&self) -> Option<&LinkEstimator> {
        self.link.as_ref().map(|l| &l.est)
    }

    /// How one message of `len` bytes is framed: Adaptive at the rate estimated now (on a
    /// fast link with the sender's own configuration a load and a comparison; below its top
    /// rate the message is also counted in the histogram), any other strategy as it is.
    /// `strategy` is the send's own, `default` the sender's.
    #[inline]
    pub(crate) fn resolve(
        &self,
        strategy: Option<AnyStrategy>,
        default: AnyStrategy,
        len: usize,
    ) -> Resolved {
        let Some(link) = &self.link else {
            return Resolved::of(strategy.unwrap_or(default), len);
        };
        let (chunk, follows) = match strategy {
            // The sender's own Adaptive configuration: its top rate is known.
            None => (link.counted_chunk(len), true),
            Some(AnyStrategy::Adaptive(c)) => {
                link.est
                    .record_message(u32::try_from(len).unwrap_or(u32::MAX));
                (link.est.config_now(&c).chunk(), false)
            }
            Some(s) => return Resolved::of(s, len),
        };
        Resolved {
            start_total: false,
            chunk,
            adaptive: true,
            follows,
        }
    }

    /// The chunk of the sender's own Adaptive configuration at the rate estimated now (for a
    /// message that [`follows`](Resolved::follows) the link; 1 without an estimator).
    #[inline]
    pub(crate) fn chunk(&self) -> u32 {
        self.link.as_ref().map_or(1, |l| l.chunk())
    }

    /// Whether a message of `len` bytes framed as `strategy` says is one of the workload's
    /// small ones by the learned threshold (waiting for the lock, it brings back the tight
    /// bound).
    #[inline]
    pub(crate) fn is_small(&self, strategy: &Resolved, len: usize) -> bool {
        strategy.adaptive
            && self
                .estimator()
                .is_some_and(|l| len <= l.threshold() as usize)
    }

    /// Most payload bytes a write call (or a hold once others wait) carries: `cap`, or less
    /// under Adaptive (one budget at the estimated rate).
    #[inline]
    pub(crate) fn cap(&self, cap: usize) -> usize {
        match &self.link {
            None => cap,
            Some(link) => {
                let c = link.est.config_now(&link.config);
                cap.min(usize::try_from(c.budget_bytes(c.link_rate)).unwrap_or(usize::MAX))
            }
        }
    }

    /// One vectored write of at least one byte (retrying `Interrupted`), counted in `writes`
    /// and, under Adaptive, timed into the estimator. `len` is the slices' total length, or
    /// more.
    #[inline]
    pub(crate) fn write<W: Write>(
        &self,
        io: &mut W,
        iov: &[IoSlice<'_>],
        len: usize,
        writes: &AtomicU64,
    ) -> io::Result<usize> {
        let t0 = self.start(len);
        let n = crate::tx::write_some(io, iov, writes)?;
        self.done(t0, n);
        Ok(n)
    }

    /// Before a write call of `len` bytes (or fewer): the time it starts if it is to be
    /// timed (under Adaptive: always but for small writes on a fast link, see
    /// [`FAST_BUDGET_BYTES`]), for [`done`](Self::done).
    #[inline]
    pub(crate) fn start(&self, len: usize) -> Option<Instant> {
        let link = self.link.as_ref()?;
        if len < ALWAYS_TIMED && link.est.rate() >= link.fast_rate {
            let k = link.untimed.load(Ordering::Relaxed);
            if k > 0 {
                link.untimed.store(k - 1, Ordering::Relaxed);
                return None;
            }
            link.untimed.store(SAMPLE_EVERY - 1, Ordering::Relaxed);
        }
        Some(Instant::now())
    }

    /// After a write call that [`start`](Self::start) timed from `t0`: its `n` bytes are
    /// recorded in the estimator.
    #[inline]
    pub(crate) fn done(&self, t0: Option<Instant>, n: usize) {
        if let (Some(t0), Some(link)) = (t0, &self.link) {
            let us = u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX);
            link.est.record_write(n, us);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_framed_at_the_estimated_rate_whichever_way_it_is_resolved() {
        let cfg = AdaptiveConfig::DEFAULT;
        let pace = Pace::new(AnyStrategy::Adaptive(cfg));
        let est = pace.estimator().unwrap();
        let own = AnyStrategy::Adaptive(cfg);
        let other = AdaptiveConfig::with_budget_us(1000);
        // Nothing measured, 11.5 kB/s, 1 MB/s, 1 GB/s (the ceiling), and back down.
        for (bytes, us) in [(0, 1), (1150, 100_000), (10_000, 10_000), (1 << 30, 1000)] {
            est.record_write(bytes, us);
            let r = pace.resolve(None, own, 100_000);
            assert_eq!(r.chunk_size(100_000), est.config_now(&cfg).chunk());
            assert_eq!(r.start_len(100_000), 0);
            assert!(r.adaptive);
            let r = pace.resolve(Some(AnyStrategy::Adaptive(other)), own, 100_000);
            assert_eq!(r.chunk_size(100_000), est.config_now(&other).chunk());
            let r = pace.resolve(Some(AnyStrategy::Original), own, 100_000);
            assert_eq!((r.chunk_size(100_000), r.start_len(7)), (1024, 7));
            assert!(!r.adaptive && !pace.is_small(&r, 10));
        }
        while est.rate() < cfg.top_rate() {
            est.record_write(1 << 30, 1000);
        }
        // At the top rate the sender's own configuration counts nothing more; a per-send
        // configuration still does.
        let counted = |est: &LinkEstimator| est.histogram().iter().sum::<u32>();
        let before = counted(est);
        assert_eq!(pace.resolve(None, own, 10).chunk_size(10), 65_536);
        assert_eq!(counted(est), before);
        pace.resolve(Some(AnyStrategy::Adaptive(other)), own, 10);
        assert_eq!(counted(est), before + 1);
        // Slower again: counted.
        est.record_write(1150, 100_000);
        pace.resolve(None, own, 10);
        assert_eq!(counted(est), before + 2);
        // A sender of another strategy has no estimator and resolves as the strategy says.
        let plain = Pace::new(AnyStrategy::Optimized);
        let r = plain.resolve(None, AnyStrategy::Optimized, 100_000);
        assert_eq!(r.chunk_size(100_000), 16_384);
    }
}

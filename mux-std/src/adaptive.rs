//! The blocking sender's side of [`Adaptive`](mux_nostd::Adaptive): the link estimator it
//! feeds, and the bounds the latency budget puts on its write calls.
//!
//! When the node's strategy is [`AnyStrategy::Adaptive`], every write call of the sender is
//! timed with [`Instant`] and recorded in a [`LinkEstimator`], every message is counted in its
//! histogram, and each message is framed at the estimated rate. Each write call then carries
//! at most one budget's worth of bytes at that rate (plus the frame it starts with), whoever
//! waits: a message that starts waiting during a call waits for that call, so the call is what
//! the budget must bound. The same bound caps [`Config::hold_budget`](crate::Config::hold_budget)
//! and the turns that large messages take while only other large messages wait.

use std::io::{self, IoSlice, Write};
use std::time::Instant;

use mux_nostd::{AdaptiveConfig, AnyStrategy, LinkEstimator};

use crate::sync::Arc;
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// On a link this fast (one budget carries at least this many bytes), only write calls of at
/// least [`ALWAYS_TIMED`] bytes and one other in [`SAMPLE_EVERY`] are timed: the chunk is the
/// ceiling anyway, and two clock reads per call would cost a small message's send about 40 ns.
/// A link that slows down is noticed at its first large write, or within that many small ones.
const FAST_BUDGET_BYTES: u64 = 4 << 20;
/// See [`FAST_BUDGET_BYTES`].
const SAMPLE_EVERY: u32 = 64;
/// See [`FAST_BUDGET_BYTES`].
const ALWAYS_TIMED: usize = 64 << 10;

/// A sender's estimator and its Adaptive configuration.
#[derive(Debug)]
struct Link {
    est: LinkEstimator,
    config: AdaptiveConfig,
    /// Write calls not timed since the last timed one (fast links only).
    untimed: AtomicU32,
    /// The rate from which a link counts as fast ([`FAST_BUDGET_BYTES`] per budget).
    fast_rate: u32,
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
                })),
            },
            _ => Self::default(),
        }
    }

    /// The estimator, if the sender has one.
    pub(crate) fn estimator(&self) -> Option<&LinkEstimator> {
        self.link.as_ref().map(|l| &l.est)
    }

    /// The strategy one message of `len` bytes is framed with: an Adaptive one at the rate
    /// estimated now (the message is counted in the histogram), any other as it is.
    #[inline]
    pub(crate) fn resolve(&self, strategy: AnyStrategy, len: usize) -> AnyStrategy {
        match (strategy, &self.link) {
            (AnyStrategy::Adaptive(c), Some(link)) => {
                link.est
                    .record_message(u32::try_from(len).unwrap_or(u32::MAX));
                AnyStrategy::Adaptive(link.est.config_now(&c))
            }
            (s, _) => s,
        }
    }

    /// Whether a message of `len` bytes framed with `strategy` is one of the workload's small
    /// ones by the learned threshold (waiting for the lock, it brings back the tight bound).
    #[inline]
    pub(crate) fn is_small(&self, strategy: &AnyStrategy, len: usize) -> bool {
        matches!(strategy, AnyStrategy::Adaptive(_))
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
    /// and, under Adaptive, timed into the estimator.
    #[inline]
    pub(crate) fn write<W: Write>(
        &self,
        io: &mut W,
        iov: &[IoSlice<'_>],
        writes: &AtomicU64,
    ) -> io::Result<usize> {
        let Some(link) = &self.link else {
            return crate::tx::write_some(io, iov, writes);
        };
        if link.est.rate() >= link.fast_rate
            && iov.iter().map(|b| b.len()).sum::<usize>() < ALWAYS_TIMED
        {
            let k = link.untimed.load(Ordering::Relaxed) + 1;
            if k < SAMPLE_EVERY {
                link.untimed.store(k, Ordering::Relaxed);
                return crate::tx::write_some(io, iov, writes);
            }
            link.untimed.store(0, Ordering::Relaxed);
        }
        let t0 = Instant::now();
        let n = crate::tx::write_some(io, iov, writes)?;
        let us = u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX);
        link.est.record_write(n, us);
        Ok(n)
    }
}

//! Send counters, readable without the write lock, and the link's state.

use crate::observe::TxHistograms;
use crate::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Send counters (a part of [`Metrics`](crate::Metrics)). They saturate at `u64::MAX`
/// instead of wrapping around.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TxCounts {
    /// Messages completed (End written).
    pub messages: u64,
    /// Payload bytes of completed messages.
    pub bytes: u64,
    /// Messages ended with Abort (cancelled, timed out, or cut by close).
    pub aborted: u64,
    /// Write calls made to the sink.
    pub writes: u64,
}

/// Send counters and the broken flag, updated under the write lock and readable without it
/// (so that metrics never wait for a send stuck in the kernel).
#[derive(Debug, Default)]
pub(crate) struct TxStats {
    pub(super) messages: AtomicU64,
    pub(super) bytes: AtomicU64,
    pub(crate) aborted: AtomicU64,
    pub(crate) writes: AtomicU64,
    pub(super) broken: AtomicBool,
    /// Distributions ([`crate::observe`]), changed under the write lock.
    pub(crate) hist: TxHistograms,
}

/// Adds `n` to a counter only ever changed under the write lock: a plain load and store (no
/// read-modify-write instruction), since no other writer can race it. Saturates (see
/// [`TxCounts`]).
#[inline]
pub(crate) fn bump(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).saturating_add(n),
        Ordering::Relaxed,
    );
}

impl TxStats {
    pub(crate) fn snapshot(&self) -> TxCounts {
        TxCounts {
            messages: self.messages.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            aborted: self.aborted.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    Open,
    Broken,
    Closed,
}

//! What a caller can ask of one send: a cancel switch and per-send options.

use std::time::Instant;

use mux_nostd::AnyStrategy;

use crate::sync::Arc;
use crate::sync::atomic::{AtomicBool, Ordering};

/// A cancel switch for sends in flight, shared by clones.
///
/// Checked at every frame boundary before a write call (a send that can be cancelled writes
/// one Data frame per call, [`Config::hold_budget`](crate::Config::hold_budget) more payload if set, so it stops within
/// one chunk); a message cancelled after its Start was written ends with Abort on the wire,
/// one cancelled before writes nothing.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token not yet cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels every send that uses this token.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Options of [`Sender::send_with`](crate::Sender::send_with). `Default` is: automatic id, the node's strategy, no
/// cancel token, no deadline.
#[derive(Debug, Clone, Default)]
pub struct SendOptions {
    /// The message id (default: the next automatic id). An id whose message is still being
    /// sent is refused with [`SendError::IdInFlight`](crate::SendError::IdInFlight) (see [`Sender::send_with_id`](crate::Sender::send_with_id)).
    pub id: Option<u32>,
    /// The strategy (default: the node's, [`Config::strategy`](crate::Config::strategy)).
    pub strategy: Option<AnyStrategy>,
    /// Cancels the message when triggered.
    pub cancel: Option<CancelToken>,
    /// Cancels the message when passed ([`SendError::TimedOut`](crate::SendError::TimedOut)).
    pub deadline: Option<Instant>,
    /// Leave small frames in the shared write buffer until it fills, another send writes it,
    /// or [`Sender::flush`](crate::Sender::flush) is called (see [`Sender::send_buffered`](crate::Sender::send_buffered)).
    pub buffered: bool,
}

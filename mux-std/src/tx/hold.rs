//! The hold routine both senders share: within one hold of the write lock, what the next
//! write call carries (which frames of the message, from where), when small frames go to the
//! shared buffer instead, and when the hold ends — for a contender, within the latency budget,
//! or because the send was asked to stop.
//!
//! It does no I/O: a driver asks [`Hold::next`] for the next write call, writes the batch's
//! slices ([`Hold::slices`]) however its sink is written (the blocking [`Sender`](super::Sender)
//! with a blocking call, the tokio sender with `.await`), and reports what the sink took with
//! [`Hold::wrote`].

use std::io::IoSlice;

use mux_nostd::{FrameType, HEADER_LEN};

use crate::adaptive::Pace;
use crate::error::SendError;
use crate::sync::atomic::{AtomicUsize, Ordering};

use super::batch::*;
use super::coalescer::*;
use super::cursor::*;

/// How a hold ended.
pub(crate) enum HoldEnd {
    /// The message's last frame is written (or buffered).
    Done,
    /// Another sender waits: the hold ended at a frame boundary.
    Yield,
    /// The send's stop function asked to stop (at a frame boundary, Start written).
    Stopped(SendError),
}

/// What a hold needs besides the message. `S` is the send's stop function (a `dyn FnMut`, `Send`
/// for the tokio sender).
pub(crate) struct How<'s, S: ?Sized> {
    /// Senders waiting for the write lock: while any waits, the hold ends within the budget.
    pub(crate) contenders: &'s AtomicUsize,
    /// Those of them that wait to send the next part of a message of several chunks: while
    /// only they wait, the hold may write up to [`BULK_BUDGET`] more.
    pub(crate) bulk: &'s AtomicUsize,
    /// Small frames go to the shared buffer even while nobody waits: a buffered send, or a
    /// sink that takes one slice per write call (one write then carries many frames).
    pub(crate) buffered: bool,
    /// Bounds on write calls and holds under Adaptive.
    pub(crate) pace: &'s Pace,
    /// Asked at frame boundaries (cancellable sends only).
    pub(crate) stop: Option<&'s mut S>,
}

/// One hold of the write lock in progress.
pub(crate) struct Hold {
    /// [`Config::hold_budget`](crate::Config::hold_budget).
    budget: usize,
    /// Payload bytes of this hold (written or buffered).
    body: usize,
    /// `body` at the first frame boundary after a contender was seen (the frame in flight then
    /// is not charged to the budget).
    seen_at: Option<usize>,
    /// Something of the message was written or buffered in this hold.
    moved: bool,
    /// The bounds the last write call was gathered with (see [`regather`](Self::regather)):
    /// the hold's budget then, whether the send is cancellable, the most one call carries.
    hold_budget: usize,
    cancellable: bool,
    call_cap: usize,
}

impl Hold {
    /// A hold keeping to `budget` ([`Config::hold_budget`](crate::Config::hold_budget)) once
    /// others wait.
    #[inline(always)]
    pub(crate) fn new(budget: usize) -> Self {
        Self {
            budget,
            body: 0,
            seen_at: None,
            moved: false,
            hold_budget: 0,
            cancellable: false,
            call_cap: 0,
        }
    }

    /// Takes the hold to its next write call: copies small frames into the shared buffer
    /// while others wait or for a buffered send, then gathers the frames of the call into
    /// `batch` and returns `None` (the driver writes [`slices`](Self::slices) and reports
    /// with [`wrote`](Self::wrote)); or returns how the hold ends.
    #[inline(always)]
    pub(crate) fn next<const F: usize, S: FnMut() -> Option<SendError> + ?Sized>(
        &mut self,
        msg: &mut Cursor,
        co: &mut Coalescer,
        payload: &[u8],
        how: &mut How<'_, S>,
        batch: &mut Batch<F>,
    ) -> Option<HoldEnd> {
        let budget = self.budget;
        while let Some(frame) = msg.next {
            // Before every write call: someone waiting? Then the hold ends within the budget:
            // the configured one if a one-chunk message (or a flush, a close) waits, at least
            // BULK_BUDGET if only senders of multi-chunk messages do.
            let contenders = how.contenders.load(Ordering::Relaxed);
            let contended = contenders > 0;
            let hold_budget = if contenders > how.bulk.load(Ordering::Relaxed) {
                budget
            } else {
                budget.max(BULK_BUDGET)
            };
            // Under Adaptive, no more than the link carries in its latency budget.
            let hold_budget = how.pace.cap(hold_budget);
            if contended && self.seen_at.is_none() {
                let in_flight = if msg.written > 0 {
                    frame.body_len() as usize
                } else {
                    0
                };
                self.seen_at = Some(self.body + in_flight);
            }
            if msg.written == 0 {
                let len = frame.body_len() as usize;
                if let Some(at) = self.seen_at
                    && frame.header.kind == FrameType::Data
                    && past_budget(self.body, self.body.saturating_sub(at), len, hold_budget)
                {
                    return Some(HoldEnd::Yield);
                }
                // The caller asked just before the hold; here after each write call, once
                // the Start is out (a write may have taken only the shared buffer's bytes).
                if self.moved
                    && frame.header.kind != FrameType::Start
                    && let Some(stop) = how.stop.as_deref_mut()
                    && let Some(e) = stop()
                {
                    return Some(HoldEnd::Stopped(e));
                }
                // While others wait, small frames go to the shared buffer (the last sender
                // out writes them all at once); a buffered send leaves them there.
                if (contended || how.buffered) && co.put(&frame, payload) {
                    msg.step();
                    self.body += len;
                    self.moved = true;
                    continue;
                }
            }
            if msg.follows {
                msg.rest.set_chunk(how.pace.chunk());
            }
            self.hold_budget = hold_budget;
            self.cancellable = how.stop.is_some();
            self.call_cap = how.pace.cap(GATHER_BYTES);
            self.regather(msg, batch);
            return None;
        }
        Some(HoldEnd::Done)
    }

    /// Gathers the write call [`next`](Self::next) gathered last into `batch` again, the
    /// same frames (`msg` has not moved since): for a sink that did not take it yet.
    #[inline(always)]
    pub(crate) fn regather<const F: usize>(&self, msg: &Cursor, batch: &mut Batch<F>) {
        batch.frames = 0;
        batch.wire = 0;
        batch.gather(
            msg,
            self.body,
            self.seen_at,
            self.hold_budget,
            self.cancellable,
            self.budget,
            self.call_cap,
        );
    }

    /// The slices of the write call `batch` (the shared buffer first), how many there are,
    /// and their length in bytes.
    #[inline(always)]
    pub(crate) fn slices<'a, const F: usize>(
        batch: &'a Batch<F>,
        iov: &mut [IoSlice<'a>],
        co: &'a Coalescer,
        msg: &Cursor,
        payload: &'a [u8],
    ) -> (usize, usize) {
        let k = batch.slices(iov, co.pending(), msg.written, payload);
        (k, co.pending().len() + batch.wire)
    }

    /// Records that the sink took `n` bytes of the write call `batch`.
    #[inline(always)]
    pub(crate) fn wrote<const F: usize>(
        &mut self,
        msg: &mut Cursor,
        co: &mut Coalescer,
        batch: &Batch<F>,
        n: usize,
    ) {
        let from_buf = n.min(co.pending().len());
        co.sent(from_buf);
        self.body += if n - from_buf == batch.wire {
            msg.skip(batch.frames);
            batch.body
        } else {
            msg.consume(n - from_buf)
        };
        self.moved = true;
    }
}

impl<const F: usize> Batch<F> {
    /// An empty batch (one per hold, refilled for each write call).
    #[inline(always)]
    pub(crate) fn new() -> Self {
        Self {
            heads: [[0; HEADER_LEN]; F],
            bodies: [(0, 0); F],
            frames: 0,
            wire: 0,
            body: 0,
        }
    }
}

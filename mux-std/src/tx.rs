//! The send side: a thread-safe [`Sender`] over any `std::io::Write`.
//!
//! A sender walks its message's [`FramePlan`] on its own stack and writes under the write
//! lock. While nobody else wants the lock it keeps it across frames and writes them straight
//! from the caller's payload in large vectored writes (up to 64 frames per call; a small
//! message is one call of three slices: the Start and Data headers, the payload, the End
//! header). Every sender that waits for the lock counts itself as a *contender*; the holder
//! looks at that count at every frame boundary (before each write call) and, once someone
//! waits, ends its hold after at most one more Data frame ([`Config::hold_budget`] more
//! payload if set), then lets the waiter take the lock before it queues again. So a small
//! message waits for at most the frame in flight (plus what the current write call already
//! gathered) of a large one. While others wait, small frames are copied into a shared buffer
//! that the last sender out of the lock writes (several threads' frames leave in one write).

use std::fmt;
use std::io::{self, IoSlice, Write};

use crate::link::Sink;
use std::time::{Duration, Instant};

use mux_nostd::{
    AnyStrategy, FramePlan, FrameType, HEADER_LEN, Header, Outgoing, PlannedFrame, Strategy,
};

use crate::adaptive::Pace;
use crate::config::Config;
use crate::error::{ConfigError, SendError};
use crate::observe::TxHistograms;
use crate::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use crate::sync::{Arc, Condvar, Mutex, MutexGuard, TryLockError};

#[cfg(mux_shuttle)]
use shuttle::thread;
#[cfg(not(mux_shuttle))]
use std::thread;

/// A cancel switch for sends in flight, shared by clones.
///
/// Checked at every frame boundary before a write call (a send that can be cancelled writes
/// one Data frame per call, [`Config::hold_budget`] more payload if set, so it stops within
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

/// Options of [`Sender::send_with`]. `Default` is: automatic id, the node's strategy, no
/// cancel token, no deadline.
#[derive(Debug, Clone, Default)]
pub struct SendOptions {
    /// The message id (default: the next automatic id). An id whose message is still being
    /// sent is refused with [`SendError::IdInFlight`] (see [`Sender::send_with_id`]).
    pub id: Option<u32>,
    /// The strategy (default: the node's, [`Config::strategy`]).
    pub strategy: Option<AnyStrategy>,
    /// Cancels the message when triggered.
    pub cancel: Option<CancelToken>,
    /// Cancels the message when passed ([`SendError::TimedOut`]).
    pub deadline: Option<Instant>,
    /// Leave small frames in the shared write buffer until it fills, another send writes it,
    /// or [`Sender::flush`] is called (see [`Sender::send_buffered`]).
    pub buffered: bool,
}

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
    messages: AtomicU64,
    bytes: AtomicU64,
    pub(crate) aborted: AtomicU64,
    pub(crate) writes: AtomicU64,
    broken: AtomicBool,
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

/// The shared write buffer: small frames are copied here, written by the last sender out.
/// It never holds more than `cap` bytes (no allocation after it is made).
#[derive(Debug)]
pub(crate) struct Coalescer {
    buf: Vec<u8>,
    off: usize,
    frame_max: usize,
    cap: usize,
}

impl Coalescer {
    /// The buffer of a validated `config`: `write_buffer` bytes (at least `coalesce_frame`),
    /// or, with coalescing off, room for one Abort header.
    pub(crate) fn new(config: &Config) -> Self {
        let cap = if config.coalesce_frame == 0 {
            HEADER_LEN
        } else {
            config
                .write_buffer
                .max(config.coalesce_frame)
                .max(HEADER_LEN)
        };
        Self {
            buf: Vec::with_capacity(cap),
            off: 0,
            frame_max: config.coalesce_frame,
            cap,
        }
    }

    /// Copies the rest of the current frame if it is small and fits; advances `out`.
    /// Returns the payload bytes copied. (The async sender's.)
    #[cfg(feature = "tokio")]
    #[inline]
    pub(crate) fn try_copy(&mut self, out: &mut Outgoing, payload: &[u8]) -> Option<usize> {
        let (h, b) = out.pending(payload);
        let n = h.len() + b.len();
        if n > self.frame_max || self.buf.len() + n > self.cap {
            return None;
        }
        self.buf.extend_from_slice(h);
        self.buf.extend_from_slice(b);
        let body = b.len();
        out.advance(n);
        Some(body)
    }

    /// Records `n` bytes of a [`Plan`]'s slices written: buffered bytes first, then the
    /// frames of `out`. Adds the payload bytes among them to `body`. (The async sender's.)
    #[cfg(feature = "tokio")]
    #[inline]
    pub(crate) fn consumed(
        &mut self,
        out: &mut Outgoing,
        payload: &[u8],
        n: usize,
        body: &mut usize,
    ) {
        let from_buf = n.min(self.buf.len() - self.off);
        self.sent(from_buf);
        let mut n = n - from_buf;
        while n > 0 {
            let (h, b) = out.pending(payload);
            let take = n.min(h.len() + b.len());
            if take == 0 {
                break; // never: a write takes no more than was offered
            }
            *body += take.saturating_sub(h.len());
            out.advance(take);
            n -= take;
        }
    }

    /// Copies a whole frame (header and body) if it is small and fits.
    #[inline]
    fn put(&mut self, frame: &PlannedFrame, payload: &[u8]) -> bool {
        let body = frame.body_len() as usize;
        let n = HEADER_LEN + body;
        if n > self.frame_max || self.buf.len() + n > self.cap {
            return false;
        }
        let at = frame.offset as usize;
        self.buf.extend_from_slice(&frame.header.to_bytes());
        self.buf.extend_from_slice(&payload[at..at + body]);
        true
    }

    /// Buffered bytes not yet written.
    #[inline]
    pub(crate) fn pending(&self) -> &[u8] {
        &self.buf[self.off..]
    }

    /// Records `n` buffered bytes written.
    #[inline]
    pub(crate) fn sent(&mut self, n: usize) {
        self.off += n;
        if self.off == self.buf.len() {
            self.buf.clear();
            self.off = 0;
        }
    }

    /// Buffers an Abort header (for a message cut between two holds) if it fits; `false`:
    /// the buffer is full, write it out first.
    #[must_use]
    pub(crate) fn push_abort(&mut self, id: u32) -> bool {
        if self.buf.len() + HEADER_LEN > self.cap {
            return false;
        }
        self.buf
            .extend_from_slice(&Header::new(FrameType::Abort, id, 0).to_bytes());
        true
    }
}

/// Whether a hold that wrote `body` payload bytes ends before the next frame: it writes at
/// least one Data frame, then stops before a Data frame that would take it past `budget`
/// (header-only frames, like the End right after the last chunk, always go along). (The
/// async sender's rule for every hold.)
#[cfg(feature = "tokio")]
#[inline]
pub(crate) fn ends_before(
    body: usize,
    next_is_data: bool,
    next_body: usize,
    budget: usize,
) -> bool {
    next_is_data && body > 0 && body + next_body > budget
}

/// Whether the hold ends here (`out` at a frame boundary). (The async sender's.)
#[cfg(feature = "tokio")]
#[inline]
pub(crate) fn hold_ends(out: &Outgoing, payload: &[u8], body: usize, budget: usize) -> bool {
    if out.is_done() {
        return true;
    }
    if !out.at_frame_boundary() {
        return false;
    }
    let (h, b) = out.pending(payload);
    ends_before(
        body,
        h.first() == Some(&(FrameType::Data as u8)),
        b.len(),
        budget,
    )
}

/// Most frames one write call of the async sender gathers.
#[cfg(feature = "tokio")]
const PLAN_GATHER: usize = 16;

/// One write call of the async sender: the buffered bytes, the rest of the current frame,
/// and the whole frames after it that the same hold writes (their headers copied here, their
/// bodies the caller's payload), so that a hold of several frames is one vectored write.
#[cfg(feature = "tokio")]
pub(crate) struct Plan {
    heads: [[u8; HEADER_LEN]; PLAN_GATHER],
    bodies: [(usize, usize); PLAN_GATHER],
    frames: usize,
}

#[cfg(feature = "tokio")]
impl Plan {
    /// Plans the frames after the current one that fit the hold (`body` payload bytes
    /// written in it so far).
    #[inline]
    pub(crate) fn new(out: &Outgoing, payload: &[u8], body: usize, budget: usize) -> Self {
        let mut plan = Self {
            heads: [[0; HEADER_LEN]; PLAN_GATHER],
            bodies: [(0, 0); PLAN_GATHER],
            frames: 0,
        };
        // A message being settled carries filler, not its payload: frame by frame then.
        if out.is_done() || out.is_cancelled() {
            return plan;
        }
        let mut probe = out.clone();
        let (h, b) = probe.pending(payload);
        let mut body = body + b.len();
        probe.advance(h.len() + b.len());
        while plan.frames < PLAN_GATHER && !probe.is_done() {
            let (h, b) = probe.pending(payload);
            let is_data = h.first() == Some(&(FrameType::Data as u8));
            if ends_before(body, is_data, b.len(), budget) {
                break;
            }
            let Ok(head) = <[u8; HEADER_LEN]>::try_from(h) else {
                break;
            };
            // The body is a part of `payload`: find where.
            let at = (b.as_ptr() as usize).wrapping_sub(payload.as_ptr() as usize);
            if !b.is_empty() && payload.get(at..at + b.len()) != Some(b) {
                break;
            }
            plan.heads[plan.frames] = head;
            plan.bodies[plan.frames] = (if b.is_empty() { 0 } else { at }, b.len());
            plan.frames += 1;
            body += b.len();
            let n = h.len() + b.len();
            probe.advance(n);
        }
        plan
    }

    /// The slices to write and how many of them there are.
    #[inline]
    pub(crate) fn slices<'a>(
        &'a self,
        co: &'a Coalescer,
        out: &'a Outgoing,
        payload: &'a [u8],
    ) -> ([IoSlice<'a>; 3 + 2 * PLAN_GATHER], usize) {
        let (h, b) = out.pending(payload);
        let mut iov = [IoSlice::new(&[]); 3 + 2 * PLAN_GATHER];
        iov[0] = IoSlice::new(co.pending());
        iov[1] = IoSlice::new(h);
        iov[2] = IoSlice::new(b);
        for k in 0..self.frames {
            let (at, len) = self.bodies[k];
            iov[3 + 2 * k] = IoSlice::new(&self.heads[k]);
            iov[4 + 2 * k] = IoSlice::new(&payload[at..at + len]);
        }
        (iov, 3 + 2 * self.frames)
    }
}

/// Most frames one write call of the blocking sender gathers: two slices each at most (a
/// run of headers, a body), 130 `iovec`s in all, well within Linux's `IOV_MAX` of 1024.
/// ([`Batch`] is on the stack for each write call: about 3.7 KiB.)
const GATHER: usize = 64;

/// Most payload bytes one vectored write call carries beyond its first frame. A sender that
/// starts waiting for the lock waits for the call in flight, so this bounds that wait (256 KiB:
/// about 2 ms on a 1 Gbit/s link) while keeping system calls few (the raw Unix socket pair
/// carries as much with 256 KiB writes as with 1 MiB ones here).
const GATHER_BYTES: usize = 256 << 10;

/// Payload bytes a holder may still write once others wait, when all of them are senders of
/// messages of several chunks (at least; [`Config::hold_budget`] if larger). A one-chunk
/// message, a flush or a close waiting makes the holder yield within `hold_budget` as usual:
/// the bound for small messages stays one frame, while large messages interleave in 256 KiB
/// turns instead of handing the lock over at every 16 KiB chunk.
const BULK_BUDGET: usize = 256 << 10;
/// Slices of such a write call: the shared buffer, a header run and a body per frame, the
/// last header run.
const GATHER_IOV: usize = 2 * GATHER + 2;
/// Messages of at most this many frames (Start, Data, End: every message of one chunk) use a
/// small [`Batch`], which costs less to set up.
const SMALL: usize = 4;
/// Slices of a small batch.
const SMALL_IOV: usize = 2 * SMALL + 2;

/// Where a message of the blocking sender stands: the frame to write next (`None` once the
/// last is written), how many of its bytes are written (header first), and the frames after
/// it. Between holds it sits at a frame boundary (`written == 0`).
struct Cursor {
    next: Option<PlannedFrame>,
    written: usize,
    rest: FramePlan,
    /// The whole message is at most [`SMALL`] frames.
    small: bool,
}

impl Cursor {
    #[inline]
    fn new(strategy: &AnyStrategy, id: u32, len: usize) -> Result<Self, SendError> {
        let mut rest = FramePlan::new(strategy, id, len)?;
        // One chunk at most: Start, Data, End (as the plan cuts it).
        let small = len <= strategy.chunk_size(len as u32).max(1) as usize;
        Ok(Self {
            next: rest.next(),
            written: 0,
            rest,
            small,
        })
    }

    /// Past the current frame (at a frame boundary, after it was buffered).
    #[inline]
    fn step(&mut self) {
        self.written = 0;
        self.next = self.rest.next();
    }

    /// Past `frames` whole frames (a batch written in full).
    #[inline]
    fn skip(&mut self, frames: usize) {
        self.written = 0;
        if frames > 1 {
            self.rest.nth(frames - 2);
        }
        self.next = self.rest.next();
    }

    /// Records `n` bytes written from the current frame on; returns the payload bytes of
    /// the frames completed.
    #[inline]
    fn consume(&mut self, mut n: usize) -> usize {
        let mut body = 0;
        while n > 0
            && let Some(f) = self.next
        {
            let left = HEADER_LEN + f.body_len() as usize - self.written;
            if n < left {
                self.written += n;
                break;
            }
            n -= left;
            body += f.body_len() as usize;
            self.step();
        }
        body
    }
}

/// Whether a Data frame of `len` payload bytes is past what a hold may still write once a
/// contender was seen: `since` bytes were written since, `body` in the whole hold (a hold
/// always writes one Data frame). Also a cancellable send's limit per write call.
#[inline]
fn past_budget(body: usize, since: usize, len: usize, budget: usize) -> bool {
    body > 0 && since + len > budget
}

/// One write call of the blocking sender: the rest of the current frame and up to `F - 1`
/// whole frames after it (their headers here, their bodies the caller's payload).
struct Batch<const F: usize> {
    heads: [[u8; HEADER_LEN]; F],
    bodies: [(u32, u32); F],
    frames: usize,
    /// Wire bytes of the batch from the message's current position on (what a whole write
    /// takes), and the payload bytes of its frames.
    wire: usize,
    body: usize,
}

impl<const F: usize> Batch<F> {
    /// Gathers the frames of one write call. `body` payload bytes were written in this hold;
    /// if a contender was seen, `hold_budget` counts from `seen_at` and the call stops where
    /// the hold must. A `cancellable` send writes one Data frame per call (plus `budget`), so
    /// that it asks whether to stop within one chunk.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn gather(
        &mut self,
        msg: &Cursor,
        body: usize,
        seen_at: Option<usize>,
        hold_budget: usize,
        cancellable: bool,
        budget: usize,
        call_cap: usize,
    ) {
        let Some(first) = msg.next else {
            return;
        };
        self.push(&first);
        self.wire -= msg.written;
        let mut call = first.body_len() as usize;
        let mut probe = msg.rest.clone();
        while self.frames < F
            && let Some(f) = probe.next()
        {
            if f.header.kind == FrameType::Data {
                let len = f.header.len as usize;
                let upto = body + call;
                if seen_at
                    .is_some_and(|a| past_budget(upto, upto.saturating_sub(a), len, hold_budget))
                    || (cancellable && past_budget(call, call, len, budget))
                    || past_budget(call, call, len, call_cap)
                {
                    break;
                }
            }
            self.push(&f);
            call += f.body_len() as usize;
        }
        self.body = call;
    }

    #[inline]
    fn push(&mut self, f: &PlannedFrame) {
        self.heads[self.frames] = f.header.to_bytes();
        self.bodies[self.frames] = (f.offset, f.body_len());
        self.wire += HEADER_LEN + f.body_len() as usize;
        self.frames += 1;
    }

    /// Fills `iov` with the slices to write (`buffered` first, then the frames, the first of
    /// them `skip` bytes in) and returns how many there are. Headers with no body between
    /// them share one slice.
    #[inline(always)]
    fn slices<'a>(
        &'a self,
        iov: &mut [IoSlice<'a>],
        buffered: &'a [u8],
        skip: usize,
        payload: &'a [u8],
    ) -> usize {
        let heads = self.heads[..self.frames].as_flattened();
        let mut k = 0;
        if !buffered.is_empty() {
            iov[0] = IoSlice::new(buffered);
            k = 1;
        }
        // Header bytes from `run` on are not in a slice yet.
        let mut run = skip.min(HEADER_LEN);
        for (f, &(at, len)) in self.bodies[..self.frames].iter().enumerate() {
            let (mut at, mut len) = (at as usize, len as usize);
            if f == 0 && skip > HEADER_LEN {
                at += skip - HEADER_LEN;
                len -= skip - HEADER_LEN;
            }
            if len == 0 {
                continue;
            }
            let end = HEADER_LEN * (f + 1);
            if run < end {
                iov[k] = IoSlice::new(&heads[run..end]);
                k += 1;
            }
            iov[k] = IoSlice::new(&payload[at..at + len]);
            k += 1;
            run = end;
        }
        if run < heads.len() {
            iov[k] = IoSlice::new(&heads[run..]);
            k += 1;
        }
        k
    }
}

/// How a hold of the blocking sender ended.
enum HoldEnd {
    /// The message's last frame is written (or buffered).
    Done,
    /// Another sender waits: the hold ended at a frame boundary.
    Yield,
    /// The send's stop function asked to stop (at a frame boundary, Start written).
    Stopped(SendError),
}

/// What a hold of the blocking sender needs besides the message.
struct How<'s, 'f> {
    /// [`Shared::contenders`].
    contenders: &'s AtomicUsize,
    /// [`Shared::bulk`].
    bulk: &'s AtomicUsize,
    /// Small frames stay in the shared buffer.
    buffered: bool,
    /// Bounds on write calls and holds under Adaptive.
    pace: &'s Pace,
    /// Asked at frame boundaries (cancellable sends only).
    stop: Option<&'s mut (dyn FnMut() -> Option<SendError> + 'f)>,
}

/// The state behind the write lock.
pub(crate) struct TxInner<W> {
    /// The sink, behind the serial link profile's encoder if [`Config::link`] says so.
    pub(crate) io: Option<Sink<W>>,
    pub(crate) co: Coalescer,
    pub(crate) link: Link,
    /// Ids of messages whose Start is written and whose last frame is not.
    pub(crate) sending: Vec<u32>,
    pub(crate) stats: Arc<TxStats>,
    /// Async sends only: the message of a hold in progress. If its future is dropped mid-hold
    /// this stays set, and the next holder settles it (finishes the frame, writes Abort).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) owed: Option<Outgoing>,
    /// A sender that must not leave its frames buffered left them for the next holder
    /// because others were waiting: the next holder writes them even if it is buffered.
    owe_flush: bool,
    /// [`Config::hold_budget`].
    pub(crate) budget: usize,
    /// [`Config::max_sending`] (at least 1): most messages in `sending` plus the one of the
    /// hold in progress.
    max_sending: usize,
    /// Blocking senders waiting for a message to end before they start theirs
    /// ([`Sender::wait_for_slot`]); counted under the lock.
    slot_waiters: usize,
    /// Wakes them: a message left `sending`, or the link changed.
    slot_freed: Arc<Condvar>,
    /// Times write calls under Adaptive.
    pace: Pace,
}

impl<W> TxInner<W> {
    pub(crate) fn new(io: W, config: &Config) -> Self {
        Self {
            io: Some(Sink::new(io, config)),
            co: Coalescer::new(config),
            link: Link::Open,
            sending: Vec::new(),
            stats: Arc::new(TxStats {
                hist: TxHistograms::new(config.histograms),
                ..TxStats::default()
            }),
            owed: None,
            owe_flush: false,
            budget: config.hold_budget,
            max_sending: config.sending_cap(),
            slot_waiters: 0,
            slot_freed: Arc::new(Condvar::new()),
            pace: Pace::new(config.strategy),
        }
    }

    /// Whether a new message may start now: fewer than [`Config::max_sending`] are under
    /// way besides it (its own hold is not in `sending`), so the peer, which sees at most
    /// those plus this one open, never has more than `max_sending` of ours in flight.
    #[inline]
    pub(crate) fn slot_free(&self) -> bool {
        self.sending.len() < self.max_sending
    }

    /// A message left `sending`, or the link changed: wakes the senders waiting for a slot.
    #[inline]
    pub(crate) fn slots_changed(&self) {
        if self.slot_waiters > 0 {
            self.slot_freed.notify_all();
        }
    }

    /// After a hold: whether to write the shared buffer now. While others wait, the last of
    /// them writes it; a buffered send leaves it unless an earlier one is owed.
    #[inline]
    pub(crate) fn should_flush(&mut self, buffered: bool, others_waiting: bool) -> bool {
        if others_waiting {
            if !buffered {
                self.set_owe_flush(true);
            }
            return false;
        }
        if buffered && !self.owe_flush {
            return false;
        }
        self.set_owe_flush(false);
        true
    }

    fn set_owe_flush(&mut self, owe: bool) {
        self.owe_flush = owe;
    }

    /// Checks the link before a hold; on failure the message is no longer under way.
    pub(crate) fn usable(&mut self, id: u32, started: bool) -> Result<(), SendError> {
        let e = match self.link {
            Link::Open => return Ok(()),
            Link::Broken => SendError::Broken,
            Link::Closed => SendError::Closed,
        };
        if started {
            self.forget(id);
        }
        Err(e)
    }

    pub(crate) fn forget(&mut self, id: u32) {
        if let Some(i) = self.sending.iter().position(|&x| x == id) {
            self.sending.swap_remove(i);
            self.slots_changed();
        }
    }

    /// Bookkeeping after a message's last frame. (The async sender's.)
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn finished(&mut self, out: &Outgoing) {
        self.forget(out.id());
        if out.is_cancelled() {
            bump(&self.stats.aborted, 1);
        } else {
            bump(&self.stats.messages, 1);
            bump(&self.stats.bytes, u64::from(out.total()));
            let total = out.total() as usize;
            self.stats.hist.message(total, out.frame_count());
        }
    }

    /// Bookkeeping after the last frame of a blocking send of `total` bytes; `listed`: it
    /// is in `sending` (it ended a hold unfinished).
    #[inline]
    fn completed(&mut self, id: u32, total: usize, frames: u32, listed: bool) {
        if listed {
            self.forget(id);
        }
        bump(&self.stats.messages, 1);
        bump(&self.stats.bytes, total as u64);
        self.stats.hist.message(total, frames);
    }

    /// A write not on behalf of one message failed: the link is broken.
    pub(crate) fn link_failed(&mut self, e: io::Error) -> SendError {
        self.link = Link::Broken;
        self.stats.broken.store(true, Ordering::Relaxed);
        self.slots_changed();
        SendError::Io(e)
    }

    /// A write failed: the error goes to the caller, the link is broken for everyone else.
    pub(crate) fn broke(&mut self, id: u32, e: io::Error) -> SendError {
        self.link = Link::Broken;
        self.stats.broken.store(true, Ordering::Relaxed);
        self.forget(id);
        self.slots_changed();
        SendError::Io(e)
    }

    /// Whether message `id` is under way (its Start written, its last frame not): a new
    /// message with this id would splice into it.
    #[inline]
    pub(crate) fn in_flight(&self, id: u32) -> bool {
        self.sending.contains(&id)
    }
}

impl<W: Write> TxInner<W> {
    /// A send that had written its Start gave up waiting for the lock (cancelled or timed
    /// out): its Abort goes into the shared buffer now (it sits at a frame boundary).
    pub(crate) fn orphaned(&mut self, id: u32) {
        let Some(i) = self.sending.iter().position(|&x| x == id) else {
            return; // already ended, e.g. by close
        };
        self.sending.swap_remove(i);
        self.slots_changed();
        self.abort_here(id);
    }

    /// Ends message `id` (at a frame boundary, no longer in `sending`) with an Abort in the
    /// shared buffer, owed to the wire even by a buffered send. A write error (the buffer
    /// was full) breaks the link, which then owes nothing.
    fn abort_here(&mut self, id: u32) {
        if self.link == Link::Open {
            match self.push_abort(id) {
                Ok(()) => self.set_owe_flush(true),
                Err(e) => drop(self.link_failed(e)),
            }
        }
        bump(&self.stats.aborted, 1);
    }

    /// Buffers an Abort for `id`, writing the shared buffer out first if it is full (it
    /// keeps to its capacity).
    fn push_abort(&mut self, id: u32) -> io::Result<()> {
        if !self.co.push_abort(id) {
            self.flush_pending()?;
            // Cannot fail: the buffer is empty now and holds at least one header.
            let _ = self.co.push_abort(id);
        }
        Ok(())
    }

    /// Before closing: Abort for every message under way (they are all at frame boundaries,
    /// since a hold always ends on one). Returns their ids, and the error of a write of the
    /// shared buffer made to make room (the Aborts after it are not buffered).
    fn abort_all(&mut self) -> (Vec<u32>, io::Result<()>) {
        let ids = std::mem::take(&mut self.sending);
        self.slots_changed();
        let mut r = Ok(());
        for &id in &ids {
            if r.is_ok() {
                r = self.push_abort(id);
            }
            bump(&self.stats.aborted, 1);
        }
        (ids, r)
    }

    /// One hold of the write lock for `msg`: writes its frames (or, while others wait or for
    /// a buffered send, copies the small ones into the shared buffer) until the message is
    /// done, a contender is owed the lock, or `how.stop` says stop. Every write call gathers
    /// up to `F` frames; `V` is its slice count (`2F + 2`).
    #[inline]
    fn hold<const F: usize, const V: usize>(
        &mut self,
        msg: &mut Cursor,
        payload: &[u8],
        how: &mut How<'_, '_>,
    ) -> io::Result<HoldEnd> {
        let Self {
            io,
            co,
            stats,
            budget,
            ..
        } = self;
        let Some(io) = io.as_mut() else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        let budget = *budget;
        // Payload bytes of this hold (written or buffered), and the count at the first frame
        // boundary after a contender was seen (the frame in flight then is not charged to
        // the budget).
        let mut body = 0;
        let mut seen_at: Option<usize> = None;
        let mut moved = false;
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
            if contended && seen_at.is_none() {
                let in_flight = if msg.written > 0 {
                    frame.body_len() as usize
                } else {
                    0
                };
                seen_at = Some(body + in_flight);
            }
            if msg.written == 0 {
                let len = frame.body_len() as usize;
                if let Some(at) = seen_at
                    && frame.header.kind == FrameType::Data
                    && past_budget(body, body.saturating_sub(at), len, hold_budget)
                {
                    return Ok(HoldEnd::Yield);
                }
                // The caller asked just before the hold; here after each write call, once
                // the Start is out (a write may have taken only the shared buffer's bytes).
                if moved
                    && frame.header.kind != FrameType::Start
                    && let Some(stop) = how.stop.as_deref_mut()
                    && let Some(e) = stop()
                {
                    return Ok(HoldEnd::Stopped(e));
                }
                // While others wait, small frames go to the shared buffer (the last sender
                // out writes them all at once); a buffered send leaves them there.
                if (contended || how.buffered) && co.put(&frame, payload) {
                    msg.step();
                    body += len;
                    moved = true;
                    continue;
                }
            }
            let mut batch = Batch::<F> {
                heads: [[0; HEADER_LEN]; F],
                bodies: [(0, 0); F],
                frames: 0,
                wire: 0,
                body: 0,
            };
            let call_cap = how.pace.cap(GATHER_BYTES);
            batch.gather(
                msg,
                body,
                seen_at,
                hold_budget,
                how.stop.is_some(),
                budget,
                call_cap,
            );
            let n = {
                const { assert!(V >= 2 * F + 2) };
                let mut iov = [IoSlice::new(&[]); V];
                let k = batch.slices(&mut iov, co.pending(), msg.written, payload);
                how.pace.write(io, &iov[..k], &stats.writes)?
            };
            let from_buf = n.min(co.pending().len());
            co.sent(from_buf);
            body += if n - from_buf == batch.wire {
                msg.skip(batch.frames);
                batch.body
            } else {
                msg.consume(n - from_buf)
            };
            moved = true;
        }
        Ok(HoldEnd::Done)
    }

    /// Writes the shared buffer out.
    #[inline]
    fn flush_buf(&mut self) -> io::Result<()> {
        if self.co.pending().is_empty() {
            return Ok(());
        }
        self.flush_pending()
    }

    #[cold]
    fn flush_pending(&mut self) -> io::Result<()> {
        let Self {
            io,
            co,
            stats,
            pace,
            ..
        } = self;
        let Some(io) = io.as_mut() else {
            return Ok(());
        };
        while !co.pending().is_empty() {
            let p = co.pending();
            let p = &p[..p.len().min(pace.cap(p.len()).max(1))];
            let n = pace.write(io, &[IoSlice::new(p)], &stats.writes)?;
            co.sent(n);
        }
        Ok(())
    }
}

#[inline]
pub(crate) fn write_some<W: Write>(
    io: &mut W,
    iov: &[IoSlice<'_>],
    writes: &AtomicU64,
) -> io::Result<usize> {
    loop {
        bump(writes, 1);
        match io.write_vectored(iov) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Yields first (holds and hand-overs are short), then sleeps 50 µs doubling to 800 µs.
fn back_off(tries: &mut u32) {
    *tries += 1;
    if *tries < 64 {
        thread::yield_now();
    } else {
        thread::sleep(Duration::from_micros(50 << (*tries - 64).min(4)));
    }
}

/// How often a send waiting for a slot ([`Config::max_sending`]) asks its cancel token or
/// deadline.
const SLOT_POLL: Duration = Duration::from_millis(1);
/// How often a send waiting for a slot without a token or deadline looks again (it is woken
/// whenever a message ends; this is only a backstop).
const SLOT_RECHECK: Duration = Duration::from_millis(20);

/// Run on the sink by [`Sender::close`] before it is dropped.
pub type Closer<W> = Box<dyn FnOnce(&mut W) -> io::Result<()> + Send>;

struct Shared<W> {
    inner: Mutex<TxInner<W>>,
    /// Senders blocked in [`Sender::lock`]: while any waits, a holder leaves the shared buffer
    /// for the next one to write (they always get the lock; those that may give up are not
    /// counted here).
    waiting: AtomicUsize,
    /// Senders waiting for the lock by either path ([`Sender::lock`], [`Sender::lock_or_stop`]):
    /// while any waits, a holder ends its hold at the next frame boundary (within
    /// [`Config::hold_budget`]). Counted only once a `try_lock` failed, so the uncontended path
    /// never touches it.
    contenders: AtomicUsize,
    /// Those of the contenders that wait to send the next part of a message of several
    /// chunks: while only they wait, a holder may write up to [`BULK_BUDGET`] more.
    bulk: AtomicUsize,
    /// Times a contender got the lock: a sender that ended its hold for a contender waits for
    /// this to move before it queues again, so the lock really changes hands.
    served: AtomicUsize,
    next_id: AtomicU32,
    strategy: AnyStrategy,
    /// [`TxInner::pace`]'s estimator, for framing without the lock.
    pace: Pace,
    closer: Mutex<Option<Closer<W>>>,
    on_drop: fn(&mut TxInner<W>, Option<Closer<W>>),
    /// The counters of `inner`, read without the lock.
    stats: Arc<TxStats>,
    /// Ids of sends that gave up waiting for the lock after their Start was written: the next
    /// holder writes their Abort. The flag says whether the list may be non-empty.
    orphans: Mutex<Vec<u32>>,
    has_orphans: AtomicBool,
    /// [`TxInner::slot_freed`], waited on with the lock of `inner`.
    slot_freed: Arc<Condvar>,
}

impl<W> Drop for Shared<W> {
    /// The last handle is gone without [`Sender::close`]: close anyway (best effort).
    fn drop(&mut self) {
        let inner = self.inner.get_mut().unwrap_or_else(|e| e.into_inner());
        let closer = self
            .closer
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        (self.on_drop)(inner, closer);
    }
}

/// What dropping the last [`Sender`] does: Abort for messages cut, flush, run the closer.
fn close_on_drop<W: Write>(g: &mut TxInner<W>, closer: Option<Closer<W>>) {
    if g.link != Link::Open {
        return;
    }
    let (_, r) = g.abort_all();
    if r.is_err() {
        return; // the sink failed: nothing more to write
    }
    let _ = g.flush_buf();
    if let Some(io) = g.io.as_mut() {
        let _ = io.flush();
        if let Some(c) = closer {
            let _ = c(io.get_mut());
        }
    }
    g.link = Link::Closed;
}

/// The thread-safe sending half of a node, over any `std::io::Write`. Clones share the link.
///
/// Dropping the last clone without [`close`](Sender::close) closes anyway, ignoring errors.
///
/// # Sharing the link
///
/// A sender walks its message's [`FramePlan`] on its own stack and writes under the write
/// lock. While nobody else wants the lock it keeps it across frames and writes them straight
/// from the caller's payload in large vectored writes (up to 64 frames per call; a small
/// message is one call of three slices: the Start and Data headers, the payload, the End
/// header). Every sender that waits for the lock counts itself as a *contender*; the holder
/// looks at that count at every frame boundary (before each write call) and, once someone
/// waits, ends its hold after at most one more Data frame ([`Config::hold_budget`] more
/// payload if set), then lets the waiter take the lock before it queues again. So a small
/// message waits for at most the frame in flight (plus what the current write call already
/// gathered) of a large one. While others wait, small frames are copied into a shared buffer
/// that the last sender out of the lock writes (several threads' frames leave in one write).
///
/// ```
/// use mux_std::{Config, Sender};
/// let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
/// let tx = Sender::new(a, &Config::default()).unwrap();
/// std::thread::scope(|s| {
///     for _ in 0..4 {
///         s.spawn(|| tx.send(b"ping").unwrap());
///     }
/// });
/// tx.close().unwrap();
/// let mut wire = Vec::new();
/// std::io::Read::read_to_end(&mut b, &mut wire).unwrap();
/// assert_eq!(wire.len(), 4 * (9 + 9 + 4 + 9)); // Start, Data "ping", End
/// ```
pub struct Sender<W> {
    shared: Arc<Shared<W>>,
}

impl<W> Clone for Sender<W> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<W> fmt::Debug for Sender<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("strategy", &self.shared.strategy)
            .finish_non_exhaustive()
    }
}

impl<W: Write + Send> Sender<W> {
    /// A sender over `io`; automatic ids start at 1. Fails if `config` is out of its bounds
    /// (see [`Config`]).
    pub fn new(io: W, config: &Config) -> Result<Self, ConfigError> {
        Self::with_closer(io, config, None)
    }

    /// A sender whose [`close`](Self::close) runs `closer` on the sink before dropping it
    /// (e.g. `shutdown(Write)` of a socket whose read half lives on). Fails if `config` is
    /// out of its bounds (see [`Config`]).
    pub fn with_closer(
        io: W,
        config: &Config,
        closer: Option<Closer<W>>,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let inner = TxInner::new(io, config);
        let stats = inner.stats.clone();
        let slot_freed = inner.slot_freed.clone();
        let pace = inner.pace.clone();
        Ok(Self {
            shared: Arc::new(Shared {
                slot_freed,
                inner: Mutex::new(inner),
                waiting: AtomicUsize::new(0),
                contenders: AtomicUsize::new(0),
                bulk: AtomicUsize::new(0),
                served: AtomicUsize::new(0),
                next_id: AtomicU32::new(1),
                strategy: config.strategy,
                pace,
                closer: Mutex::new(closer),
                on_drop: close_on_drop::<W>,
                stats,
                orphans: Mutex::new(Vec::new()),
                has_orphans: AtomicBool::new(false),
            }),
        })
    }

    /// Takes the next automatic id (1, 2, …, wrapping), e.g. to know it before sending.
    pub fn next_id(&self) -> u32 {
        self.shared.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends `payload` with the next automatic id and returns the id.
    #[inline]
    pub fn send(&self, payload: &[u8]) -> Result<u32, SendError> {
        let id = self.next_id();
        self.send_inner(id, payload, None, false, None, None)
            .map(|()| id)
    }

    /// Sends `payload` as message `id`.
    ///
    /// An id may be reused once its message is sent; a send of an id whose message another
    /// thread is still sending (Start written, End not yet) is refused with
    /// [`SendError::IdInFlight`] and writes nothing (two messages with one id would splice on
    /// the wire). The same holds for every send with an explicit id, and for an automatic id
    /// that meets one given explicitly.
    #[inline]
    pub fn send_with_id(&self, id: u32, payload: &[u8]) -> Result<(), SendError> {
        self.send_inner(id, payload, None, false, None, None)
    }

    /// Sends with [`SendOptions`] (id, strategy, cancel token, deadline); returns the id.
    pub fn send_with(&self, payload: &[u8], opts: &SendOptions) -> Result<u32, SendError> {
        let id = opts.id.unwrap_or_else(|| self.next_id());
        let cancel = opts.cancel.as_ref();
        let deadline = opts.deadline;
        let stop = || {
            if cancel.is_some_and(CancelToken::is_cancelled) {
                Some(SendError::Cancelled)
            } else if deadline.is_some_and(|d| Instant::now() >= d) {
                Some(SendError::TimedOut)
            } else {
                None
            }
        };
        let cancellable = cancel.is_some() || deadline.is_some();
        // With a token or a deadline, waiting for the write lock can be given up too.
        let wait: Option<&dyn Fn() -> Option<SendError>> = cancellable.then_some(&stop);
        let mut asked = stop;
        let ask: Option<&mut dyn FnMut() -> Option<SendError>> = cancellable.then_some(&mut asked);
        self.send_inner(id, payload, opts.strategy, opts.buffered, wait, ask)
            .map(|()| id)
    }

    /// Sends with the next automatic id like [`send`](Self::send), but small frames may stay
    /// in the shared write buffer (64 KiB by default) until it fills, another send writes it,
    /// or [`flush`](Self::flush) is called: many small messages then leave in one write.
    /// Call `flush` when a batch is done.
    pub fn send_buffered(&self, payload: &[u8]) -> Result<u32, SendError> {
        let id = self.next_id();
        self.send_inner(id, payload, None, true, None, None)
            .map(|()| id)
    }

    /// Sends `payload` as message `id` with `strategy` (the node's if `None`), asking `stop`
    /// before each write call (at frame boundaries) whether to give up; the error it returns
    /// is the send's. Cancelled after its Start was written, the message ends with Abort.
    pub fn send_cancellable(
        &self,
        id: u32,
        payload: &[u8],
        strategy: Option<AnyStrategy>,
        mut stop: impl FnMut() -> Option<SendError>,
    ) -> Result<(), SendError> {
        self.send_inner(id, payload, strategy, false, None, Some(&mut stop))
    }

    /// One send: holds of the write lock until the message is written. `wait`: give up
    /// waiting for the lock when it says so; `stop`: asked before each hold and write call.
    #[inline]
    fn send_inner(
        &self,
        id: u32,
        payload: &[u8],
        strategy: Option<AnyStrategy>,
        buffered: bool,
        wait: Option<&dyn Fn() -> Option<SendError>>,
        mut stop: Option<&mut dyn FnMut() -> Option<SendError>>,
    ) -> Result<(), SendError> {
        let strategy =
            (self.shared.pace).resolve(strategy.unwrap_or(self.shared.strategy), payload.len());
        if !buffered
            && stop.is_none()
            && let Some(r) = self.send_small(id, payload, &strategy)
        {
            return r;
        }
        let mut msg = Cursor::new(&strategy, id, payload.len())?;
        let small = msg.small;
        // Under Adaptive, a message of the workload's small ones waits as a one-chunk one does.
        let bulk = !small && !self.shared.pace.is_small(&strategy, payload.len());
        // Whether a hold ended with the message unfinished: its Start is written and its id
        // is in `sending` (close and failures settle it).
        let mut started = false;
        loop {
            if let Some(stop) = stop.as_deref_mut()
                && let Some(e) = stop()
            {
                if started {
                    self.abandon(id, wait)?;
                }
                return Err(e);
            }
            let mut g = match wait {
                None => self.lock_as(bulk),
                Some(wait) => match self.lock_or_stop(wait, bulk) {
                    Ok(g) => g,
                    Err(e) => {
                        if started {
                            self.orphan(id);
                        }
                        self.after_release();
                        return Err(e);
                    }
                },
            };
            g.usable(id, started)?;
            if !started && !g.slot_free() {
                g = self.wait_for_slot(g, id, stop.as_deref_mut())?;
            }
            if !started && g.in_flight(id) {
                // Nothing of this message was written; frames left for this waiter go out.
                self.release(g, false, id)?;
                return Err(SendError::IdInFlight { id });
            }
            let mut how = How {
                contenders: &self.shared.contenders,
                bulk: &self.shared.bulk,
                buffered,
                pace: &self.shared.pace,
                stop: stop.as_deref_mut(),
            };
            let end = if small {
                g.hold::<SMALL, SMALL_IOV>(&mut msg, payload, &mut how)
            } else {
                g.hold::<GATHER, GATHER_IOV>(&mut msg, payload, &mut how)
            };
            let done = match end {
                Err(e) => return Err(g.broke(id, e)),
                Ok(HoldEnd::Done) => {
                    g.completed(id, payload.len(), msg.rest.frame_count(), started);
                    true
                }
                Ok(HoldEnd::Yield) => {
                    if !started {
                        g.sending.push(id);
                        started = true;
                    }
                    false
                }
                Ok(HoldEnd::Stopped(e)) => {
                    g.forget(id);
                    g.abort_here(id);
                    self.release(g, false, id)?;
                    return Err(e);
                }
            };
            let seen = self.shared.served.load(Ordering::Relaxed);
            // A failed write of the shared buffer breaks the link: this send reports it.
            self.release(g, buffered, id)?;
            if done {
                return Ok(());
            }
            self.hand_over(seen);
        }
    }

    /// The fast path of a plain send: a message of one chunk at most on a free, idle link
    /// (lock free, nobody waiting, shared buffer empty, no Abort owed) goes out in one
    /// vectored write — the Start header with the next one, the payload, the End header —
    /// without a cursor or a batch. `None`: not the case, take the general path.
    #[inline]
    fn send_small(
        &self,
        id: u32,
        payload: &[u8],
        strategy: &AnyStrategy,
    ) -> Option<Result<(), SendError>> {
        let s = &self.shared;
        if s.contenders.load(Ordering::Relaxed) > 0 || s.has_orphans.load(Ordering::Relaxed) {
            return None;
        }
        // The core's plan: Start, then Data and End, or End alone for an empty message.
        let mut plan = FramePlan::new(strategy, id, payload.len()).ok()?;
        let (start, second) = (plan.next()?, plan.next()?);
        let third = plan.next();
        if plan.next().is_some() {
            return None; // more than one Data frame
        }
        let mut g = s.inner.try_lock().ok()?;
        if g.link != Link::Open || !g.co.pending().is_empty() || g.in_flight(id) || !g.slot_free() {
            return None;
        }
        let mut heads = [0u8; 2 * HEADER_LEN];
        heads[..HEADER_LEN].copy_from_slice(&start.header.to_bytes());
        heads[HEADER_LEN..].copy_from_slice(&second.header.to_bytes());
        let at = second.offset as usize;
        let body = payload.get(at..at + second.body_len() as usize)?;
        let end = third.map(|f| f.header.to_bytes());
        let mut iov = [
            IoSlice::new(&heads),
            IoSlice::new(body),
            IoSlice::new(end.as_ref().map_or(&[][..], |e| &e[..])),
        ];
        let mut left: &mut [IoSlice<'_>] = if end.is_some() {
            &mut iov
        } else {
            &mut iov[..1]
        };
        let TxInner {
            io, stats, pace, ..
        } = &mut *g;
        let io = io.as_mut()?;
        // Usually one call takes it all; otherwise the slices move on by what was written.
        let mut owed = left.iter().map(|b| b.len()).sum::<usize>();
        while owed > 0 {
            match pace.write(io, left, &stats.writes) {
                Ok(n) if n == owed => break,
                Ok(n) => {
                    IoSlice::advance_slices(&mut left, n);
                    owed -= n;
                }
                Err(e) => return Some(Err(g.broke(id, e))),
            }
        }
        g.completed(id, payload.len(), 2 + u32::from(third.is_some()), false);
        Some(self.release(g, false, id))
    }

    /// Before message `id` starts (nothing of it written): waits, with the lock released,
    /// until fewer than [`Config::max_sending`] messages are under way, asking `stop` (if
    /// any) every [`SLOT_POLL`]. Frames a holder left for waiters are written before it
    /// sleeps. On `Err` (stopped, or the link broke or closed) nothing of the message was
    /// written and the lock is released.
    #[cold]
    #[inline(never)]
    fn wait_for_slot<'a>(
        &'a self,
        mut g: MutexGuard<'a, TxInner<W>>,
        id: u32,
        mut stop: Option<&mut (dyn FnMut() -> Option<SendError> + '_)>,
    ) -> Result<MutexGuard<'a, TxInner<W>>, SendError> {
        loop {
            // Sends that gave up after their Start owe an Abort: that ends them.
            self.settle_orphans(&mut g);
            g.usable(id, false)?;
            if g.slot_free() {
                return Ok(g);
            }
            if let Some(e) = stop.as_deref_mut().and_then(|stop| stop()) {
                self.release(g, false, id)?;
                return Err(e);
            }
            let waiting = self.shared.waiting.load(Ordering::Relaxed) > 0;
            if g.should_flush(false, waiting)
                && let Err(e) = g.flush_buf()
            {
                return Err(g.link_failed(e));
            }
            g.slot_waiters += 1;
            // Woken when a message ends; the timeout only bounds how late `stop` is asked
            // (and rechecks orphans whose Abort nobody could settle while this one held the lock).
            let timeout = if stop.is_some() {
                SLOT_POLL
            } else {
                SLOT_RECHECK
            };
            g = match self.shared.slot_freed.wait_timeout(g, timeout) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
            g.slot_waiters -= 1;
        }
    }

    /// After a hold of message `id`: writes the shared buffer unless it is left to a waiter
    /// (or kept for a buffered send), releases the lock, settles orphans. A failed write
    /// breaks the link and is `id`'s error.
    #[inline]
    fn release(
        &self,
        mut g: MutexGuard<'_, TxInner<W>>,
        buffered: bool,
        id: u32,
    ) -> Result<(), SendError> {
        let waiting = self.shared.waiting.load(Ordering::Relaxed) > 0;
        let r = if g.should_flush(buffered, waiting) {
            g.flush_buf().map_err(|e| g.broke(id, e))
        } else {
            Ok(())
        };
        drop(g);
        self.after_release();
        r
    }

    /// A hold ended for a contender: wait until one has taken the lock (or none waits any
    /// more) before queueing again, so that this sender does not barge back in first.
    #[inline]
    fn hand_over(&self, seen: usize) {
        let mut tries = 0;
        while self.shared.contenders.load(Ordering::Relaxed) > 0
            && self.shared.served.load(Ordering::Relaxed) == seen
        {
            back_off(&mut tries);
        }
    }

    /// A started send stops between holds: its Abort goes out now, or, if the lock is busy
    /// and `wait` says stop, is left to the next holder.
    fn abandon(
        &self,
        id: u32,
        wait: Option<&dyn Fn() -> Option<SendError>>,
    ) -> Result<(), SendError> {
        let mut g = match wait {
            None => self.lock(),
            Some(wait) => match self.lock_or_stop(wait, false) {
                Ok(g) => g,
                Err(_) => {
                    self.orphan(id);
                    self.after_release();
                    return Ok(());
                }
            },
        };
        g.usable(id, true)?;
        g.orphaned(id);
        self.release(g, false, id)
    }

    /// Leaves the Abort of started message `id` to the next holder of the lock.
    fn orphan(&self, id: u32) {
        let mut orphans = self
            .shared
            .orphans
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        orphans.push(id);
        self.shared.has_orphans.store(true, Ordering::SeqCst);
    }

    /// After releasing the write lock, or giving up waiting for it: a send that gave up may
    /// owe an Abort. Whoever sees the flag and gets the lock writes it (the giving-up send
    /// itself tries too), so no Abort is left behind. (Holders only leave their frames to
    /// waiters blocked in [`lock`](Self::lock), which always get the lock; a waiter that may
    /// give up is not counted.)
    #[inline]
    fn after_release(&self) {
        if !self.shared.has_orphans.load(Ordering::SeqCst) {
            return;
        }
        let Ok(mut g) = self.shared.inner.try_lock() else {
            return; // the holder settles them when it releases the lock
        };
        self.settle_orphans(&mut g);
        let waiting = self.shared.waiting.load(Ordering::Relaxed) > 0;
        if g.should_flush(false, waiting)
            && let Err(e) = g.flush_buf()
        {
            g.link_failed(e);
        }
    }

    /// Writes whatever is buffered and flushes the sink.
    pub fn flush(&self) -> Result<(), SendError> {
        let mut g = self.lock();
        g.usable(0, false)?;
        let r = g.flush_buf().and_then(|()| match g.io.as_mut() {
            Some(io) => io.flush(),
            None => Ok(()),
        });
        r.map_err(|e| g.link_failed(e))
    }

    /// Closes the sending side: writes Abort for every message other threads are still
    /// sending (they get [`SendError::Closed`]), flushes, runs the closer, drops the sink (the
    /// peer sees end of stream). Returns the aborted ids. Later sends fail with `Closed`.
    pub fn close(&self) -> Result<Vec<u32>, SendError> {
        let mut g = self.lock();
        // Sends waiting for a slot find the link closed once this releases the lock.
        g.slots_changed();
        match g.link {
            Link::Closed => return Ok(Vec::new()),
            Link::Broken => {
                g.link = Link::Closed;
                g.io = None;
                return Ok(std::mem::take(&mut g.sending));
            }
            Link::Open => {}
        }
        let (ids, r) = g.abort_all();
        let closer = self
            .shared
            .closer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let r = r
            .and_then(|()| g.flush_buf())
            .and_then(|()| match g.io.as_mut() {
                Some(io) => io
                    .flush()
                    .and_then(|()| closer.map_or(Ok(()), |c| c(io.get_mut()))),
                None => Ok(()),
            });
        g.link = Link::Closed;
        g.io = None;
        r.map_err(SendError::Io)?;
        Ok(ids)
    }

    /// Send counters (read without waiting for the write lock).
    pub fn counts(&self) -> TxCounts {
        self.shared.stats.snapshot()
    }

    /// The counters and distributions behind [`counts`](Self::counts).
    pub(crate) fn stats(&self) -> &TxStats {
        &self.shared.stats
    }

    /// Whether a write failed (later sends fail with [`SendError::Broken`]).
    pub fn is_broken(&self) -> bool {
        self.shared.stats.is_broken()
    }

    /// The default strategy.
    pub fn strategy(&self) -> AnyStrategy {
        self.shared.strategy
    }

    /// What the sender has learned of its link when its strategy is
    /// [`Adaptive`](AnyStrategy::Adaptive): the estimated rate and the message-size
    /// histogram (`None` for the other strategies).
    pub fn link_estimate(&self) -> Option<&mux_nostd::LinkEstimator> {
        self.shared.pace.estimator()
    }

    /// Takes the write lock, then buffers the Aborts owed by sends that gave up waiting.
    #[inline]
    fn lock(&self) -> MutexGuard<'_, TxInner<W>> {
        self.lock_as(false)
    }

    /// [`lock`](Self::lock) for a sender of a message of several chunks (`bulk`) or not.
    #[inline]
    fn lock_as(&self, bulk: bool) -> MutexGuard<'_, TxInner<W>> {
        let mut g = match self.shared.inner.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => self.lock_contended(bulk),
        };
        self.settle_orphans(&mut g);
        g
    }

    /// Waits for the lock as a counted waiter and contender.
    #[cold]
    fn lock_contended(&self, bulk: bool) -> MutexGuard<'_, TxInner<W>> {
        let s = &self.shared;
        s.contenders.fetch_add(1, Ordering::Relaxed);
        if bulk {
            s.bulk.fetch_add(1, Ordering::Relaxed);
        }
        s.waiting.fetch_add(1, Ordering::Relaxed);
        let since = Instant::now();
        let g = s.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.stats.hist.waited(since);
        s.waiting.fetch_sub(1, Ordering::Relaxed);
        if bulk {
            s.bulk.fetch_sub(1, Ordering::Relaxed);
        }
        s.contenders.fetch_sub(1, Ordering::Relaxed);
        s.served.fetch_add(1, Ordering::Relaxed);
        g
    }

    /// Like [`lock`](Self::lock), but gives up with `stop`'s error, asked between tries (a
    /// send queued behind one stuck in the kernel can still be cancelled).
    fn lock_or_stop(
        &self,
        stop: &dyn Fn() -> Option<SendError>,
        bulk: bool,
    ) -> Result<MutexGuard<'_, TxInner<W>>, SendError> {
        let s = &self.shared;
        let mut g = match s.inner.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                // A contender (the holder ends its hold for it), but not counted in `waiting`:
                // a holder must not leave its frames to a waiter that may give up.
                s.contenders.fetch_add(1, Ordering::Relaxed);
                if bulk {
                    s.bulk.fetch_add(1, Ordering::Relaxed);
                }
                let mut tries = 0;
                let since = Instant::now();
                let got = loop {
                    if let Some(e) = stop() {
                        break Err(e);
                    }
                    back_off(&mut tries);
                    match s.inner.try_lock() {
                        Ok(g) => break Ok(g),
                        Err(TryLockError::Poisoned(p)) => break Ok(p.into_inner()),
                        Err(TryLockError::WouldBlock) => {}
                    }
                };
                if bulk {
                    s.bulk.fetch_sub(1, Ordering::Relaxed);
                }
                s.contenders.fetch_sub(1, Ordering::Relaxed);
                let g = got?;
                g.stats.hist.waited(since);
                s.served.fetch_add(1, Ordering::Relaxed);
                g
            }
        };
        self.settle_orphans(&mut g);
        Ok(g)
    }

    #[inline]
    fn settle_orphans(&self, g: &mut TxInner<W>) {
        if !self.shared.has_orphans.load(Ordering::SeqCst) {
            return;
        }
        let ids = {
            let mut orphans = self
                .shared
                .orphans
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            self.shared.has_orphans.store(false, Ordering::SeqCst);
            std::mem::take(&mut *orphans)
        };
        for id in ids {
            g.orphaned(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mux_nostd::{Hybrid, Original, encode_into};

    /// A sink that takes at most `step` bytes per call (and records the calls).
    struct Trickle {
        out: Arc<Mutex<Vec<u8>>>,
        step: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(self.step);
            self.out.lock().unwrap().extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn payload(n: usize) -> Vec<u8> {
        mux_test_support::rule_r(n)
    }

    #[test]
    fn any_write_sizes_coalescing_and_budgets_give_the_core_bytes() {
        let cases = [
            (1, 0, 0),
            (7, 2048, 0),
            (4096, 0, 0),
            (1 << 20, 2048, 0),
            (5, 100, 0),
        ];
        let budgets = [
            (1, 0, 3000),
            (7, 2048, 5000),
            (4096, 0, 1 << 20),
            (1 << 20, 2048, 9999),
        ];
        for (step, coalesce, budget) in cases.into_iter().chain(budgets) {
            let out = Arc::new(Mutex::new(Vec::new()));
            let cfg = Config {
                coalesce_frame: coalesce,
                write_buffer: 300,
                hold_budget: budget,
                ..Config::with_strategy(Original)
            };
            let tx = Sender::new(
                Trickle {
                    out: out.clone(),
                    step,
                },
                &cfg,
            )
            .unwrap();
            let mut want = vec![0u8; 1 << 17];
            let mut at = 0;
            for (id, n) in [(1, 0), (2, 1), (3, 1000), (4, 3000), (5, 50), (6, 40_000)] {
                let p = payload(n);
                tx.send_with_id(id, &p).unwrap();
                at += encode_into(&Original, id, &p, &mut want[at..]).unwrap();
            }
            tx.close().unwrap();
            let got = out.lock().unwrap();
            assert!(got.as_slice() == &want[..at], "step {step} budget {budget}");
        }
    }

    #[test]
    fn cancel_before_start_writes_nothing_after_start_aborts() {
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink = Trickle {
            out: out.clone(),
            step: usize::MAX,
        };
        let tx = Sender::new(sink, &Config::with_strategy(Hybrid::<4096>)).unwrap();
        let p = payload(10_000); // S0 D4096 D4096 D1808 E0: holds S+D, D, D+E
        let r = tx.send_cancellable(1, &p, None, || Some(SendError::Cancelled));
        assert!(matches!(r, Err(SendError::Cancelled)));
        assert!(out.lock().unwrap().is_empty());
        let mut calls = 0;
        let r = tx.send_cancellable(2, &p, None, || {
            calls += 1;
            (calls == 2).then_some(SendError::TimedOut)
        });
        assert!(matches!(r, Err(SendError::TimedOut)));
        let wire = out.lock().unwrap().clone();
        assert_eq!(wire.len(), 9 + 9 + 4096 + 9);
        assert_eq!(&wire[wire.len() - 9..], &[6, 0, 0, 0, 2, 0, 0, 0, 0]);
        let c = tx.counts();
        assert_eq!((c.messages, c.aborted), (0, 1));
    }

    /// A sink that takes everything offered and records the size of each write call.
    struct Vectored(Arc<Mutex<Vec<usize>>>);

    impl Write for Vectored {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().push(buf.len());
            Ok(buf.len())
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            let n = bufs.iter().map(|b| b.len()).sum();
            self.0.lock().unwrap().push(n);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn an_uncontended_message_leaves_in_few_vectored_writes() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let tx = Sender::new(Vectored(calls.clone()), &Config::default()).unwrap();
        // Hybrid, 100000 bytes: S0 D16384×6 D1696 E0, nine frames: one write.
        tx.send(&payload(100_000)).unwrap();
        assert_eq!(*calls.lock().unwrap(), [100_000 + 9 * 9]);
        // Hybrid, 1 MiB: S0 D16384×64 E0, 66 frames; a write call carries at most
        // GATHER_BYTES (256 KiB) of payload: 16 chunks per write, the End with the last.
        calls.lock().unwrap().clear();
        tx.send(&payload(1 << 20)).unwrap();
        let chunk = 9 + 16384;
        assert_eq!(
            *calls.lock().unwrap(),
            [9 + 16 * chunk, 16 * chunk, 16 * chunk, 16 * chunk + 9]
        );
        // Original, 1 MiB: 1024 Data frames of 1 KiB, 1026 frames: 17 writes.
        calls.lock().unwrap().clear();
        let opts = SendOptions {
            strategy: Some(Original.into()),
            ..SendOptions::default()
        };
        tx.send_with(&payload(1 << 20), &opts).unwrap();
        let calls = calls.lock().unwrap();
        assert_eq!(calls.len(), 17, "{calls:?}");
        assert_eq!(calls.iter().sum::<usize>(), (1 << 20) + 1026 * 9);
        assert_eq!(tx.counts().writes, 1 + 4 + 17);
    }

    /// A sink that records every write call (the address and length of each slice) and the
    /// bytes.
    #[derive(Default)]
    struct Slices {
        calls: Vec<Vec<(usize, usize)>>,
        bytes: Vec<u8>,
    }

    impl Write for Slices {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            self.calls.push(
                bufs.iter()
                    .map(|b| (b.as_ptr() as usize, b.len()))
                    .collect(),
            );
            for b in bufs {
                self.bytes.extend_from_slice(b);
            }
            Ok(bufs.iter().map(|b| b.len()).sum())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn an_uncontended_small_message_is_one_write_of_three_slices_from_the_payload() {
        for strategy in ["original", "optimized", "hybrid"] {
            let strategy: AnyStrategy = strategy.parse().unwrap();
            let mut sink = Slices::default();
            let p = payload(1024);
            {
                let tx = Sender::new(&mut sink, &Config::with_strategy(strategy)).unwrap();
                tx.send_with_id(9, &p).unwrap();
                assert_eq!(tx.counts().writes, 1);
                tx.close().unwrap();
            }
            // Start and Data headers, the caller's payload itself (not a copy), End header.
            assert_eq!(sink.calls.len(), 1, "{strategy:?}: {:?}", sink.calls);
            let call = &sink.calls[0];
            assert_eq!(call.len(), 3, "{strategy:?}: {call:?}");
            assert_eq!(call[0].1, 2 * HEADER_LEN);
            assert_eq!(call[1], (p.as_ptr() as usize, p.len()));
            assert_eq!(call[2].1, HEADER_LEN);
            let mut want = vec![0; 1024 + 3 * HEADER_LEN];
            encode_into(&strategy, 9, &p, &mut want).unwrap();
            assert_eq!(sink.bytes, want);
        }
    }

    #[test]
    fn a_cancellable_send_writes_one_chunk_per_call_plus_the_budget() {
        for (budget, per_call) in [(0, 1), (65536, 4)] {
            let calls = Arc::new(Mutex::new(Vec::new()));
            let cfg = Config {
                hold_budget: budget,
                ..Config::default()
            };
            let tx = Sender::new(Vectored(calls.clone()), &cfg).unwrap();
            // Hybrid, 1 MiB: S0 D16384×64 E0; Start rides with the first Data frame, End with
            // the last.
            tx.send_cancellable(1, &payload(1 << 20), None, || None)
                .unwrap();
            let calls = calls.lock().unwrap();
            let n = 64 / per_call;
            assert_eq!(calls.len(), n, "{calls:?}");
            assert_eq!(calls[0], 9 + per_call * (9 + 16384));
            assert!(calls[1..n - 1].iter().all(|&c| c == per_call * (9 + 16384)));
            assert_eq!(calls[n - 1], per_call * (9 + 16384) + 9);
        }
    }

    #[test]
    fn buffered_small_messages_wait_for_a_full_buffer_or_flush() {
        let mut sink = Slices::default();
        let p = payload(1024);
        let mut want = vec![0; 100 * (1024 + 27)];
        let mut at = 0;
        {
            let tx = Sender::new(&mut sink, &Config::default()).unwrap();
            for _ in 0..100 {
                let id = tx.send_buffered(&p).unwrap();
                at += encode_into(&Hybrid::<4096>, id, &p, &mut want[at..]).unwrap();
            }
            // 62 messages of 1051 bytes fill the 64 KiB buffer: one write so far.
            assert_eq!(tx.counts().writes, 1);
            tx.flush().unwrap();
            assert_eq!(tx.counts().writes, 2);
        }
        assert_eq!(sink.bytes, want);
    }

    /// A sink that takes at most `step` bytes per call; on call `pause_at` it reports the
    /// bytes it holds and waits to be resumed.
    struct Gate {
        out: Arc<Mutex<Vec<u8>>>,
        step: usize,
        calls: usize,
        pause_at: usize,
        reached: std::sync::mpsc::Sender<usize>,
        resume: std::sync::mpsc::Receiver<()>,
    }

    impl Gate {
        /// A sink taking 10,000 bytes per call that pauses in its fifth call: it reports
        /// that on `reached` and waits for a `resume`. Returns it, what it captures, and
        /// both ends of the pause.
        #[allow(clippy::type_complexity)]
        fn new() -> (
            Self,
            Arc<Mutex<Vec<u8>>>,
            std::sync::mpsc::Receiver<usize>,
            std::sync::mpsc::Sender<()>,
        ) {
            let (reached_tx, reached) = std::sync::mpsc::channel();
            let (resume, resume_rx) = std::sync::mpsc::channel();
            let out = Arc::new(Mutex::new(Vec::new()));
            let sink = Gate {
                out: out.clone(),
                step: 10_000,
                calls: 0,
                pause_at: 5,
                reached: reached_tx,
                resume: resume_rx,
            };
            (sink, out, reached, resume)
        }
    }

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            let mut out = self.out.lock().unwrap();
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(self.step - n);
                out.extend_from_slice(&b[..take]);
                n += take;
            }
            let len = out.len();
            drop(out);
            self.calls += 1;
            if self.calls == self.pause_at {
                self.reached.send(len).unwrap();
                self.resume.recv().unwrap();
            }
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A wire's frames as `(type, id, position)`, and its messages' payloads.
    type Parsed = (
        Vec<(u8, u32, usize)>,
        std::collections::HashMap<u32, Vec<u8>>,
    );

    fn parse(wire: &[u8]) -> Parsed {
        let mut frames = Vec::new();
        let mut bodies = std::collections::HashMap::<u32, Vec<u8>>::new();
        let mut at = 0;
        while at < wire.len() {
            let h = Header::parse(wire[at..at + HEADER_LEN].try_into().unwrap()).unwrap();
            frames.push((h.kind as u8, h.id, at));
            at += HEADER_LEN;
            if h.kind == FrameType::Data {
                let len = h.len as usize;
                bodies
                    .entry(h.id)
                    .or_default()
                    .extend_from_slice(&wire[at..at + len]);
                at += len;
            }
        }
        (frames, bodies)
    }

    /// Sender A writes a 256 KiB message (Hybrid: 16 Data frames of 16 KiB) to a sink that
    /// takes 10000 bytes per call; during its fifth call (inside the fourth Data frame)
    /// sender B starts a 1 KiB message and waits for the lock. B's whole message must be on
    /// the wire right after A's frame in flight plus `budget` more payload of A: asserted on
    /// the byte positions of the captured wire (the test waits for B to be waiting before
    /// it lets the sink go on). `cancellable`: B waits with a cancel token (the
    /// `lock_or_stop` path, not counted in `waiting`). `b_len`: B's message size; one of
    /// several chunks makes B a bulk waiter, for which A may write up to [`BULK_BUDGET`] more
    /// (here: the rest of its message).
    fn contended(budget: usize, cancellable: bool, b_len: usize) {
        let (sink, out, reached, resume) = Gate::new();
        let cfg = Config {
            hold_budget: budget,
            ..Config::default()
        };
        let tx = Sender::new(sink, &cfg).unwrap();
        let (big, small) = (payload(256 << 10), payload(b_len));
        let mark = std::thread::scope(|s| {
            s.spawn(|| tx.send_with_id(1, &big).unwrap());
            let mark = reached.recv().unwrap();
            s.spawn(|| {
                let opts = SendOptions {
                    id: Some(2),
                    cancel: cancellable.then(CancelToken::new),
                    ..SendOptions::default()
                };
                tx.send_with(&small, &opts).unwrap()
            });
            let t = Instant::now();
            while tx.shared.contenders.load(Ordering::Relaxed) == 0 {
                assert!(t.elapsed() < Duration::from_secs(20), "B never waited");
                std::thread::sleep(Duration::from_millis(1));
            }
            resume.send(()).unwrap();
            mark
        });
        tx.flush().unwrap();
        let wire = out.lock().unwrap().clone();
        let (frames, bodies) = parse(&wire);
        assert_eq!(bodies[&1], big);
        assert_eq!(bodies[&2], small);
        let b = frames.iter().position(|f| f.1 == 2).unwrap();
        let k = frames.iter().filter(|f| f.1 == 2).count();
        assert!(
            frames[b..b + k].iter().all(|f| f.1 == 2),
            "B's frames together"
        );
        assert_eq!(frames[b].0, FrameType::Start as u8);
        assert!(frames[..b].iter().all(|f| f.1 == 1));
        let after = frames[..b].iter().filter(|f| f.2 >= mark).count();
        if b_len <= 16384 {
            // A's frames that start after the mark and before B: the budget's worth.
            assert_eq!(
                after,
                budget / 16384,
                "mark {mark}, B at {}, frames {:?}",
                frames[b].2,
                &frames[..b + 3]
            );
        } else {
            // A bulk waiter: A's remaining 12 chunks (192 KiB < BULK_BUDGET) and its End go
            // first.
            assert_eq!(frames[b - 1].0, FrameType::End as u8, "A finished first");
            assert_eq!(after, 12 + 1, "mark {mark}, frames {:?}", &frames[..b + 1]);
        }
        assert_eq!(tx.counts().messages, 2);
    }

    #[test]
    fn a_waiting_sender_gets_the_lock_after_the_frame_in_flight() {
        contended(0, false, 1024);
    }

    #[test]
    fn a_waiting_cancellable_sender_gets_the_lock_after_the_frame_in_flight() {
        contended(0, true, 1024);
    }

    #[test]
    fn a_waiting_sender_gets_the_lock_after_the_budget() {
        contended(2 * 16384, false, 1024);
        contended(2 * 16384, true, 1024);
    }

    #[test]
    fn a_waiting_bulk_sender_lets_the_holder_go_on_for_the_bulk_budget() {
        contended(0, false, 40_000);
        contended(0, true, 40_000);
    }

    #[test]
    fn frames_left_for_a_waiter_are_written_even_by_a_buffered_send() {
        let mut g = TxInner::new(Vec::<u8>::new(), &Config::default());
        assert!(!g.should_flush(true, false), "buffered, nothing owed: keep");
        assert!(
            !g.should_flush(false, true),
            "others wait: leave it to them"
        );
        assert!(!g.should_flush(true, true), "still waiting");
        assert!(g.should_flush(true, false), "the owed write happens");
        assert!(!g.should_flush(true, false));
        assert!(g.should_flush(false, false));
    }

    #[test]
    fn a_failed_write_is_reported_once_then_broken() {
        struct Failing;
        impl Write for Failing {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let tx = Sender::new(Failing, &Config::default()).unwrap();
        assert!(
            matches!(tx.send(b"x"), Err(SendError::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe)
        );
        assert!(matches!(tx.send(b"x"), Err(SendError::Broken)));
        assert!(tx.is_broken());
    }

    #[test]
    fn aborts_buffered_at_close_keep_to_the_write_buffer_capacity() {
        // Coalescing with a 64-byte buffer, and coalescing off (no buffer for frames).
        for (coalesce, buffer) in [(64, 64), (0, 64 << 10)] {
            let mut sink = Slices::default();
            let cfg = Config {
                coalesce_frame: coalesce,
                write_buffer: buffer,
                ..Config::default()
            };
            {
                let tx = Sender::new(&mut sink, &cfg).unwrap();
                // 20 messages under way (each at a frame boundary between two holds).
                tx.shared.inner.lock().unwrap().sending.extend(1..=20);
                let ids = tx.close().unwrap();
                assert_eq!(ids, (1..=20).collect::<Vec<u32>>());
                let g = tx.shared.inner.lock().unwrap();
                let cap = if coalesce == 0 { HEADER_LEN } else { buffer };
                assert!(
                    g.co.buf.capacity() <= cap,
                    "coalesce {coalesce}: the buffer grew to {}",
                    g.co.buf.capacity()
                );
            }
            let want: Vec<u8> = (1..=20)
                .flat_map(|id| Header::new(FrameType::Abort, id, 0).to_bytes())
                .collect();
            assert_eq!(sink.bytes, want, "coalesce {coalesce}");
        }
    }

    #[test]
    fn a_send_with_an_id_in_flight_is_refused_and_writes_nothing() {
        // A sends 4 MiB as id 7; while it is under way (paused in its fifth write call), B
        // sends 1 MiB as id 7 too and waits for the lock. A yields to B (a bulk waiter) after
        // 256 KiB more: B must be refused, not splice its frames into message 7.
        let (sink, out, reached, resume) = Gate::new();
        let tx = Sender::new(sink, &Config::default()).unwrap();
        let (big, other) = (payload(4 << 20), vec![0xEE; 1 << 20]);
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| tx.send_with_id(7, &big));
            reached.recv().unwrap();
            let b = s.spawn(|| tx.send_with_id(7, &other));
            let t = Instant::now();
            while tx.shared.contenders.load(Ordering::Relaxed) == 0 {
                assert!(t.elapsed() < Duration::from_secs(20), "B never waited");
                std::thread::sleep(Duration::from_millis(1));
            }
            resume.send(()).unwrap();
            (a.join().unwrap(), b.join().unwrap())
        });
        assert!(a.is_ok(), "{a:?}");
        assert!(
            matches!(b, Err(SendError::IdInFlight { id: 7 })),
            "the second send of id 7: {b:?}"
        );
        tx.flush().unwrap();
        let wire = out.lock().unwrap().clone();
        let (frames, bodies) = parse(&wire);
        assert_eq!(bodies.len(), 1);
        assert!(bodies[&7] == big, "message 7 is A's payload, whole");
        let starts = frames
            .iter()
            .filter(|f| f.0 == FrameType::Start as u8)
            .count();
        assert_eq!(starts, 1);
        assert_eq!(tx.counts().messages, 1);
        // Once A is done, id 7 is free again.
        tx.send_with_id(7, b"again").unwrap();
    }

    #[test]
    fn a_send_past_max_sending_waits_for_a_slot_honouring_its_deadline_and_token() {
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink = Trickle {
            out: out.clone(),
            step: usize::MAX,
        };
        let cfg = Config {
            max_sending: 2,
            ..Config::default()
        };
        let tx = Sender::new(sink, &cfg).unwrap();
        // Two messages of other threads under way (Start written, their End not yet).
        tx.shared.inner.lock().unwrap().sending.extend([70, 71]);
        let t = Instant::now();
        let opts = SendOptions {
            deadline: Some(t + Duration::from_millis(50)),
            ..SendOptions::default()
        };
        let r = tx.send_with(b"late", &opts);
        assert!(matches!(r, Err(SendError::TimedOut)), "{r:?}");
        assert!(t.elapsed() >= Duration::from_millis(50));
        let token = CancelToken::new();
        let opts = SendOptions {
            cancel: Some(token.clone()),
            ..SendOptions::default()
        };
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(30));
                token.cancel();
            });
            let r = tx.send_with(b"cancelled", &opts);
            assert!(matches!(r, Err(SendError::Cancelled)), "{r:?}");
        });
        let r = tx.send_cancellable(9, b"stopped", None, || Some(SendError::Cancelled));
        assert!(matches!(r, Err(SendError::Cancelled)), "{r:?}");
        assert!(
            out.lock().unwrap().is_empty(),
            "nothing of them was written"
        );
        // A plain send (small or not) waits until one of the two ends, woken when it does.
        std::thread::scope(|s| {
            let small = s.spawn(|| tx.send_with_id(1, b"small"));
            let large = s.spawn(|| tx.send_with_id(2, &payload(100_000)));
            std::thread::sleep(Duration::from_millis(50));
            assert!(out.lock().unwrap().is_empty(), "both wait for a slot");
            // One slot frees: each goes out in one hold (never two under way at once), so
            // both fit in it, one after the other.
            tx.shared.inner.lock().unwrap().forget(70);
            small.join().unwrap().unwrap();
            large.join().unwrap().unwrap();
        });
        let wire = out.lock().unwrap().clone();
        let (_, bodies) = parse(&wire);
        assert_eq!(bodies.len(), 2);
        assert_eq!(tx.counts().messages, 2);
    }
}

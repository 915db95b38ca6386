//! The send side: a thread-safe [`Sender`] over any `std::io::Write`.
//!
//! Encoding is the core's [`Outgoing`]: a sender keeps its message's progress on its own
//! stack and takes the write lock for one *hold* at a time — the frames up to and including
//! one Data chunk (plus a header-only End right after it) — so frames of different messages
//! interleave at frame boundaries and a small message waits for at most one chunk of a large
//! one. Small frames are copied into a shared buffer that the last sender out of the lock
//! writes (several threads' frames leave in one write); a larger frame goes to the OS in one
//! vectored write of buffered bytes, its header and the caller's payload slice (no copy).

use std::fmt;
use std::io::{self, IoSlice, Write};
use std::time::{Duration, Instant};

use mux_nostd::{AnyStrategy, FrameType, HEADER_LEN, Header, Outgoing};

use crate::config::Config;
use crate::error::SendError;
use crate::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use crate::sync::{Arc, Mutex, MutexGuard, TryLockError};

#[cfg(mux_shuttle)]
use shuttle::thread;
#[cfg(not(mux_shuttle))]
use std::thread;

/// A cancel switch for sends in flight, shared by clones.
///
/// Checked before each write-lock hold (so within one chunk); a message cancelled after its
/// Start was written ends with Abort on the wire, one cancelled before writes nothing.
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
    /// The message id (default: the next automatic id).
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

/// Send counters (a part of [`Metrics`](crate::Metrics)).
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
    aborted: AtomicU64,
    pub(crate) writes: AtomicU64,
    broken: AtomicBool,
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
#[derive(Debug)]
pub(crate) struct Coalescer {
    buf: Vec<u8>,
    off: usize,
    frame_max: usize,
}

impl Coalescer {
    pub(crate) fn new(config: &Config) -> Self {
        let cap = if config.coalesce_frame == 0 {
            0
        } else {
            config.write_buffer.max(config.coalesce_frame)
        };
        Self {
            buf: Vec::with_capacity(cap),
            off: 0,
            frame_max: config.coalesce_frame,
        }
    }

    /// Copies the rest of the current frame if it is small and fits; advances `out`.
    /// Returns the payload bytes copied.
    #[inline]
    pub(crate) fn try_copy(&mut self, out: &mut Outgoing, payload: &[u8]) -> Option<usize> {
        let (h, b) = out.pending(payload);
        let n = h.len() + b.len();
        if n > self.frame_max || self.buf.len() + n > self.buf.capacity() {
            return None;
        }
        self.buf.extend_from_slice(h);
        self.buf.extend_from_slice(b);
        let body = b.len();
        out.advance(n);
        Some(body)
    }

    /// Records `n` bytes of a [`Plan`]'s slices written: buffered bytes first, then the
    /// frames of `out`. Adds the payload bytes among them to `body`.
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

    /// Buffers an Abort header (for messages cut by close).
    pub(crate) fn push_abort(&mut self, id: u32) {
        self.buf
            .extend_from_slice(&Header::new(FrameType::Abort, id, 0).to_bytes());
    }
}

/// Whether a hold that wrote `body` payload bytes ends before the next frame: it writes at
/// least one Data frame, then stops before a Data frame that would take it past `budget`
/// (header-only frames, like the End right after the last chunk, always go along).
#[inline]
pub(crate) fn ends_before(
    body: usize,
    next_is_data: bool,
    next_body: usize,
    budget: usize,
) -> bool {
    next_is_data && body > 0 && body + next_body > budget
}

/// Whether the hold ends here (`out` at a frame boundary).
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

/// Most frames one write call gathers.
const GATHER: usize = 16;

/// One write call: the buffered bytes, the rest of the current frame, and the whole frames
/// after it that the same hold writes (their headers copied here, their bodies the caller's
/// payload), so that a hold of several frames is one vectored write.
pub(crate) struct Plan {
    heads: [[u8; HEADER_LEN]; GATHER],
    bodies: [(usize, usize); GATHER],
    frames: usize,
}

impl Plan {
    /// Plans the frames after the current one that fit the hold (`body` payload bytes
    /// written in it so far).
    #[inline]
    pub(crate) fn new(out: &Outgoing, payload: &[u8], body: usize, budget: usize) -> Self {
        let mut plan = Self {
            heads: [[0; HEADER_LEN]; GATHER],
            bodies: [(0, 0); GATHER],
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
        while plan.frames < GATHER && !probe.is_done() {
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
    ) -> ([IoSlice<'a>; 3 + 2 * GATHER], usize) {
        let (h, b) = out.pending(payload);
        let mut iov = [IoSlice::new(&[]); 3 + 2 * GATHER];
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

/// The state behind the write lock.
pub(crate) struct TxInner<W> {
    pub(crate) io: Option<W>,
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
}

impl<W> TxInner<W> {
    pub(crate) fn new(io: W, config: &Config) -> Self {
        Self {
            io: Some(io),
            co: Coalescer::new(config),
            link: Link::Open,
            sending: Vec::new(),
            stats: Arc::new(TxStats::default()),
            owed: None,
            owe_flush: false,
            budget: config.hold_budget,
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
        }
    }

    /// Bookkeeping after a message's last frame.
    pub(crate) fn finished(&mut self, out: &Outgoing) {
        self.forget(out.id());
        if out.is_cancelled() {
            self.stats.aborted.fetch_add(1, Ordering::Relaxed);
        } else {
            self.stats.messages.fetch_add(1, Ordering::Relaxed);
            let bytes = u64::from(out.total());
            self.stats.bytes.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// A send that had written its Start gave up waiting for the lock (cancelled or timed
    /// out): its Abort goes into the shared buffer now (it sits at a frame boundary).
    pub(crate) fn orphaned(&mut self, id: u32) {
        let Some(i) = self.sending.iter().position(|&x| x == id) else {
            return; // already ended, e.g. by close
        };
        self.sending.swap_remove(i);
        if self.link == Link::Open {
            self.co.push_abort(id);
            self.set_owe_flush(true);
        }
        self.stats.aborted.fetch_add(1, Ordering::Relaxed);
    }

    /// A write not on behalf of one message failed: the link is broken.
    pub(crate) fn link_failed(&mut self, e: io::Error) -> SendError {
        self.link = Link::Broken;
        self.stats.broken.store(true, Ordering::Relaxed);
        SendError::Io(e)
    }

    /// A write failed: the error goes to the caller, the link is broken for everyone else.
    pub(crate) fn broke(&mut self, id: u32, e: io::Error) -> SendError {
        self.link = Link::Broken;
        self.stats.broken.store(true, Ordering::Relaxed);
        self.forget(id);
        SendError::Io(e)
    }

    /// Before closing: Abort for every message under way (they are all at frame boundaries,
    /// since a hold always ends on one).
    pub(crate) fn abort_all(&mut self) -> Vec<u32> {
        let ids = std::mem::take(&mut self.sending);
        for &id in &ids {
            self.co.push_abort(id);
            self.stats.aborted.fetch_add(1, Ordering::Relaxed);
        }
        ids
    }
}

impl<W: Write> TxInner<W> {
    /// Writes one hold of `out`: whole frames, at least one Data frame, up to the budget.
    #[inline]
    fn hold(&mut self, out: &mut Outgoing, payload: &[u8]) -> io::Result<()> {
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
        let mut body = 0;
        while !hold_ends(out, payload, body, *budget) {
            if let Some(copied) = co.try_copy(out, payload) {
                body += copied;
                continue;
            }
            let plan = Plan::new(out, payload, body, *budget);
            let (iov, k) = plan.slices(co, out, payload);
            let n = write_some(io, &iov[..k], &stats.writes)?;
            co.consumed(out, payload, n, &mut body);
        }
        Ok(())
    }

    /// Writes the shared buffer out.
    fn flush_buf(&mut self) -> io::Result<()> {
        let Self { io, co, stats, .. } = self;
        let Some(io) = io.as_mut() else {
            return Ok(());
        };
        while !co.pending().is_empty() {
            let n = write_some(io, &[IoSlice::new(co.pending())], &stats.writes)?;
            co.sent(n);
        }
        Ok(())
    }
}

#[inline]
fn write_some<W: Write>(io: &mut W, iov: &[IoSlice<'_>], writes: &AtomicU64) -> io::Result<usize> {
    loop {
        writes.fetch_add(1, Ordering::Relaxed);
        match io.write_vectored(iov) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Run on the sink by [`Sender::close`] before it is dropped.
pub type Closer<W> = Box<dyn FnOnce(&mut W) -> io::Result<()> + Send>;

struct Shared<W> {
    inner: Mutex<TxInner<W>>,
    /// Senders waiting for the lock: while any waits, a holder leaves the shared buffer for
    /// the next one to write.
    waiting: AtomicUsize,
    next_id: AtomicU32,
    strategy: AnyStrategy,
    closer: Mutex<Option<Closer<W>>>,
    on_drop: fn(&mut TxInner<W>, Option<Closer<W>>),
    /// The counters of `inner`, read without the lock.
    stats: Arc<TxStats>,
    /// Ids of sends that gave up waiting for the lock after their Start was written: the next
    /// holder writes their Abort. The flag says whether the list may be non-empty.
    orphans: Mutex<Vec<u32>>,
    has_orphans: AtomicBool,
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
    g.abort_all();
    let _ = g.flush_buf();
    if let Some(io) = g.io.as_mut() {
        let _ = io.flush();
        if let Some(c) = closer {
            let _ = c(io);
        }
    }
    g.link = Link::Closed;
}

/// The thread-safe sending half of a node, over any `std::io::Write`. Clones share the link.
///
/// Dropping the last clone without [`close`](Sender::close) closes anyway, ignoring errors.
///
/// ```
/// use mux_std::{Config, Sender};
/// let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
/// let tx = Sender::new(a, &Config::default());
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
    /// A sender over `io`; automatic ids start at 1.
    pub fn new(io: W, config: &Config) -> Self {
        Self::with_closer(io, config, None)
    }

    /// A sender whose [`close`](Self::close) runs `closer` on the sink before dropping it
    /// (e.g. `shutdown(Write)` of a socket whose read half lives on).
    pub fn with_closer(io: W, config: &Config, closer: Option<Closer<W>>) -> Self {
        let inner = TxInner::new(io, config);
        let stats = inner.stats.clone();
        Self {
            shared: Arc::new(Shared {
                inner: Mutex::new(inner),
                waiting: AtomicUsize::new(0),
                next_id: AtomicU32::new(1),
                strategy: config.strategy,
                closer: Mutex::new(closer),
                on_drop: close_on_drop::<W>,
                stats,
                orphans: Mutex::new(Vec::new()),
                has_orphans: AtomicBool::new(false),
            }),
        }
    }

    /// Takes the next automatic id (1, 2, …, wrapping), e.g. to know it before sending.
    pub fn next_id(&self) -> u32 {
        self.shared.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends `payload` with the next automatic id and returns the id.
    #[inline]
    pub fn send(&self, payload: &[u8]) -> Result<u32, SendError> {
        let id = self.next_id();
        self.send_cancellable(id, payload, None, || None)
            .map(|()| id)
    }

    /// Sends `payload` as message `id`.
    #[inline]
    pub fn send_with_id(&self, id: u32, payload: &[u8]) -> Result<(), SendError> {
        self.send_cancellable(id, payload, None, || None)
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
        // With a token or a deadline, waiting for the write lock can be given up too.
        let wait: Option<&dyn Fn() -> Option<SendError>> =
            (cancel.is_some() || deadline.is_some()).then_some(&stop);
        self.send_inner(id, payload, opts.strategy, opts.buffered, wait, stop)
            .map(|()| id)
    }

    /// Sends with the next automatic id like [`send`](Self::send), but small frames may stay
    /// in the shared write buffer (64 KiB by default) until it fills, another send writes it,
    /// or [`flush`](Self::flush) is called: many small messages then leave in one write.
    /// Call `flush` when a batch is done.
    pub fn send_buffered(&self, payload: &[u8]) -> Result<u32, SendError> {
        let id = self.next_id();
        self.send_inner(id, payload, None, true, None, || None)
            .map(|()| id)
    }

    /// Sends `payload` as message `id` with `strategy` (the node's if `None`), asking `stop`
    /// before each write-lock hold whether to give up; the error it returns is the send's.
    /// Cancelled after its Start was written, the message ends with Abort.
    pub fn send_cancellable(
        &self,
        id: u32,
        payload: &[u8],
        strategy: Option<AnyStrategy>,
        stop: impl FnMut() -> Option<SendError>,
    ) -> Result<(), SendError> {
        self.send_inner(id, payload, strategy, false, None, stop)
    }

    #[inline]
    fn send_inner(
        &self,
        id: u32,
        payload: &[u8],
        strategy: Option<AnyStrategy>,
        buffered: bool,
        wait: Option<&dyn Fn() -> Option<SendError>>,
        mut stop: impl FnMut() -> Option<SendError>,
    ) -> Result<(), SendError> {
        let strategy = strategy.unwrap_or(self.shared.strategy);
        let mut out = Outgoing::new(&strategy, id, payload.len())?;
        let mut why = None;
        let mut started = false;
        loop {
            // Once the last frame is written the message is delivered: a later stop is moot.
            if why.is_none() && !out.is_done() {
                why = stop();
                if why.is_some() {
                    out.settle();
                }
            }
            if out.is_done() {
                break;
            }
            let mut g = match wait {
                None => self.lock(),
                Some(wait) => match self.lock_or_stop(wait) {
                    Ok(g) => g,
                    Err(e) => {
                        if started {
                            // At a frame boundary: the next holder writes the Abort.
                            let mut orphans = self
                                .shared
                                .orphans
                                .lock()
                                .unwrap_or_else(|e| e.into_inner());
                            orphans.push(id);
                            self.shared.has_orphans.store(true, Ordering::SeqCst);
                        }
                        self.after_release();
                        return Err(e);
                    }
                },
            };
            g.usable(id, started)?;
            if !started {
                g.sending.push(id);
                started = true;
            }
            if let Err(e) = g.hold(&mut out, payload) {
                return Err(g.broke(id, e));
            }
            if out.is_done() {
                g.finished(&out);
            }
            let waiting = self.shared.waiting.load(Ordering::Relaxed) > 0;
            if g.should_flush(buffered, waiting)
                && let Err(e) = g.flush_buf()
            {
                return Err(g.broke(id, e));
            }
            drop(g);
            self.after_release();
        }
        why.map_or(Ok(()), Err)
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
        match g.link {
            Link::Closed => return Ok(Vec::new()),
            Link::Broken => {
                g.link = Link::Closed;
                g.io = None;
                return Ok(std::mem::take(&mut g.sending));
            }
            Link::Open => {}
        }
        let ids = g.abort_all();
        let closer = self
            .shared
            .closer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let r = g.flush_buf().and_then(|()| match g.io.as_mut() {
            Some(io) => io.flush().and_then(|()| closer.map_or(Ok(()), |c| c(io))),
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

    /// Whether a write failed (later sends fail with [`SendError::Broken`]).
    pub fn is_broken(&self) -> bool {
        self.shared.stats.is_broken()
    }

    /// The default strategy.
    pub fn strategy(&self) -> AnyStrategy {
        self.shared.strategy
    }

    /// Takes the write lock, then buffers the Aborts owed by sends that gave up waiting.
    #[inline]
    fn lock(&self) -> MutexGuard<'_, TxInner<W>> {
        self.shared.waiting.fetch_add(1, Ordering::Relaxed);
        let mut g = self.shared.inner.lock().unwrap_or_else(|e| e.into_inner());
        self.shared.waiting.fetch_sub(1, Ordering::Relaxed);
        self.settle_orphans(&mut g);
        g
    }

    /// Like [`lock`](Self::lock), but gives up with `stop`'s error, asked between tries (a
    /// send queued behind one stuck in the kernel can still be cancelled).
    fn lock_or_stop(
        &self,
        stop: &dyn Fn() -> Option<SendError>,
    ) -> Result<MutexGuard<'_, TxInner<W>>, SendError> {
        // Not counted in `waiting`: a holder must not leave its frames to a waiter that may
        // give up.
        let mut tries = 0u32;
        let mut g = loop {
            match self.shared.inner.try_lock() {
                Ok(g) => break g,
                Err(TryLockError::Poisoned(p)) => break p.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
            if let Some(e) = stop() {
                return Err(e);
            }
            // Yield first (holds are short), then sleep 50 µs doubling to 800 µs.
            tries += 1;
            if tries < 64 {
                thread::yield_now();
            } else {
                thread::sleep(Duration::from_micros(50 << (tries - 64).min(4)));
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
        (0..n).map(|i| ((i * 31 + 7) % 251) as u8).collect()
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
            );
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
        let tx = Sender::new(sink, &Config::with_strategy(Hybrid::<4096>));
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
    fn data_frame_header_and_payload_leave_in_one_vectored_write() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let tx = Sender::new(Vectored(calls.clone()), &Config::default());
        // Hybrid, 100000 bytes: S0 D16384×6 D1696 E0. Start is buffered and leaves with the
        // first Data frame; the last, small Data frame and End are buffered and flushed.
        tx.send(&payload(100_000)).unwrap();
        let mut want = vec![9 + 9 + 16384];
        want.extend([9 + 16384; 5]);
        want.push(9 + 1696 + 9);
        assert_eq!(*calls.lock().unwrap(), want);
        assert_eq!(tx.counts().writes, 7);
    }

    #[test]
    fn a_hold_budget_gathers_several_data_frames_per_write() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let cfg = Config {
            hold_budget: 65536,
            ..Config::default()
        };
        let tx = Sender::new(Vectored(calls.clone()), &cfg);
        // Hybrid, 1 MiB: S0 D16384×64 E0; four Data frames per hold and write, Start rides
        // with the first, End with the last.
        tx.send(&payload(1 << 20)).unwrap();
        let calls = calls.lock().unwrap();
        assert_eq!(calls.len(), 16, "{calls:?}");
        assert_eq!(calls[0], 9 + 4 * (9 + 16384));
        assert!(calls[1..15].iter().all(|&n| n == 4 * (9 + 16384)));
        assert_eq!(calls[15], 4 * (9 + 16384) + 9);
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
        let tx = Sender::new(Failing, &Config::default());
        assert!(
            matches!(tx.send(b"x"), Err(SendError::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe)
        );
        assert!(matches!(tx.send(b"x"), Err(SendError::Broken)));
        assert!(tx.is_broken());
    }
}

//! The public [`Sender`]: sends, their slots, the lock, flush and close.

use std::fmt;
use std::io::{self, Write};

use std::time::{Duration, Instant};

use mux_nostd::{AnyStrategy, HEADER_LEN};

use crate::adaptive::{Pace, Resolved};
use crate::config::Config;
use crate::error::{ConfigError, SendError};
use crate::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use crate::sync::{Arc, Condvar, Mutex, MutexGuard, TryLockError};
use std::sync::OnceLock;

use super::cork::{Cork, spawn_flusher};

use super::batch::*;
use super::cursor::*;
use super::hold::*;
use super::inner::*;
use super::options::*;
use super::stats::*;

/// How often a send waiting for a slot ([`Config::max_sending`]) asks its cancel token or
/// deadline.
pub(super) const SLOT_POLL: Duration = Duration::from_millis(1);
/// How often a send waiting for a slot without a token or deadline looks again (it is woken
/// whenever a message ends; this is only a backstop).
pub(super) const SLOT_RECHECK: Duration = Duration::from_millis(20);

/// Run on the sink by [`Sender::close`] before it is dropped.
pub type Closer<W> = Box<dyn FnOnce(&mut W) -> io::Result<()> + Send>;

pub(super) struct Shared<W> {
    pub(super) inner: Mutex<TxInner<W>>,
    /// Senders blocked in [`Sender::lock`]: while any waits, a holder leaves the shared buffer
    /// for the next one to write (they always get the lock; those that may give up are not
    /// counted here).
    pub(super) waiting: AtomicUsize,
    /// Senders waiting for the lock by either path ([`Sender::lock`], [`Sender::lock_or_stop`]):
    /// while any waits, a holder ends its hold at the next frame boundary (within
    /// [`Config::hold_budget`]). Counted only once a `try_lock` failed, so the uncontended path
    /// never touches it.
    pub(super) contenders: AtomicUsize,
    /// Those of the contenders that wait to send the next part of a message of several
    /// chunks: while only they wait, a holder may write up to [`BULK_BUDGET`] more.
    pub(super) bulk: AtomicUsize,
    /// Times a contender got the lock: a sender that ended its hold for a contender waits for
    /// this to move before it queues again, so the lock really changes hands.
    pub(super) served: AtomicUsize,
    pub(super) next_id: AtomicU32,
    pub(super) strategy: AnyStrategy,
    /// [`TxInner::pace`]'s estimator, for framing without the lock.
    pub(super) pace: Pace,
    pub(super) closer: Mutex<Option<Closer<W>>>,
    pub(super) on_drop: fn(&mut TxInner<W>, Option<Closer<W>>),
    /// The counters of `inner`, read without the lock.
    pub(super) stats: Arc<TxStats>,
    /// Ids of sends that gave up waiting for the lock after their Start was written: the next
    /// holder writes their Abort. The flag says whether the list may be non-empty.
    pub(super) orphans: Mutex<Vec<u32>>,
    pub(super) has_orphans: AtomicBool,
    /// [`TxInner::slot_freed`], waited on with the lock of `inner`.
    pub(super) slot_freed: Arc<Condvar>,
    /// Autocorking, once [`Sender::autocork`] started it.
    pub(super) cork: OnceLock<Arc<Cork>>,
    /// [`Config::autocork`] and the largest payload it may hold back (0: none).
    pub(super) cork_gap: Duration,
    pub(super) cork_small: usize,
}

impl<W> Drop for Shared<W> {
    /// The last handle is gone without [`Sender::close`]: close anyway (best effort).
    fn drop(&mut self) {
        if let Some(c) = self.cork.get() {
            c.stop();
        }
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
pub(super) fn close_on_drop<W: Write>(g: &mut TxInner<W>, closer: Option<Closer<W>>) {
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
///
/// [`FramePlan`]: mux_nostd::FramePlan
pub struct Sender<W> {
    pub(super) shared: Arc<Shared<W>>,
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
                cork: OnceLock::new(),
                cork_gap: config.autocork,
                cork_small: config.coalesce_frame.saturating_sub(3 * HEADER_LEN),
            }),
        })
    }

    /// Takes the next automatic id (1, 2, …, wrapping), e.g. to know it before sending.
    pub fn next_id(&self) -> u32 {
        self.shared.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends `payload` with the next automatic id and returns the id.
    ///
    /// Once the sender autocorks ([`autocork`](Self::autocork); nodes do from the start), a
    /// small message sent less than [`Config::autocork`] after the previous one, with nothing
    /// received in between, may wait in the shared write buffer for the rest of its burst (at
    /// most about twice that long) and leave with it in one write; a lone message (a request,
    /// the reply to one, a periodic reading) is written before `send` returns.
    #[inline]
    pub fn send(&self, payload: &[u8]) -> Result<u32, SendError> {
        let id = self.next_id();
        self.send_plain(id, payload).map(|()| id)
    }

    /// A plain send: corked (see [`send`](Self::send)) or written through.
    #[inline]
    fn send_plain(&self, id: u32, payload: &[u8]) -> Result<(), SendError> {
        if let Some(c) = self.shared.cork.get()
            && c.corks(payload.len())
        {
            let r = self.send_inner(id, payload, None, true, None, None);
            c.joined();
            return r;
        }
        self.send_inner(id, payload, None, false, None, None)
    }

    /// Sends `payload` as message `id`.
    ///
    /// An id may be reused once its message is sent; a send of an id whose message another
    /// thread is still sending (Start written, End not yet) is refused with
    /// [`SendError::IdInFlight`] and writes nothing (two messages with one id would splice on
    /// the wire). The same holds for every send with an explicit id, and for an automatic id
    /// that meets one given explicitly.
    ///
    /// Autocorks as [`send`](Self::send) does.
    #[inline]
    pub fn send_with_id(&self, id: u32, payload: &[u8]) -> Result<(), SendError> {
        self.send_plain(id, payload)
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
    pub(super) fn send_inner(
        &self,
        id: u32,
        payload: &[u8],
        strategy: Option<AnyStrategy>,
        buffered: bool,
        wait: Option<&dyn Fn() -> Option<SendError>>,
        mut stop: Option<&mut dyn FnMut() -> Option<SendError>>,
    ) -> Result<(), SendError> {
        let strategy = (self.shared.pace).resolve(strategy, self.shared.strategy, payload.len());
        if stop.is_none()
            && let Some(r) = self.send_small(id, payload, &strategy, buffered)
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

    /// The fast path of a message of one chunk at most on a free, idle link (lock free,
    /// nobody waiting, no Abort owed). A plain send on an empty shared buffer goes out in one
    /// vectored write — the Start header with the next one, the payload, the End header —
    /// without a cursor or a batch; a `buffered` one whose frames all fit the shared buffer is
    /// copied there in one go, as the general path would copy it frame by frame. `None`: not
    /// the case, take the general path.
    #[inline]
    pub(super) fn send_small(
        &self,
        id: u32,
        payload: &[u8],
        strategy: &Resolved,
        buffered: bool,
    ) -> Option<Result<(), SendError>> {
        let frames = SmallFrames::plan(strategy, id, payload)?;
        let mut g = self.idle_lock(id)?;
        if buffered {
            if !g.co.put_all(&frames.heads, frames.body, frames.end()) {
                return None;
            }
        } else {
            if !g.co.pending().is_empty() {
                return None;
            }
            if let Err(e) = g.write_small(&frames)? {
                return Some(Err(g.broke(id, e)));
            }
        }
        g.completed(id, payload.len(), frames.count, false);
        Some(self.release(g, buffered, id))
    }

    /// The write lock for a fast path, if it is free and the link idle: nobody waits for
    /// the lock, no Abort is owed, the link is open, a slot is free and `id` is not in
    /// flight. `None`: take the general path (which reports whatever is wrong).
    #[inline]
    fn idle_lock(&self, id: u32) -> Option<MutexGuard<'_, TxInner<W>>> {
        let s = &self.shared;
        if s.contenders.load(Ordering::Relaxed) > 0 || s.has_orphans.load(Ordering::Relaxed) {
            return None;
        }
        let g = s.inner.try_lock().ok()?;
        if g.link != Link::Open || g.in_flight(id) || !g.slot_free() {
            return None;
        }
        Some(g)
    }

    /// Before message `id` starts (nothing of it written): waits, with the lock released,
    /// until fewer than [`Config::max_sending`] messages are under way, asking `stop` (if
    /// any) every [`SLOT_POLL`]. Frames a holder left for waiters are written before it
    /// sleeps. On `Err` (stopped, or the link broke or closed) nothing of the message was
    /// written and the lock is released.
    #[cold]
    #[inline(never)]
    pub(super) fn wait_for_slot<'a>(
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
    pub(super) fn release(
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
    pub(super) fn hand_over(&self, seen: usize) {
        let mut tries = 0;
        while self.shared.contenders.load(Ordering::Relaxed) > 0
            && self.shared.served.load(Ordering::Relaxed) == seen
        {
            back_off(&mut tries);
        }
    }

    /// A started send stops between holds: its Abort goes out now, or, if the lock is busy
    /// and `wait` says stop, is left to the next holder.
    pub(super) fn abandon(
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
    pub(super) fn orphan(&self, id: u32) {
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
    pub(super) fn after_release(&self) {
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
    pub(super) fn lock(&self) -> MutexGuard<'_, TxInner<W>> {
        self.lock_as(false)
    }

    /// [`lock`](Self::lock) for a sender of a message of several chunks (`bulk`) or not.
    #[inline]
    pub(super) fn lock_as(&self, bulk: bool) -> MutexGuard<'_, TxInner<W>> {
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
    pub(super) fn lock_contended(&self, bulk: bool) -> MutexGuard<'_, TxInner<W>> {
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
    pub(super) fn lock_or_stop(
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
    pub(super) fn settle_orphans(&self, g: &mut TxInner<W>) {
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

impl<W: Write + Send + 'static> Sender<W> {
    /// Starts autocorking plain sends ([`send`](Self::send), [`send_with_id`](Self::send_with_id))
    /// as [`Config::autocork`] says: a thread of the sender's own writes a burst's last frames
    /// once no send joined it for that long. Nodes do this when they are made; a sender
    /// without a receiver beside it judges bursts by time alone. Does nothing when
    /// `autocork` is zero or coalescing is off ([`Config::coalesce_frame`] below three
    /// headers), or the second time. Fails only if the thread cannot be spawned.
    pub fn autocork(&self) -> io::Result<()> {
        self.autocork_hearing(None)
    }

    /// [`autocork`](Self::autocork), writing through every send that follows a read of
    /// `arrivals`' reader (a reply came: the send may be the next request of a ping-pong).
    pub(crate) fn autocork_hearing(
        &self,
        arrivals: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
    ) -> io::Result<()> {
        let s = &self.shared;
        if s.cork_gap.is_zero() || s.cork_small == 0 || s.cork.get().is_some() {
            return Ok(());
        }
        let cork = std::sync::Arc::new(Cork::new(s.cork_gap, s.cork_small, arrivals));
        let weak = Arc::downgrade(&self.shared);
        spawn_flusher(&cork, move || {
            let Some(shared) = weak.upgrade() else {
                return false;
            };
            let mut g = shared.inner.lock().unwrap_or_else(|e| e.into_inner());
            if g.link == Link::Open {
                let r = g.flush_buf().and_then(|()| match g.io.as_mut() {
                    Some(io) => io.flush(),
                    None => Ok(()),
                });
                if let Err(e) = r {
                    g.link_failed(e);
                }
            }
            true
        })?;
        // Set once: a concurrent second call's cork stops its thread.
        if let Err(c) = s.cork.set(cork) {
            c.stop();
        }
        Ok(())
    }
}

//! The node over tokio's `AsyncRead`/`AsyncWrite` (feature `tokio`).
//!
//! Same wire behaviour as the blocking [`Node`](crate::Node): the blocking sender's holds
//! driven with `.await` (frames written vectored from the caller's slice while nobody waits;
//! once a task waits for the write lock, small frames coalesced and the hold ended within
//! [`Config::hold_budget`]), and the receive core fed by a reader task. Every future is `Send`,
//! so it can be `tokio::spawn`ed.
//!
//! Cancel-safe: a send future dropped between holds leaves its message to be ended with Abort
//! by the next writer; one dropped in the middle of a hold leaves its progress behind the lock,
//! and the next holder completes the frame (with filler) and writes Abort before anything else.
//! A send with a deadline or a cancel token ([`AsyncSender::send_with`]) races both against
//! every wait — for the write lock, and for a write the sink does not take — and gives up the
//! same way: what it owes and cannot write at once is left to the next holder (a holder writes
//! the Aborts left while it held the lock before it lets go of it).
//!
//! Dropping an [`AsyncReceiver`] (or the [`AsyncNode`]) stops its reader task at once, even
//! while the peer keeps the connection open; [`AsyncNode::close_timeout`] bounds the wait for
//! the peer's end of stream.
//!
//! Unlike the blocking [`Sender`](crate::Sender), dropping the last [`AsyncSender`] cannot
//! write anything (no `.await` in `Drop`): call [`AsyncSender::close`] (or at least
//! [`flush`](AsyncSender::flush) after `send_buffered`) first.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use mux_std::{Config, Received, tokio::AsyncNode};
//! let (a, b) = tokio::net::UnixStream::pair().unwrap();
//! let a = AsyncNode::unix(a, Config::default()).unwrap();
//! let b = AsyncNode::unix(b, Config::default()).unwrap();
//! let id = tokio::spawn(async move { a.send(b"over tokio").await.unwrap() }).await.unwrap();
//! match b.recv().await.unwrap() {
//!     Received::Message(m) => assert_eq!((m.id(), m.body()), (id, &b"over tokio"[..])),
//!     other => panic!("{other:?}"),
//! }
//! # });
//! ```

use std::fmt;
use std::future::{Future, poll_fn};
use std::io::{self, IoSlice};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use mux_nostd::{AnyStrategy, Outgoing};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::config::Config;
use crate::error::{ConfigError, RecvError, SendError, TryRecvError};
use crate::node::Metrics;
use crate::pool::BufferPool;
use crate::reader::{Item, Pump, RxShared, Step, lock};
use crate::rx::{Received, RxCounts};
use crate::tx::{
    CancelToken, Cork, Cursor, HoldEnd, How, Link, SendOptions, TxCounts, TxInner, bump, hold,
    timed_write, write_owed,
};

mod queue;

use queue::{QueueRx, QueueTx, Took};

struct Shared<W> {
    inner: tokio::sync::Mutex<TxInner<W>>,
    /// Tasks waiting for the write lock: while any waits, a holder ends its hold within
    /// [`Config::hold_budget`].
    waiting: crate::sync::atomic::AtomicUsize,
    /// Those of them sending the next part of a message of several chunks: while only they
    /// wait, a holder writes up to 256 KiB more (as the blocking sender's holders do).
    bulk: crate::sync::atomic::AtomicUsize,
    next_id: AtomicU32,
    strategy: AnyStrategy,
    /// Messages whose send future was dropped between holds, or that gave up waiting for
    /// the lock: Abort is owed for them.
    orphans: Orphans,
    /// The counters of `inner`, read without the lock.
    stats: crate::sync::Arc<crate::tx::TxStats>,
    /// One slot per message that may be under way ([`Config::max_sending`]); a send holds
    /// one until it returns.
    slots: Slots,
    /// Under Adaptive, the link's estimate (shared with `inner`, which times the writes).
    pace: crate::adaptive::Pace,
    /// Autocorking, once [`AsyncSender::autocork`] started it.
    cork: std::sync::OnceLock<Arc<AsyncCork<W>>>,
    /// [`Config::autocork`] and the largest payload it may hold back (0: none).
    cork_gap: Duration,
    cork_small: usize,
}

impl<W> Drop for Shared<W> {
    /// The flusher task exits.
    fn drop(&mut self) {
        if let Some(c) = self.cork.get() {
            c.gone.store(true, Ordering::SeqCst);
            c.wake.notify_one();
        }
    }
}

/// The tokio sender's autocorking: the blocking sender's rule ([`Cork`]) for which plain sends
/// join a burst in the shared buffer, and a flusher task that writes a burst once the tasks
/// sending it let the runtime run others (a burst is what a task sends without waiting).
struct AsyncCork<W> {
    cork: Cork,
    /// A burst was started: the flusher task runs.
    wake: tokio::sync::Notify,
    /// The sender, kept alive by its armed burst until the flusher has written it (so that
    /// dropping the last handle right after a send does not lose its bytes).
    keep: Mutex<Option<Arc<Shared<W>>>>,
    /// The sender is gone: the flusher task exits.
    gone: AtomicBool,
}

/// The flusher task of an autocorking sender.
async fn flusher<W: AsyncWrite + Unpin + Send>(c: Arc<AsyncCork<W>>) {
    /// If the task is dropped (its runtime shuts down), the sender an armed burst keeps alive
    /// is let go (else it would keep itself alive through its own cork).
    struct LetGo<'a, W>(&'a AsyncCork<W>);
    impl<W> Drop for LetGo<'_, W> {
        fn drop(&mut self) {
            drop(lock(&self.0.keep).take());
        }
    }
    let _let_go = LetGo(&c);
    loop {
        c.wake.notified().await;
        if c.gone.load(Ordering::SeqCst) {
            return;
        }
        let Some(shared) = lock(&c.keep).take() else {
            continue;
        };
        // The tasks that corked the burst go on until they wait for something: then it leaves.
        tokio::task::yield_now().await;
        let mut g = shared.inner.lock().await;
        // Before the buffer is written: a send corked from here on arms the flusher again.
        c.cork.disarm();
        if owes(&g, &shared.orphans) && settle_owed(&mut g, &shared.orphans).await.is_err() {
            continue; // the link is broken
        }
        if g.link == Link::Open
            && flush_due(&g)
            && let Err(e) = flush_buf(&mut g).await
        {
            g.link_failed(e);
        }
    }
}

/// Started messages whose send stopped outside a hold: the next holder of the write lock
/// writes their Abort (each is settled: only Abort is left of it).
#[derive(Default)]
struct Orphans {
    list: Mutex<Vec<Outgoing>>,
    /// Whether `list` may be non-empty (read without its lock).
    any: AtomicBool,
}

impl Orphans {
    fn push(&self, out: Outgoing) {
        lock(&self.list).push(out);
        self.any.store(true, Ordering::SeqCst);
    }

    fn pop(&self) -> Option<Outgoing> {
        if !self.any() {
            return None;
        }
        let mut list = lock(&self.list);
        let out = list.pop();
        if list.is_empty() {
            self.any.store(false, Ordering::SeqCst);
        }
        out
    }

    fn any(&self) -> bool {
        self.any.load(Ordering::SeqCst)
    }
}

/// The limit of [`Config::max_sending`] messages under way: a count taken and given back
/// with one atomic operation each while slots are free; a send that finds none waits to be
/// woken by the next one given back.
struct Slots {
    used: AtomicUsize,
    cap: usize,
    /// Sends waiting for a slot: a slot given back wakes one of them.
    waiters: AtomicUsize,
    freed: tokio::sync::Notify,
}

/// A slot taken; given back when dropped.
struct Slot<'a>(&'a Slots);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let slots = self.0;
        slots.used.fetch_sub(1, Ordering::SeqCst);
        if slots.waiters.load(Ordering::SeqCst) > 0 {
            slots.freed.notify_one();
        }
    }
}

impl Slots {
    fn new(cap: usize) -> Self {
        Self {
            used: AtomicUsize::new(0),
            cap,
            waiters: AtomicUsize::new(0),
            freed: tokio::sync::Notify::new(),
        }
    }

    /// A slot if one is free.
    fn try_take(&self) -> Option<Slot<'_>> {
        let mut used = self.used.load(Ordering::SeqCst);
        while used < self.cap {
            match (self.used).compare_exchange_weak(
                used,
                used + 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return Some(Slot(self)),
                Err(now) => used = now,
            }
        }
        None
    }

    /// Waits for a slot. Cancel-safe (a wake-up that reaches a dropped waiter passes on to
    /// the next one).
    async fn take(&self) -> Slot<'_> {
        /// Counts a waiter until it is done waiting.
        struct Waiter<'a>(&'a AtomicUsize);
        impl Drop for Waiter<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        loop {
            let mut freed = pin!(self.freed.notified());
            // Registered before the count goes up: a slot given back after the count is seen
            // wakes this waiter, one given back before it is seen by the next `try_take`.
            freed.as_mut().enable();
            self.waiters.fetch_add(1, Ordering::SeqCst);
            let _waiter = Waiter(&self.waiters);
            if let Some(slot) = self.try_take() {
                return slot;
            }
            freed.await;
        }
    }
}

/// What a send with [`SendOptions`] gives up on: its deadline and its cancel token. Every
/// wait of such a send (for the write lock, for a write the sink does not take) races them.
#[derive(Debug, Default)]
struct Wait {
    deadline: Option<Instant>,
    cancel: Option<CancelToken>,
}

/// How often a wait looks at a cancel token (a token cannot wake a task): after 1 ms first,
/// the interval doubling up to [`TOKEN_POLL_MAX`].
const TOKEN_POLL_MIN: Duration = Duration::from_millis(1);
/// The longest interval between two looks at a cancel token while a send waits.
const TOKEN_POLL_MAX: Duration = Duration::from_millis(8);

impl Wait {
    /// Nothing to give up on: every wait runs to its end.
    const NONE: Self = Self {
        deadline: None,
        cancel: None,
    };

    /// Whether there is nothing to give up on.
    fn is_none(&self) -> bool {
        self.deadline.is_none() && self.cancel.is_none()
    }

    /// The error to give up with, if the token is cancelled or the deadline passed.
    fn check(&self) -> Option<SendError> {
        if self.cancel.as_ref().is_some_and(CancelToken::is_cancelled) {
            Some(SendError::Cancelled)
        } else if self.deadline.is_some_and(|d| Instant::now() >= d) {
            Some(SendError::TimedOut)
        } else {
            None
        }
    }

    /// Runs `fut` until it ends or this wait gives up, whichever comes first. `fut` is
    /// polled first each time, so once the deadline has passed (or the token is cancelled)
    /// this polls `fut` once: what can be done without waiting is done. Dropping `fut` must
    /// be safe (every future passed here keeps its progress behind the write lock).
    async fn race<F: Future>(&self, fut: F) -> Result<F::Output, SendError> {
        if self.is_none() {
            return Ok(fut.await);
        }
        let mut fut = pin!(fut);
        // Armed only once `fut` has to wait: at the deadline or the next look at the token.
        let mut timer = pin!(None::<tokio::time::Sleep>);
        let mut every = TOKEN_POLL_MIN;
        poll_fn(|cx| {
            if let Poll::Ready(out) = fut.as_mut().poll(cx) {
                return Poll::Ready(Ok(out));
            }
            loop {
                if let Some(e) = self.check() {
                    return Poll::Ready(Err(e));
                }
                if let Some(t) = timer.as_mut().as_pin_mut()
                    && t.poll(cx).is_pending()
                {
                    return Poll::Pending;
                }
                let mut at = self.deadline;
                if self.cancel.is_some() {
                    let next = Instant::now() + every;
                    every = (every * 2).min(TOKEN_POLL_MAX);
                    at = Some(at.map_or(next, |d| d.min(next)));
                }
                let Some(at) = at else {
                    return Poll::Pending; // never: one of the two is set
                };
                timer.set(Some(tokio::time::sleep_until(at.into())));
            }
        })
        .await
    }
}

/// The sending half over a tokio `AsyncWrite`. Clones share the link.
pub struct AsyncSender<W> {
    shared: Arc<Shared<W>>,
}

impl<W> Clone for AsyncSender<W> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<W> fmt::Debug for AsyncSender<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncSender")
            .field("strategy", &self.shared.strategy)
            .finish_non_exhaustive()
    }
}

/// Ends the message with Abort (through the orphan list) if its send future is dropped
/// between holds.
struct InFlight<'a> {
    orphans: &'a Orphans,
    msg: Cursor,
    /// Its id is in `sending` (its Start may be written).
    started: bool,
}

impl InFlight<'_> {
    /// Leaves the message, settled, to the orphan list (if it was started).
    fn orphan(&mut self) {
        if self.started
            && let Some(mut out) = self.msg.take_owed()
        {
            out.settle();
            self.orphans.push(out);
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.orphan();
    }
}

impl<W: AsyncWrite + Unpin + Send> AsyncSender<W> {
    /// A sender over `io`; automatic ids start at 1. Fails if `config` is out of its bounds
    /// (see [`Config`]).
    pub fn new(io: W, config: &Config) -> Result<Self, ConfigError> {
        config.validate()?;
        let inner = TxInner::new(io, config);
        let stats = inner.stats.clone();
        Ok(Self {
            shared: Arc::new(Shared {
                stats,
                pace: inner.pace.clone(),
                inner: tokio::sync::Mutex::new(inner),
                waiting: crate::sync::atomic::AtomicUsize::new(0),
                bulk: crate::sync::atomic::AtomicUsize::new(0),
                next_id: AtomicU32::new(1),
                strategy: config.strategy,
                orphans: Orphans::default(),
                slots: Slots::new(config.sending_cap()),
                cork: std::sync::OnceLock::new(),
                cork_gap: config.autocork,
                cork_small: config
                    .coalesce_frame
                    .saturating_sub(3 * mux_nostd::HEADER_LEN),
            }),
        })
    }

    /// Starts autocorking plain sends ([`send`](Self::send), [`send_with_id`](Self::send_with_id))
    /// as [`Config::autocork`] says, as the blocking [`Sender::autocork`](crate::Sender::autocork)
    /// does: a small message sent less than that after the previous one, with nothing received
    /// in between, waits in the shared write buffer for the rest of its burst; a task spawned
    /// here writes the burst once the tasks sending it wait for something (or the buffer fills,
    /// or another send writes). A lone message is written before `send` returns. Nodes do this
    /// when they are made. Does nothing when `autocork` is zero or coalescing is off, or the
    /// second time.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn autocork(&self)
    where
        W: 'static,
    {
        self.autocork_hearing(None);
    }

    /// [`autocork`](Self::autocork), writing through every send that follows a read of
    /// `arrivals`' reader (a reply came: the send may be the next request of a ping-pong).
    fn autocork_hearing(&self, arrivals: Option<Arc<std::sync::atomic::AtomicU64>>)
    where
        W: 'static,
    {
        let s = &self.shared;
        if s.cork_gap.is_zero() || s.cork_small == 0 || s.cork.get().is_some() {
            return;
        }
        let c = Arc::new(AsyncCork {
            cork: Cork::new(s.cork_gap, s.cork_small, arrivals),
            wake: tokio::sync::Notify::new(),
            keep: Mutex::new(None),
            gone: AtomicBool::new(false),
        });
        if s.cork.set(c.clone()).is_ok() {
            tokio::spawn(flusher(c));
        }
    }

    /// Takes the next automatic id (1, 2, …, wrapping).
    pub fn next_id(&self) -> u32 {
        self.shared.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends `payload` with the next automatic id; returns the id.
    ///
    /// Once the sender autocorks ([`autocork`](Self::autocork); nodes do from the start), a
    /// small message sent less than [`Config::autocork`] after the previous one, with nothing
    /// received in between, may wait in the shared write buffer for the rest of its burst and
    /// leave with it once the sending tasks wait for something; a lone message (a request, the
    /// reply to one) is written before `send` returns.
    pub async fn send(&self, payload: &[u8]) -> Result<u32, SendError> {
        let id = self.next_id();
        self.send_inner(id, payload, None, false, Wait::NONE, None)
            .await
            .map(|()| id)
    }

    /// Sends `payload` as message `id`. A send of an id whose message another task is still
    /// sending is refused with [`SendError::IdInFlight`] and writes nothing (see
    /// [`Sender::send_with_id`](crate::Sender::send_with_id)). Autocorks as
    /// [`send`](Self::send) does.
    pub async fn send_with_id(&self, id: u32, payload: &[u8]) -> Result<(), SendError> {
        self.send_inner(id, payload, None, false, Wait::NONE, None)
            .await
    }

    /// Sends with [`SendOptions`] (id, strategy, cancel token, deadline); returns the id.
    ///
    /// The deadline and the token are raced against every wait of the send: waiting for the
    /// write lock (behind a send stuck in the kernel, say) and a write the sink does not take.
    /// A send that gives up returns [`SendError::TimedOut`] or [`SendError::Cancelled`] at
    /// once (a token is looked at every few milliseconds while the send waits). A message
    /// that was never started writes nothing; one whose Start was written ends with Abort:
    /// what can be written without waiting is (the rest of a frame cut in the middle, with
    /// filler, then Abort), and what cannot is left to the next holder of the write lock,
    /// which writes it before anything else — as for a dropped send future (see the module
    /// docs). Until then the peer sees the message open. Two edge cases: a message whose End
    /// frame was already partly written is completed, not aborted (it reaches the peer
    /// whole; if the rest of that End is written at once the send returns `Ok`); and a
    /// message all of whose frames were copied into the shared write buffer counts as sent,
    /// `Ok`, even if writing that buffer out is what waits (it leaves with the next write,
    /// [`flush`](Self::flush) or [`close`](Self::close), as after
    /// [`send_buffered`](Self::send_buffered)).
    ///
    /// # Panics
    /// With a deadline or a token, if the send has to wait on a runtime built without its
    /// time driver (`enable_time` or `enable_all` on the runtime builder).
    pub async fn send_with(&self, payload: &[u8], opts: &SendOptions) -> Result<u32, SendError> {
        let id = opts.id.unwrap_or_else(|| self.next_id());
        let wait = Wait {
            deadline: opts.deadline,
            cancel: opts.cancel.clone(),
        };
        self.send_inner(id, payload, opts.strategy, opts.buffered, wait, None)
            .await
            .map(|()| id)
    }

    /// Sends `payload` as message `id` with `strategy` (the node's if `None`), asking `stop`
    /// before each write-lock hold and between its write calls whether to give up (see
    /// [`Sender::send_cancellable`](crate::Sender::send_cancellable)). Unlike a deadline or
    /// token given to [`send_with`](Self::send_with), `stop` is not asked while the send
    /// waits (for the lock or for the sink), and a message it stops after its Start waits
    /// for the lock to write its Abort.
    pub async fn send_cancellable(
        &self,
        id: u32,
        payload: &[u8],
        strategy: Option<AnyStrategy>,
        mut stop: impl FnMut() -> Option<SendError> + Send,
    ) -> Result<(), SendError> {
        self.send_inner(id, payload, strategy, false, Wait::NONE, Some(&mut stop))
            .await
    }

    /// Sends with the next automatic id, leaving small frames in the shared write buffer
    /// (see [`Sender::send_buffered`](crate::Sender::send_buffered)); call
    /// [`flush`](Self::flush) when a batch is done.
    pub async fn send_buffered(&self, payload: &[u8]) -> Result<u32, SendError> {
        let id = self.next_id();
        self.send_inner(id, payload, None, true, Wait::NONE, None)
            .await
            .map(|()| id)
    }

    /// One send: holds of the write lock until the message is written. `stop` is asked
    /// before each hold and between write calls; so is `wait`, which is also raced against
    /// every wait.
    async fn send_inner(
        &self,
        id: u32,
        payload: &[u8],
        strategy: Option<AnyStrategy>,
        buffered: bool,
        wait: Wait,
        mut stop: Option<&mut (dyn FnMut() -> Option<SendError> + Send)>,
    ) -> Result<(), SendError> {
        let strategy = (self.shared.pace).resolve(strategy, self.shared.strategy, payload.len());
        // A plain send of a small message in a burst joins the shared buffer (autocorking).
        let cork = match self.shared.cork.get() {
            Some(c) if stop.is_none() && wait.is_none() && !buffered => {
                c.cork.corks(payload.len()).then_some(c)
            }
            _ => None,
        };
        let buffered = buffered || cork.is_some();
        let msg = Cursor::new(&strategy, id, payload.len())?;
        // Under Adaptive, a message of the workload's small ones waits as a one-chunk one does.
        let bulk = !msg.small && !self.shared.pace.is_small(&strategy, payload.len());
        // A slot among `max_sending` until this send returns (the peer then never sees more
        // of our messages open); taken before `fl`, so a dropped send hands its Abort to the
        // orphan list (settled before any later Start) before it frees the slot.
        let _slot = match self.shared.slots.try_take() {
            Some(slot) => slot,
            None => wait.race(self.shared.slots.take()).await?,
        };
        let orphans = &self.shared.orphans;
        let mut fl = InFlight {
            orphans,
            msg,
            started: false,
        };
        // A send that may give up asks between the write calls of a hold too.
        let cancellable = stop.is_some() || !wait.is_none();
        let mut ask = || {
            stop.as_deref_mut()
                .and_then(|stop| stop())
                .or_else(|| wait.check())
        };
        let mut why = None;
        while !fl.msg.is_done() {
            why = ask();
            if why.is_some() {
                if fl.started {
                    // Its Abort goes out now if the lock comes before `wait` gives up; else
                    // the next holder writes it.
                    fl.orphan();
                    if let Ok(mut g) = wait.race(self.lock()).await {
                        if let Ok(r) = wait.race(settle_owed(&mut g, orphans)).await {
                            r?;
                        }
                        if let Ok(Err(e)) = wait.race(flush_buf(&mut g)).await {
                            return Err(g.broke(id, e));
                        }
                    }
                }
                break;
            }
            // Once `wait` has given up, the lock is taken only if it is free and the writes
            // go only as far as the sink takes them at once; what is left stays owed (in the
            // orphan list through `fl`, or in `owed`) to the next holder.
            let mut g = match self.shared.inner.try_lock() {
                Ok(g) => g,
                Err(_) => match wait.race(self.lock_as(bulk)).await {
                    Ok(g) => g,
                    Err(e) => {
                        why = Some(e);
                        break; // `fl` settles the message and leaves it to the next holder
                    }
                },
            };
            if owes(&g, orphans) {
                match wait.race(settle_owed(&mut g, orphans)).await {
                    Ok(r) => r?,
                    Err(e) => {
                        // What an earlier send owed is still owed (in `owed`); so is this one.
                        why = Some(e);
                        break;
                    }
                }
            }
            g.usable(id, fl.started)?;
            if !fl.started && g.in_flight(id) {
                return Err(SendError::IdInFlight { id }); // nothing of it was written
            }
            if !fl.started {
                g.sending.push(id);
                fl.started = true;
            }
            // A sink without vectored writes takes one slice per call: small frames are
            // copied into the shared buffer, written together.
            let vectored = g.io.as_ref().is_some_and(|io| io.is_write_vectored());
            let mut how = How {
                contenders: &self.shared.waiting,
                bulk: &self.shared.bulk,
                buffered: buffered || !vectored,
                pace: &self.shared.pace,
                stop: cancellable
                    .then_some(&mut ask as &mut (dyn FnMut() -> Option<SendError> + Send)),
            };
            // If the hold is cut short (`wait` gives up while a write waits), its progress is
            // left in `owed` (see the module docs).
            let held = hold(&mut g, &mut fl.msg, payload, &mut how);
            let held = if wait.is_none() {
                Ok(held.await)
            } else {
                wait.race(held).await
            };
            let gave_up = match held {
                Ok(Ok(HoldEnd::Done)) => {
                    g.completed(id, payload.len(), fl.msg.frame_count(), true);
                    None
                }
                Ok(Ok(HoldEnd::Yield)) => None,
                Ok(Ok(HoldEnd::Stopped(e))) => {
                    g.owed = fl.msg.take_owed();
                    Some(e)
                }
                Ok(Err(e)) => return Err(g.broke(id, e)),
                Err(e) => Some(e),
            };
            if let Some(e) = gave_up {
                // The message is settled (the rest of a frame cut in the middle with filler,
                // then Abort), as much of it written as goes at once, the rest left in `owed`
                // for the next holder.
                why = Some(e);
                if let Some(out) = g.owed.as_mut() {
                    out.settle();
                }
                if let Ok(Err(e)) = wait.race(write_owed(&mut g)).await {
                    return Err(g.broke(id, e));
                }
                if let Ok(Err(e)) = wait.race(flush_buf(&mut g)).await {
                    return Err(g.broke(id, e));
                }
                if let Some(out) = g.owed.take_if(|o| o.is_done()) {
                    g.finished(&out);
                    if !out.is_cancelled() {
                        why = None; // its End was under way: it went out whole
                    }
                }
                break;
            }
            // Aborts owed by sends that gave up waiting for the lock while we held it go
            // out now, not at the next send.
            if orphans.any() {
                match wait.race(settle_owed(&mut g, orphans)).await {
                    Ok(r) => r?,
                    Err(e) => {
                        if !fl.msg.is_done() {
                            why.get_or_insert(e);
                        }
                    }
                }
            }
            // Unlike the blocking sender, a holder does not leave its frames to a waiting
            // task: that task's future may be dropped before it gets the lock. A write of the
            // shared buffer that has to wait past the deadline is left to the next writer.
            if g.should_flush(buffered, false) && flush_due(&g) {
                match wait.race(flush_buf(&mut g)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(g.broke(id, e)),
                    Err(e) => {
                        if !fl.msg.is_done() {
                            why.get_or_insert(e);
                        }
                    }
                }
            }
            if why.is_some() {
                break;
            }
        }
        // A started message that gave up outside a hold goes to the orphan list.
        drop(fl);
        if orphans.any() {
            self.settle_orphans(&wait).await;
        }
        if let Some(c) = cork
            && c.cork.joined()
        {
            *lock(&c.keep) = Some(self.shared.clone());
            c.wake.notify_one();
        }
        why.map_or(Ok(()), Err)
    }

    /// After a send: Aborts left in the orphan list while this send held the lock for the
    /// last time (a send that gave up waiting then could not take it) are written now if
    /// the lock is free, so that they do not wait for the next send. A send that gave up
    /// itself writes only what goes at once. A failed write breaks the link (later sends
    /// report it).
    async fn settle_orphans(&self, wait: &Wait) {
        if !self.shared.orphans.any() {
            return;
        }
        let Ok(mut g) = self.shared.inner.try_lock() else {
            return; // the holder writes them (after its hold or at its next one)
        };
        if let Ok(Err(e)) = wait.race(settle_owed(&mut g, &self.shared.orphans)).await {
            drop(e); // the link is broken now
            return;
        }
        if let Ok(Err(e)) = wait.race(flush_buf(&mut g)).await {
            g.link_failed(e);
        }
    }

    /// Writes whatever is buffered (and what dropped sends owe) and flushes the sink.
    pub async fn flush(&self) -> Result<(), SendError> {
        let mut g = self.lock().await;
        settle_owed(&mut g, &self.shared.orphans).await?;
        g.usable(0, false)?;
        let r = match flush_buf(&mut g).await {
            Ok(()) => match g.io.as_mut() {
                Some(io) => io.flush().await,
                None => Ok(()),
            },
            Err(e) => Err(e),
        };
        r.map_err(|e| g.link_failed(e))
    }

    /// Closes the sending side: Abort for messages still being sent, flush, shut the sink's
    /// write direction down and drop it. Returns the aborted ids.
    pub async fn close(&self) -> Result<Vec<u32>, SendError> {
        let mut g = self.lock().await;
        settle_owed(&mut g, &self.shared.orphans).await?;
        match g.link {
            Link::Closed => return Ok(Vec::new()),
            Link::Broken => {
                g.link = Link::Closed;
                g.io = None;
                return Ok(std::mem::take(&mut g.sending));
            }
            Link::Open => {}
        }
        let (ids, r) = abort_all(&mut g).await;
        let r = match r {
            Ok(()) => flush_buf(&mut g).await,
            Err(e) => Err(e),
        };
        let r = match r {
            Ok(()) => match g.io.as_mut() {
                Some(io) => io.shutdown().await,
                None => Ok(()),
            },
            Err(e) => Err(e),
        };
        g.link = Link::Closed;
        g.io = None;
        r.map_err(SendError::Io)?;
        Ok(ids)
    }

    /// Send counters, read without waiting for the write lock (so never behind a send
    /// stuck in the kernel), like [`Sender::counts`](crate::Sender::counts).
    pub fn counts(&self) -> TxCounts {
        self.shared.stats.snapshot()
    }

    /// Whether a write failed (later sends fail with [`SendError::Broken`]); read without
    /// waiting for the write lock, like [`Sender::is_broken`](crate::Sender::is_broken).
    pub fn is_broken(&self) -> bool {
        self.shared.stats.is_broken()
    }

    /// The default strategy (the one of [`Config::strategy`] this sender was made with).
    pub fn strategy(&self) -> AnyStrategy {
        self.shared.strategy
    }

    /// What the sender has learned of its link when its strategy is
    /// [`Adaptive`](AnyStrategy::Adaptive): the estimated rate (from its timed writes) and
    /// the message-size histogram (`None` for the other strategies), as
    /// [`Sender::link_estimate`](crate::Sender::link_estimate).
    pub fn link_estimate(&self) -> Option<&mux_nostd::LinkEstimator> {
        self.shared.pace.estimator()
    }

    async fn lock(&self) -> tokio::sync::MutexGuard<'_, TxInner<W>> {
        self.lock_as(false).await
    }

    /// Waits for the write lock as a counted waiter; `bulk`: to send the next part of a
    /// message of several chunks (while only such senders wait, a holder writes up to
    /// 256 KiB more before it lets go).
    async fn lock_as(&self, bulk: bool) -> tokio::sync::MutexGuard<'_, TxInner<W>> {
        /// Counts a waiter until the lock is taken or the future is dropped.
        struct Waiting<'a>(&'a crate::sync::atomic::AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        let s = &self.shared;
        // `bulk` first, so that a holder never sees more bulk waiters than waiters.
        let _bulk = bulk.then(|| {
            s.bulk.fetch_add(1, Ordering::Relaxed);
            Waiting(&s.bulk)
        });
        s.waiting.fetch_add(1, Ordering::Relaxed);
        let _waiting = Waiting(&s.waiting);
        s.inner.lock().await
    }
}

/// Whether dropped sends owe anything ([`settle_owed`] has work).
fn owes<W>(g: &TxInner<W>, orphans: &Orphans) -> bool {
    g.owed.is_some() || orphans.any()
}

/// Whether [`flush_buf`] has anything to write: buffered bytes, or the serial link profile's
/// frames.
fn flush_due<W>(g: &TxInner<W>) -> bool {
    !g.co.pending().is_empty() || matches!(g.io, Some(crate::link::Sink::Link(_)))
}

/// Writes what dropped sends owe: first a hold cut in the middle, then orphaned messages.
async fn settle_owed<W: AsyncWrite + Unpin>(
    g: &mut TxInner<W>,
    orphans: &Orphans,
) -> Result<(), SendError> {
    if let Some(out) = g.owed.as_mut() {
        out.settle();
    }
    loop {
        if g.owed.is_none() {
            g.owed = orphans.pop();
        }
        let Some(out) = g.owed.as_ref() else {
            return Ok(());
        };
        let id = out.id();
        if g.link == Link::Open
            && let Err(e) = write_owed(g).await
        {
            g.owed = None;
            return Err(g.broke(id, e));
        }
        if let Some(out) = g.owed.take() {
            g.finished(&out);
        }
    }
}

/// Before closing: Abort for every message under way (each at a frame boundary), buffered,
/// the buffer written out first whenever it is full. Returns their ids and the error of such a
/// write (the Aborts after it are not buffered).
async fn abort_all<W: AsyncWrite + Unpin>(g: &mut TxInner<W>) -> (Vec<u32>, io::Result<()>) {
    let ids = std::mem::take(&mut g.sending);
    let mut r = Ok(());
    for &id in &ids {
        if r.is_ok() && !g.co.push_abort(id) {
            r = flush_buf(g).await;
            if r.is_ok() {
                // Cannot fail: the buffer is empty now and holds at least one header.
                let _ = g.co.push_abort(id);
            }
        }
        bump(&g.stats.aborted, 1);
    }
    (ids, r)
}

async fn flush_buf<W: AsyncWrite + Unpin>(g: &mut TxInner<W>) -> io::Result<()> {
    let TxInner {
        io,
        co,
        stats,
        pace,
        ..
    } = g;
    let Some(io) = io.as_mut() else {
        return Ok(());
    };
    while !co.pending().is_empty() {
        let p = co.pending();
        let n = timed_write(pace, io, &[IoSlice::new(p)], p.len(), &stats.writes).await?;
        co.sent(n);
    }
    // With the serial link profile: link frames the socket did not take at once go out now,
    // not with the next write.
    std::future::poll_fn(|cx| io.poll_drain_link(cx)).await
}

/// The receiving half over a tokio `AsyncRead`: a reader task feeds the receive core.
///
/// In streaming mode ([`Config::streaming`]) the `Started`, `Chunk` and `Ended` items of a
/// message go, like every item, to whichever task calls [`recv`](Self::recv) next: tasks
/// receiving from one `AsyncReceiver` at the same time split a message's chunks between them.
/// To see a message's chunks together and in order, receive with one task.
///
/// Dropping it stops the reader task at once (even inside a read the peer never answers),
/// which drops the read half of the stream and the read buffer.
pub struct AsyncReceiver {
    rx: QueueRx<Item>,
    shared: Arc<RxShared>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Tells the reader task to stop (a permit is kept if it is not waiting).
    stop: Arc<tokio::sync::Notify>,
}

impl Drop for AsyncReceiver {
    fn drop(&mut self) {
        self.stop.notify_one();
    }
}

impl fmt::Debug for AsyncReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncReceiver").finish_non_exhaustive()
    }
}

impl AsyncReceiver {
    /// Spawns the reader task on the current tokio runtime (panics outside one). Fails if
    /// `config` is out of its bounds (see [`Config`]), before anything is spawned.
    pub fn spawn<R: AsyncRead + Unpin + Send + 'static>(
        read: R,
        config: &Config,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let (shared, pump) = Pump::new(config);
        let (tx, rx) = queue::bounded(config.queue_len());
        let stop = Arc::new(tokio::sync::Notify::new());
        let task = tokio::spawn(read_task(read, pump, tx, shared.clone(), stop.clone()));
        Ok(Self {
            rx,
            shared,
            task: Mutex::new(Some(task)),
            stop,
        })
    }

    /// The next item. [`RecvError::Io`] or [`RecvError::ReaderPanicked`] comes once;
    /// [`RecvError::Closed`] after the end of stream. Cancel-safe.
    pub async fn recv(&self) -> Result<Received, RecvError> {
        match self.rx.recv().await {
            Some(item) => item.into_result(),
            None => Err(RecvError::Closed),
        }
    }

    /// The next item if one is queued, without waiting, like
    /// [`Receiver::try_recv`](crate::Receiver::try_recv).
    pub fn try_recv(&self) -> Result<Received, TryRecvError> {
        match self.rx.try_recv() {
            Took::Item(item) => item.into_result().map_err(TryRecvError::Recv),
            Took::Empty => Err(TryRecvError::Empty),
            Took::Closed => Err(TryRecvError::Recv(RecvError::Closed)),
        }
    }

    /// The next item, waiting at most `timeout` ([`TryRecvError::Empty`] if none came).
    /// Cancel-safe.
    ///
    /// # Panics
    /// On a runtime built without its time driver (`enable_time` or `enable_all`).
    pub async fn recv_timeout(&self, timeout: Duration) -> Result<Received, TryRecvError> {
        match tokio::time::timeout(timeout, self.recv()).await {
            Ok(r) => r.map_err(TryRecvError::Recv),
            Err(_) => Err(TryRecvError::Empty),
        }
    }

    /// Receive counters.
    pub fn counts(&self) -> RxCounts {
        self.shared.counts()
    }

    /// The pool receive buffers come from.
    pub fn pool(&self) -> &BufferPool {
        &self.shared.pool
    }

    /// Ids of incoming messages still open when the stream ended.
    pub fn unfinished(&self) -> Vec<u32> {
        self.shared.unfinished()
    }

    /// The message of a panic that ended the reader task, if one did (it was also
    /// delivered once as [`RecvError::ReaderPanicked`]).
    pub fn reader_panic(&self) -> Option<String> {
        self.shared.reader_panic()
    }

    /// Waits for the end of stream, keeping what arrives until then and the read error. A
    /// panic of the reader is kept for [`reader_panic`](Self::reader_panic).
    pub async fn drain(&self) -> (Vec<Received>, Option<io::Error>) {
        let mut items = Vec::new();
        let err = self.drain_into(&mut items).await;
        self.join().await;
        (items, err)
    }

    /// Like [`drain`](Self::drain), but waits at most `timeout` for the end of stream; then
    /// stops the reader task, which finishes its stream as if it had ended (the messages
    /// still open are reported `Unfinished`). The `bool` says whether it had to be stopped.
    ///
    /// # Panics
    /// On a runtime built without its time driver (`enable_time` or `enable_all`).
    pub async fn drain_timeout(
        &self,
        timeout: Duration,
    ) -> (Vec<Received>, Option<io::Error>, bool) {
        let mut items = Vec::new();
        let mut err = None;
        let forced = match tokio::time::timeout(timeout, self.drain_into(&mut items)).await {
            Ok(e) => {
                err = e;
                false
            }
            Err(_) => {
                self.stop.notify_one();
                // The task stops at once, unless a `poll_read` blocks its thread.
                if let Ok(e) = tokio::time::timeout(timeout, self.drain_into(&mut items)).await {
                    err = err.or(e);
                }
                true
            }
        };
        self.join().await;
        (items, err, forced)
    }

    /// Receives into `items` until the end of stream; returns the read error, if one came.
    /// Cancel-safe: what was received is in `items`.
    async fn drain_into(&self, items: &mut Vec<Received>) -> Option<io::Error> {
        let mut err = None;
        loop {
            match self.recv().await {
                Ok(item) => items.push(item),
                Err(RecvError::Io(e)) => err = Some(e),
                Err(RecvError::ReaderPanicked(_)) => {}
                Err(RecvError::Closed) => return err,
            }
        }
    }

    /// Waits for the reader task if it has ended its stream (its queue is closed).
    async fn join(&self) {
        if !self.rx.is_closed() {
            return;
        }
        let task = lock(&self.task).take();
        if let Some(task) = task {
            // The task ends by itself at end of stream; a join error is a bug's panic.
            let _ = task.await;
        }
    }
}

/// Polls `fut` to its end, catching a panic in any of its polls (its message in `Err`).
async fn catch_panic<F: Future>(fut: F) -> Result<F::Output, Box<dyn std::any::Any + Send>> {
    let mut fut = std::pin::pin!(fut);
    poll_fn(
        move |cx| match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(payload)),
        },
    )
    .await
}

/// One read, or `None` once `stop` is notified (the read is dropped: nothing it would have
/// read is lost to anyone, the stream ends here).
async fn read_or_stop<R: AsyncRead + Unpin>(
    read: &mut R,
    buf: &mut [u8],
    stop: &tokio::sync::Notify,
) -> Option<io::Result<usize>> {
    let mut stopped = pin!(stop.notified());
    let mut read = pin!(read.read(buf));
    poll_fn(|cx| {
        if stopped.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        read.as_mut().poll(cx).map(Some)
    })
    .await
}

/// The reader task: the receive loop ([`Pump`]) with reads raced against `stop`, the items
/// of each read handed over in batches (before the next read, or at the queue's batch size;
/// the counters published before each batch), a panic anywhere in it (a bug of the receive
/// loop) reported to the receivers instead of ending the stream as if it had ended cleanly.
async fn read_task<R: AsyncRead + Unpin>(
    mut read: R,
    mut pump: Pump,
    mut tx: QueueTx<Item>,
    shared: Arc<RxShared>,
    stop: Arc<tokio::sync::Notify>,
) {
    pump.defer_publish();
    let run = catch_panic(async {
        loop {
            match pump.next() {
                Step::Read(buf) => {
                    // What the last read gave goes out before the next read (its counters
                    // are published: the pump does that at the end of a read's bytes).
                    if !tx.is_empty() && !tx.send().await {
                        pump.gone();
                        continue;
                    }
                    shared.budget.wait_for_room_async().await;
                    // A stop (the receiver is dropped, or a close forced) does not wait for
                    // the read.
                    let read = catch_panic(read_or_stop(&mut read, buf, &stop)).await;
                    pump.read(read.transpose());
                }
                Step::Deliver(item) => {
                    if tx.push(item) {
                        pump.publish();
                        if !tx.send().await {
                            pump.gone();
                        }
                    }
                }
                Step::Done => break,
            }
        }
        if !tx.is_empty() {
            pump.publish();
            tx.send().await;
        }
    })
    .await;
    if let Err(payload) = run {
        let item = pump.caught(payload);
        tx.push(item);
        tx.send().await;
        pump.publish();
    }
}

/// An async node: many tasks send, one or more receive, over one byte stream.
#[derive(Debug)]
pub struct AsyncNode<W> {
    tx: AsyncSender<W>,
    rx: AsyncReceiver,
}

/// What [`AsyncNode::close`] found (see [`CloseReport`](crate::CloseReport)).
pub type AsyncCloseReport = crate::CloseReport;

impl<W: AsyncWrite + Unpin + Send + 'static> AsyncNode<W> {
    /// A node reading `read` (in a task spawned on the current runtime) and writing `write`.
    /// Fails if `config` is out of its bounds (see [`Config`]), before anything is spawned.
    pub fn new<R: AsyncRead + Unpin + Send + 'static>(
        read: R,
        write: W,
        config: Config,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self::from_parts(
            AsyncSender::new(write, &config)?,
            AsyncReceiver::spawn(read, &config)?,
        ))
    }

    /// A node from its two halves. Its sender autocorks as a node's does (see
    /// [`AsyncSender::autocork`]), writing a send through once something was received since
    /// the previous one, unless it already autocorks on its own.
    pub fn from_parts(tx: AsyncSender<W>, rx: AsyncReceiver) -> Self {
        tx.autocork_hearing(Some(rx.shared.arrivals.clone()));
        Self { tx, rx }
    }

    /// The sending half.
    pub fn sender(&self) -> &AsyncSender<W> {
        &self.tx
    }

    /// The receiving half.
    pub fn receiver(&self) -> &AsyncReceiver {
        &self.rx
    }

    /// The two halves.
    pub fn split(self) -> (AsyncSender<W>, AsyncReceiver) {
        (self.tx, self.rx)
    }

    /// Sends with the next automatic id; returns the id.
    pub async fn send(&self, payload: &[u8]) -> Result<u32, SendError> {
        self.tx.send(payload).await
    }

    /// Sends as message `id` (see [`AsyncSender::send_with_id`]).
    pub async fn send_with_id(&self, id: u32, payload: &[u8]) -> Result<(), SendError> {
        self.tx.send_with_id(id, payload).await
    }

    /// Sends with options (id, strategy, cancel token, deadline); returns the id.
    pub async fn send_with(&self, payload: &[u8], opts: &SendOptions) -> Result<u32, SendError> {
        self.tx.send_with(payload, opts).await
    }

    /// Sends with the next automatic id, leaving small frames in the shared write buffer
    /// until it fills or [`flush`](Self::flush) is called. See
    /// [`AsyncSender::send_buffered`].
    pub async fn send_buffered(&self, payload: &[u8]) -> Result<u32, SendError> {
        self.tx.send_buffered(payload).await
    }

    /// Writes what is buffered and flushes the sink.
    pub async fn flush(&self) -> Result<(), SendError> {
        self.tx.flush().await
    }

    /// The next received item.
    pub async fn recv(&self) -> Result<Received, RecvError> {
        self.rx.recv().await
    }

    /// The next item if one is queued. See [`AsyncReceiver::try_recv`].
    pub fn try_recv(&self) -> Result<Received, TryRecvError> {
        self.rx.try_recv()
    }

    /// The next item, waiting at most `timeout`. See [`AsyncReceiver::recv_timeout`].
    pub async fn recv_timeout(&self, timeout: Duration) -> Result<Received, TryRecvError> {
        self.rx.recv_timeout(timeout).await
    }

    /// A snapshot of the counters, read without waiting for the write lock.
    pub fn metrics(&self) -> Metrics {
        let tx = self.tx.counts();
        Metrics {
            tx,
            rx: self.rx.counts(),
            pool: self.rx.pool().stats(),
            dist: crate::observe::distributions(&self.tx.shared.stats, &self.rx.shared, tx),
        }
    }

    /// Closes the sending side only; receiving goes on.
    pub async fn close_write(&self) -> Result<Vec<u32>, SendError> {
        self.tx.close().await
    }

    /// Closes our side, waits for the peer's stream to end, and reports. Waits as long as
    /// the peer keeps its side open; see [`close_timeout`](Self::close_timeout).
    pub async fn close(self) -> Result<AsyncCloseReport, SendError> {
        let aborted = self.tx.close().await?;
        let (undelivered, read_error) = self.rx.drain().await;
        Ok(self
            .rx
            .shared
            .close_report(aborted, (undelivered, read_error, false)))
    }

    /// Like [`close`](Self::close), but waits at most `timeout` for the peer's end of stream;
    /// then it stops the reader task, which finishes its stream as if it had ended, and the
    /// report says so ([`CloseReport::forced`](crate::CloseReport::forced)) and lists the
    /// incoming messages still open (`unfinished`, and as `Unfinished` errors in
    /// `undelivered`). The timeout bounds the wait for the peer; ending our side first takes
    /// the write lock like `close`.
    ///
    /// # Panics
    /// On a runtime built without its time driver (`enable_time` or `enable_all`).
    pub async fn close_timeout(self, timeout: Duration) -> Result<AsyncCloseReport, SendError> {
        let aborted = self.tx.close().await?;
        let drained = self.rx.drain_timeout(timeout).await;
        Ok(self.rx.shared.close_report(aborted, drained))
    }
}

impl AsyncNode<tokio::net::tcp::OwnedWriteHalf> {
    /// A node over a tokio TCP stream (Nagle turned off). An invalid `config` gives an error
    /// of kind `InvalidInput` carrying the [`ConfigError`].
    pub fn tcp(stream: tokio::net::TcpStream, config: Config) -> io::Result<Self> {
        config.validate()?;
        stream.set_nodelay(true)?;
        let (r, w) = stream.into_split();
        Ok(Self::new(r, w, config)?)
    }
}

#[cfg(unix)]
impl AsyncNode<tokio::net::unix::OwnedWriteHalf> {
    /// A node over a tokio Unix stream socket. Fails if `config` is out of its bounds (see
    /// [`Config`]).
    pub fn unix(stream: tokio::net::UnixStream, config: Config) -> Result<Self, ConfigError> {
        let (r, w) = stream.into_split();
        Self::new(r, w, config)
    }
}

//! The node over tokio's `AsyncRead`/`AsyncWrite` (feature `tokio`).
//!
//! Same wire behaviour as the blocking [`Node`](crate::Node): the core's [`Outgoing`] pumped
//! with `.await` (one write-lock hold per chunk, small frames coalesced, large ones written
//! vectored from the caller's slice), and the receive core fed by a reader task. Every future
//! is `Send`, so it can be `tokio::spawn`ed.
//!
//! Cancel-safe: a send future dropped between holds leaves its message to be ended with Abort
//! by the next writer; one dropped in the middle of a hold leaves its progress behind the lock,
//! and the next holder completes the frame (with filler) and writes Abort before anything else.
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
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Instant;

use mux_nostd::{AnyStrategy, Outgoing};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::config::Config;
use crate::error::{ConfigError, RecvError, SendError};
use crate::node::{Item, Metrics, RxShared, lock};
use crate::pool::BufferPool;
use crate::rx::{Received, RxCore, RxCounts};
use crate::sync::atomic::AtomicU64;
use crate::tx::{CancelToken, Link, Plan, SendOptions, TxCounts, TxInner, bump, hold_ends};

struct Shared<W> {
    inner: tokio::sync::Mutex<TxInner<W>>,
    waiting: AtomicUsize,
    next_id: AtomicU32,
    strategy: AnyStrategy,
    /// Messages whose send future was dropped between holds: Abort is owed for them.
    orphans: Mutex<Vec<Outgoing>>,
    /// The counters of `inner`, read without the lock.
    stats: crate::sync::Arc<crate::tx::TxStats>,
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
    orphans: &'a Mutex<Vec<Outgoing>>,
    out: Option<Outgoing>,
    started: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(mut out) = self.out.take()
            && self.started
            && !out.is_done()
        {
            out.settle();
            lock(self.orphans).push(out);
        }
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
                inner: tokio::sync::Mutex::new(inner),
                waiting: AtomicUsize::new(0),
                next_id: AtomicU32::new(1),
                strategy: config.strategy,
                orphans: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Takes the next automatic id (1, 2, …, wrapping).
    pub fn next_id(&self) -> u32 {
        self.shared.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends `payload` with the next automatic id; returns the id.
    pub async fn send(&self, payload: &[u8]) -> Result<u32, SendError> {
        let id = self.next_id();
        self.send_cancellable(id, payload, None, || None)
            .await
            .map(|()| id)
    }

    /// Sends `payload` as message `id`. A send of an id whose message another task is still
    /// sending is refused with [`SendError::IdInFlight`] and writes nothing (see
    /// [`Sender::send_with_id`](crate::Sender::send_with_id)).
    pub async fn send_with_id(&self, id: u32, payload: &[u8]) -> Result<(), SendError> {
        self.send_cancellable(id, payload, None, || None).await
    }

    /// Sends with [`SendOptions`] (id, strategy, cancel token, deadline); returns the id.
    pub async fn send_with(&self, payload: &[u8], opts: &SendOptions) -> Result<u32, SendError> {
        let id = opts.id.unwrap_or_else(|| self.next_id());
        let cancel = opts.cancel.clone();
        let deadline = opts.deadline;
        self.send_inner(id, payload, opts.strategy, opts.buffered, move || {
            if cancel.as_ref().is_some_and(CancelToken::is_cancelled) {
                Some(SendError::Cancelled)
            } else if deadline.is_some_and(|d| Instant::now() >= d) {
                Some(SendError::TimedOut)
            } else {
                None
            }
        })
        .await
        .map(|()| id)
    }

    /// Sends `payload` as message `id` with `strategy` (the node's if `None`), asking `stop`
    /// before each write-lock hold whether to give up (see
    /// [`Sender::send_cancellable`](crate::Sender::send_cancellable)).
    pub async fn send_cancellable(
        &self,
        id: u32,
        payload: &[u8],
        strategy: Option<AnyStrategy>,
        stop: impl FnMut() -> Option<SendError> + Send,
    ) -> Result<(), SendError> {
        self.send_inner(id, payload, strategy, false, stop).await
    }

    /// Sends with the next automatic id, leaving small frames in the shared write buffer
    /// (see [`Sender::send_buffered`](crate::Sender::send_buffered)); call
    /// [`flush`](Self::flush) when a batch is done.
    pub async fn send_buffered(&self, payload: &[u8]) -> Result<u32, SendError> {
        let id = self.next_id();
        self.send_inner(id, payload, None, true, || None)
            .await
            .map(|()| id)
    }

    async fn send_inner(
        &self,
        id: u32,
        payload: &[u8],
        strategy: Option<AnyStrategy>,
        buffered: bool,
        mut stop: impl FnMut() -> Option<SendError> + Send,
    ) -> Result<(), SendError> {
        let strategy = strategy.unwrap_or(self.shared.strategy);
        let out = Outgoing::new(&strategy, id, payload.len())?;
        let mut fl = InFlight {
            orphans: &self.shared.orphans,
            out: Some(out),
            started: false,
        };
        let mut why = None;
        while let Some(out) = fl.out.as_mut() {
            if why.is_none() {
                why = stop();
                if why.is_some() {
                    out.settle();
                }
            }
            if out.is_done() {
                break;
            }
            let mut g = self.lock().await;
            settle_owed(&mut g, &self.shared.orphans).await?;
            g.usable(id, fl.started)?;
            if !fl.started && g.in_flight(id) {
                return Err(SendError::IdInFlight { id }); // nothing of it was written
            }
            if !fl.started {
                g.sending.push(id);
                fl.started = true;
            }
            // The progress lives behind the lock during the hold (see the module docs).
            g.owed = fl.out.take();
            if let Err(e) = hold(&mut g, payload).await {
                return Err(g.broke(id, e));
            }
            let out = g
                .owed
                .take()
                .unwrap_or_else(|| unreachable!("hold keeps `owed`"));
            if out.is_done() {
                g.finished(&out);
            } else {
                fl.out = Some(out);
            }
            // Unlike the blocking sender, a holder does not leave its frames to a waiting
            // task: that task's future may be dropped before it gets the lock.
            if g.should_flush(buffered, false)
                && let Err(e) = flush_buf(&mut g).await
            {
                return Err(g.broke(id, e));
            }
        }
        why.map_or(Ok(()), Err)
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

    /// Send counters.
    pub async fn counts(&self) -> TxCounts {
        self.shared.stats.snapshot()
    }

    async fn lock(&self) -> tokio::sync::MutexGuard<'_, TxInner<W>> {
        /// Counts a waiter until the lock is taken or the future is dropped.
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.shared.waiting.fetch_add(1, Ordering::Relaxed);
        let _waiting = Waiting(&self.shared.waiting);
        self.shared.inner.lock().await
    }
}

/// Writes what dropped sends owe: first a hold cut in the middle, then orphaned messages.
async fn settle_owed<W: AsyncWrite + Unpin>(
    g: &mut TxInner<W>,
    orphans: &Mutex<Vec<Outgoing>>,
) -> Result<(), SendError> {
    if let Some(out) = g.owed.as_mut() {
        out.settle();
    }
    loop {
        if g.owed.is_none() {
            g.owed = lock(orphans).pop();
        }
        let Some(out) = g.owed.as_ref() else {
            return Ok(());
        };
        let id = out.id();
        if g.link == Link::Open {
            while g.owed.as_ref().is_some_and(|o| !o.is_done()) {
                if let Err(e) = hold(g, &[]).await {
                    g.owed = None;
                    return Err(g.broke(id, e));
                }
            }
        }
        if let Some(out) = g.owed.take() {
            g.finished(&out);
        }
    }
}

/// One hold of the message in `g.owed`: whole frames, at least one Data frame, up to the
/// budget.
async fn hold<W: AsyncWrite + Unpin>(g: &mut TxInner<W>, payload: &[u8]) -> io::Result<()> {
    let TxInner {
        io,
        co,
        stats,
        owed,
        budget,
        ..
    } = g;
    let (Some(io), Some(out)) = (io.as_mut(), owed.as_mut()) else {
        return Err(io::ErrorKind::NotConnected.into());
    };
    let mut body = 0;
    while !hold_ends(out, payload, body, *budget) {
        if let Some(copied) = co.try_copy(out, payload) {
            body += copied;
            continue;
        }
        let plan = Plan::new(out, payload, body, *budget);
        let n = {
            let (iov, k) = plan.slices(co, out, payload);
            write_some(io, &iov[..k], &stats.writes).await?
        };
        co.consumed(out, payload, n, &mut body);
    }
    Ok(())
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
    let TxInner { io, co, stats, .. } = g;
    let Some(io) = io.as_mut() else {
        return Ok(());
    };
    while !co.pending().is_empty() {
        let n = write_some(io, &[IoSlice::new(co.pending())], &stats.writes).await?;
        co.sent(n);
    }
    Ok(())
}

async fn write_some<W: AsyncWrite + Unpin>(
    io: &mut W,
    iov: &[IoSlice<'_>],
    writes: &AtomicU64,
) -> io::Result<usize> {
    loop {
        writes.fetch_add(1, Ordering::Relaxed);
        match io.write_vectored(iov).await {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The receiving half over a tokio `AsyncRead`: a reader task feeds the receive core.
pub struct AsyncReceiver {
    rx: tokio::sync::Mutex<mpsc::Receiver<Item>>,
    shared: Arc<RxShared>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
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
        let shared = RxShared::new(config);
        let (tx, rx) = mpsc::channel(config.queue_len());
        let core = RxCore::new(config, shared.pool.clone());
        let buf = vec![0u8; config.read_buffer_len()];
        let task = tokio::spawn(read_task(read, core, tx, shared.clone(), buf));
        Ok(Self {
            rx: tokio::sync::Mutex::new(rx),
            shared,
            task: Mutex::new(Some(task)),
        })
    }

    /// The next item. [`RecvError::Io`] or [`RecvError::ReaderPanicked`] comes once;
    /// [`RecvError::Closed`] after the end of stream. Cancel-safe.
    pub async fn recv(&self) -> Result<Received, RecvError> {
        match self.rx.lock().await.recv().await {
            Some(item) => item.into_result(),
            None => Err(RecvError::Closed),
        }
    }

    /// Receive counters.
    pub fn counts(&self) -> RxCounts {
        *lock(&self.shared.counts)
    }

    /// The pool receive buffers come from.
    pub fn pool(&self) -> &BufferPool {
        &self.shared.pool
    }

    /// Ids of incoming messages still open when the stream ended.
    pub fn unfinished(&self) -> Vec<u32> {
        lock(&self.shared.unfinished).clone()
    }

    /// The message of a panic that ended the reader task, if one did (it was also
    /// delivered once as [`RecvError::ReaderPanicked`]).
    pub fn reader_panic(&self) -> Option<String> {
        lock(&self.shared.panic).clone()
    }

    /// Waits for the end of stream, keeping what arrives until then and the read error. A
    /// panic of the reader is kept for [`reader_panic`](Self::reader_panic).
    pub async fn drain(&self) -> (Vec<Received>, Option<io::Error>) {
        let mut items = Vec::new();
        let mut err = None;
        loop {
            match self.recv().await {
                Ok(item) => items.push(item),
                Err(RecvError::Io(e)) => err = Some(e),
                Err(RecvError::ReaderPanicked(_)) => {}
                Err(RecvError::Closed) => break,
            }
        }
        let task = lock(&self.task).take();
        if let Some(task) = task {
            // The task ends by itself at end of stream; a join error is a bug's panic.
            let _ = task.await;
        }
        (items, err)
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

/// The reader task: [`pump`] with a panic anywhere in it (a bug of the receive loop)
/// reported to the receivers instead of ending the stream as if it had ended cleanly.
async fn read_task<R: AsyncRead + Unpin>(
    read: R,
    mut core: RxCore,
    tx: mpsc::Sender<Item>,
    shared: Arc<RxShared>,
    buf: Vec<u8>,
) {
    if let Err(payload) = catch_panic(pump(read, &mut core, &tx, &shared, buf)).await {
        let item = shared.panicked(&*payload);
        drop(payload);
        let _ = tx.send(item).await;
        // What the core knew may be inconsistent: publish it, report nothing more.
        shared.publish(&mut core);
    }
}

async fn pump<R: AsyncRead + Unpin>(
    mut read: R,
    core: &mut RxCore,
    tx: &mpsc::Sender<Item>,
    shared: &RxShared,
    mut buf: Vec<u8>,
) {
    'stream: loop {
        // A panic in `poll_read` (the caller's code) is reported like a read error: once,
        // then the stream is finished as if it had ended.
        let n = match catch_panic(read.read(&mut buf)).await {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => n,
            Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
            Ok(Err(e)) => {
                let _ = tx.send(Item::Io(e)).await;
                break;
            }
            Err(payload) => {
                let item = shared.panicked(&*payload);
                drop(payload);
                let _ = tx.send(item).await;
                break;
            }
        };
        let mut input = &buf[..n];
        while !input.is_empty() {
            let (used, item) = core.feed(input);
            input = &input[used..];
            if let Some(item) = item {
                // Counters first, so that they include every item handed out.
                shared.publish(core);
                if tx.send(Item::Rx(item)).await.is_err() {
                    break 'stream;
                }
            }
        }
        shared.publish(core);
    }
    while let Some(item) = core.finish() {
        shared.publish(core);
        if tx.send(Item::Rx(item)).await.is_err() {
            break;
        }
    }
    shared.publish(core);
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
        Ok(Self {
            rx: AsyncReceiver::spawn(read, &config)?,
            tx: AsyncSender::new(write, &config)?,
        })
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

    /// Writes what is buffered and flushes the sink.
    pub async fn flush(&self) -> Result<(), SendError> {
        self.tx.flush().await
    }

    /// The next received item.
    pub async fn recv(&self) -> Result<Received, RecvError> {
        self.rx.recv().await
    }

    /// A snapshot of the counters.
    pub async fn metrics(&self) -> Metrics {
        Metrics {
            tx: self.tx.counts().await,
            rx: self.rx.counts(),
            pool: self.rx.pool().stats(),
        }
    }

    /// Closes the sending side only; receiving goes on.
    pub async fn close_write(&self) -> Result<Vec<u32>, SendError> {
        self.tx.close().await
    }

    /// Closes our side, waits for the peer's stream to end, and reports.
    pub async fn close(self) -> Result<AsyncCloseReport, SendError> {
        let aborted = self.tx.close().await?;
        let (undelivered, read_error) = self.rx.drain().await;
        Ok(crate::CloseReport {
            aborted,
            unfinished: self.rx.unfinished(),
            undelivered,
            read_error,
            reader_panic: self.rx.reader_panic(),
        })
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

//! The blocking node: a [`Sender`] and a [`Receiver`] whose reader thread pumps the core.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use mux_nostd::AnyStrategy;

use crate::config::Config;
use crate::error::{RecvError, SendError, TryRecvError};
use crate::observe::{Distributions, distributions};
use crate::pool::{BufferPool, PoolStats};
use crate::queue::{self, Empty, QueueRx, QueueTx};
use crate::reader::{Item, Pump, ReadStop, RxShared, Step, Wake, lock};
use crate::rx::{Received, RxCounts};
use crate::tx::{SendOptions, Sender, TxCounts};

/// A snapshot of a node's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Metrics {
    /// What was sent.
    pub tx: TxCounts,
    /// What was received (errors by kind in `rx.errors`).
    pub rx: RxCounts,
    /// The receive buffer pool: hits, misses, high-water mark.
    pub pool: PoolStats,
    /// Distributions: message sizes, frames per message, send waits, receive latency,
    /// pool use.
    pub dist: Distributions,
}

/// What [`Node::close`] found.
#[derive(Debug, Default)]
pub struct CloseReport {
    /// Our messages that other threads (or tasks) were still sending: each was cut, and
    /// ended with Abort on the wire if the link still worked. On a broken link (a write had
    /// failed before the close) they are listed all the same, but no Abort could be written:
    /// the peer sees them unfinished when our stream ends, not aborted.
    pub aborted: Vec<u32>,
    /// Incoming messages still open when the peer's stream ended (they are lost).
    pub unfinished: Vec<u32>,
    /// Items received after `close` was called that nobody had taken, in order.
    pub undelivered: Vec<Received>,
    /// The read error that ended the stream, if one did.
    pub read_error: Option<io::Error>,
    /// The message of a panic that ended the reader (in the source's `read` or the receive
    /// loop), if one did: the stream did not end cleanly.
    pub reader_panic: Option<String>,
    /// The peer's stream had not ended within the timeout of
    /// [`close_timeout`](Node::close_timeout), so the read side was shut down: the items above
    /// are those read until then, and `unfinished` lists the incoming messages still open at
    /// that point (for a node whose reader cannot be woken, see [`Node::with_read_stop`], it
    /// is empty and the reader thread ends at its read's next return).
    pub forced: bool,
}

/// The receiving half: complete messages (or streaming chunks), aborts and protocol errors,
/// in arrival order. Clones share one queue (each item goes to one of them), so a clone can
/// be handed to another thread like a channel receiver.
///
/// In streaming mode ([`Config::streaming`]) this holds for every item, chunks included: the
/// `Started`, `Chunk` and `Ended` items of one message are split among the clones that
/// receive at the same time, each clone getting some of them, in no particular pairing. This
/// is by design (one queue, no per-message routing). To see a message's chunks together and
/// in order, receive a streaming node with one receiver, and hand whole messages or chunks
/// on from there.
///
/// When the last clone is dropped, the reader stops: it is told to, and woken if the node
/// knows how (the sockets of [`Node::tcp`] and [`Node::unix`] have their read direction shut
/// down; see [`Node::with_read_stop`] for other sources). Its thread, buffer and file
/// descriptor are then released without waiting for the peer to close.
#[derive(Clone)]
pub struct Receiver {
    rx: QueueRx<Item>,
    shared: Arc<RxShared>,
    stop: Arc<ReadStop>,
}

/// The read side of a socket shared with whoever shuts it down ([`Node::tcp`],
/// [`Node::unix`]).
struct SharedRead<S>(Arc<S>);

impl<S> Read for SharedRead<S>
where
    for<'a> &'a S: Read,
{
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.0).read(buf)
    }
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("queued", &self.rx.len())
            .finish_non_exhaustive()
    }
}

impl Receiver {
    /// Starts a reader thread over `read`; it runs until end of stream, a read error or a
    /// panic of `read` (reported as [`RecvError::ReaderPanicked`]). Fails with an error of
    /// kind `InvalidInput` carrying a [`ConfigError`](crate::ConfigError) if `config` is out
    /// of its bounds (see [`Config`]), before anything is spawned.
    pub fn spawn<R: Read + Send + 'static>(read: R, config: &Config) -> io::Result<Self> {
        Self::spawn_inner(read, config, None)
    }

    /// Like [`spawn`](Self::spawn), with a way to wake the reader when it must stop (the
    /// last receiver is dropped, or a close is forced): `wake` must make a `read` in
    /// progress return, e.g. shut down the read direction of a socket or close the write
    /// end of a pipe. Called at most once, from whichever thread drops the last receiver.
    pub fn spawn_with_read_stop<R: Read + Send + 'static>(
        read: R,
        config: &Config,
        wake: impl FnOnce() + Send + 'static,
    ) -> io::Result<Self> {
        Self::spawn_inner(read, config, Some(Box::new(wake)))
    }

    fn spawn_inner<R: Read + Send + 'static>(
        read: R,
        config: &Config,
        wake: Option<Wake>,
    ) -> io::Result<Self> {
        config.validate()?;
        // The read buffer is allocated here, not in the thread: a failure is this call's.
        let (shared, mut pump) = Pump::new(config);
        // The counters are published once per batch handed over (see `read_loop`), and the
        // batch's bytes counted in the receive budget then.
        pump.defer_publish();
        pump.untracked();
        let (tx, rx) = queue::bounded(config.queue_len());
        let sh = shared.clone();
        let handle = std::thread::Builder::new()
            .name("mux-reader".into())
            .spawn(move || read_loop(read, pump, tx, &sh))?;
        *lock(&shared.reader) = Some(handle);
        let stop = Arc::new(ReadStop::new(shared.clone(), wake));
        Ok(Self { rx, shared, stop })
    }

    /// The next item, waiting for it. [`RecvError::Io`] or [`RecvError::ReaderPanicked`]
    /// comes once (then what was open is reported and the receiver closes);
    /// [`RecvError::Closed`] after the end of stream.
    #[inline]
    pub fn recv(&self) -> Result<Received, RecvError> {
        convert(self.take(None).ok())
    }

    /// The next item if one is queued.
    pub fn try_recv(&self) -> Result<Received, TryRecvError> {
        took(self.take_now())
    }

    /// The next item, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Received, TryRecvError> {
        took(self.take(Some(Instant::now() + timeout)))
    }

    /// The next item from the queue, waiting until `deadline` (forever if `None`): its
    /// bytes leave the receive budget (the reader counted them when it handed the batch
    /// over, see [`Pump::untracked`]).
    #[inline]
    fn take(&self, deadline: Option<Instant>) -> Result<Item, Empty> {
        self.taken(self.rx.recv_until(deadline))
    }

    /// [`take`](Self::take) without waiting.
    fn take_now(&self) -> Result<Item, Empty> {
        self.taken(self.rx.try_recv())
    }

    #[inline]
    fn taken(&self, got: Result<Item, Empty>) -> Result<Item, Empty> {
        if let Ok(Item::Rx(r, _)) = &got {
            self.shared.budget.taken(r.held());
        }
        got
    }

    /// Items until the end of stream (a read error is yielded as `Err` once).
    pub fn iter(&self) -> Iter<'_> {
        Iter { rx: self }
    }

    /// Receive counters.
    pub fn counts(&self) -> RxCounts {
        self.shared.counts()
    }

    /// Items received and waiting to be taken.
    pub fn queued(&self) -> usize {
        self.rx.len()
    }

    /// The pool receive buffers come from.
    pub fn pool(&self) -> &BufferPool {
        &self.shared.pool
    }

    /// Ids of incoming messages that were still open when the stream ended.
    pub fn unfinished(&self) -> Vec<u32> {
        self.shared.unfinished()
    }

    /// The message of a panic that ended the reader, if one did (it was also delivered once
    /// as [`RecvError::ReaderPanicked`]).
    pub fn reader_panic(&self) -> Option<String> {
        self.shared.reader_panic()
    }

    /// Waits for the reader to reach the end of the stream, keeping what it delivers until
    /// then (in order) and the read error, if any. A panic of the reader is kept for
    /// [`reader_panic`](Self::reader_panic).
    pub fn drain(&self) -> (Vec<Received>, Option<io::Error>) {
        let (items, err, _) = self.drain_until(None);
        (items, err)
    }

    /// Like [`drain`](Self::drain), but waits at most `timeout` for the end of stream; then
    /// stops the reader (for every clone of this receiver): it is woken if it can be (see
    /// [`Receiver`]) and its stream is finished as if it had ended — the messages still open
    /// are reported `Unfinished` — within `timeout` more. The `bool` says whether the reader
    /// had to be stopped. A reader that cannot be woken ends at its read's next return; what
    /// it delivers after this returns is not kept.
    pub fn drain_timeout(&self, timeout: Duration) -> (Vec<Received>, Option<io::Error>, bool) {
        self.drain_until(Some(timeout))
    }

    fn drain_until(&self, timeout: Option<Duration>) -> (Vec<Received>, Option<io::Error>, bool) {
        let mut items = Vec::new();
        let mut err = None;
        let mut until = timeout.map(|t| Instant::now() + t);
        let mut forced = false;
        let ended = loop {
            let got = self.take(until);
            match got.map(Item::into_result) {
                Ok(Ok(item)) => items.push(item),
                Ok(Err(RecvError::Io(e))) => err = Some(e),
                Ok(Err(_)) => {} // a panic, kept for `reader_panic`
                Err(Empty::Closed) => break true,
                Err(Empty::Now) if forced => break false,
                Err(Empty::Now) => {
                    forced = true;
                    if !self.stop.stop() {
                        // Nothing can wake the reader: keep what is queued, do not wait.
                        while let Ok(item) = self.take_now() {
                            match item.into_result() {
                                Ok(item) => items.push(item),
                                Err(RecvError::Io(e)) => err = Some(e),
                                Err(_) => {}
                            }
                        }
                        break false;
                    }
                    until = timeout.map(|t| Instant::now() + t);
                }
            }
        };
        if ended && let Some(h) = lock(&self.shared.reader).take() {
            // The reader catches panics and reports them; ignore its result.
            let _ = h.join();
        }
        (items, err, forced)
    }
}

/// A receive that may find nothing, as [`TryRecvError`].
fn took(got: Result<Item, Empty>) -> Result<Received, TryRecvError> {
    match got {
        Ok(item) => item.into_result().map_err(TryRecvError::Recv),
        Err(Empty::Now) => Err(TryRecvError::Empty),
        Err(Empty::Closed) => Err(TryRecvError::Recv(RecvError::Closed)),
    }
}

#[inline]
fn convert(item: Option<Item>) -> Result<Received, RecvError> {
    match item {
        Some(item) => item.into_result(),
        None => Err(RecvError::Closed),
    }
}

/// Iterator over a [`Receiver`]'s items until the end of stream.
#[derive(Debug)]
pub struct Iter<'a> {
    rx: &'a Receiver,
}

impl Iterator for Iter<'_> {
    type Item = Result<Received, RecvError>;
    fn next(&mut self) -> Option<Self::Item> {
        match self.rx.recv() {
            Err(RecvError::Closed) => None,
            r => Some(r),
        }
    }
}

impl<'a> IntoIterator for &'a Receiver {
    type Item = Result<Received, RecvError>;
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// The reader thread: the receive loop ([`Pump`]) with blocking reads, a panic anywhere in
/// it (a bug of the receive loop) reported to the receivers instead of ending the stream as
/// if it had ended cleanly.
/// Where the reader thread hands its items: a [`Receiver`]'s queue, or a handler that runs on
/// the reader thread itself (one thread hand-over less per message).
trait Deliver {
    /// Hands `item` over; `false` when nobody takes items any more.
    fn deliver(&mut self, item: Item) -> bool;

    /// The reader has delivered everything it has and is about to read (and maybe wait).
    fn idle(&mut self) {}

    /// Whether the next item delivered becomes visible to the application at once (with
    /// the items gathered before it).
    fn visible_next(&self) -> bool {
        true
    }
}

/// Items go to the receivers in batches: those of one read together (at most
/// [`queue::BATCH`]), handed over before the reader reads again.
impl Deliver for QueueTx<Item> {
    #[inline]
    fn deliver(&mut self, item: Item) -> bool {
        self.push(item)
    }

    fn idle(&mut self) {
        self.flush();
    }

    fn visible_next(&self) -> bool {
        self.flushes_next()
    }
}

/// What a handler of [`spawn_handler`] is given.
pub(crate) enum Delivery {
    /// An item, or `Err(RecvError::Closed)` once at the end.
    Item(Result<Received, RecvError>),
    /// Everything read so far is delivered; the reader is about to read (and maybe wait):
    /// the moment to flush what was left buffered.
    Idle,
}

impl<F: FnMut(Delivery) -> bool> Deliver for F {
    fn deliver(&mut self, item: Item) -> bool {
        self(Delivery::Item(item.into_result()))
    }

    fn idle(&mut self) {
        self(Delivery::Idle);
    }
}

/// Starts a reader thread over `read` that hands every item to `handler` on that thread
/// (with the item's place in the receive budget given back once `handler` returns), then
/// `Err(RecvError::Closed)` once at the end, and [`Delivery::Idle`] before each read;
/// `handler` returns `false` to stop reading.
/// Returns the thread's handle.
pub(crate) fn spawn_handler<R, F>(
    read: R,
    config: &Config,
    mut handler: F,
) -> io::Result<std::thread::JoinHandle<()>>
where
    R: Read + Send + 'static,
    F: FnMut(Delivery) -> bool + Send + 'static,
{
    config.validate()?;
    let (shared, mut pump) = Pump::new(config);
    // The counters are published before each item (see `read_loop`).
    pump.defer_publish();
    std::thread::Builder::new()
        .name("mux-reader".into())
        .spawn(move || {
            read_loop(read, pump, &mut handler, &shared);
            handler(Delivery::Item(Err(RecvError::Closed)));
        })
}

fn read_loop<R: Read>(mut read: R, mut pump: Pump, mut tx: impl Deliver, shared: &RxShared) {
    let run = panic::catch_unwind(AssertUnwindSafe(|| {
        loop {
            match pump.next() {
                Step::Read(buf) => {
                    tx.idle();
                    shared.budget.wait_for_room(&shared.stop);
                    let read = panic::catch_unwind(AssertUnwindSafe(|| read.read(buf)));
                    // Every receiver is gone, or the close was forced: the stream ends here.
                    let stopped = shared.stop.load(Ordering::SeqCst);
                    pump.read((!stopped).then_some(read));
                }
                Step::Deliver(item) => {
                    // Counters first, so that they include every item a receiver can see:
                    // once per batch for a receiver's queue, before each item for a handler.
                    if tx.visible_next() {
                        pump.publish();
                    }
                    if !tx.deliver(item) {
                        pump.gone();
                    }
                }
                Step::Done => break,
            }
        }
    }));
    if let Err(payload) = run {
        let item = pump.caught(payload);
        // The bytes of the items gathered so far count before they become visible.
        pump.count_queued();
        tx.deliver(item);
        pump.publish();
    }
}

/// A node: many threads send, one or more receive, over one byte stream.
///
/// `Node` is `Sync`: share it by reference (scoped threads) or in an `Arc`, or
/// [`split`](Self::split) it into a cloneable [`Sender`] and [`Receiver`].
///
/// Dropping a node (without [`close`](Self::close)) ends our stream as dropping the last
/// [`Sender`] does, and stops the reader as dropping the last [`Receiver`] does: a node of
/// [`tcp`](Self::tcp) or [`unix`](Self::unix) shuts its socket's read direction down, so its
/// reader thread, read buffer and descriptor are released at once even if the peer keeps the
/// connection open (what the peer sends after that is not read). A node of
/// [`new`](Self::new) cannot wake a reader blocked in its `read`: that thread ends at the
/// read's next return (when the source yields data, ends or fails) — give
/// [`with_read_stop`](Self::with_read_stop) a way to wake it if there is one. The reader of
/// [`spawn`](Self::spawn) ends when the child closes its stdout (exits, or is killed).
pub struct Node<W> {
    tx: Sender<W>,
    rx: Receiver,
}

impl<W> fmt::Debug for Node<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("tx", &self.tx)
            .field("rx", &self.rx)
            .finish()
    }
}

impl<W: Write + Send + 'static> Node<W> {
    /// A node reading `read` (in a thread of its own) and writing `write`: two ends of a pipe,
    /// a serial device opened twice (`File::open` and `try_clone`), any byte stream.
    ///
    /// Every constructor of a node fails with an error of kind `InvalidInput` carrying a
    /// [`ConfigError`](crate::ConfigError) if `config` is out of its bounds (see [`Config`]),
    /// before it spawns or writes anything.
    pub fn new<R: Read + Send + 'static>(read: R, write: W, config: Config) -> io::Result<Self> {
        config.validate()?;
        let rx = Receiver::spawn(read, &config)?;
        Self::corked(Sender::new(write, &config)?, rx)
    }

    /// Like [`new`](Self::new), with a way to wake the reader thread when the node is
    /// dropped or a close is forced ([`close_timeout`](Self::close_timeout)): `wake` must make
    /// a `read` in progress return, e.g. shut down the read direction of a socket, close the
    /// write end of a pipe the reader reads. Called at most once.
    pub fn with_read_stop<R: Read + Send + 'static>(
        read: R,
        write: W,
        config: Config,
        wake: impl FnOnce() + Send + 'static,
    ) -> io::Result<Self> {
        config.validate()?;
        let rx = Receiver::spawn_with_read_stop(read, &config, wake)?;
        Self::corked(Sender::new(write, &config)?, rx)
    }

    /// A node from its two halves. Its sender autocorks as a node's does (see
    /// [`Config::autocork`]), unless it already did on its own or its thread cannot be
    /// spawned (then it writes every send through).
    pub fn from_parts(tx: Sender<W>, rx: Receiver) -> Self {
        let _ = tx.autocork_hearing(Some(rx.shared.arrivals.clone()));
        Self { tx, rx }
    }

    /// A node of `tx` and `rx`, the sender autocorking (writing a send through once
    /// anything arrived since the one before).
    fn corked(tx: Sender<W>, rx: Receiver) -> io::Result<Self> {
        tx.autocork_hearing(Some(rx.shared.arrivals.clone()))?;
        Ok(Self { tx, rx })
    }

    /// The sending half.
    pub fn sender(&self) -> &Sender<W> {
        &self.tx
    }

    /// The receiving half.
    pub fn receiver(&self) -> &Receiver {
        &self.rx
    }

    /// The two halves.
    pub fn split(self) -> (Sender<W>, Receiver) {
        (self.tx, self.rx)
    }

    /// Sends with the next automatic id (from 1) and the node's strategy; returns the id.
    #[inline]
    pub fn send(&self, payload: &[u8]) -> Result<u32, SendError> {
        self.tx.send(payload)
    }

    /// Sends with the next automatic id, leaving small frames in the shared write buffer
    /// until it fills or [`flush`](Self::flush) is called. See [`Sender::send_buffered`].
    #[inline]
    pub fn send_buffered(&self, payload: &[u8]) -> Result<u32, SendError> {
        self.tx.send_buffered(payload)
    }

    /// Sends as message `id`.
    #[inline]
    pub fn send_with_id(&self, id: u32, payload: &[u8]) -> Result<(), SendError> {
        self.tx.send_with_id(id, payload)
    }

    /// Sends with options: id, strategy, cancel token, deadline. Returns the id.
    pub fn send_with(&self, payload: &[u8], opts: &SendOptions) -> Result<u32, SendError> {
        self.tx.send_with(payload, opts)
    }

    /// Sends as message `id` with `strategy`, asking `stop` before each write-lock hold.
    /// See [`Sender::send_cancellable`].
    pub fn send_cancellable(
        &self,
        id: u32,
        payload: &[u8],
        strategy: Option<AnyStrategy>,
        stop: impl FnMut() -> Option<SendError>,
    ) -> Result<(), SendError> {
        self.tx.send_cancellable(id, payload, strategy, stop)
    }

    /// Writes what is buffered and flushes the sink.
    pub fn flush(&self) -> Result<(), SendError> {
        self.tx.flush()
    }

    /// The next received item, waiting for it. See [`Receiver::recv`].
    #[inline]
    pub fn recv(&self) -> Result<Received, RecvError> {
        self.rx.recv()
    }

    /// The next item if one is queued.
    pub fn try_recv(&self) -> Result<Received, TryRecvError> {
        self.rx.try_recv()
    }

    /// The next item, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Received, TryRecvError> {
        self.rx.recv_timeout(timeout)
    }

    /// Received items until the end of stream.
    pub fn iter(&self) -> Iter<'_> {
        self.rx.iter()
    }

    /// A snapshot of the counters.
    pub fn metrics(&self) -> Metrics {
        let tx = self.tx.counts();
        Metrics {
            tx,
            rx: self.rx.counts(),
            pool: self.rx.pool().stats(),
            dist: distributions(self.tx.stats(), &self.rx.shared, tx),
        }
    }

    /// Closes the sending side only (see [`Sender::close`]); receiving goes on.
    pub fn close_write(&self) -> Result<Vec<u32>, SendError> {
        self.tx.close()
    }

    /// Closes the node: Abort for messages still being sent, flush, end our stream (the peer
    /// sees end of stream), then wait for the peer's stream to end and report. Blocks until
    /// the peer closes its side (a plugin exits, a socket peer closes); see
    /// [`close_timeout`](Self::close_timeout) for a bounded wait.
    pub fn close(self) -> Result<CloseReport, SendError> {
        let aborted = self.tx.close()?;
        let (undelivered, read_error) = self.rx.drain();
        Ok(self
            .rx
            .shared
            .close_report(aborted, (undelivered, read_error, false)))
    }

    /// Like [`close`](Self::close), but waits at most `timeout` for the peer's end of stream.
    /// Then it forces the close: the reader is stopped and woken (the socket of a node of
    /// [`tcp`](Self::tcp) or [`unix`](Self::unix) has its read direction shut down), its
    /// stream finished as if it had ended, and the report says so
    /// ([`CloseReport::forced`]) and lists the incoming messages that were still open
    /// (`unfinished`, and as `Unfinished` errors in `undelivered`). A reader that cannot be
    /// woken (see [`Node`]) is left to end at its read's next return, and what it still
    /// knew is not reported.
    ///
    /// The timeout bounds the wait for the peer; ending our side first takes the write lock
    /// like [`close`](Self::close) (a send stuck in the kernel delays it).
    pub fn close_timeout(self, timeout: Duration) -> Result<CloseReport, SendError> {
        let aborted = self.tx.close()?;
        let drained = self.rx.drain_timeout(timeout);
        Ok(self.rx.shared.close_report(aborted, drained))
    }
}

impl Node<ChildStdin> {
    /// Spawns `command` with piped stdin and stdout and talks to it over them (the plugin
    /// case). Its stderr is inherited unless `command` says otherwise.
    pub fn spawn(command: &mut Command, config: Config) -> io::Result<(Self, Child)> {
        config.validate()?;
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(io::Error::other("child has no stdio pipes"));
        };
        Ok((Self::new(stdout, stdin, config)?, child))
    }
}

impl Node<TcpStream> {
    /// A node over a TCP stream (Nagle turned off); [`close`](Self::close) shuts the write
    /// direction down.
    pub fn tcp(stream: TcpStream, config: Config) -> io::Result<Self> {
        config.validate()?;
        stream.set_nodelay(true)?;
        let read = Arc::new(stream.try_clone()?);
        let wake = shut_read(&read, TcpStream::shutdown);
        let closer = Box::new(|s: &mut TcpStream| s.shutdown(Shutdown::Write));
        let rx = Receiver::spawn_with_read_stop(SharedRead(read), &config, wake)?;
        Self::corked(Sender::with_closer(stream, &config, Some(closer))?, rx)
    }
}

#[cfg(unix)]
impl Node<std::os::unix::net::UnixStream> {
    /// A node over a Unix stream socket; [`close`](Self::close) shuts the write direction
    /// down.
    pub fn unix(stream: std::os::unix::net::UnixStream, config: Config) -> io::Result<Self> {
        use std::os::unix::net::UnixStream;
        config.validate()?;
        let read = Arc::new(stream.try_clone()?);
        let wake = shut_read(&read, UnixStream::shutdown);
        let closer = Box::new(|s: &mut UnixStream| s.shutdown(Shutdown::Write));
        let rx = Receiver::spawn_with_read_stop(SharedRead(read), &config, wake)?;
        Self::corked(Sender::with_closer(stream, &config, Some(closer))?, rx)
    }
}

/// Wakes the reader of a socket by shutting its read direction down (a blocked `read`
/// returns 0). Holds the socket weakly: once the reader is gone, there is nothing to do.
fn shut_read<S: Send + Sync + 'static>(
    read: &Arc<S>,
    shutdown: fn(&S, Shutdown) -> io::Result<()>,
) -> impl FnOnce() + Send + 'static {
    let read: Weak<S> = Arc::downgrade(read);
    move || {
        if let Some(s) = read.upgrade() {
            // Fails only if the socket is no longer connected: then the read has returned.
            let _ = shutdown(&s, Shutdown::Read);
        }
    }
}

//! The blocking node: a [`Sender`] and a [`Receiver`] whose reader thread pumps the core.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel as chan;
use mux_nostd::AnyStrategy;

use crate::config::Config;
use crate::error::{RecvError, SendError, TryRecvError};
use crate::pool::{BufferPool, PoolStats};
use crate::rx::{Received, RxCore, RxCounts};
use crate::tx::{SendOptions, Sender, TxCounts};

/// What the reader hands to the application.
pub(crate) enum Item {
    Rx(Received),
    Io(io::Error),
    /// The reader panicked (the message).
    Panicked(String),
}

impl Item {
    #[inline]
    pub(crate) fn into_result(self) -> Result<Received, RecvError> {
        match self {
            Self::Rx(r) => Ok(r),
            Self::Io(e) => Err(RecvError::Io(e)),
            Self::Panicked(m) => Err(RecvError::ReaderPanicked(m)),
        }
    }
}

/// The message of a caught panic.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// State shared by the reader (thread or task) and its receivers.
#[derive(Debug)]
pub(crate) struct RxShared {
    pub(crate) counts: Mutex<RxCounts>,
    pub(crate) unfinished: Mutex<Vec<u32>>,
    pub(crate) pool: BufferPool,
    pub(crate) reader: Mutex<Option<JoinHandle<()>>>,
    /// The message of a panic that ended the reader, if one did.
    pub(crate) panic: Mutex<Option<String>>,
}

impl RxShared {
    pub(crate) fn new(config: &Config) -> Arc<Self> {
        Arc::new(Self {
            counts: Mutex::new(RxCounts::default()),
            unfinished: Mutex::new(Vec::new()),
            pool: BufferPool::new(config.max_buffers, config.retain_capacity),
            reader: Mutex::new(None),
            panic: Mutex::new(None),
        })
    }

    /// Records a panic of the reader; returns the item that reports it.
    pub(crate) fn panicked(&self, payload: &(dyn std::any::Any + Send)) -> Item {
        let message = panic_message(payload);
        *lock(&self.panic) = Some(message.clone());
        Item::Panicked(message)
    }

    pub(crate) fn publish(&self, core: &mut RxCore) {
        *lock(&self.counts) = core.counts;
        if !core.unfinished.is_empty() {
            lock(&self.unfinished).append(&mut core.unfinished);
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A snapshot of a node's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Metrics {
    /// What was sent.
    pub tx: TxCounts,
    /// What was received (errors by kind in `rx.errors`).
    pub rx: RxCounts,
    /// The receive buffer pool: hits, misses, high-water mark.
    pub pool: PoolStats,
}

/// What [`Node::close`] found.
#[derive(Debug, Default)]
pub struct CloseReport {
    /// Our messages that other threads were still sending: each was ended with Abort.
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
}

/// The receiving half: complete messages (or streaming chunks), aborts and protocol errors,
/// in arrival order. Clones share one queue (each item goes to one of them), so a clone can
/// be handed to another thread like a channel receiver.
#[derive(Clone)]
pub struct Receiver {
    rx: chan::Receiver<Item>,
    shared: Arc<RxShared>,
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
        config.validate()?;
        let shared = RxShared::new(config);
        let (tx, rx) = chan::bounded(config.queue_len());
        let core = RxCore::new(config, shared.pool.clone());
        // Allocated here, not in the thread: a failure is this call's.
        let buf = vec![0u8; config.read_buffer_len()];
        let sh = shared.clone();
        let handle = std::thread::Builder::new()
            .name("mux-reader".into())
            .spawn(move || read_loop(read, core, &tx, &sh, buf))?;
        *lock(&shared.reader) = Some(handle);
        Ok(Self { rx, shared })
    }

    /// The next item, waiting for it. [`RecvError::Io`] or [`RecvError::ReaderPanicked`]
    /// comes once (then what was open is reported and the receiver closes);
    /// [`RecvError::Closed`] after the end of stream.
    #[inline]
    pub fn recv(&self) -> Result<Received, RecvError> {
        convert(self.rx.recv().ok())
    }

    /// The next item if one is queued.
    pub fn try_recv(&self) -> Result<Received, TryRecvError> {
        match self.rx.try_recv() {
            Ok(item) => convert(Some(item)).map_err(TryRecvError::Recv),
            Err(chan::TryRecvError::Empty) => Err(TryRecvError::Empty),
            Err(chan::TryRecvError::Disconnected) => Err(TryRecvError::Recv(RecvError::Closed)),
        }
    }

    /// The next item, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Received, TryRecvError> {
        match self.rx.recv_timeout(timeout) {
            Ok(item) => convert(Some(item)).map_err(TryRecvError::Recv),
            Err(chan::RecvTimeoutError::Timeout) => Err(TryRecvError::Empty),
            Err(chan::RecvTimeoutError::Disconnected) => Err(TryRecvError::Recv(RecvError::Closed)),
        }
    }

    /// Items until the end of stream (a read error is yielded as `Err` once).
    pub fn iter(&self) -> Iter<'_> {
        Iter { rx: self }
    }

    /// Receive counters.
    pub fn counts(&self) -> RxCounts {
        *lock(&self.shared.counts)
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
        lock(&self.shared.unfinished).clone()
    }

    /// The message of a panic that ended the reader, if one did (it was also delivered once
    /// as [`RecvError::ReaderPanicked`]).
    pub fn reader_panic(&self) -> Option<String> {
        lock(&self.shared.panic).clone()
    }

    /// Waits for the reader to reach the end of the stream, keeping what it delivers until
    /// then (in order) and the read error, if any. A panic of the reader is kept for
    /// [`reader_panic`](Self::reader_panic).
    pub fn drain(&self) -> (Vec<Received>, Option<io::Error>) {
        let mut items = Vec::new();
        let mut err = None;
        loop {
            match self.recv() {
                Ok(item) => items.push(item),
                Err(RecvError::Io(e)) => err = Some(e),
                Err(RecvError::ReaderPanicked(_)) => {}
                Err(RecvError::Closed) => break,
            }
        }
        if let Some(h) = lock(&self.shared.reader).take() {
            // The reader catches panics and reports them; ignore its result.
            let _ = h.join();
        }
        (items, err)
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

/// The reader thread: [`pump`] with a panic anywhere in it (a bug of the receive loop)
/// reported to the receivers instead of ending the stream as if it had ended cleanly.
fn read_loop<R: Read>(
    read: R,
    mut core: RxCore,
    tx: &chan::Sender<Item>,
    shared: &RxShared,
    buf: Vec<u8>,
) {
    let run = panic::catch_unwind(AssertUnwindSafe(|| pump(read, &mut core, tx, shared, buf)));
    if let Err(payload) = run {
        let _ = tx.send(shared.panicked(&*payload));
        // What the core knew may be inconsistent: publish it, report nothing more.
        shared.publish(&mut core);
    }
}

fn pump<R: Read>(
    mut read: R,
    core: &mut RxCore,
    tx: &chan::Sender<Item>,
    shared: &RxShared,
    mut buf: Vec<u8>,
) {
    'stream: loop {
        // A panic in `read` (the caller's code) is reported like a read error: once, then
        // the stream is finished as if it had ended.
        let read = panic::catch_unwind(AssertUnwindSafe(|| read.read(&mut buf)));
        let n = match read {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => n,
            Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
            Ok(Err(e)) => {
                // Reported once; then the stream is finished as if it had ended.
                let _ = tx.send(Item::Io(e));
                break;
            }
            Err(payload) => {
                let _ = tx.send(shared.panicked(&*payload));
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
                if tx.send(Item::Rx(item)).is_err() {
                    break 'stream; // every receiver is gone: stop reading
                }
            }
        }
        shared.publish(core);
    }
    while let Some(item) = core.finish() {
        shared.publish(core);
        if tx.send(Item::Rx(item)).is_err() {
            break;
        }
    }
    shared.publish(core);
}

/// A node: many threads send, one or more receive, over one byte stream.
///
/// `Node` is `Sync`: share it by reference (scoped threads) or in an `Arc`, or
/// [`split`](Self::split) it into a cloneable [`Sender`] and [`Receiver`].
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
        Ok(Self {
            rx: Receiver::spawn(read, &config)?,
            tx: Sender::new(write, &config)?,
        })
    }

    /// A node from its two halves.
    pub fn from_parts(tx: Sender<W>, rx: Receiver) -> Self {
        Self { tx, rx }
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
        Metrics {
            tx: self.tx.counts(),
            rx: self.rx.counts(),
            pool: self.rx.pool().stats(),
        }
    }

    /// Closes the sending side only (see [`Sender::close`]); receiving goes on.
    pub fn close_write(&self) -> Result<Vec<u32>, SendError> {
        self.tx.close()
    }

    /// Closes the node: Abort for messages still being sent, flush, end our stream (the peer
    /// sees end of stream), then wait for the peer's stream to end and report. Blocks until
    /// the peer closes its side (a plugin exits, a socket peer closes).
    pub fn close(self) -> Result<CloseReport, SendError> {
        let aborted = self.tx.close()?;
        let (undelivered, read_error) = self.rx.drain();
        Ok(CloseReport {
            aborted,
            unfinished: self.rx.unfinished(),
            undelivered,
            read_error,
            reader_panic: self.rx.reader_panic(),
        })
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
        let read = stream.try_clone()?;
        let closer = Box::new(|s: &mut TcpStream| s.shutdown(Shutdown::Write));
        Ok(Self {
            rx: Receiver::spawn(read, &config)?,
            tx: Sender::with_closer(stream, &config, Some(closer))?,
        })
    }
}

#[cfg(unix)]
impl Node<std::os::unix::net::UnixStream> {
    /// A node over a Unix stream socket; [`close`](Self::close) shuts the write direction
    /// down.
    pub fn unix(stream: std::os::unix::net::UnixStream, config: Config) -> io::Result<Self> {
        config.validate()?;
        let read = stream.try_clone()?;
        let closer = Box::new(|s: &mut std::os::unix::net::UnixStream| s.shutdown(Shutdown::Write));
        Ok(Self {
            rx: Receiver::spawn(read, &config)?,
            tx: Sender::with_closer(stream, &config, Some(closer))?,
        })
    }
}

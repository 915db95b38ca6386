//! The host side: start a plugin executable, wait for `ready`, call its services.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader};
use std::ops::Deref;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver as Chan, RecvTimeoutError, Sender as ChanTx, bounded};
use mux_nostd::plugin::{Header, Kind, names};

use super::error::{CallError, Exit, HostError};
use crate::config::Config;
use crate::error::{RecvError, SendError};
use crate::node::{Delivery, spawn_handler};
use crate::rx::{Message, Received};
use crate::tx::{CancelToken, SendOptions, Sender};

/// Where a plugin's stderr goes, line by line.
#[derive(Clone, Default)]
pub enum StderrMode {
    /// To the host's stderr, each line prefixed with `[NAME] ` (NAME: the executable's file
    /// name). The default.
    #[default]
    Prefixed,
    /// To the host's stderr, each line prefixed with this text.
    Prefix(String),
    /// To a callback, one call per line (without its newline).
    Callback(Arc<dyn Fn(&str) + Send + Sync>),
    /// Inherited: the plugin writes to the host's stderr directly.
    Inherit,
    /// Discarded.
    Null,
}

impl std::fmt::Debug for StderrMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Prefixed => f.write_str("Prefixed"),
            Self::Prefix(p) => f.debug_tuple("Prefix").field(p).finish(),
            Self::Callback(_) => f.write_str("Callback"),
            Self::Inherit => f.write_str("Inherit"),
            Self::Null => f.write_str("Null"),
        }
    }
}

/// Host settings. `Default` follows the Go library's timings where it has them.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The multiplexer's settings (default: Hybrid with threshold 4096, as Go plugins use).
    pub node: Config,
    /// How long to wait for `ready` in all (default 10 s); past it the plugin is killed.
    pub ready_timeout: Duration,
    /// When to send `request_ready` if no `ready` came yet (default 5 s, as Go does).
    pub request_ready_after: Duration,
    /// Timeout of [`Host::call`] (default 30 s); [`CallOptions`] may set another per call.
    pub call_timeout: Duration,
    /// Most calls waiting for replies at once (default 4096); past it a call fails with
    /// [`CallError::TooManyPending`] at once.
    pub max_pending: usize,
    /// How long [`Host::shutdown`] waits for `shutdown_ack` (default 5 s).
    pub ack_timeout: Duration,
    /// How long [`Host::shutdown`] lets calls in flight finish, and then the process exit,
    /// before it kills the process (default 5 s).
    pub grace: Duration,
    /// Where the plugin's stderr goes.
    pub stderr: StderrMode,
    /// Most plugin requests to the host handled at once (default 16); past it a request is
    /// answered with an error at once.
    pub max_host_requests: usize,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            node: Config::default(),
            ready_timeout: Duration::from_secs(10),
            request_ready_after: Duration::from_secs(5),
            call_timeout: Duration::from_secs(30),
            max_pending: 4096,
            ack_timeout: Duration::from_secs(5),
            grace: Duration::from_secs(5),
            stderr: StderrMode::Prefixed,
            max_host_requests: 16,
        }
    }
}

/// Options of one call.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    /// How long to wait for the reply (default: [`HostConfig::call_timeout`]).
    pub timeout: Option<Duration>,
    /// Ends the call when cancelled: a request still being written ends with Abort; a reply
    /// arriving later is dropped. Noticed within a millisecond while waiting for the reply.
    pub cancel: Option<CancelToken>,
}

/// A successful reply: the payload, in the pooled buffer it arrived in (no copy).
pub struct Reply {
    message: Message,
    start: usize,
    end: usize,
}

impl Reply {
    /// The reply payload.
    pub fn payload(&self) -> &[u8] {
        &self.message.body()[self.start..self.end]
    }

    /// The payload as an owned vector.
    pub fn to_vec(&self) -> Vec<u8> {
        self.payload().to_vec()
    }
}

impl Deref for Reply {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.payload()
    }
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("len", &(self.end - self.start))
            .finish()
    }
}

/// Counters of a [`Host`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostCounts {
    /// Calls answered (successfully or with an error reply).
    pub replies: u64,
    /// Replies for ids that had no call waiting (late after a timeout or cancel, or unasked):
    /// dropped.
    pub stray_replies: u64,
    /// Notifications received (all names).
    pub notifications: u64,
    /// Notifications no handler took (dropped).
    pub unhandled: u64,
    /// Requests from the plugin.
    pub plugin_requests: u64,
    /// Messages whose plugin header did not decode, and multiplexer protocol errors.
    pub malformed: u64,
}

/// A handler of the plugin's notifications of one name.
pub type NotifyHandler = Arc<dyn Fn(&[u8]) + Send + Sync>;
/// A handler of the plugin's requests of one name: the reply payload, or an error text.
pub type RequestHandler = Arc<dyn Fn(&[u8]) -> Result<Vec<u8>, String> + Send + Sync>;

/// Builds a [`Host`]: the command, handlers for the plugin's notifications and requests, and
/// the settings.
pub struct HostBuilder {
    command: Command,
    config: HostConfig,
    notify: HashMap<Vec<u8>, NotifyHandler>,
    requests: HashMap<Vec<u8>, RequestHandler>,
}

impl std::fmt::Debug for HostBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostBuilder")
            .field("command", &self.command)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl HostBuilder {
    /// Settings (replacing the defaults).
    pub fn config(mut self, config: HostConfig) -> Self {
        self.config = config;
        self
    }

    /// Handles the plugin's notifications named `name` (on the host's reader thread: keep
    /// it short). Without a handler, `info`, `warning`, `error` and `status` go to the `log`
    /// crate, `heartbeat` is ignored, and other names are dropped and counted.
    pub fn on_notify(mut self, name: &str, f: impl Fn(&[u8]) + Send + Sync + 'static) -> Self {
        self.notify.insert(name.as_bytes().to_vec(), Arc::new(f));
        self
    }

    /// Answers the plugin's requests named `name`; the reply goes back as `NAME_response`
    /// with the request's id, on a thread of its own.
    pub fn on_request(
        mut self,
        name: &str,
        f: impl Fn(&[u8]) -> Result<Vec<u8>, String> + Send + Sync + 'static,
    ) -> Self {
        self.requests.insert(name.as_bytes().to_vec(), Arc::new(f));
        self
    }

    /// Starts the plugin and waits for its `ready`.
    pub fn spawn(self) -> Result<Host, HostError> {
        Host::start(self)
    }
}

/// One waiting call.
enum Slot {
    Blocking(ChanTx<Result<Reply, CallError>>),
    #[cfg(feature = "tokio")]
    Async(tokio::sync::oneshot::Sender<Result<Reply, CallError>>),
}

impl Slot {
    fn complete(self, r: Result<Reply, CallError>) {
        match self {
            Self::Blocking(tx) => {
                let _ = tx.try_send(r);
            }
            #[cfg(feature = "tokio")]
            Self::Async(tx) => {
                let _ = tx.send(r);
            }
        }
    }
}

enum Life {
    Starting,
    Ready,
    Closing,
    Gone(Exit),
}

struct State {
    pending: HashMap<u32, Slot>,
    life: Life,
}

struct Inner {
    tx: Sender<ChildStdin>,
    state: Mutex<State>,
    changed: Condvar,
    child: Mutex<Child>,
    notify: HashMap<Vec<u8>, NotifyHandler>,
    requests: HashMap<Vec<u8>, RequestHandler>,
    host_requests: AtomicU64,
    config: HostConfig,
    replies: AtomicU64,
    stray: AtomicU64,
    notifications: AtomicU64,
    unhandled: AtomicU64,
    plugin_requests: AtomicU64,
    malformed: AtomicU64,
}

/// A running plugin: a child process spoken to over its stdin and stdout.
///
/// `Host` is `Send + Sync`: share it (`&Host`, `Arc<Host>`) and call from any number of
/// threads. When it is dropped without [`shutdown`](Self::shutdown), the process is killed
/// and reaped, and its threads are joined.
///
/// ```no_run
/// use std::process::Command;
/// use mux_std::plugin::Host;
///
/// let host = Host::builder(Command::new("./echo_plugin")).spawn()?;
/// let reply = host.call("echo", b"hi")?;
/// assert_eq!(&*reply, b"hi");
/// let exit = host.shutdown();
/// println!("{exit:?}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Host {
    inner: Arc<Inner>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("counts", &self.counts())
            .finish_non_exhaustive()
    }
}

/// What [`Host::shutdown`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// How the process ended.
    pub exit: Exit,
    /// Whether it acknowledged `shutdown`.
    pub acked: bool,
    /// Whether it had to be killed (it did not exit within the grace period).
    pub killed: bool,
    /// Calls still waiting when the grace period ended (they failed with
    /// [`CallError::Exited`]).
    pub abandoned: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Host {
    /// A builder for the plugin `command` (its arguments, environment and working directory
    /// are the command's; its stdin, stdout and stderr are set by the host).
    pub fn builder(command: Command) -> HostBuilder {
        HostBuilder {
            command,
            config: HostConfig::default(),
            notify: HashMap::new(),
            requests: HashMap::new(),
        }
    }

    /// Starts `command` with the default settings and waits for `ready`.
    pub fn spawn(command: Command) -> Result<Self, HostError> {
        Self::builder(command).spawn()
    }

    fn start(b: HostBuilder) -> Result<Self, HostError> {
        let HostBuilder {
            mut command,
            config,
            notify,
            requests,
        } = b;
        config.node.validate().map_err(HostError::Config)?;
        let stderr_piped = !matches!(config.stderr, StderrMode::Inherit | StderrMode::Null);
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(match config.stderr {
                StderrMode::Inherit => Stdio::inherit(),
                StderrMode::Null => Stdio::null(),
                _ => Stdio::piped(),
            });
        let mut child = command.spawn().map_err(HostError::Spawn)?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(HostError::Spawn(io::Error::other("no stdio pipes")));
        };
        let mut threads = Vec::new();
        if let Some(err) = child.stderr.take().filter(|_| stderr_piped) {
            let sink = stderr_sink(&config.stderr, &command);
            let t = thread::Builder::new()
                .name("plugin-stderr".into())
                .spawn(move || {
                    for line in BufReader::new(err).split(b'\n') {
                        let Ok(line) = line else { break };
                        sink(&String::from_utf8_lossy(&line));
                    }
                })
                .map_err(HostError::Spawn)?;
            threads.push(t);
        }
        let tx = match Sender::new(stdin, &config.node) {
            Ok(tx) => tx,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(HostError::Config(e));
            }
        };
        let inner = Arc::new(Inner {
            tx,
            state: Mutex::new(State {
                pending: HashMap::new(),
                life: Life::Starting,
            }),
            changed: Condvar::new(),
            child: Mutex::new(child),
            notify,
            requests,
            host_requests: AtomicU64::new(0),
            config,
            replies: AtomicU64::new(0),
            stray: AtomicU64::new(0),
            notifications: AtomicU64::new(0),
            unhandled: AtomicU64::new(0),
            plugin_requests: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
        });
        // Replies are matched on the reader thread itself: one thread hand-over per call.
        let reader = {
            let inner = Arc::clone(&inner);
            spawn_handler(stdout, &inner.config.node.clone(), move |d| match d {
                Delivery::Item(item) => inner.on_item(item),
                Delivery::Idle => true,
            })
        };
        match reader {
            Ok(t) => threads.push(t),
            Err(e) => {
                inner.kill();
                return Err(HostError::Spawn(e));
            }
        }
        let host = Self {
            inner,
            threads: Mutex::new(threads),
        };
        host.wait_ready()?;
        Ok(host)
    }

    fn wait_ready(&self) -> Result<(), HostError> {
        let inner = &self.inner;
        let start = Instant::now();
        let mut asked = false;
        let mut st = lock(&inner.state);
        loop {
            match st.life {
                Life::Ready => return Ok(()),
                Life::Gone(exit) => return Err(HostError::ExitedEarly(exit)),
                Life::Starting | Life::Closing => {}
            }
            let waited = start.elapsed();
            if waited >= inner.config.ready_timeout {
                drop(st);
                inner.kill();
                return Err(HostError::NotReady);
            }
            if !asked && waited >= inner.config.request_ready_after {
                asked = true;
                drop(st);
                // The ack comes back as a reply nobody waits for; the `ready` before it is
                // what counts.
                let id = inner.fresh_id(&lock(&inner.state));
                let _ = inner.send_request(
                    id,
                    names::REQUEST_READY,
                    names::REQUEST_READY_TEXT.as_bytes(),
                    &SendOptions::default(),
                );
                st = lock(&inner.state);
                continue;
            }
            let until = if asked {
                inner.config.ready_timeout
            } else {
                inner
                    .config
                    .request_ready_after
                    .min(inner.config.ready_timeout)
            };
            st = inner
                .changed
                .wait_timeout(st, until - waited)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    /// Calls `service` with `payload` and waits for the reply (at most
    /// [`HostConfig::call_timeout`]). An error reply is [`CallError::Remote`].
    pub fn call(&self, service: &str, payload: &[u8]) -> Result<Reply, CallError> {
        self.call_with(service, payload, &CallOptions::default())
    }

    /// Calls with a timeout and a cancel token of its own.
    pub fn call_with(
        &self,
        service: &str,
        payload: &[u8],
        opts: &CallOptions,
    ) -> Result<Reply, CallError> {
        let inner = &self.inner;
        let timeout = opts.timeout.unwrap_or(inner.config.call_timeout);
        let deadline = Instant::now() + timeout;
        let (slot, chan) = bounded(1);
        let id = inner.register(Slot::Blocking(slot))?;
        let send = SendOptions {
            deadline: Some(deadline),
            cancel: opts.cancel.clone(),
            ..SendOptions::default()
        };
        if let Err(e) = inner.send_request(id, service, payload, &send) {
            inner.unregister(id);
            return Err(e);
        }
        // A lone call spins briefly before it parks: a reply within SPIN then costs no wake-up
        // of this thread (with many calls in flight, spinning would only take their CPU).
        if lock(&inner.state).pending.len() <= 1 {
            let until = Instant::now() + SPIN;
            while Instant::now() < until {
                if let Ok(r) = chan.try_recv() {
                    return r;
                }
                std::hint::spin_loop();
            }
        }
        let r = wait_reply(&chan, deadline, opts.cancel.as_ref());
        if matches!(r, Err(CallError::TimedOut | CallError::Cancelled)) {
            inner.unregister(id);
            // A reply that raced the timeout is taken rather than dropped.
            if let Ok(late) = chan.try_recv() {
                return late;
            }
        }
        r
    }

    /// Calls `service` with `request` as JSON and decodes the reply as JSON (plain
    /// `encoding/json` bodies on the Go side).
    #[cfg(feature = "json")]
    pub fn call_json<T, R>(&self, service: &str, request: &T) -> Result<R, CallError>
    where
        T: serde::Serialize + ?Sized,
        R: serde::de::DeserializeOwned,
    {
        let body = serde_json::to_vec(request).map_err(CallError::Json)?;
        let reply = self.call(service, &body)?;
        serde_json::from_slice(&reply).map_err(CallError::Json)
    }

    /// Sends the plugin a notification `name` (no reply is expected).
    pub fn notify(&self, name: &str, payload: &[u8]) -> Result<(), CallError> {
        let inner = &self.inner;
        let id = {
            let st = lock(&inner.state);
            inner.usable(&st)?;
            inner.fresh_id(&st)
        };
        let bytes = encode(name.as_bytes(), false, Kind::Notify, payload);
        send_with_id_retry(&inner.tx, id, &bytes, &SendOptions::default())
    }

    /// Calls `service` from async code: the same as [`call`](Self::call), awaiting the
    /// reply. The request is written on tokio's blocking thread pool (a pipe write can
    /// block); dropping the future cancels the call (a request still being written ends with
    /// Abort, a later reply is dropped).
    #[cfg(feature = "tokio")]
    pub async fn call_async(&self, service: &str, payload: &[u8]) -> Result<Reply, CallError> {
        let inner = Arc::clone(&self.inner);
        let (slot, reply) = tokio::sync::oneshot::channel();
        let id = inner.register(Slot::Async(slot))?;
        let cancel = CancelToken::new();
        struct Guard<'a>(&'a Inner, u32, CancelToken, bool);
        impl Drop for Guard<'_> {
            fn drop(&mut self) {
                if !self.3 {
                    self.2.cancel();
                    self.0.unregister(self.1);
                }
            }
        }
        let mut guard = Guard(&self.inner, id, cancel.clone(), false);
        let deadline = Instant::now() + inner.config.call_timeout;
        let bytes = encode(service.as_bytes(), false, Kind::Request, payload);
        let writer = Arc::clone(&inner);
        let send = SendOptions {
            deadline: Some(deadline),
            cancel: Some(cancel),
            ..SendOptions::default()
        };
        let sent =
            tokio::task::spawn_blocking(move || send_with_id_retry(&writer.tx, id, &bytes, &send))
                .await
                .unwrap_or(Err(CallError::Cancelled));
        sent?;
        let left = deadline.saturating_duration_since(Instant::now());
        let r = match tokio::time::timeout(left, reply).await {
            Ok(Ok(r)) => {
                guard.3 = true;
                r
            }
            Ok(Err(_)) => Err(CallError::Closed),
            Err(_) => Err(CallError::TimedOut),
        };
        drop(guard);
        r
    }

    /// Counters.
    pub fn counts(&self) -> HostCounts {
        let i = &self.inner;
        HostCounts {
            replies: i.replies.load(Ordering::Relaxed),
            stray_replies: i.stray.load(Ordering::Relaxed),
            notifications: i.notifications.load(Ordering::Relaxed),
            unhandled: i.unhandled.load(Ordering::Relaxed),
            plugin_requests: i.plugin_requests.load(Ordering::Relaxed),
            malformed: i.malformed.load(Ordering::Relaxed),
        }
    }

    /// Calls waiting for replies now.
    pub fn pending(&self) -> usize {
        lock(&self.inner.state).pending.len()
    }

    /// How the plugin ended, once it has.
    pub fn exit(&self) -> Option<Exit> {
        match lock(&self.inner.state).life {
            Life::Gone(exit) => Some(exit),
            _ => None,
        }
    }

    /// The plugin's process id.
    pub fn pid(&self) -> u32 {
        lock(&self.inner.child).id()
    }

    /// Graceful shutdown with bounded waits: sends `shutdown` and waits for its ack (at most
    /// [`HostConfig::ack_timeout`]); lets calls in flight finish and then the process exit
    /// (together at most [`HostConfig::grace`]), closing its stdin once no call waits; kills
    /// it if it is still running then. New calls fail with [`CallError::Closed`] from the
    /// start. Calls other threads have in flight may finish meanwhile; a second shutdown
    /// reports the same exit.
    pub fn shutdown(&self) -> ShutdownReport {
        let report = self.inner.shutdown();
        self.join();
        report
    }

    /// Force shutdown: sends `force_shutdown`, gives the process 100 ms to exit, then kills
    /// it.
    pub fn kill(&self) -> ShutdownReport {
        let inner = &self.inner;
        {
            let mut st = lock(&inner.state);
            if matches!(st.life, Life::Ready | Life::Starting) {
                st.life = Life::Closing;
            }
        }
        let id = inner.fresh_id(&lock(&inner.state));
        let deadline = Instant::now() + Duration::from_millis(100);
        let _ = inner.send_request(
            id,
            names::FORCE_SHUTDOWN,
            names::FORCE_SHUTDOWN_TEXT.as_bytes(),
            &SendOptions {
                deadline: Some(deadline),
                ..SendOptions::default()
            },
        );
        let _ = inner.tx.close();
        let exit = inner.wait_exit(deadline);
        let report = inner.finish(exit, false);
        self.join();
        report
    }

    fn join(&self) {
        let threads = std::mem::take(&mut *lock(&self.threads));
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if !lock(&self.threads).is_empty() {
            self.inner.kill();
            self.join();
        }
    }
}

fn stderr_sink(mode: &StderrMode, command: &Command) -> Arc<dyn Fn(&str) + Send + Sync> {
    use std::io::Write as _;
    let prefix = match mode {
        StderrMode::Callback(f) => return Arc::clone(f),
        StderrMode::Prefix(p) => p.clone(),
        _ => {
            let program = std::path::Path::new(command.get_program());
            let name = program
                .file_name()
                .map_or_else(|| program.to_string_lossy(), |n| n.to_string_lossy());
            format!("[{name}] ")
        }
    };
    Arc::new(move |line: &str| {
        let mut err = io::stderr().lock();
        let _ = writeln!(err, "{prefix}{line}");
    })
}

fn wait_reply(
    chan: &Chan<Result<Reply, CallError>>,
    deadline: Instant,
    cancel: Option<&CancelToken>,
) -> Result<Reply, CallError> {
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(CallError::TimedOut);
        }
        let step = match cancel {
            Some(c) if c.is_cancelled() => return Err(CallError::Cancelled),
            Some(_) => (deadline - now).min(Duration::from_millis(1)),
            None => deadline - now,
        };
        match chan.recv_timeout(step) {
            Ok(r) => return r,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Err(CallError::Closed),
        }
    }
}

/// Encodes a plugin header and its payload into one message body.
pub(super) fn encode(name: &[u8], is_error: bool, kind: Kind, payload: &[u8]) -> Vec<u8> {
    let h = Header {
        name,
        is_error,
        kind,
        payload,
    };
    let mut bytes = vec![0u8; h.encoded_len()];
    // The buffer has exactly the encoded size, and lengths past u32 are refused by the
    // multiplexer's own limit long before (a Vec of 4 GiB cannot be a message).
    match h.encode_into(&mut bytes) {
        Ok(_) => bytes,
        Err(_) => Vec::new(),
    }
}

/// Sends `bytes` as message `id`. A send of an id still being written by another thread
/// cannot happen for ids from [`Inner::fresh_id`]; replies reuse the request's id, which is
/// closed on our side.
pub(super) fn send_with_id_retry(
    tx: &Sender<impl io::Write + Send>,
    id: u32,
    bytes: &[u8],
    opts: &SendOptions,
) -> Result<(), CallError> {
    let opts = SendOptions {
        id: Some(id),
        ..opts.clone()
    };
    tx.send_with(bytes, &opts).map(drop).map_err(|e| match e {
        SendError::Cancelled => CallError::Cancelled,
        SendError::TimedOut => CallError::TimedOut,
        SendError::Closed => CallError::Closed,
        e => CallError::Send(e),
    })
}

impl Inner {
    fn usable(&self, st: &State) -> Result<(), CallError> {
        match st.life {
            Life::Ready | Life::Starting => Ok(()),
            Life::Closing => Err(CallError::Closed),
            Life::Gone(exit) => Err(CallError::Exited(exit)),
        }
    }

    /// An id no call is waiting on (the sender's counter, skipping 0 and pending ids).
    fn fresh_id(&self, st: &State) -> u32 {
        loop {
            let id = self.tx.next_id();
            if id != 0 && !st.pending.contains_key(&id) {
                return id;
            }
        }
    }

    fn register(&self, slot: Slot) -> Result<u32, CallError> {
        let mut st = lock(&self.state);
        self.usable(&st)?;
        if st.pending.len() >= self.config.max_pending {
            return Err(CallError::TooManyPending);
        }
        let id = self.fresh_id(&st);
        st.pending.insert(id, slot);
        Ok(id)
    }

    fn unregister(&self, id: u32) {
        let mut st = lock(&self.state);
        if st.pending.remove(&id).is_some() {
            self.changed.notify_all();
        }
    }

    fn send_request(
        &self,
        id: u32,
        name: &str,
        payload: &[u8],
        opts: &SendOptions,
    ) -> Result<(), CallError> {
        REQUEST.with_borrow_mut(|buf| {
            let h = Header::new(name.as_bytes(), Kind::Request, payload);
            buf.resize(h.encoded_len(), 0);
            h.encode_into(buf).map_err(CallError::BadReply)?;
            let r = send_with_id_retry(&self.tx, id, buf, opts);
            if buf.capacity() > REQUEST_KEEP {
                *buf = Vec::new();
            }
            r
        })
    }

    /// Takes one item from the reader thread; `false` once the stream has ended.
    fn on_item(self: &Arc<Self>, item: Result<Received, RecvError>) -> bool {
        match item {
            Ok(Received::Message(m)) => self.on_message(m),
            Ok(Received::Aborted { id }) => {
                if let Some(slot) = lock(&self.state).pending.remove(&id) {
                    slot.complete(Err(CallError::Aborted));
                    self.changed.notify_all();
                }
            }
            Ok(Received::Error(e)) => {
                self.malformed.fetch_add(1, Ordering::Relaxed);
                log::warn!("plugin protocol error: {e}");
            }
            Ok(_) => {}
            Err(RecvError::Closed) => {
                self.ended();
                return false;
            }
            Err(e) => log::warn!("plugin output: {e}"),
        }
        true
    }

    /// The plugin's stdout ended: it exited or is about to. Fails every waiting call with its
    /// status as soon as it is known.
    fn ended(&self) {
        let exit = self.wait_exit(Instant::now() + Duration::from_millis(200));
        let mut st = lock(&self.state);
        if !matches!(st.life, Life::Gone(_)) {
            st.life = Life::Gone(exit);
        }
        for (_, slot) in st.pending.drain() {
            slot.complete(Err(CallError::Exited(exit)));
        }
        self.changed.notify_all();
    }

    fn on_message(self: &Arc<Self>, m: Message) {
        let (kind, is_error, name_range, payload_range) = match Header::decode(m.body()) {
            Ok(h) => {
                let base = m.body().as_ptr() as usize;
                let name_start = h.name.as_ptr() as usize - base;
                let start = h.payload.as_ptr() as usize - base;
                (
                    h.kind,
                    h.is_error,
                    name_start..name_start + h.name.len(),
                    start..start + h.payload.len(),
                )
            }
            Err(e) => {
                self.malformed.fetch_add(1, Ordering::Relaxed);
                log::warn!("plugin message {} has a bad header: {e}", m.id());
                if let Some(slot) = lock(&self.state).pending.remove(&m.id()) {
                    slot.complete(Err(CallError::BadReply(e)));
                    self.changed.notify_all();
                }
                return;
            }
        };
        let id = m.id();
        let name = &m.body()[name_range];
        match kind {
            Kind::Notify => return self.on_notify(name, &m.body()[payload_range]),
            Kind::Request => return self.on_plugin_request(id, name, &m.body()[payload_range]),
            _ => {}
        }
        if name == names::READY.as_bytes() {
            let mut st = lock(&self.state);
            if matches!(st.life, Life::Starting) {
                st.life = Life::Ready;
                self.changed.notify_all();
            }
            return;
        }
        let slot = lock(&self.state).pending.remove(&id);
        let Some(slot) = slot else {
            self.stray.fetch_add(1, Ordering::Relaxed);
            return;
        };
        self.replies.fetch_add(1, Ordering::Relaxed);
        let r = if is_error {
            Err(CallError::Remote(
                String::from_utf8_lossy(&m.body()[payload_range]).into_owned(),
            ))
        } else {
            Ok(Reply {
                start: payload_range.start,
                end: payload_range.end,
                message: m,
            })
        };
        slot.complete(r);
        self.changed.notify_all();
    }

    fn on_notify(&self, name: &[u8], payload: &[u8]) {
        self.notifications.fetch_add(1, Ordering::Relaxed);
        if let Some(f) = self.notify.get(name) {
            return f(payload);
        }
        let text = || String::from_utf8_lossy(payload);
        match name {
            b"info" | b"status" => log::info!("plugin: {}", text()),
            b"warning" => log::warn!("plugin: {}", text()),
            b"error" => log::error!("plugin: {}", text()),
            n if n == names::HEARTBEAT.as_bytes() => {}
            _ => {
                self.unhandled.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn on_plugin_request(self: &Arc<Self>, id: u32, name: &[u8], payload: &[u8]) {
        self.plugin_requests.fetch_add(1, Ordering::Relaxed);
        let mut reply_name = name.to_vec();
        reply_name.extend_from_slice(names::RESPONSE_SUFFIX.as_bytes());
        let Some(handler) = self.requests.get(name).cloned() else {
            let text = format!(
                "no handler registered for request: {}",
                String::from_utf8_lossy(name)
            );
            self.reply(id, &reply_name, Err(text));
            return;
        };
        let running = self.host_requests.fetch_add(1, Ordering::AcqRel);
        if running >= self.config.max_host_requests as u64 {
            self.host_requests.fetch_sub(1, Ordering::AcqRel);
            self.reply(id, &reply_name, Err("host busy".to_owned()));
            return;
        }
        let payload = payload.to_vec();
        let inner = Arc::clone(self);
        let spawned = thread::Builder::new()
            .name("plugin-request".into())
            .spawn(move || {
                inner.reply(id, &reply_name, handler(&payload));
                inner.host_requests.fetch_sub(1, Ordering::AcqRel);
            });
        if spawned.is_err() {
            self.host_requests.fetch_sub(1, Ordering::AcqRel);
        }
    }

    fn reply(&self, id: u32, name: &[u8], r: Result<Vec<u8>, String>) {
        let (kind, is_error, body) = match &r {
            Ok(b) => (Kind::Response, false, b.as_slice()),
            Err(t) => (Kind::Error, true, t.as_bytes()),
        };
        let bytes = encode(name, is_error, kind, body);
        let _ = send_with_id_retry(&self.tx, id, &bytes, &SendOptions::default());
    }

    /// Waits until the child has exited or `deadline` passes.
    fn wait_exit(&self, deadline: Instant) -> Exit {
        loop {
            {
                let mut child = lock(&self.child);
                if let Ok(Some(status)) = child.try_wait() {
                    return Exit::Status(status);
                }
            }
            if Instant::now() >= deadline {
                return Exit::Unknown;
            }
            thread::sleep(Duration::from_micros(500));
        }
    }

    fn kill(&self) {
        {
            let mut st = lock(&self.state);
            if !matches!(st.life, Life::Gone(_)) {
                st.life = Life::Closing;
            }
        }
        let mut child = lock(&self.child);
        let _ = child.kill();
        let status = child.wait();
        drop(child);
        let _ = self.tx.close();
        if let Ok(status) = status {
            let mut st = lock(&self.state);
            st.life = Life::Gone(Exit::Status(status));
            for (_, slot) in st.pending.drain() {
                slot.complete(Err(CallError::Exited(Exit::Status(status))));
            }
            self.changed.notify_all();
        }
    }

    fn shutdown(&self) -> ShutdownReport {
        let start = Instant::now();
        let grace_end = start + self.config.grace;
        {
            let mut st = lock(&self.state);
            if let Life::Gone(exit) = st.life {
                drop(st);
                // It may have closed its output without exiting: `finish` kills it then.
                return self.finish(exit, false);
            }
            st.life = Life::Closing;
        }
        // The ack is a reply to a call of our own, under an id no call is waiting on.
        let (slot, chan) = bounded(1);
        let id = {
            let mut st = lock(&self.state);
            let id = self.fresh_id(&st);
            st.pending.insert(id, Slot::Blocking(slot));
            id
        };
        let ack_deadline = start + self.config.ack_timeout;
        let sent = self.send_request(
            id,
            names::SHUTDOWN,
            names::SHUTDOWN_TEXT.as_bytes(),
            &SendOptions {
                deadline: Some(ack_deadline),
                ..SendOptions::default()
            },
        );
        let acked = sent.is_ok() && wait_reply(&chan, ack_deadline, None).is_ok();
        self.unregister(id);
        // Drain: calls in flight may finish within the grace period.
        {
            let mut st = lock(&self.state);
            while !st.pending.is_empty() && !matches!(st.life, Life::Gone(_)) {
                let now = Instant::now();
                if now >= grace_end {
                    break;
                }
                st = self
                    .changed
                    .wait_timeout(st, grace_end - now)
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0;
            }
        }
        let abandoned = lock(&self.state).pending.len();
        let _ = self.tx.close();
        let exit = self.wait_exit(grace_end.max(Instant::now() + Duration::from_millis(10)));
        let mut report = self.finish(exit, acked);
        report.abandoned = abandoned;
        report
    }

    /// Kills the process if it has not exited, records how it ended, fails what still waits.
    fn finish(&self, exit: Exit, acked: bool) -> ShutdownReport {
        let (exit, killed) = match exit {
            Exit::Status(_) => (exit, false),
            Exit::Unknown => {
                let mut child = lock(&self.child);
                let _ = child.kill();
                match child.wait() {
                    Ok(s) => (Exit::Status(s), true),
                    Err(_) => (Exit::Unknown, true),
                }
            }
        };
        let mut st = lock(&self.state);
        st.life = Life::Gone(exit);
        let abandoned = st.pending.len();
        for (_, slot) in st.pending.drain() {
            slot.complete(Err(CallError::Exited(exit)));
        }
        self.changed.notify_all();
        ShutdownReport {
            exit,
            acked,
            killed,
            abandoned,
        }
    }
}

/// How long a lone call polls for its reply before it parks.
const SPIN: Duration = Duration::from_micros(50);

/// Requests up to this size reuse a per-thread encode buffer.
const REQUEST_KEEP: usize = 64 << 10;

thread_local! {
    static REQUEST: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

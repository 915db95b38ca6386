//! The plugin side: services registered as closures, served on a byte stream pair (stdin and
//! stdout for a real plugin) with requests running concurrently up to a limit.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Sender as ChanTx, bounded};
use mux_nostd::plugin::{Control, Header, Kind, names};
use mux_nostd::plugin::{DRAINING_TEXT, MALFORMED_TEXT, UNKNOWN_PREFIX};

use super::error::CallError;
use super::host::{encode, send_with_id_retry};
use crate::config::Config;
use crate::error::RecvError;
use crate::node::{Delivery, spawn_handler};
use crate::rx::{Message, Received};
use crate::tx::{SendOptions, Sender};

type Out = Box<dyn Write + Send>;
type ServiceFn = Arc<dyn Fn(&Call<'_>) -> Result<Vec<u8>, String> + Send + Sync>;

/// A registered service and where it runs.
enum Service {
    /// A closure on a worker thread, or on the reader thread itself (`inline`).
    Blocking { f: ServiceFn, inline: bool },
    /// A future spawned on a tokio runtime.
    #[cfg(feature = "tokio")]
    Async {
        f: AsyncServiceFn,
        runtime: tokio::runtime::Handle,
        permits: Arc<tokio::sync::Semaphore>,
    },
}

#[cfg(feature = "tokio")]
type AsyncServiceFn = Arc<
    dyn Fn(
            AsyncCall,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<u8>, String>> + Send>>
        + Send
        + Sync,
>;

/// A request served by an async service: it owns the request (the pooled buffer it arrived
/// in), so the future can keep it across `.await`s.
#[cfg(feature = "tokio")]
pub struct AsyncCall {
    id: u32,
    message: Message,
    payload: std::ops::Range<usize>,
    ctx: Arc<Ctx>,
}

#[cfg(feature = "tokio")]
impl std::fmt::Debug for AsyncCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncCall")
            .field("id", &self.id)
            .field("len", &self.payload.len())
            .finish()
    }
}

#[cfg(feature = "tokio")]
impl AsyncCall {
    /// The request payload.
    pub fn payload(&self) -> &[u8] {
        &self.message.body()[self.payload.clone()]
    }

    /// The request's message id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Sends the host a notification (a blocking write of a small message).
    pub fn notify(&self, name: &str, payload: &[u8]) -> Result<(), CallError> {
        self.ctx.send_own(name.as_bytes(), Kind::Notify, payload)
    }
}
/// The host's answer to one of our requests.
type HostReply = Result<Vec<u8>, CallError>;
type NotifyFn = Arc<dyn Fn(&Call<'_>) + Send + Sync>;

/// A request being served: its payload, and a way to talk to the host meanwhile.
pub struct Call<'a> {
    id: u32,
    service: &'a [u8],
    payload: &'a [u8],
    ctx: &'a Ctx,
}

impl std::fmt::Debug for Call<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("id", &self.id)
            .field("service", &String::from_utf8_lossy(self.service))
            .field("len", &self.payload.len())
            .finish()
    }
}

impl Call<'_> {
    /// The request payload.
    pub fn payload(&self) -> &[u8] {
        self.payload
    }

    /// The request's message id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The service name called.
    pub fn service(&self) -> &str {
        std::str::from_utf8(self.service).unwrap_or("")
    }

    /// Sends the host a notification (`info`, `warning`, `error` and `status` are logged by
    /// hosts without a handler for them).
    pub fn notify(&self, name: &str, payload: &[u8]) -> Result<(), CallError> {
        self.ctx.send_own(name.as_bytes(), Kind::Notify, payload)
    }

    /// Sends the host a request `name` and waits up to `timeout` for its `NAME_response`.
    pub fn request(
        &self,
        name: &str,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, CallError> {
        self.ctx.request(name, payload, timeout)
    }
}

/// How [`Plugin::serve`] ended, with its counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServeReport {
    /// Requests handed to a service.
    pub calls: u64,
    /// Replies sent as errors (service failures, unknown services, refusals while draining,
    /// bad headers).
    pub errors: u64,
    /// Requests the host aborted before their reply was sent (not run, or their reply
    /// dropped).
    pub aborted: u64,
    /// Messages that were neither requests, control messages nor replies to the plugin's
    /// own requests.
    pub ignored: u64,
    /// Whether it ended on `shutdown` (after the requests in flight finished).
    pub shutdown: bool,
    /// Whether it ended on `force_shutdown`.
    pub forced: bool,
}

/// A plugin: services by name, served to one host.
///
/// Each request runs on a worker thread, up to [`max_concurrent`](Self::max_concurrent) at
/// once (later ones wait their turn); replies carry the request's id and go out as soon as
/// they are ready, in any order. Unknown services, `request_ready`, `shutdown` and
/// `force_shutdown` are answered as the Go library's hosts expect; an aborted request is
/// never run or, if it was running, its reply is dropped. Serving ends at end of input, after
/// `shutdown` once the requests in flight are answered, or at once after `force_shutdown`.
pub struct Plugin {
    services: HashMap<Vec<u8>, Service>,
    notify: HashMap<Vec<u8>, NotifyFn>,
    max_concurrent: usize,
    config: Config,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<_> = self
            .services
            .keys()
            .map(|k| String::from_utf8_lossy(k))
            .collect();
        names.sort();
        f.debug_struct("Plugin")
            .field("services", &names)
            .field("max_concurrent", &self.max_concurrent)
            .finish_non_exhaustive()
    }
}

impl Default for Plugin {
    fn default() -> Self {
        Self::new()
    }
}

impl Plugin {
    /// A plugin with no services, 32 concurrent requests, and the default node settings
    /// (Hybrid with threshold 4096, as Go hosts use).
    pub fn new() -> Self {
        Self {
            services: HashMap::new(),
            notify: HashMap::new(),
            max_concurrent: 32,
            config: Config::default(),
        }
    }

    /// Registers a service: it gets the call and returns the reply payload, or an error text
    /// (sent as an Error reply).
    pub fn service(
        self,
        name: &str,
        f: impl Fn(&Call<'_>) -> Result<Vec<u8>, String> + Send + Sync + 'static,
    ) -> Self {
        self.register(
            name,
            Service::Blocking {
                f: Arc::new(f),
                inline: false,
            },
        )
    }

    /// Registers a service that runs on the thread that reads requests, without the hand-over
    /// to a worker thread: the shortest round trip, for handlers that never block (no I/O,
    /// no sleeping, no waiting on the host). While it runs, no other request is read.
    pub fn service_inline(
        self,
        name: &str,
        f: impl Fn(&Call<'_>) -> Result<Vec<u8>, String> + Send + Sync + 'static,
    ) -> Self {
        self.register(
            name,
            Service::Blocking {
                f: Arc::new(f),
                inline: true,
            },
        )
    }

    /// Registers an async service: each request's future is spawned on `runtime` (for example
    /// `tokio::runtime::Handle::current()`), at most `max_tasks` at once (past it the reader
    /// waits for one to finish). Its reply is written from the task when the future ends.
    #[cfg(feature = "tokio")]
    pub fn service_async<F, Fut>(
        self,
        name: &str,
        runtime: tokio::runtime::Handle,
        max_tasks: usize,
        f: F,
    ) -> Self
    where
        F: Fn(AsyncCall) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Vec<u8>, String>> + Send + 'static,
    {
        let f: AsyncServiceFn = Arc::new(move |call| Box::pin(f(call)));
        let permits = Arc::new(tokio::sync::Semaphore::new(max_tasks.max(1)));
        self.register(
            name,
            Service::Async {
                f,
                runtime,
                permits,
            },
        )
    }

    fn register(mut self, name: &str, service: Service) -> Self {
        self.services.insert(name.as_bytes().to_vec(), service);
        self
    }

    /// Registers a service with JSON bodies: the request payload is decoded as `Req` (a
    /// payload that does not decode is answered with the error `bad request: …`), the reply
    /// encoded from `Resp`.
    #[cfg(feature = "json")]
    pub fn service_json<Req, Resp, E>(
        self,
        name: &str,
        f: impl Fn(Req, &Call<'_>) -> Result<Resp, E> + Send + Sync + 'static,
    ) -> Self
    where
        Req: serde::de::DeserializeOwned,
        Resp: serde::Serialize,
        E: std::fmt::Display,
    {
        self.service(name, move |call| {
            let req: Req =
                serde_json::from_slice(call.payload()).map_err(|e| format!("bad request: {e}"))?;
            let resp = f(req, call).map_err(|e| e.to_string())?;
            serde_json::to_vec(&resp).map_err(|e| e.to_string())
        })
    }

    /// Handles the host's notifications named `name` (no reply is sent).
    pub fn on_notify(mut self, name: &str, f: impl Fn(&Call<'_>) + Send + Sync + 'static) -> Self {
        self.notify.insert(name.as_bytes().to_vec(), Arc::new(f));
        self
    }

    /// Most requests running at once (default 32; 0 means 1).
    pub fn max_concurrent(mut self, n: usize) -> Self {
        self.max_concurrent = n.max(1);
        self
    }

    /// The multiplexer's settings.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Serves on this process's stdin and stdout. Stdout is kept for the protocol: the
    /// process's file descriptor 1 is pointed at stderr first, so that stray prints
    /// (`println!`, a library writing to stdout) go to stderr instead of corrupting the
    /// stream.
    pub fn serve_stdio(self) -> io::Result<ServeReport> {
        let stdout = io::stdout();
        stdout.lock().flush()?;
        let protocol = File::from(stdout.as_fd().try_clone_to_owned()?);
        rustix::stdio::dup2_stdout(io::stderr().as_fd())?;
        let input = File::from(io::stdin().as_fd().try_clone_to_owned()?);
        self.serve(input, protocol)
    }

    /// Serves on `read` (the host's messages) and `write` (ours).
    pub fn serve<R, W>(self, read: R, write: W) -> io::Result<ServeReport>
    where
        R: Read + Send + 'static,
        W: Write + Send + 'static,
    {
        let out: Out = Box::new(write);
        let tx: Sender<Out> = Sender::new(out, &self.config)?;
        let ctx = Arc::new(Ctx {
            tx,
            open: Mutex::new(HashSet::new()),
            own_pending: Mutex::new(HashMap::new()),
            aborted: Mutex::new(HashSet::new()),
            inflight: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
            end: Mutex::new(None),
            ended: Condvar::new(),
            calls: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            aborted_count: AtomicU64::new(0),
            ignored: AtomicU64::new(0),
            owe_flush: AtomicBool::new(false),
            services: self.services,
            notify: self.notify,
        });
        ctx.send_own(names::READY.as_bytes(), Kind::Ack, names::READY.as_bytes())
            .map_err(io::Error::other)?;
        let mut pool = Workers::new(Arc::clone(&ctx), self.max_concurrent);
        let reader_ctx = Arc::clone(&ctx);
        // Requests are taken on the reader thread and handed straight to a worker.
        spawn_handler(read, &self.config, move |d| {
            let ctx = &reader_ctx;
            let item = match d {
                Delivery::Item(item) => item,
                Delivery::Idle => {
                    ctx.flush_inline();
                    return true;
                }
            };
            match item {
                Ok(Received::Message(m)) => match ctx.on_message(m, &mut pool) {
                    Step::Go => true,
                    Step::Drain => {
                        ctx.draining.store(true, Ordering::Release);
                        ctx.check_drained();
                        true
                    }
                    Step::Stop => {
                        ctx.finish(End::Forced);
                        false
                    }
                },
                Ok(Received::Aborted { id }) => {
                    if lock(&ctx.open).contains(&id) {
                        lock(&ctx.aborted).insert(id);
                    }
                    true
                }
                Ok(_) => true,
                Err(RecvError::Closed) => {
                    pool.finish();
                    ctx.finish(End::Input);
                    false
                }
                Err(_) => true,
            }
        })?;
        let end = {
            let mut end = lock(&ctx.end);
            loop {
                if let Some(e) = *end {
                    break e;
                }
                end = ctx
                    .ended
                    .wait(end)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
        };
        let _ = ctx.tx.close();
        Ok(ServeReport {
            calls: ctx.calls.load(Ordering::Relaxed),
            errors: ctx.errors.load(Ordering::Relaxed),
            aborted: ctx.aborted_count.load(Ordering::Relaxed),
            ignored: ctx.ignored.load(Ordering::Relaxed),
            shutdown: end == End::Drained,
            forced: end == End::Forced,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Input,
    Drained,
    Forced,
}

enum Step {
    Go,
    Drain,
    Stop,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What the reader, the workers and the calls share.
struct Ctx {
    tx: Sender<Out>,
    /// Requests received and not yet answered (their ids are not used for our own messages).
    open: Mutex<HashSet<u32>>,
    /// Our own requests to the host, waiting for `NAME_response`.
    own_pending: Mutex<HashMap<u32, ChanTx<HostReply>>>,
    /// Open requests the host aborted.
    aborted: Mutex<HashSet<u32>>,
    inflight: AtomicUsize,
    /// `shutdown` was acknowledged: refuse new requests, end once none is in flight.
    draining: AtomicBool,
    end: Mutex<Option<End>>,
    ended: Condvar,
    calls: AtomicU64,
    errors: AtomicU64,
    aborted_count: AtomicU64,
    ignored: AtomicU64,
    /// Replies of inline services may be waiting in the write buffer.
    owe_flush: AtomicBool,
    services: HashMap<Vec<u8>, Service>,
    notify: HashMap<Vec<u8>, NotifyFn>,
}

impl Ctx {
    fn on_message(self: &Arc<Self>, m: Message, pool: &mut Workers) -> Step {
        let id = m.id();
        let header = match Header::decode(m.body()) {
            Ok(h) => h,
            Err(_) => {
                self.answer(id, b"", Err(MALFORMED_TEXT.as_bytes()));
                return Step::Go;
            }
        };
        if let Some(control) = Control::of(header.name) {
            if control == Control::RequestReady {
                let _ = self.send_own(names::READY.as_bytes(), Kind::Ack, names::READY.as_bytes());
            }
            let (name, text) = control.ack();
            let bytes = encode(name.as_bytes(), false, Kind::Ack, text.as_bytes());
            let _ = send_with_id_retry(&self.tx, id, &bytes, &SendOptions::default());
            return match control {
                Control::RequestReady => Step::Go,
                Control::Shutdown => Step::Drain,
                Control::ForceShutdown => Step::Stop,
            };
        }
        match header.kind {
            Kind::Request => {}
            Kind::Notify => {
                let Some(f) = self.notify.get(header.name) else {
                    self.ignored.fetch_add(1, Ordering::Relaxed);
                    return Step::Go;
                };
                f(&Call {
                    id,
                    service: header.name,
                    payload: header.payload,
                    ctx: self,
                });
                return Step::Go;
            }
            _ => {
                let waiting = lock(&self.own_pending).remove(&id);
                let Some(tx) = waiting else {
                    self.ignored.fetch_add(1, Ordering::Relaxed);
                    return Step::Go;
                };
                let r = if header.is_error {
                    Err(CallError::Remote(
                        String::from_utf8_lossy(header.payload).into_owned(),
                    ))
                } else {
                    Ok(header.payload.to_vec())
                };
                let _ = tx.try_send(r);
                return Step::Go;
            }
        }
        if self.draining.load(Ordering::Acquire) {
            self.answer(id, header.name, Err(DRAINING_TEXT.as_bytes()));
            return Step::Go;
        }
        let Some(service) = self.services.get(header.name) else {
            let mut text = UNKNOWN_PREFIX.as_bytes().to_vec();
            text.extend_from_slice(header.name);
            self.answer(id, header.name, Err(&text));
            return Step::Go;
        };
        lock(&self.open).insert(id);
        self.inflight.fetch_add(1, Ordering::AcqRel);
        match service {
            Service::Blocking { f, inline: true } => {
                // Its reply may wait in the write buffer for the replies to the other requests
                // of the same read: they leave together before the reader reads again.
                INLINE.set(true);
                self.run(Job {
                    message: m,
                    service: Arc::clone(f),
                });
                INLINE.set(false);
                self.owe_flush.store(true, Ordering::Relaxed);
            }
            Service::Blocking { f, inline: false } => pool.run(Job {
                message: m,
                service: Arc::clone(f),
            }),
            #[cfg(feature = "tokio")]
            Service::Async {
                f,
                runtime,
                permits,
            } => self.spawn_async(m, f, runtime, permits),
        }
        Step::Go
    }

    /// Spawns an async service's future for request `m` (the reader waits for a permit).
    #[cfg(feature = "tokio")]
    fn spawn_async(
        self: &Arc<Self>,
        m: Message,
        f: &AsyncServiceFn,
        runtime: &tokio::runtime::Handle,
        permits: &Arc<tokio::sync::Semaphore>,
    ) {
        let id = m.id();
        let Ok(permit) = runtime.block_on(Arc::clone(permits).acquire_owned()) else {
            return self.done(id);
        };
        let (ctx, f) = (Arc::clone(self), Arc::clone(f));
        runtime.spawn(async move {
            let _permit = permit;
            let ranges = Header::decode(m.body()).ok().map(|h| {
                let base = m.body().as_ptr() as usize;
                let name = h.name.as_ptr() as usize - base;
                let start = h.payload.as_ptr() as usize - base;
                (name..name + h.name.len(), start..start + h.payload.len())
            });
            if let Some((name, payload)) = ranges
                && !ctx.was_aborted(id)
            {
                ctx.calls.fetch_add(1, Ordering::Relaxed);
                let service = m.body()[name].to_vec();
                let call = AsyncCall {
                    id,
                    message: m,
                    payload,
                    ctx: Arc::clone(&ctx),
                };
                let r = f(call).await;
                ctx.answer_unless_aborted(id, &service, &r);
            }
            ctx.done(id);
        });
    }

    fn run(&self, job: Job) {
        let id = job.message.id();
        // The reader checked the header before queueing the job.
        if let Ok(header) = Header::decode(job.message.body())
            && !self.was_aborted(id)
        {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let call = Call {
                id,
                service: header.name,
                payload: header.payload,
                ctx: self,
            };
            let r = (job.service)(&call);
            self.answer_unless_aborted(id, header.name, &r);
        }
        self.done(id);
    }

    /// Request `id` is answered (or dropped): it no longer counts as in flight.
    fn done(&self, id: u32) {
        lock(&self.open).remove(&id);
        lock(&self.aborted).remove(&id);
        self.inflight.fetch_sub(1, Ordering::AcqRel);
        self.check_drained();
    }

    /// Writes the replies of inline services left in the write buffer.
    fn flush_inline(&self) {
        if self.owe_flush.swap(false, Ordering::Relaxed) {
            let _ = self.tx.flush();
        }
    }

    /// Ends serving once `shutdown` was acknowledged and no request is in flight.
    fn check_drained(&self) {
        if self.draining.load(Ordering::Acquire) && self.inflight.load(Ordering::Acquire) == 0 {
            self.finish(End::Drained);
        }
    }

    fn finish(&self, end: End) {
        let mut e = lock(&self.end);
        if e.is_none() {
            *e = Some(end);
            self.ended.notify_all();
        }
    }

    fn was_aborted(&self, id: u32) -> bool {
        let aborted = lock(&self.aborted).contains(&id);
        if aborted {
            self.aborted_count.fetch_add(1, Ordering::Relaxed);
        }
        aborted
    }

    /// Sends a service's result as the reply to request `id`, unless the host aborted it.
    fn answer_unless_aborted(&self, id: u32, name: &[u8], r: &Result<Vec<u8>, String>) {
        if !self.was_aborted(id) {
            let r = match r {
                Ok(body) => Ok(body.as_slice()),
                Err(text) => Err(text.as_bytes()),
            };
            self.answer(id, name, r);
        }
    }

    /// Sends a reply to request `id`: a Response, or an Error with the text.
    fn answer(&self, id: u32, name: &[u8], r: Result<&[u8], &[u8]>) {
        let (kind, is_error, body) = match r {
            Ok(b) => (Kind::Response, false, b),
            Err(t) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                (Kind::Error, true, t)
            }
        };
        REPLY.with_borrow_mut(|buf| {
            let h = Header {
                name,
                is_error,
                kind,
                payload: body,
            };
            buf.resize(h.encoded_len(), 0);
            if h.encode_into(buf).is_ok() {
                let opts = SendOptions {
                    buffered: INLINE.get(),
                    ..SendOptions::default()
                };
                let _ = send_with_id_retry(&self.tx, id, buf, &opts);
            }
            if buf.capacity() > REPLY_KEEP {
                *buf = Vec::new();
            }
        });
    }

    /// An id for a message of our own: not 0, not a request still open (a Go host matches
    /// replies by id alone), not one of our requests still waiting.
    fn own_id(&self) -> u32 {
        let open = lock(&self.open);
        let pending = lock(&self.own_pending);
        loop {
            let id = self.tx.next_id();
            if id != 0 && !open.contains(&id) && !pending.contains_key(&id) {
                return id;
            }
        }
    }

    fn send_own(&self, name: &[u8], kind: Kind, payload: &[u8]) -> Result<(), CallError> {
        let bytes = encode(name, false, kind, payload);
        loop {
            let id = self.own_id();
            match send_with_id_retry(&self.tx, id, &bytes, &SendOptions::default()) {
                Err(CallError::Send(crate::SendError::IdInFlight { .. })) => continue,
                r => return r,
            }
        }
    }

    fn request(&self, name: &str, payload: &[u8], timeout: Duration) -> Result<Vec<u8>, CallError> {
        let (tx, rx) = bounded(1);
        let id = {
            let id = self.own_id();
            lock(&self.own_pending).insert(id, tx);
            id
        };
        let bytes = encode(name.as_bytes(), false, Kind::Request, payload);
        if let Err(e) = send_with_id_retry(&self.tx, id, &bytes, &SendOptions::default()) {
            lock(&self.own_pending).remove(&id);
            return Err(e);
        }
        let r = rx.recv_timeout(timeout).unwrap_or(Err(CallError::TimedOut));
        lock(&self.own_pending).remove(&id);
        r
    }
}

struct Job {
    message: Message,
    service: ServiceFn,
}

/// Worker threads, started as requests need them, up to the limit.
struct Workers {
    ctx: Arc<Ctx>,
    jobs: Option<ChanTx<Job>>,
    queue: crossbeam_channel::Receiver<Job>,
    threads: Vec<thread::JoinHandle<()>>,
    idle: Arc<AtomicUsize>,
    max: usize,
}

impl Workers {
    fn new(ctx: Arc<Ctx>, max: usize) -> Self {
        let (jobs, queue) = bounded(max);
        Self {
            ctx,
            jobs: Some(jobs),
            queue,
            threads: Vec::new(),
            idle: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    fn run(&mut self, job: Job) {
        // Each job is matched with a worker that is waiting (claimed here, so that two jobs
        // never count on the same one) or with a new worker; only at the limit does a job wait
        // for a busy worker to finish.
        let claimed = self
            .idle
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok();
        if !claimed && self.threads.len() < self.max {
            let (ctx, queue, idle) = (
                Arc::clone(&self.ctx),
                self.queue.clone(),
                Arc::clone(&self.idle),
            );
            let spawned = thread::Builder::new()
                .name("plugin-worker".into())
                .spawn(move || {
                    // Its first job is the one it was started for.
                    while let Ok(job) = queue.recv() {
                        ctx.run(job);
                        idle.fetch_add(1, Ordering::AcqRel);
                    }
                });
            if let Ok(t) = spawned {
                self.threads.push(t);
            }
        }
        if let Some(jobs) = &self.jobs {
            if self.threads.is_empty() {
                // No worker could be started: run it here.
                self.ctx.run(job);
            } else if let Err(e) = jobs.send(job) {
                self.ctx.run(e.into_inner());
            }
        }
    }

    /// Lets the queued jobs finish and joins the workers.
    fn finish(&mut self) {
        self.jobs = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Replies up to this size reuse a per-thread encode buffer.
const REPLY_KEEP: usize = 64 << 10;

thread_local! {
    /// Set while an inline service runs on the reader thread.
    static INLINE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static REPLY: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

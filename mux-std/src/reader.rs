//! The receive plumbing shared by the reader thread ([`Receiver`](crate::Receiver)) and the
//! reader task ([`AsyncReceiver`](crate::tokio::AsyncReceiver)): the state both share with
//! their receivers ([`RxShared`]), the items they queue ([`Item`]), the signal that stops the
//! reader thread ([`ReadStop`]), and the receive loop itself ([`Pump`]), written once as
//! steps. Each driver supplies only its read call, its waits and its queue.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::CloseReport;
use mux_nostd::{LinkDecoder, LinkMetrics};

use crate::config::{Config, LinkProfile};
use crate::error::RecvError;
use crate::observe::RxHistograms;
use crate::pool::BufferPool;
use crate::rx::{Queued, Received, RxBudget, RxCore, RxCounts};

/// What the reader hands to the application.
pub(crate) enum Item {
    /// An item, and its bytes' place in the receive budget (given back when it is taken:
    /// kept for its `Drop`).
    Rx(Received, #[allow(dead_code)] Option<Queued>),
    Io(io::Error),
    /// The reader panicked (the message).
    Panicked(String),
}

impl Item {
    #[inline]
    pub(crate) fn into_result(self) -> Result<Received, RecvError> {
        match self {
            Self::Rx(r, _) => Ok(r),
            Self::Io(e) => Err(RecvError::Io(e)),
            Self::Panicked(m) => Err(RecvError::ReaderPanicked(m)),
        }
    }
}

/// The message of a caught panic.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// Locks `m`, ignoring poison (every value behind these locks stays consistent).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// State shared by the reader (thread or task) and its receivers.
#[derive(Debug)]
pub(crate) struct RxShared {
    pub(crate) counts: Mutex<RxCounts>,
    /// The serial link profile's frame counters (all zero without it).
    pub(crate) link: Mutex<LinkMetrics>,
    pub(crate) unfinished: Mutex<Vec<u32>>,
    pub(crate) pool: BufferPool,
    pub(crate) reader: Mutex<Option<JoinHandle<()>>>,
    /// The message of a panic that ended the reader, if one did.
    pub(crate) panic: Mutex<Option<String>>,
    /// Every receiver is gone, or a close was forced: the reader stops at its read's next
    /// return (as at end of stream).
    pub(crate) stop: AtomicBool,
    /// The receive memory budget ([`Config::rx_budget`]).
    pub(crate) budget: Arc<RxBudget>,
    /// Distributions ([`crate::observe`]), recorded by the reader.
    pub(crate) hist: Arc<RxHistograms>,
    /// Reads that brought bytes (the node's sender writes a send through after one: see
    /// `tx/cork.rs`).
    pub(crate) arrivals: Arc<AtomicU64>,
}

impl RxShared {
    /// Ids reported unfinished at the end of the stream.
    pub(crate) fn unfinished(&self) -> Vec<u32> {
        lock(&self.unfinished).clone()
    }

    /// The message of a panic that ended the reader, if one did.
    pub(crate) fn reader_panic(&self) -> Option<String> {
        lock(&self.panic).clone()
    }

    /// What a close found: `aborted` by our side, and what the drain of the receive side
    /// gave (`undelivered`, `read_error`, whether it was `forced`).
    pub(crate) fn close_report(
        &self,
        aborted: Vec<u32>,
        (undelivered, read_error, forced): (Vec<Received>, Option<io::Error>, bool),
    ) -> CloseReport {
        CloseReport {
            aborted,
            unfinished: self.unfinished(),
            undelivered,
            read_error,
            reader_panic: self.reader_panic(),
            forced,
        }
    }

    fn new(config: &Config) -> Arc<Self> {
        Arc::new(Self {
            counts: Mutex::new(RxCounts::default()),
            link: Mutex::new(LinkMetrics::default()),
            unfinished: Mutex::new(Vec::new()),
            pool: BufferPool::with_idle_limit(
                config.max_buffers,
                config.retain_capacity,
                config.pool_idle_bytes,
            ),
            reader: Mutex::new(None),
            panic: Mutex::new(None),
            stop: AtomicBool::new(false),
            budget: RxBudget::new(config),
            hist: Arc::default(),
            arrivals: Arc::default(),
        })
    }

    /// `r` as a queued item, its bytes counted in the receive budget until it is taken.
    fn item(&self, r: Received) -> Item {
        let queued = self.budget.queue(&r);
        Item::Rx(r, queued)
    }

    /// Records a panic of the reader; returns the item that reports it.
    fn panicked(&self, payload: Box<dyn std::any::Any + Send>) -> Item {
        let message = panic_message(&*payload);
        *lock(&self.panic) = Some(message.clone());
        Item::Panicked(message)
    }

    fn publish(&self, core: &mut RxCore) {
        self.budget.set_partial(core.partial);
        *lock(&self.counts) = core.counts;
        if !core.unfinished.is_empty() {
            lock(&self.unfinished).append(&mut core.unfinished);
        }
    }

    fn counts_link(&self, m: &LinkMetrics) {
        *lock(&self.link) = *m;
    }

    /// Receive counters, the budget's included.
    pub(crate) fn counts(&self) -> RxCounts {
        let mut counts = *lock(&self.counts);
        self.budget.fill(&mut counts);
        counts.link = *lock(&self.link);
        counts
    }
}

/// How a blocked reader thread is woken to stop: e.g. `shutdown(Read)` of its socket.
pub(crate) type Wake = Box<dyn FnOnce() + Send>;

/// Held by every clone of a [`Receiver`](crate::Receiver): when the last goes, or a close is
/// forced, the reader is told to stop and woken if it can be.
pub(crate) struct ReadStop {
    shared: Arc<RxShared>,
    wake: Mutex<Option<Wake>>,
}

impl ReadStop {
    pub(crate) fn new(shared: Arc<RxShared>, wake: Option<Wake>) -> Self {
        Self {
            shared,
            wake: Mutex::new(wake),
        }
    }

    /// Tells the reader to stop and wakes it; `true` if it could be woken.
    pub(crate) fn stop(&self) -> bool {
        self.shared.stop.store(true, Ordering::SeqCst);
        match lock(&self.wake).take() {
            Some(wake) => {
                wake();
                true
            }
            None => false,
        }
    }
}

impl Drop for ReadStop {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What a read call of the reader gave: `None` if the reader was told to stop (what the read
/// gave, if it returned, is dropped), else the read's result, or the payload of a panic in
/// it (the caller's code).
pub(crate) type ReadResult = Option<std::thread::Result<io::Result<usize>>>;

/// What the reader does next (see [`Pump::next`]).
pub(crate) enum Step<'a> {
    /// Wait while the receive budget is used up (backpressure: no more reading while the
    /// application leaves it so), read into the buffer, and hand the result to
    /// [`Pump::read`].
    Read(&'a mut [u8]),
    /// Queue this item for the receivers; if they are all gone, call [`Pump::gone`].
    Deliver(Item),
    /// The stream is finished: the reader ends.
    Done,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading and feeding the core.
    Feeding,
    /// The stream ended (end of input, a read error or panic, a stop, or every receiver is
    /// gone): the core reports what was open.
    Finishing,
    Done,
}

/// The receive loop as steps: read bytes, feed them to the core until consumed (each item
/// delivered as it completes, counters published first), and at end of input finish the
/// stream. A read error or a panic in the read is reported once, then the stream is
/// finished as if it had ended; so is a stop, without a report.
pub(crate) struct Pump {
    core: RxCore,
    shared: Arc<RxShared>,
    buf: Vec<u8>,
    /// `buf[at..end]` was read and not fed yet (with the serial link profile: the body of
    /// the link frame being fed).
    at: usize,
    end: usize,
    /// The serial link profile's decoder ([`Config::link`]); bytes read end at
    /// `buf[filled]`.
    link: Option<LinkDecoder>,
    filled: usize,
    /// An item to deliver before anything else (a read error or panic).
    pending: Option<Item>,
    /// The input has ended: finish once `pending` is delivered.
    eof: bool,
    phase: Phase,
    /// Publish the counters before each item is handed out (else the driver calls
    /// [`publish`](Self::publish) before items become visible: see
    /// [`defer_publish`](Self::defer_publish)).
    publish_items: bool,
    /// Items carry no ticket of the receive budget: their bytes are counted in it when the
    /// counters are published ([`untracked`](Self::untracked)).
    untracked: bool,
    /// Bytes of the items handed out since the counters were last published (`untracked`).
    unqueued: usize,
}

impl Pump {
    /// The shared state and the receive loop of a new reader. Allocates the read buffer
    /// (in the caller's thread: a failure is the caller's).
    pub(crate) fn new(config: &Config) -> (Arc<RxShared>, Self) {
        let shared = RxShared::new(config);
        let link = (config.link == LinkProfile::Cobs).then(LinkDecoder::new);
        let len = match link {
            // Room for a whole link frame, and for a read beside a partial one.
            Some(_) => config.read_buffer_len().max(2 * config.link_buffer),
            None => config.read_buffer_len(),
        };
        let mut pump = Self {
            core: RxCore::new(config, shared.pool.clone()),
            shared: shared.clone(),
            buf: vec![0u8; len],
            at: 0,
            end: 0,
            link,
            filled: 0,
            pending: None,
            eof: false,
            phase: Phase::Feeding,
            publish_items: true,
            untracked: false,
            unqueued: 0,
        };
        pump.core.obs.hist = config.histograms.then(|| shared.hist.clone());
        (shared, pump)
    }

    /// The driver hands items over in batches and calls [`publish`](Self::publish) before
    /// a batch becomes visible, instead of this publishing the counters before each item
    /// (a lock and a copy of the counters per message). The counters still include every
    /// item a receiver can see: they are also published at the end of each read's bytes,
    /// before the next read.
    pub(crate) fn defer_publish(&mut self) {
        self.publish_items = false;
    }

    /// Items are handed out without a ticket of the receive budget: their bytes are counted
    /// in it once per batch, when [`publish`](Self::publish) runs (before they become
    /// visible), and the receiver that takes an item gives its bytes back
    /// ([`RxBudget::taken`]). Only with [`defer_publish`](Self::defer_publish).
    pub(crate) fn untracked(&mut self) {
        self.untracked = true;
    }

    /// `r` as an item to hand out: with a ticket of the receive budget, or counted in the
    /// batch ([`untracked`](Self::untracked)).
    #[inline]
    fn item(&mut self, r: Received) -> Item {
        if self.untracked {
            self.unqueued += r.held();
            Item::Rx(r, None)
        } else {
            self.shared.item(r)
        }
    }

    /// The next step.
    pub(crate) fn next(&mut self) -> Step<'_> {
        if let Some(item) = self.pending.take() {
            return Step::Deliver(item);
        }
        while self.phase == Phase::Feeding {
            while self.at < self.end {
                let (used, item) = self.core.feed(&self.buf[self.at..self.end]);
                self.at += used;
                if let Some(item) = item {
                    // Counters first, so that they include every item handed out (and the
                    // bytes of a message leave the partial ones before it is queued).
                    if self.publish_items {
                        self.publish();
                    }
                    return Step::Deliver(self.item(item));
                }
            }
            if self.end > 0 {
                self.publish();
                (self.at, self.end) = (0, 0);
            }
            let Some(link) = self.link.as_mut() else {
                if !self.eof {
                    return Step::Read(&mut self.buf);
                }
                self.phase = Phase::Finishing;
                break;
            };
            if let Some(frame) = link.next(&mut self.buf, &mut self.filled) {
                if let Some(missing) = frame.gap {
                    self.core.link_gap(missing);
                }
                (self.at, self.end) = (frame.body.start, frame.body.end);
                self.shared.counts_link(link.metrics());
                continue;
            }
            if !self.eof {
                return Step::Read(&mut self.buf[self.filled..]);
            }
            self.phase = Phase::Finishing;
            if let Some(missing) = link.finish(self.filled) {
                self.core.link_gap(missing);
            }
            self.filled = 0;
            self.shared.counts_link(link.metrics());
        }
        if self.phase == Phase::Finishing {
            let item = self.core.finish();
            self.publish();
            match item {
                Some(item) => return Step::Deliver(self.item(item)),
                None => self.phase = Phase::Done,
            }
        }
        Step::Done
    }

    /// What the read of a [`Step::Read`] gave.
    pub(crate) fn read(&mut self, r: ReadResult) {
        match r {
            None | Some(Ok(Ok(0))) => self.eof = true,
            Some(Ok(Ok(n))) => {
                let a = &self.shared.arrivals;
                a.store(a.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
                if self.link.is_some() {
                    self.filled += n;
                } else {
                    (self.at, self.end) = (0, n);
                }
                self.core.obs.read(&self.shared.pool);
            }
            Some(Ok(Err(e))) if e.kind() == io::ErrorKind::Interrupted => {}
            Some(Ok(Err(e))) => {
                self.pending = Some(Item::Io(e));
                self.eof = true;
            }
            Some(Err(payload)) => {
                self.pending = Some(self.shared.panicked(payload));
                self.eof = true;
            }
        }
    }

    /// The item of a [`Step::Deliver`] found no receiver: stop reading (the stream is
    /// finished as if it had ended, and ends at the next item nobody takes).
    pub(crate) fn gone(&mut self) {
        if self.phase == Phase::Feeding {
            self.eof = true;
            (self.at, self.end) = (0, 0);
            self.phase = Phase::Finishing;
        } else {
            self.publish();
            self.phase = Phase::Done;
        }
    }

    /// A panic anywhere in the loop (a bug of the receive loop): the item that reports it,
    /// to deliver before [`publish`](Self::publish) (instead of ending the stream as if it
    /// had ended cleanly).
    pub(crate) fn caught(&mut self, payload: Box<dyn std::any::Any + Send>) -> Item {
        self.shared.panicked(payload)
    }

    /// Publishes what the core knows: after [`defer_publish`](Self::defer_publish), before
    /// delivered items become visible; after [`caught`](Self::caught) (then it may be
    /// inconsistent, and nothing more is reported).
    pub(crate) fn publish(&mut self) {
        self.shared.publish(&mut self.core);
        // After the partial bytes, which no longer hold the completed messages among these.
        self.count_queued();
    }

    /// Counts the bytes of the items handed out since the last time in the receive budget
    /// ([`untracked`](Self::untracked)).
    pub(crate) fn count_queued(&mut self) {
        if self.unqueued > 0 {
            self.shared
                .budget
                .queued(std::mem::take(&mut self.unqueued));
        }
    }
}

//! The receive side without I/O: the core's [`Demux`] with pooled heap buffers. The blocking
//! reader thread and the tokio reader task both pump this.

use std::fmt;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use mux_nostd::{Demux, ErrorCounts, Event, ProtocolError};

use crate::config::{Config, TABLE_CAPACITY};
use crate::observe::RxObserver;
use crate::pool::{Buffer, BufferPool};

/// A complete message: its id and payload. The payload buffer goes back to the pool when the
/// message is dropped.
pub struct Message {
    id: u32,
    body: Buffer,
}

impl Message {
    /// The message id.
    pub const fn id(&self) -> u32 {
        self.id
    }

    /// The payload.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The payload buffer.
    pub fn into_body(self) -> Buffer {
        self.body
    }
}

impl Deref for Message {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.body
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("id", &self.id)
            .field("len", &self.body.len())
            .finish()
    }
}

/// What a receiver delivers. Data, aborts and protocol errors are distinct variants.
#[derive(Debug)]
pub enum Received {
    /// A complete message (whole-message mode, the default).
    Message(Message),
    /// The peer aborted this message; what had arrived of it was released.
    Aborted {
        /// The message id.
        id: u32,
    },
    /// The peer broke the protocol; the stream stays in sync and later messages are
    /// unaffected. [`ProtocolError::Unfinished`] reports a message still open at end of stream.
    Error(ProtocolError),
    /// Streaming mode: a message was opened.
    Started {
        /// The message id.
        id: u32,
        /// The Start frame's length field (0 from Optimized and Hybrid writers).
        len_hint: u32,
    },
    /// Streaming mode: payload bytes of an open message, in order.
    Chunk {
        /// The message id.
        id: u32,
        /// The bytes (a pooled buffer).
        data: Buffer,
    },
    /// Streaming mode: the message completed (all its chunks were delivered before).
    Ended {
        /// The message id.
        id: u32,
    },
}

impl Received {
    /// Payload bytes it holds (what counts in [`Config::rx_budget`] while it is queued).
    #[inline]
    pub(crate) fn held(&self) -> usize {
        match self {
            Self::Message(m) => m.len(),
            Self::Chunk { data, .. } => data.len(),
            _ => 0,
        }
    }

    /// The message if this is a complete one.
    pub fn into_message(self) -> Option<Message> {
        match self {
            Self::Message(m) => Some(m),
            _ => None,
        }
    }
}

/// Receive counters (a part of [`Metrics`](crate::Metrics)). They saturate at their
/// maximum instead of wrapping around, whatever the peer sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RxCounts {
    /// Messages completed.
    pub messages: u64,
    /// Payload bytes received for open messages.
    pub bytes: u64,
    /// Messages aborted by the peer.
    pub aborted: u64,
    /// Protocol errors reported, by kind.
    pub errors: ErrorCounts,
    /// Payload bytes the receiver holds now: messages being assembled and received items
    /// not yet taken by the application (what [`Config::rx_budget`] limits). A
    /// [`Receiver`](crate::Receiver)'s items count from the moment the reader hands their
    /// batch over, when the other counters are published too.
    pub held_bytes: u64,
    /// Most payload bytes the receiver held at once so far (as seen after each read and
    /// each item, or each batch of a [`Receiver`](crate::Receiver)'s items).
    pub held_peak: u64,
    /// The serial link profile's frame counters ([`Config::link`]; all zero without it).
    pub link: mux_nostd::LinkMetrics,
}

/// How long the blocking reader waits for room in the budget before it looks again (it is
/// woken when an item is taken; this only bounds how late it sees that it must stop).
const ROOM_RECHECK: Duration = Duration::from_millis(10);

/// The receive memory budget ([`Config::rx_budget`]): bytes of messages being assembled
/// (published by the reader) and of items queued for the application (counted until taken).
/// The reader waits before each read while the budget is used up and the queue holds
/// something `recv` can take.
#[derive(Debug)]
pub(crate) struct RxBudget {
    budget: usize,
    partial: AtomicUsize,
    queued: AtomicUsize,
    peak: AtomicUsize,
    /// The reader waits for room (takers then wake it).
    paused: AtomicBool,
    lock: Mutex<()>,
    room: Condvar,
    #[cfg(feature = "tokio")]
    notify: tokio::sync::Notify,
}

impl RxBudget {
    pub(crate) fn new(config: &Config) -> Arc<Self> {
        Arc::new(Self {
            budget: config.rx_budget,
            partial: AtomicUsize::new(0),
            queued: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            paused: AtomicBool::new(false),
            lock: Mutex::new(()),
            room: Condvar::new(),
            #[cfg(feature = "tokio")]
            notify: tokio::sync::Notify::new(),
        })
    }

    /// Bytes held now.
    pub(crate) fn held(&self) -> usize {
        self.partial
            .load(Ordering::SeqCst)
            .saturating_add(self.queued.load(Ordering::SeqCst))
    }

    /// Fills in the `held_*` fields of `counts`.
    pub(crate) fn fill(&self, counts: &mut RxCounts) {
        counts.held_bytes = self.held() as u64;
        counts.held_peak = self.peak.load(Ordering::Relaxed) as u64;
    }

    fn note_peak(&self) {
        let held = self.held();
        if held > self.peak.load(Ordering::Relaxed) {
            self.peak.fetch_max(held, Ordering::Relaxed);
        }
    }

    /// The reader: bytes of the messages being assembled now.
    pub(crate) fn set_partial(&self, bytes: usize) {
        self.partial.store(bytes, Ordering::SeqCst);
        self.note_peak();
    }

    /// The reader queues `item`: its bytes count until the returned ticket is dropped (the
    /// item is taken, or dropped unreceived).
    pub(crate) fn queue(self: &Arc<Self>, item: &Received) -> Option<Queued> {
        let bytes = item.held();
        if bytes == 0 {
            return None;
        }
        self.queued(bytes);
        Some(Queued {
            budget: self.clone(),
            bytes,
        })
    }

    /// The reader queues items of `bytes` in all, whose bytes count until the receiver
    /// that takes them calls [`taken`](Self::taken) (the blocking [`Receiver`](crate::Receiver):
    /// counted once per batch instead of a ticket per item).
    pub(crate) fn queued(&self, bytes: usize) {
        self.queued.fetch_add(bytes, Ordering::SeqCst);
        self.note_peak();
    }

    /// Queued bytes were taken (or dropped unreceived).
    pub(crate) fn taken(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        self.queued.fetch_sub(bytes, Ordering::SeqCst);
        if self.paused.load(Ordering::SeqCst) {
            let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.room.notify_all();
            #[cfg(feature = "tokio")]
            self.notify.notify_one();
        }
    }

    /// Whether the reader must wait before reading more: the budget is used up and `recv`
    /// can free some of it (with an empty queue, only reading on can complete the messages
    /// being assembled, so the reader goes on).
    fn full(&self) -> bool {
        self.queued.load(Ordering::SeqCst) > 0 && self.held() >= self.budget
    }

    /// The blocking reader, before a read: waits while [`full`](Self::full), until `stop`
    /// is set (every receiver is gone, or a close was forced).
    pub(crate) fn wait_for_room(&self, stop: &AtomicBool) {
        if !self.full() {
            return;
        }
        self.paused.store(true, Ordering::SeqCst);
        let mut g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        while self.full() && !stop.load(Ordering::SeqCst) {
            g = match self.room.wait_timeout(g, ROOM_RECHECK) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        drop(g);
        self.paused.store(false, Ordering::SeqCst);
    }

    /// The tokio reader, before a read: waits while [`full`](Self::full). (A dropped
    /// receiver drops its queued items, which frees their bytes.)
    #[cfg(feature = "tokio")]
    pub(crate) async fn wait_for_room_async(&self) {
        while self.full() {
            self.paused.store(true, Ordering::SeqCst);
            if !self.full() {
                break;
            }
            // `notify_one` keeps a permit if it comes before this waits: no lost wake-up.
            self.notify.notified().await;
        }
        self.paused.store(false, Ordering::SeqCst);
    }
}

/// The bytes of a queued item, counted in the receive budget until the item is taken.
pub(crate) struct Queued {
    budget: Arc<RxBudget>,
    bytes: usize,
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.budget.taken(self.bytes);
    }
}

/// Sans-IO receive state: bytes in, [`Received`] items out.
pub(crate) struct RxCore {
    demux: Box<Demux<Option<Buffer>, TABLE_CAPACITY>>,
    pool: BufferPool,
    streaming: bool,
    pub(crate) counts: RxCounts,
    /// Ids reported [`ProtocolError::Unfinished`].
    pub(crate) unfinished: Vec<u32>,
    /// Payload bytes of the messages being assembled (whole-message mode).
    pub(crate) partial: usize,
    /// Distributions ([`crate::observe`]).
    pub(crate) obs: RxObserver,
    /// [`Config::assembly_budget`].
    assembly_budget: usize,
    /// Items to hand out before decoding on (messages dropped to make room in the budget).
    queued: std::collections::VecDeque<Received>,
}

impl RxCore {
    pub(crate) fn new(config: &Config, pool: BufferPool) -> Self {
        Self {
            demux: {
                // The cap on messages in flight is the core's own rule (`TooManyStreams`).
                let mut demux = Box::new(Demux::new(config.limits));
                demux.set_max_open(config.max_in_flight.clamp(1, TABLE_CAPACITY));
                demux
            },
            pool,
            streaming: config.streaming,
            counts: RxCounts::default(),
            unfinished: Vec::new(),
            partial: 0,
            obs: RxObserver::new(false),
            assembly_budget: config.assembly_budget,
            queued: std::collections::VecDeque::new(),
        }
    }

    /// A message being assembled was released (dropped, aborted, or restarted).
    fn released(&mut self, value: Option<Buffer>) {
        if let Some(buf) = value {
            self.partial = self.partial.saturating_sub(buf.len());
        }
    }

    /// Decodes from the front of `input` until an item completes or the input is used up:
    /// bytes consumed and the item, if one completed. `(0, None)` only for empty input:
    /// every call with input consumes some or delivers an item. (The demux may give an
    /// event for no input, e.g. the Start of a message restarted by a duplicate Start, which
    /// is no item in whole-message mode: then this goes on decoding.)
    #[inline]
    pub(crate) fn feed(&mut self, input: &[u8]) -> (usize, Option<Received>) {
        if let Some(item) = self.queued.pop_front() {
            return (0, Some(item));
        }
        let mut used = 0;
        loop {
            let (n, ev) = self.demux.feed(&input[used..]);
            used += n;
            let item = match ev {
                None => None,
                Some(ev) => self.on_event(ev),
            };
            if item.is_some() || used == input.len() {
                return (used, item);
            }
            // Messages dropped to make room in the budget go out first.
            if !self.queued.is_empty() {
                return (used, self.queued.pop_front());
            }
        }
    }

    /// The serial link lost frames before the input that follows ([`Demux::link_gap`]).
    pub(crate) fn link_gap(&mut self, missing: u16) {
        self.demux.link_gap(missing);
    }

    /// At end of stream, repeatedly until `None`: a truncation, then each message still open.
    pub(crate) fn finish(&mut self) -> Option<Received> {
        if let Some(item) = self.queued.pop_front() {
            return Some(item);
        }
        loop {
            let ev = self.demux.finish()?;
            if let Some(item) = self.on_event(ev) {
                return Some(item);
            }
        }
    }

    fn error(&mut self, e: ProtocolError) -> Option<Received> {
        self.counts.errors.record(&e);
        self.obs.error(&e);
        if let ProtocolError::Unfinished { id } = e {
            self.unfinished.push(id);
        }
        Some(Received::Error(e))
    }

    #[inline]
    fn on_event(&mut self, ev: Event<'_, Option<Buffer>>) -> Option<Received> {
        match ev {
            Event::Started { id, len_hint } => {
                self.obs.started(id);
                self.streaming.then_some(Received::Started { id, len_hint })
            }
            Event::Data { id, chunk } => {
                self.counts.bytes = self.counts.bytes.saturating_add(chunk.len() as u64);
                if self.streaming {
                    self.obs.chunk(id, chunk.len());
                    let Some(mut data) = self.pool.take() else {
                        return self.exhausted(id);
                    };
                    data.extend_from_slice(chunk);
                    return Some(Received::Chunk { id, data });
                }
                if self.partial + chunk.len() > self.assembly_budget
                    && !self.make_room(id, chunk.len())
                {
                    return self.queued.pop_front();
                }
                let slot = self.demux.current_mut()?;
                if slot.is_none() {
                    *slot = self.pool.take();
                }
                match slot {
                    Some(buf) => {
                        buf.extend_from_slice(chunk);
                        self.partial += chunk.len();
                        None
                    }
                    None => self.exhausted(id),
                }
            }
            Event::Completed { id, value } => {
                self.counts.messages = self.counts.messages.saturating_add(1);
                if self.streaming {
                    self.obs.completed(id, None);
                    return Some(Received::Ended { id });
                }
                let body = value.unwrap_or_else(Buffer::empty);
                self.obs.completed(id, Some(body.len()));
                self.partial = self.partial.saturating_sub(body.len());
                Some(Received::Message(Message { id, body }))
            }
            Event::Aborted { id, value } => {
                self.obs.forget(id);
                self.released(value);
                self.counts.aborted = self.counts.aborted.saturating_add(1);
                Some(Received::Aborted { id })
            }
            Event::Error { error, dropped } => {
                self.released(dropped.flatten());
                self.error(error)
            }
        }
    }

    /// Drops messages being assembled, the largest first, until `n` more bytes fit the
    /// assembly budget; each drop is queued as an [`ProtocolError::OverBudget`] item. Returns
    /// whether message `id` (the current one, whose chunk of `n` bytes is to be stored) is
    /// still open.
    #[cold]
    fn make_room(&mut self, id: u32, n: usize) -> bool {
        while self.partial + n > self.assembly_budget {
            let largest = self
                .demux
                .open_messages()
                .map(|(i, v)| (v.as_ref().map_or(0, |b| b.len()), i))
                .max();
            let victim = match largest {
                Some((len, i)) if len > 0 && i != id => i,
                _ => id,
            };
            let e = ProtocolError::OverBudget { id: victim };
            let dropped = match victim == id {
                false => self.demux.drop_message(victim, e),
                true => self.demux.drop_current(e),
            };
            let Some(value) = dropped else {
                // Not open (cannot happen): give up storing this chunk rather than loop.
                let e = ProtocolError::OverBudget { id };
                let value = self.demux.drop_current(e).flatten();
                self.released(value);
                self.counts.errors.record(&e);
                self.queued.push_back(Received::Error(e));
                return false;
            };
            if let Some(buf) = value {
                // Its memory goes back to the system, not to the pool's idle buffers: the
                // budget bounds what the process holds.
                self.partial = self.partial.saturating_sub(buf.len());
                drop(buf.into_vec());
            }
            self.counts.errors.record(&e);
            self.queued.push_back(Received::Error(e));
            if victim == id {
                return false;
            }
        }
        true
    }

    fn exhausted(&mut self, id: u32) -> Option<Received> {
        let e = ProtocolError::PoolExhausted { id };
        let dropped = self.demux.drop_current(e);
        self.released(dropped.flatten());
        self.error(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mux_nostd::{FrameType, Header, Optimized, encode_into};

    fn run(core: &mut RxCore, wire: &[u8]) -> Vec<Received> {
        let mut out = Vec::new();
        let mut input = wire;
        while !input.is_empty() {
            let (n, item) = core.feed(input);
            input = &input[n..];
            out.extend(item);
        }
        while let Some(item) = core.finish() {
            out.push(item);
        }
        out
    }

    #[test]
    fn in_flight_cap_refuses_the_extra_message_only() {
        let cfg = Config {
            max_in_flight: 1,
            ..Config::default()
        };
        let pool = BufferPool::new(8, 1 << 20);
        let mut core = RxCore::new(&cfg, pool.clone());
        let mut wire = Vec::new();
        for (kind, id, len) in [(FrameType::Start, 1, 0), (FrameType::Start, 2, 0)] {
            wire.extend_from_slice(&Header::new(kind, id, len).to_bytes());
        }
        for id in [2, 1] {
            wire.extend_from_slice(&Header::new(FrameType::Data, id, 1).to_bytes());
            wire.push(b'x');
            wire.extend_from_slice(&Header::new(FrameType::End, id, 0).to_bytes());
        }
        let items = run(&mut core, &wire);
        assert_eq!(items.len(), 2, "{items:?}");
        assert!(matches!(
            items[0],
            Received::Error(ProtocolError::TooManyStreams { id: 2 })
        ));
        assert!(matches!(&items[1], Received::Message(m) if m.id() == 1 && m.body() == b"x"));
        drop(items);
        assert_eq!(pool.stats().in_use, 0);
    }

    #[test]
    fn exhausted_pool_drops_the_message_and_keeps_sync() {
        let pool = BufferPool::new(1, 1 << 20);
        let mut core = RxCore::new(&Config::default(), pool.clone());
        let held = pool.take().unwrap();
        let mut wire = [0u8; 128];
        let n = encode_into(&Optimized, 3, b"abc", &mut wire).unwrap();
        let items = run(&mut core, &wire[..n]);
        assert!(matches!(
            items[..],
            [Received::Error(ProtocolError::PoolExhausted { id: 3 })]
        ));
        drop(held);
        let items = run(&mut core, &wire[..n]);
        assert!(matches!(&items[..], [Received::Message(m)] if m.body() == b"abc"));
    }

    #[test]
    fn feed_consumes_or_delivers_on_every_call_with_input() {
        // A duplicate Start: the demux reports the error, then the restarted message's Start
        // with no byte consumed (not an item in whole-message mode).
        let mut wire = Vec::new();
        for (kind, id, len) in [
            (FrameType::Start, 1, 0),
            (FrameType::Data, 1, 1),
            (FrameType::Start, 1, 0),
            (FrameType::Data, 1, 1),
            (FrameType::End, 1, 0),
        ] {
            wire.extend_from_slice(&Header::new(kind, id, len).to_bytes());
            if kind == FrameType::Data {
                wire.push(b'x');
            }
        }
        for streaming in [false, true] {
            let cfg = Config {
                streaming,
                ..Config::default()
            };
            let mut core = RxCore::new(&cfg, BufferPool::new(8, 1 << 20));
            let mut input = &wire[..];
            let mut items = Vec::new();
            while !input.is_empty() {
                let (n, item) = core.feed(input);
                assert!(
                    n > 0 || item.is_some(),
                    "streaming {streaming}: (0, None) with {} bytes of input",
                    input.len()
                );
                input = &input[n..];
                items.extend(item);
            }
            assert!(
                matches!(
                    items[0],
                    Received::Error(ProtocolError::DuplicateStart { id: 1 })
                ) || streaming
            );
        }
    }

    #[test]
    fn bytes_being_assembled_are_counted_and_released_whatever_ends_the_message() {
        let pool = BufferPool::new(2, 1 << 20);
        let mut core = RxCore::new(&Config::default(), pool.clone());
        let data = |id, body: &[u8]| {
            let mut v = Header::new(FrameType::Data, id, body.len() as u32)
                .to_bytes()
                .to_vec();
            v.extend_from_slice(body);
            v
        };
        let head = |kind, id| Header::new(kind, id, 0).to_bytes().to_vec();
        let feed = |core: &mut RxCore, wire: &[u8]| {
            let mut input = wire;
            let mut items = Vec::new();
            while !input.is_empty() {
                let (n, item) = core.feed(input);
                input = &input[n..];
                items.extend(item);
            }
            items
        };
        // 1 gets 5 bytes, 2 gets 3, 3 finds no buffer (the pool holds 2).
        let mut wire = Vec::new();
        for id in [1, 2, 3] {
            wire.extend(head(FrameType::Start, id));
        }
        wire.extend(data(1, b"aaaaa"));
        wire.extend(data(2, b"bbb"));
        wire.extend(data(3, b"c"));
        let items = feed(&mut core, &wire);
        assert_eq!(core.partial, 8, "{items:?}");
        // 2 is aborted, 1 restarted (duplicate Start) then completed with 2 bytes.
        let mut wire = head(FrameType::Abort, 2);
        wire.extend(head(FrameType::Start, 1));
        assert!(feed(&mut core, &wire).len() == 2);
        assert_eq!(core.partial, 0);
        wire = head(FrameType::Start, 4);
        wire.extend(data(4, b"dd"));
        feed(&mut core, &wire);
        assert_eq!(core.partial, 2);
        wire = data(1, b"e");
        feed(&mut core, &wire);
        assert_eq!(core.partial, 3);
        // The stream ends with 1 and 4 open: both reported, nothing held.
        assert!(core.finish().is_some() && core.finish().is_some());
        assert_eq!(core.partial, 0);
        assert_eq!(pool.stats().in_use, 0);
    }

    #[test]
    fn over_the_assembly_budget_the_largest_partial_message_is_dropped() {
        let cfg = Config {
            assembly_budget: 100,
            ..Config::default()
        };
        let pool = BufferPool::new(8, 1 << 20);
        let mut core = RxCore::new(&cfg, pool.clone());
        let frame = |kind, id, body: &[u8]| {
            let mut v = Header::new(kind, id, body.len() as u32).to_bytes().to_vec();
            v.extend_from_slice(body);
            v
        };
        let mut wire = Vec::new();
        for id in [1, 2, 3] {
            wire.extend(frame(FrameType::Start, id, b""));
        }
        wire.extend(frame(FrameType::Data, 1, &[1; 60]));
        wire.extend(frame(FrameType::Data, 2, &[2; 30]));
        // 60 + 30 + 20 > 100: message 1, the largest, makes room for 3's chunk.
        wire.extend(frame(FrameType::Data, 3, &[3; 20]));
        // 1's later frames are skipped without being stored; its End is quiet.
        wire.extend(frame(FrameType::Data, 1, &[1; 50]));
        wire.extend(frame(FrameType::End, 1, b""));
        // A chunk too large for the budget by itself drops its own message (2, the largest).
        wire.extend(frame(FrameType::Data, 2, &[2; 90]));
        wire.extend(frame(FrameType::Data, 3, &[3; 5]));
        wire.extend(frame(FrameType::End, 3, b""));
        wire.extend(frame(FrameType::End, 2, b""));
        let items = run(&mut core, &wire);
        let kinds: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
        assert_eq!(items.len(), 3, "{kinds:?}");
        assert!(matches!(
            items[0],
            Received::Error(ProtocolError::OverBudget { id: 1 })
        ));
        assert!(matches!(
            items[1],
            Received::Error(ProtocolError::OverBudget { id: 2 })
        ));
        assert!(matches!(&items[2], Received::Message(m) if m.id() == 3 && m.body() == [3; 25]));
        assert_eq!(core.counts.errors.over_budget, 2);
        assert_eq!(core.partial, 0);
        drop(items);
        assert_eq!(pool.stats().in_use, 0);
    }

    #[test]
    fn counts_driven_by_the_wire_saturate() {
        let mut core = RxCore::new(&Config::default(), BufferPool::new(8, 1 << 20));
        core.counts.messages = u64::MAX;
        core.counts.aborted = u64::MAX;
        core.counts.bytes = u64::MAX - 1;
        let mut wire = [0u8; 128];
        let mut n = encode_into(&Optimized, 3, b"abc", &mut wire).unwrap();
        for (kind, id) in [(FrameType::Start, 4), (FrameType::Abort, 4)] {
            wire[n..n + 9].copy_from_slice(&Header::new(kind, id, 0).to_bytes());
            n += 9;
        }
        let items = run(&mut core, &wire[..n]);
        assert_eq!(items.len(), 2, "{items:?}");
        let c = core.counts;
        assert_eq!(
            (c.messages, c.aborted, c.bytes),
            (u64::MAX, u64::MAX, u64::MAX)
        );
    }
}

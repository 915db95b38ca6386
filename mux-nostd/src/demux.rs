//! Message-level receive: which ids are open, and every bad-input policy of the
//! wire protocol (`docs/PROTOCOL.md` in the repository).
//!
//! [`Demux`] sits on the [`Decoder`] and turns frames into message events. It keeps a
//! fixed-capacity table of open messages (`N` entries, each with a caller value `T`, e.g. a
//! buffer) and a list of up to `N` rejected ids whose later frames it consumes quietly, so that
//! a bad message costs one error, not one per frame. Streaming receive (a message handled chunk
//! by chunk, larger than any buffer) uses its events directly with `T = ()`.

use core::ops::Range;

use crate::decode::{Decoder, RawFrameEvent};
use crate::error::ProtocolError;
use crate::frame::{FrameType, HEADER_LEN};
#[cfg(feature = "histograms")]
use crate::histogram::Histogram;
use crate::metrics::RxMetrics;

/// [`Demux`]'s `current` when no open message is current (none had Data yet, or the one that
/// had it ended).
const NO_CURRENT: usize = usize::MAX;

/// Receive limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Limits {
    /// Largest message accepted (by its Start hint and by the data received).
    pub max_message: u32,
    /// Largest Data frame accepted; longer ones are skipped unread.
    pub max_frame: u32,
}

impl Limits {
    /// The Go reference's limit, 10 MiB, for both frames and messages (the std default).
    pub const REFERENCE: Self = Self::new(10 * 1024 * 1024);

    /// Frames and messages both limited to `max_message` bytes.
    pub const fn new(max_message: u32) -> Self {
        Self {
            max_message,
            max_frame: max_message,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::REFERENCE
    }
}

/// A message-level receive event, with its payload chunk as a `C`: a borrow of the input in
/// [`Event`], which is what [`Demux::feed`] gives.
#[derive(Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum EventOf<C, T> {
    /// A message was opened.
    Started {
        /// Message id.
        id: u32,
        /// The Start frame's length field (0 from Optimized and Hybrid writers).
        len_hint: u32,
    },
    /// Payload bytes of an open message. The message's value is reachable with
    /// [`Demux::current_mut`] until the next step.
    Data {
        /// Message id.
        id: u32,
        /// The bytes (in [`Event`], borrowed from the input).
        chunk: C,
    },
    /// A message completed; its value is handed back.
    Completed {
        /// Message id.
        id: u32,
        /// The value collected for it.
        value: T,
    },
    /// The peer aborted a message; its value is handed back to be released.
    Aborted {
        /// Message id.
        id: u32,
        /// The value collected for it.
        value: T,
    },
    /// A protocol error; `dropped` is the value of a message it ended, if any.
    Error {
        /// What went wrong.
        error: ProtocolError,
        /// The value of the message this error dropped.
        dropped: Option<T>,
    },
}

/// A message-level receive event, its payload chunk borrowed from the input.
pub type Event<'a, T> = EventOf<&'a [u8], T>;

/// An event whose chunk is a range of the input (lets drivers borrow their buffer late).
pub(crate) type RawEvent<T> = EventOf<Range<usize>, T>;

impl<C, T> EventOf<C, T> {
    /// The same event with its chunk mapped by `f` (the other variants carry no chunk).
    #[inline]
    fn map_chunk<D>(self, f: impl FnOnce(C) -> D) -> EventOf<D, T> {
        match self {
            Self::Started { id, len_hint } => EventOf::Started { id, len_hint },
            Self::Data { id, chunk } => EventOf::Data {
                id,
                chunk: f(chunk),
            },
            Self::Completed { id, value } => EventOf::Completed { id, value },
            Self::Aborted { id, value } => EventOf::Aborted { id, value },
            Self::Error { error, dropped } => EventOf::Error { error, dropped },
        }
    }
}

impl<T> RawEvent<T> {
    #[inline]
    pub(crate) fn view(self, input: &[u8]) -> Event<'_, T> {
        self.map_chunk(|range| &input[range])
    }
}

#[derive(Debug)]
struct Slot<T> {
    id: u32,
    received: u32,
    value: T,
    /// When its Start was read (see [`Demux::set_now_us`]).
    #[cfg(feature = "histograms")]
    started: u32,
}

/// The message-level receiver. `N` is the number of messages that may be open at once; `T`
/// the value kept per open message (`()` for streaming receive).
///
/// Besides the table of open messages it remembers up to `N` rejected ids (messages refused
/// or dropped whose End or Abort has not come yet; `4 × N` bytes), so that each of them costs
/// one error however many frames of it follow: the rule holds for as many rejected messages
/// in flight at once as the table has slots. Past that (a peer with more than `N` messages in
/// flight, all refused) the oldest rejected id is forgotten and later frames of that message
/// are reported as [`ProtocolError::UnknownId`]; the memory stays fixed.
#[derive(Debug)]
pub struct Demux<T, const N: usize> {
    decoder: Decoder,
    limits: Limits,
    open: heapless::Vec<Slot<T>, N>,
    /// Rejected ids, oldest first (see the type's docs).
    rejected: heapless::Vec<u32, N>,
    pending_start: Option<(u32, u32)>,
    /// Index in `open` of the message the last Data event belonged to, or [`NO_CURRENT`].
    /// Every removal from `open` goes through [`take_open`](Self::take_open), which keeps it
    /// right (a swap-remove moves the last entry).
    current: usize,
    max_open: usize,
    metrics: RxMetrics,
    /// Link loss to report (see [`link_gap`](Self::link_gap)): the gap itself, then every
    /// message open at that moment.
    gap: Option<u16>,
    lose_open: bool,
    /// A link gap happened: a frame of an id with no open message is a message whose Start
    /// was lost, reported [`ProtocolError::Lost`].
    after_gap: bool,
    /// The time of the input fed next, and whether anyone has told it
    /// ([`set_now_us`](Self::set_now_us)).
    #[cfg(feature = "histograms")]
    now_us: u32,
    #[cfg(feature = "histograms")]
    timed: bool,
}

impl<T: Default, const N: usize> Default for Demux<T, N> {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl<T: Default, const N: usize> Demux<T, N> {
    /// A receiver with the given limits and an empty table.
    pub const fn new(limits: Limits) -> Self {
        Self {
            decoder: Decoder::new(limits.max_frame),
            limits,
            open: heapless::Vec::new(),
            rejected: heapless::Vec::new(),
            pending_start: None,
            current: NO_CURRENT,
            max_open: N,
            gap: None,
            lose_open: false,
            after_gap: false,
            #[cfg(feature = "histograms")]
            now_us: 0,
            #[cfg(feature = "histograms")]
            timed: false,
            metrics: RxMetrics {
                messages: 0,
                bytes: 0,
                aborted: 0,
                errors: crate::metrics::ErrorCounts {
                    unknown_type: 0,
                    unknown_id: 0,
                    frame_too_large: 0,
                    message_too_large: 0,
                    duplicate_start: 0,
                    too_many_streams: 0,
                    pool_exhausted: 0,
                    truncated: 0,
                    unfinished: 0,
                    lost: 0,
                    link_gap: 0,
                    over_budget: 0,
                },
                #[cfg(feature = "histograms")]
                sizes: Histogram::new(),
                #[cfg(feature = "histograms")]
                start_to_end_us: Histogram::new(),
            },
        }
    }

    /// The limits in force.
    pub const fn limits(&self) -> Limits {
        self.limits
    }

    /// Caps the messages open at once below the table's capacity `N` (a run-time setting,
    /// e.g. from a server's configuration); a Start past it gets
    /// [`ProtocolError::TooManyStreams`]. Values above `N` mean `N`.
    pub fn set_max_open(&mut self, max_open: usize) {
        self.max_open = max_open.min(N);
    }

    /// The cap on messages open at once (`N` unless [`set_max_open`](Self::set_max_open) lowered it).
    pub const fn max_open(&self) -> usize {
        self.max_open
    }

    /// Counters of what was received.
    pub const fn metrics(&self) -> &RxMetrics {
        &self.metrics
    }

    /// Tells the receiver when the input it is fed next arrived, in microseconds of any
    /// monotonic clock (it may wrap around at `u32::MAX`): each completed message then adds
    /// the time from its Start to its End to `RxMetrics::start_to_end_us`. Call it after
    /// each read, before feeding what was read (the blocking and async readers do it when
    /// given a clock). Without feature `histograms` it does nothing.
    #[inline]
    pub fn set_now_us(&mut self, now_us: u32) {
        #[cfg(feature = "histograms")]
        {
            self.now_us = now_us;
            self.timed = true;
        }
        #[cfg(not(feature = "histograms"))]
        let _ = now_us;
    }

    /// Number of messages open now.
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// Whether the stream sits between frames with nothing open (it may end here cleanly).
    pub fn is_idle(&self) -> bool {
        self.decoder.is_idle()
            && self.open.is_empty()
            && self.pending_start.is_none()
            && !self.lose_open
    }

    /// Decodes from the front of `input`: bytes consumed and the event completed, if any.
    /// Call again with the rest of the input (an event may come with 0 bytes consumed).
    ///
    /// ```
    /// use mux_nostd::{Demux, Event, Limits, encode_into, Optimized};
    /// let mut wire = [0u8; 64];
    /// let n = encode_into(&Optimized, 3, b"abc", &mut wire).unwrap();
    /// let mut rx: Demux<(), 4> = Demux::new(Limits::new(1024));
    /// let mut input = &wire[..n];
    /// let mut got = heapless::Vec::<u8, 8>::new();
    /// while !input.is_empty() {
    ///     let (used, ev) = rx.feed(input);
    ///     if let Some(Event::Data { chunk, .. }) = ev { got.extend_from_slice(chunk).unwrap(); }
    ///     if let Some(Event::Completed { id, .. }) = ev { assert_eq!(id, 3); }
    ///     input = &input[used..];
    /// }
    /// assert_eq!(got.as_slice(), b"abc");
    /// ```
    #[inline]
    pub fn feed<'a>(&mut self, input: &'a [u8]) -> (usize, Option<Event<'a, T>>) {
        let (n, raw) = self.step(input);
        (n, raw.map(|r| r.view(input)))
    }

    /// The value of the message the last [`Event::Data`] belonged to, while that message is
    /// open: `None` once it completed, was aborted, dropped or restarted (a duplicate Start),
    /// or before any Data. Other messages opening and ending in between do not change which
    /// message this is.
    pub fn current_mut(&mut self) -> Option<&mut T> {
        self.open.get_mut(self.current).map(|s| &mut s.value)
    }

    /// Drops the message the last [`Event::Data`] belonged to (the one
    /// [`current_mut`](Self::current_mut) gives), because its data could not be kept (`error`,
    /// e.g. [`ProtocolError::PoolExhausted`]): its value is handed back, `error` is counted
    /// and its later frames are consumed quietly. `None`, and nothing counted, if that
    /// message is no longer open.
    pub fn drop_current(&mut self, error: ProtocolError) -> Option<T> {
        let slot = self.take_open(self.current)?;
        self.reject(slot.id);
        self.metrics.errors.record(&error);
        Some(slot.value)
    }

    /// Drops open message `id` because its data cannot be kept (`error`, e.g.
    /// [`ProtocolError::OverBudget`]): like [`drop_current`](Self::drop_current) for any open
    /// message. `None`, and nothing counted, if `id` has no open message.
    pub fn drop_message(&mut self, id: u32, error: ProtocolError) -> Option<T> {
        let i = self.find(id)?;
        let slot = self.take_open(i)?;
        self.reject(slot.id);
        self.metrics.errors.record(&error);
        Some(slot.value)
    }

    /// The open messages: each id with its value, in no particular order.
    pub fn open_messages(&self) -> impl Iterator<Item = (u32, &T)> {
        self.open.iter().map(|s| (s.id, &s.value))
    }

    /// Tells the receiver that the link lost bytes before the input that follows, which
    /// starts at a frame boundary (the serial link profile calls it; see
    /// [`LinkDecoder`](crate::LinkDecoder)). The frame in progress is forgotten; the next
    /// events are a [`ProtocolError::LinkGap`] with `missing`, then a
    /// [`ProtocolError::Lost`] for every message open now (they may have lost a frame; their
    /// values are handed back and their later frames consumed quietly). From then on a Data,
    /// End or Abort frame of an id with no open message is reported [`ProtocolError::Lost`]
    /// (its Start was lost) instead of [`ProtocolError::UnknownId`].
    pub fn link_gap(&mut self, missing: u16) {
        self.decoder.reset();
        self.gap = Some(missing);
        self.lose_open = true;
        self.after_gap = true;
        self.current = NO_CURRENT;
    }

    /// The next report owed by [`link_gap`](Self::link_gap), if any.
    #[cold]
    fn loss_report(&mut self) -> Option<RawEvent<T>> {
        if let Some(missing) = self.gap.take() {
            return Some(self.error(ProtocolError::LinkGap { missing }, None));
        }
        if !self.lose_open {
            return None;
        }
        let Some(last) = self.open.len().checked_sub(1) else {
            self.lose_open = false;
            return None;
        };
        let slot = self.take_open(last)?;
        self.reject(slot.id);
        Some(self.error(ProtocolError::Lost { id: slot.id }, Some(slot.value)))
    }

    /// Called at end of stream, repeatedly until it returns `None`: reports a truncated frame,
    /// then each message still open ([`ProtocolError::Unfinished`], with its value). Leaves the
    /// receiver empty, ready for a new stream.
    pub fn finish(&mut self) -> Option<Event<'static, T>> {
        self.finish_raw().map(|r| r.view(&[]))
    }

    pub(crate) fn finish_raw(&mut self) -> Option<RawEvent<T>> {
        if let Some((id, len_hint)) = self.pending_start.take() {
            return Some(RawEvent::Started { id, len_hint });
        }
        if let Some(report) = self.loss_report() {
            return Some(report);
        }
        if let Err(error) = self.decoder.finish() {
            return Some(self.error(error, None));
        }
        self.rejected.clear();
        let last = self.open.len().checked_sub(1)?;
        let slot = self.take_open(last)?;
        Some(self.error(ProtocolError::Unfinished { id: slot.id }, Some(slot.value)))
    }

    #[inline]
    pub(crate) fn step(&mut self, input: &[u8]) -> (usize, Option<RawEvent<T>>) {
        if let Some((id, len_hint)) = self.pending_start.take() {
            return (0, Some(RawEvent::Started { id, len_hint }));
        }
        if self.lose_open
            && let Some(report) = self.loss_report()
        {
            return (0, Some(report));
        }
        if let Some(fast) = self.whole_data_frame(input) {
            return fast;
        }
        self.general_step(input)
    }

    /// [`step`](Self::step) without its fast path, for a caller that tried
    /// [`data_run`](Self::data_run) first (it takes the same frames).
    #[inline]
    pub(crate) fn step_after_run(&mut self, input: &[u8]) -> (usize, Option<RawEvent<T>>) {
        if let Some((id, len_hint)) = self.pending_start.take() {
            return (0, Some(RawEvent::Started { id, len_hint }));
        }
        if self.lose_open
            && let Some(report) = self.loss_report()
        {
            return (0, Some(report));
        }
        self.general_step(input)
    }

    #[inline]
    fn general_step(&mut self, input: &[u8]) -> (usize, Option<RawEvent<T>>) {
        let (n, frame) = self.decoder.step(input);
        (n, frame.and_then(|f| self.on_frame(f)))
    }

    /// The common case in one step: a whole Data frame of the message the last one belonged
    /// to, within the limits, entirely in `input`. Gives exactly what the general path would
    /// (same event, same counters) without going through the decoder's states.
    #[inline(always)]
    fn whole_data_frame(&mut self, input: &[u8]) -> Option<(usize, Option<RawEvent<T>>)> {
        if !self.decoder.is_idle() {
            return None;
        }
        let slot = self.open.get_mut(self.current)?;
        let id = slot.id;
        let len = whole_data_frame_of(input, id, slot.received, self.limits)?;
        let end = HEADER_LEN + len as usize;
        slot.received += len;
        self.metrics.bytes = self.metrics.bytes.saturating_add(u64::from(len));
        Some((
            end,
            Some(RawEvent::Data {
                id,
                chunk: HEADER_LEN..end,
            }),
        ))
    }

    /// Consumes the whole Data frames of the current message at the front of `input`, one
    /// after another, handing each chunk to `take` with the message's value; stops before
    /// anything else, or after a chunk `take` refuses (returns `false`: that frame is consumed
    /// and its id returned, for the caller to drop the message with
    /// [`drop_current`](Self::drop_current)). Returns the bytes consumed. The same checks and
    /// counters as frame-by-frame decoding, without an event per frame: the reassembler's
    /// bulk path.
    #[inline]
    pub(crate) fn data_run(
        &mut self,
        input: &[u8],
        mut take: impl FnMut(&mut T, &[u8]) -> bool,
    ) -> (usize, Option<u32>) {
        if self.pending_start.is_some() || self.lose_open || !self.decoder.is_idle() {
            return (0, None);
        }
        let Some(slot) = self.open.get_mut(self.current) else {
            return (0, None);
        };
        let limits = self.limits;
        let mut at = 0;
        let id = slot.id;
        while let Some(len) = whole_data_frame_of(&input[at..], id, slot.received, limits) {
            let end = at + HEADER_LEN + len as usize;
            slot.received += len;
            self.metrics.bytes = self.metrics.bytes.saturating_add(u64::from(len));
            let taken = take(&mut slot.value, &input[at + HEADER_LEN..end]);
            at = end;
            if !taken {
                return (at, Some(id));
            }
        }
        (at, None)
    }

    #[inline]
    fn find(&self, id: u32) -> Option<usize> {
        if self.open.get(self.current).is_some_and(|s| s.id == id) {
            return Some(self.current);
        }
        self.open.iter().position(|s| s.id == id)
    }

    /// `open.swap_remove(i)` (`None` if `i` is out of range) without the `memmove` heapless
    /// moves the last entry with, which pulls about 1.5 KB of `compiler_builtins` into a
    /// small target. Keeps `current` on its message: none if that is the one removed, `i` if
    /// it is the last entry, moved there.
    fn take_open(&mut self, i: usize) -> Option<Slot<T>> {
        let last = self.open.len().checked_sub(1)?;
        if i > last {
            return None;
        }
        if self.current == i {
            self.current = NO_CURRENT;
        } else if self.current == last {
            self.current = i;
        }
        if i < last {
            // Disjoint borrows: a plain swap (`slice::swap` may alias, so it moves with
            // `memmove`).
            let (head, tail) = self.open.split_at_mut(last);
            core::mem::swap(&mut head[i], &mut tail[0]);
        }
        self.open.pop()
    }

    fn is_rejected(&self, id: u32) -> bool {
        self.rejected.contains(&id)
    }

    fn forget_rejected(&mut self, id: u32) -> bool {
        match self.rejected.iter().position(|&r| r == id) {
            Some(i) => {
                remove_keeping_order(&mut self.rejected, i);
                true
            }
            None => false,
        }
    }

    fn reject(&mut self, id: u32) {
        if self.is_rejected(id) {
            return;
        }
        if self.rejected.is_full() {
            remove_keeping_order(&mut self.rejected, 0); // forget the oldest
        }
        // Cannot fail: a place was just made.
        let _ = self.rejected.push(id);
    }

    fn error(&mut self, error: ProtocolError, dropped: Option<T>) -> RawEvent<T> {
        self.metrics.errors.record(&error);
        crate::log::debug!("mux: {}", error.kind_name());
        RawEvent::Error { error, dropped }
    }

    #[inline]
    fn on_frame(&mut self, frame: RawFrameEvent) -> Option<RawEvent<T>> {
        match frame {
            RawFrameEvent::Data {
                id,
                chunk,
                first,
                frame_len,
                ..
            } => {
                let Some(i) = self.find(id) else {
                    if first && !self.is_rejected(id) {
                        if self.after_gap {
                            self.reject(id);
                            return Some(self.error(ProtocolError::Lost { id }, None));
                        }
                        let kind = FrameType::Data;
                        return Some(self.error(ProtocolError::UnknownId { id, kind }, None));
                    }
                    return None;
                };
                self.current = i;
                let slot = &mut self.open[i];
                if first {
                    let size = slot.received.saturating_add(frame_len);
                    if size > self.limits.max_message {
                        let max = self.limits.max_message;
                        let value = self.take_open(i).map(|s| s.value);
                        self.reject(id);
                        let e = ProtocolError::MessageTooLarge { id, size, max };
                        return Some(self.error(e, value));
                    }
                }
                if chunk.is_empty() {
                    return None;
                }
                slot.received += chunk.len() as u32;
                self.metrics.bytes = self.metrics.bytes.saturating_add(chunk.len() as u64);
                Some(RawEvent::Data { id, chunk })
            }
            RawFrameEvent::Start { id, len_hint } => self.on_start(id, len_hint),
            RawFrameEvent::End { id } => self.on_close(id, FrameType::End),
            RawFrameEvent::Abort { id } => self.on_close(id, FrameType::Abort),
            RawFrameEvent::Error(error) => {
                let id = match error {
                    ProtocolError::FrameTooLarge { id, .. } => id,
                    _ => return Some(self.error(error, None)),
                };
                if let Some(i) = self.find(id) {
                    let value = self.take_open(i).map(|s| s.value);
                    self.reject(id);
                    Some(self.error(error, value))
                } else if self.is_rejected(id) {
                    None
                } else {
                    Some(self.error(error, None))
                }
            }
        }
    }

    fn on_start(&mut self, id: u32, len_hint: u32) -> Option<RawEvent<T>> {
        self.forget_rejected(id);
        let open = self.find(id);
        if len_hint > self.limits.max_message {
            let dropped = open.and_then(|i| self.take_open(i)).map(|s| s.value);
            self.reject(id);
            let max = self.limits.max_message;
            let e = ProtocolError::MessageTooLarge {
                id,
                size: len_hint,
                max,
            };
            return Some(self.error(e, dropped));
        }
        if let Some(i) = open {
            if self.current == i {
                self.current = NO_CURRENT; // a new message: the last Data was the old one's
            }
            #[cfg(feature = "histograms")]
            let now = self.now_us;
            let slot = &mut self.open[i];
            slot.received = 0;
            #[cfg(feature = "histograms")]
            {
                slot.started = now;
            }
            let stale = core::mem::take(&mut slot.value);
            self.pending_start = Some((id, len_hint));
            return Some(self.error(ProtocolError::DuplicateStart { id }, Some(stale)));
        }
        let slot = Slot {
            id,
            received: 0,
            value: T::default(),
            #[cfg(feature = "histograms")]
            started: self.now_us,
        };
        if self.open.len() >= self.max_open || self.open.push(slot).is_err() {
            self.reject(id);
            return Some(self.error(ProtocolError::TooManyStreams { id }, None));
        }
        Some(RawEvent::Started { id, len_hint })
    }

    fn on_close(&mut self, id: u32, kind: FrameType) -> Option<RawEvent<T>> {
        match self.find(id) {
            Some(i) => {
                let slot = self.take_open(i)?;
                let (value, received) = (slot.value, slot.received);
                if kind == FrameType::End {
                    self.metrics.messages = self.metrics.messages.saturating_add(1);
                    #[cfg(feature = "histograms")]
                    {
                        self.metrics.sizes.record(received);
                        if self.timed {
                            let us = self.now_us.wrapping_sub(slot.started);
                            self.metrics.start_to_end_us.record(us);
                        }
                    }
                    #[cfg(not(feature = "histograms"))]
                    let _ = received;
                    Some(RawEvent::Completed { id, value })
                } else {
                    self.metrics.aborted = self.metrics.aborted.saturating_add(1);
                    Some(RawEvent::Aborted { id, value })
                }
            }
            None if self.forget_rejected(id) => None,
            None if self.after_gap => Some(self.error(ProtocolError::Lost { id }, None)),
            None => Some(self.error(ProtocolError::UnknownId { id, kind }, None)),
        }
    }
}

/// The payload length of the Data frame at the front of `input` if it is whole, belongs to
/// message `id` (which has `received` payload bytes so far) and is within `limits`: the frames
/// both fast paths ([`Demux::step`]'s and [`Demux::data_run`]) take in one step. Anything else
/// goes through the decoder, which applies every rule.
#[inline(always)]
fn whole_data_frame_of(input: &[u8], id: u32, received: u32, limits: Limits) -> Option<u32> {
    let h = input.first_chunk::<HEADER_LEN>()?;
    let len = u32::from_be_bytes([h[5], h[6], h[7], h[8]]);
    let whole = h[0] == FrameType::Data as u8
        && u32::from_be_bytes([h[1], h[2], h[3], h[4]]) == id
        && len != 0
        && len <= limits.max_frame
        && received.saturating_add(len) <= limits.max_message
        && input.len() - HEADER_LEN >= len as usize;
    whole.then_some(len)
}

/// `v.remove(i)` by swaps: `Vec::remove` shifts with `memmove`, which on a small target pulls in
/// about 1.5 KB of `compiler_builtins` for these few ids (at most `N`, one per rejected
/// message in flight).
fn remove_keeping_order<const N: usize>(v: &mut heapless::Vec<u32, N>, i: usize) {
    for j in i + 1..v.len() {
        v.swap(j - 1, j);
    }
    v.pop();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Header;

    #[test]
    fn counters_driven_by_the_wire_saturate_instead_of_overflowing() {
        let mut wire = heapless::Vec::<u8, 128>::new();
        for (kind, id, len) in [
            (FrameType::Start, 1, 0),
            (FrameType::Data, 1, 2),
            (FrameType::End, 1, 0),
            (FrameType::Start, 2, 0),
            (FrameType::Abort, 2, 0),
        ] {
            wire.extend_from_slice(&Header::new(kind, id, len).to_bytes())
                .unwrap();
            if kind == FrameType::Data {
                wire.extend_from_slice(b"hi").unwrap();
            }
        }
        let mut d: Demux<(), 2> = Demux::new(Limits::new(64));
        d.metrics.messages = u32::MAX;
        d.metrics.aborted = u32::MAX;
        d.metrics.bytes = u64::MAX - 1;
        let mut input = &wire[..];
        while !input.is_empty() {
            let (n, _) = d.feed(input);
            input = &input[n..];
        }
        let m = d.metrics();
        assert_eq!(
            (m.messages, m.aborted, m.bytes),
            (u32::MAX, u32::MAX, u64::MAX)
        );
    }
}

//! Drivers: the sans-IO core pumped over `embedded-io` (blocking) and `embedded-io-async`.
//!
//! Both drivers share everything but the `.await`: [`Outgoing`] holds the
//! send progress and [`Pump`] the receive buffer state, so each driver is a short loop.

pub mod asynch;
pub mod blocking;
pub mod link;

use crate::adaptive::Clock;
use crate::demux::{Demux, Event, RawEvent};
use crate::encode::{FramePlan, Outgoing};
use crate::error::SendError;
use crate::frame::{FrameType, HEADER_LEN, Header};
#[cfg(feature = "histograms")]
use crate::histogram::Histogram;
use crate::link::{LinkDecoder, LinkFrame};
use crate::metrics::{LinkMetrics, TxMetrics};
use crate::reassembly::{Reassembler, Received};
use crate::strategy::Strategy;

/// A receive core that drivers can pump: [`Demux`] (streaming, chunk events) or
/// [`Reassembler`] (whole messages).
pub trait Receive {
    /// An item whose payload, if any, is a range of the input.
    #[doc(hidden)]
    type Raw;
    /// What the driver hands out; may borrow the driver's receive buffer.
    type Item<'a>
    where
        Self: 'a;
    /// One decoding step over `input`.
    #[doc(hidden)]
    fn step(&mut self, input: &[u8]) -> (usize, Option<Self::Raw>);
    /// At end of stream, repeatedly until `None`.
    #[doc(hidden)]
    fn finish(&mut self) -> Option<Self::Raw>;
    /// Resolves a raw item against the input it came from.
    #[doc(hidden)]
    fn view<'a>(raw: Self::Raw, input: &'a [u8]) -> Self::Item<'a>
    where
        Self: 'a;
    /// The link lost frames before the input that follows ([`Demux::link_gap`]).
    #[doc(hidden)]
    fn link_gap(&mut self, missing: u16);
    /// When the input fed next arrived ([`Demux::set_now_us`]).
    #[doc(hidden)]
    fn set_now_us(&mut self, now_us: u32);
}

impl<T: Default, const N: usize> Receive for Demux<T, N> {
    type Raw = RawEvent<T>;
    type Item<'a>
        = Event<'a, T>
    where
        Self: 'a;
    #[inline]
    fn step(&mut self, input: &[u8]) -> (usize, Option<Self::Raw>) {
        Demux::step(self, input)
    }
    fn finish(&mut self) -> Option<Self::Raw> {
        self.finish_raw()
    }
    #[inline]
    fn view<'a>(raw: Self::Raw, input: &'a [u8]) -> Event<'a, T>
    where
        Self: 'a,
    {
        raw.view(input)
    }
    fn link_gap(&mut self, missing: u16) {
        Demux::link_gap(self, missing);
    }
    #[inline]
    fn set_now_us(&mut self, now_us: u32) {
        Demux::set_now_us(self, now_us);
    }
}

impl<'p, const N: usize, const B: usize, const S: usize> Receive for Reassembler<'p, N, B, S> {
    type Raw = Received<'p, B, S>;
    type Item<'a>
        = Received<'p, B, S>
    where
        Self: 'a;
    #[inline]
    fn step(&mut self, input: &[u8]) -> (usize, Option<Self::Raw>) {
        self.feed(input)
    }
    fn finish(&mut self) -> Option<Self::Raw> {
        Reassembler::finish(self)
    }
    #[inline]
    fn view<'a>(raw: Self::Raw, _input: &'a [u8]) -> Self::Raw
    where
        Self: 'a,
    {
        raw
    }
    fn link_gap(&mut self, missing: u16) {
        Reassembler::link_gap(self, missing);
    }
    #[inline]
    fn set_now_us(&mut self, now_us: u32) {
        Reassembler::set_now_us(self, now_us);
    }
}

/// How a reader finds the multiplexer's bytes in what it reads: [`Plain`] (the default: they
/// are what it reads) or the serial link profile's [`LinkDecoder`]. A type parameter, so that
/// a plain reader links none of the link profile's code.
pub trait Framing {
    /// Whether what is read comes in link frames.
    #[doc(hidden)]
    const LINKED: bool;
    /// The next intact link frame in `rx[..*end]` ([`LinkDecoder::next`]).
    #[doc(hidden)]
    fn next_frame(&mut self, rx: &mut [u8], end: &mut usize) -> Option<LinkFrame>;
    /// At end of stream ([`LinkDecoder::finish`]).
    #[doc(hidden)]
    fn finish(&mut self, end: usize) -> Option<u16>;
    /// The link frames' counters.
    #[doc(hidden)]
    fn metrics(&self) -> Option<&LinkMetrics>;
}

/// The plain wire format: a reader's bytes are the multiplexer's stream as they are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Plain;

impl Framing for Plain {
    const LINKED: bool = false;
    #[inline(always)]
    fn next_frame(&mut self, _: &mut [u8], _: &mut usize) -> Option<LinkFrame> {
        None
    }
    #[inline(always)]
    fn finish(&mut self, _: usize) -> Option<u16> {
        None
    }
    fn metrics(&self) -> Option<&LinkMetrics> {
        None
    }
}

impl Framing for LinkDecoder {
    const LINKED: bool = true;
    fn next_frame(&mut self, rx: &mut [u8], end: &mut usize) -> Option<LinkFrame> {
        self.next(rx, end)
    }
    fn finish(&mut self, end: usize) -> Option<u16> {
        LinkDecoder::finish(self, end)
    }
    fn metrics(&self) -> Option<&LinkMetrics> {
        Some(LinkDecoder::metrics(self))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RxState {
    Open,
    Finishing,
    Closed,
}

/// What the receive loop needs next.
#[doc(hidden)]
pub enum Next<R> {
    /// An item, decoded from `rx[base..]`.
    Item(R, usize),
    /// The buffer is spent: read more into [`Pump::space`].
    Read,
    /// End of stream, all reported.
    Closed,
}

/// The receive state shared by the blocking and async readers: a buffer, a cursor, and the
/// end-of-stream sequence (truncation, unfinished messages, then closed). With the serial
/// link profile, a [`LinkDecoder`] finds the link frames in the buffer and the core is fed
/// the body of each intact one.
#[derive(Debug)]
#[doc(hidden)]
pub struct Pump<'b, P, L = Plain> {
    pub(crate) core: P,
    rx: &'b mut [u8],
    /// The core is fed `rx[pos..data_end]`.
    pos: usize,
    data_end: usize,
    /// Bytes read end at `rx[end]` (plain: `data_end`).
    end: usize,
    state: RxState,
    link: L,
}

impl<'b, P: Receive, L: Framing> Pump<'b, P, L> {
    pub(crate) fn new(core: P, rx: &'b mut [u8], link: L) -> Self {
        assert!(!rx.is_empty(), "receive buffer must not be empty");
        Self {
            core,
            rx,
            pos: 0,
            data_end: 0,
            end: 0,
            state: RxState::Open,
            link,
        }
    }

    /// Runs the core until it yields an item or needs input.
    #[inline]
    pub fn advance(&mut self) -> Next<P::Raw> {
        loop {
            match self.state {
                RxState::Open => {
                    let base = self.pos;
                    let (n, raw) = self.core.step(&self.rx[base..self.data_end]);
                    self.pos += n;
                    if let Some(raw) = raw {
                        return Next::Item(raw, base);
                    }
                    if self.pos == self.data_end && !self.next_link_frame() {
                        return Next::Read;
                    }
                }
                RxState::Finishing => {
                    if let Some(missing) = self.link.finish(self.end) {
                        self.core.link_gap(missing);
                    }
                    self.end = 0;
                    match self.core.finish() {
                        Some(raw) => return Next::Item(raw, 0),
                        None => self.state = RxState::Closed,
                    }
                }
                RxState::Closed => return Next::Closed,
            }
        }
    }

    /// The input is spent: points the core at the next intact link frame (`true`), or
    /// makes room for a read (`false`).
    #[inline]
    fn next_link_frame(&mut self) -> bool {
        if !L::LINKED {
            self.pos = 0;
            self.data_end = 0;
            self.end = 0;
            return false;
        }
        match self.link.next_frame(self.rx, &mut self.end) {
            Some(frame) => {
                if let Some(missing) = frame.gap {
                    self.core.link_gap(missing);
                }
                self.pos = frame.body.start;
                self.data_end = frame.body.end;
                true
            }
            None => {
                self.pos = 0;
                self.data_end = 0;
                false
            }
        }
    }

    /// Resolves an item against the buffer.
    #[inline]
    pub fn view(&self, raw: P::Raw, base: usize) -> P::Item<'_> {
        P::view(raw, &self.rx[base..self.data_end])
    }

    /// Where the next read goes.
    #[inline]
    pub fn space(&mut self) -> &mut [u8] {
        &mut self.rx[self.end..]
    }

    /// Records a read of `n` bytes made at `clock`'s now; 0 is end of stream.
    #[inline]
    pub fn filled_at<C: Clock>(&mut self, n: usize, clock: &C) {
        if C::TIMED {
            self.core.set_now_us(clock.now_us());
        }
        self.filled(n);
    }

    /// Records a read of `n` bytes; 0 is end of stream.
    #[inline]
    pub fn filled(&mut self, n: usize) {
        if n == 0 {
            self.state = RxState::Finishing;
        } else {
            self.end += n;
            if !L::LINKED {
                self.data_end = self.end;
            }
        }
    }

    /// Records a failed read: the error goes to the caller once, then the stream is finished
    /// (what was open is reported unfinished) and closed; the reader never spins on a broken
    /// source.
    pub fn failed(&mut self) {
        self.state = RxState::Finishing;
    }

    /// The serial link profile's counters, if it is on.
    pub(crate) fn link_metrics(&self) -> Option<&LinkMetrics> {
        self.link.metrics()
    }
}

/// The headers of one message's frames, all built before the first write: a header built
/// just before the sink copies it is loaded back while its stores are still in flight (a
/// store-forwarding stall per frame, measurable at 1 KiB). All Data frames but the last carry
/// the plan's chunk; the Start header goes out in one write with the header after it (18
/// bytes).
pub(crate) struct Heads {
    first: [u8; 2 * HEADER_LEN],
    full: [u8; HEADER_LEN],
    last: [u8; HEADER_LEN],
    end: [u8; HEADER_LEN],
    chunk: usize,
    total: usize,
}

impl Heads {
    #[inline(always)]
    pub(crate) fn new(plan: &FramePlan, total: usize) -> Self {
        let id = plan.id();
        let chunk = plan.chunk() as usize;
        // A message of one chunk (or none) needs no division: a strategy whose chunk is known
        // only at run time (Adaptive) would pay for one on every small message.
        let (first_len, last_len) = if total <= chunk {
            (total, total)
        } else {
            (chunk, total - (total - 1) / chunk * chunk)
        };
        let mut first = [0u8; 2 * HEADER_LEN];
        first[..HEADER_LEN]
            .copy_from_slice(&Header::new(FrameType::Start, id, plan.start_len()).to_bytes());
        let first_kind = if total == 0 {
            FrameType::End
        } else {
            FrameType::Data
        };
        first[HEADER_LEN..]
            .copy_from_slice(&Header::new(first_kind, id, first_len as u32).to_bytes());
        Self {
            first,
            full: Header::new(FrameType::Data, id, chunk as u32).to_bytes(),
            last: Header::new(FrameType::Data, id, last_len as u32).to_bytes(),
            end: Header::new(FrameType::End, id, 0).to_bytes(),
            chunk,
            total,
        }
    }

    /// The Start header and the one after it.
    #[inline(always)]
    pub(crate) fn first(&self) -> &[u8] {
        &self.first
    }

    /// The body of the frame at payload offset `at`.
    #[inline(always)]
    pub(crate) fn body<'p>(&self, payload: &'p [u8], at: usize) -> &'p [u8] {
        &payload[at..at + (self.total - at).min(self.chunk)]
    }

    /// The header of the frame at payload offset `at` (> 0): Data, the last Data, or End.
    #[inline(always)]
    pub(crate) fn at(&self, at: usize) -> &[u8] {
        match self.total - at {
            0 => &self.end,
            n if n <= self.chunk => &self.last,
            _ => &self.full,
        }
    }
}

/// The send state shared by the blocking and async writers: strategy, id counter, what an
/// interrupted send still owes, and counters.
#[derive(Debug)]
pub(crate) struct TxState<S> {
    pub(crate) strategy: S,
    next_id: u32,
    pub(crate) owed: Option<Outgoing>,
    pub(crate) metrics: TxMetrics,
}

impl<S: Strategy> TxState<S> {
    pub(crate) const fn new(strategy: S) -> Self {
        Self {
            strategy,
            next_id: 1,
            owed: None,
            metrics: TxMetrics {
                messages: 0,
                bytes: 0,
                aborted: 0,
                #[cfg(feature = "histograms")]
                sizes: Histogram::new(),
                #[cfg(feature = "histograms")]
                frames: Histogram::new(),
                #[cfg(feature = "histograms")]
                send_wait_us: Histogram::new(),
            },
        }
    }

    /// Records how long a completed send took since `t0` (`None`: no clock).
    #[cfg(feature = "histograms")]
    #[inline]
    pub(crate) fn sent_after<C: Clock>(&mut self, t0: Option<u32>, clock: &C) {
        if let Some(t0) = t0 {
            let us = clock.now_us().wrapping_sub(t0);
            self.metrics.send_wait_us.record(us);
        }
    }

    /// The next automatic id: 1, 2, …, wrapping.
    #[inline]
    pub(crate) fn take_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = id.wrapping_add(1);
        id
    }

    /// The progress of an interrupted send, switched to settling, if one is owed.
    pub(crate) fn owed_for_settle(&mut self) -> Option<&mut Outgoing> {
        let out = self.owed.as_mut()?;
        out.settle();
        Some(out)
    }

    /// Ends a send: on success the message is no longer owed and is counted.
    #[inline]
    pub(crate) fn end<E>(&mut self, r: Result<(), SendError<E>>) -> Result<(), SendError<E>> {
        r?;
        let Some(out) = self.owed.take() else {
            return Ok(());
        };
        if out.is_cancelled() {
            self.metrics.aborted = self.metrics.aborted.saturating_add(1);
            return Err(SendError::Cancelled);
        }
        let total = out.total();
        self.metrics
            .count_message(total, self.strategy.chunk_size(total));
        Ok(())
    }

    /// Ends a settle: a cancellation that was owed is not an error of the new operation.
    pub(crate) fn end_settle<E>(
        &mut self,
        r: Result<(), SendError<E>>,
    ) -> Result<(), SendError<E>> {
        match self.end(r) {
            Err(SendError::Cancelled) => Ok(()),
            r => r,
        }
    }
}

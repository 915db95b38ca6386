//! Sans-IO encoding: a message becomes a sequence of frames.
//!
//! [`FramePlan`] lists the frames of a message from its id, size and strategy alone (no payload
//! needed), [`Frames`] pairs them with payload slices, and [`Outgoing`] is the progress of one
//! message through a writer that may accept fewer bytes than offered, fail, or be dropped: it
//! remembers what is owed to the wire so that the stream can always be settled.

use crate::error::EncodeError;
use crate::frame::{FrameType, HEADER_LEN, Header};
use crate::strategy::Strategy;

/// One frame of a planned message: its header and where its body lies in the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PlannedFrame {
    /// The frame's header.
    pub header: Header,
    /// Offset of the body in the message payload (bodies are `header.len` bytes for Data
    /// frames, empty for the others).
    pub offset: u32,
}

impl PlannedFrame {
    /// Length of the body that follows the header on the wire.
    #[inline(always)]
    pub const fn body_len(&self) -> u32 {
        if self.header.has_payload() {
            self.header.len
        } else {
            0
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Start,
    Data(u32),
    End,
    Done,
}

/// The frames of one message (`Start`, `Data`…, `End`), computed from its size and strategy.
#[derive(Debug, Clone)]
pub struct FramePlan {
    id: u32,
    total: u32,
    chunk: u32,
    start_len: u32,
    step: Step,
    /// The payload offset from which Data frames are cut at `chunk` (0 unless
    /// [`set_chunk`](Self::set_chunk) changed it), and the Data frames before it.
    from: u32,
    before: u32,
}

impl FramePlan {
    /// Plans a message of `total` payload bytes. Fails, before anything is written, if the size
    /// does not fit the u32 length fields.
    #[inline]
    pub fn new<S: Strategy>(strategy: &S, id: u32, total: usize) -> Result<Self, EncodeError> {
        let total = u32::try_from(total).map_err(|_| EncodeError::TooLarge)?;
        Ok(Self {
            id,
            total,
            chunk: strategy.chunk_size(total).max(1),
            start_len: strategy.start_len(total),
            step: Step::Start,
            from: 0,
            before: 0,
        })
    }

    /// Cuts the Data frames not handed out yet at `chunk` bytes (at least 1), the last one
    /// holding the remainder: for a strategy whose chunk follows the link while a message
    /// goes (Adaptive). A reader needs nothing of it: every Data frame says its length.
    ///
    /// ```
    /// use mux_nostd::{FramePlan, Optimized};
    /// let mut plan = FramePlan::new(&Optimized, 1, 10_000).unwrap(); // 4 KiB chunks
    /// plan.next(); // Start
    /// plan.next(); // Data, 4096 bytes
    /// plan.set_chunk(1000);
    /// let lens: Vec<u32> = plan.by_ref().map(|f| f.header.len).collect();
    /// assert_eq!(lens, [1000, 1000, 1000, 1000, 1000, 904, 0]); // six Data frames, End
    /// ```
    #[inline]
    pub fn set_chunk(&mut self, chunk: u32) {
        let chunk = if chunk == 0 { 1 } else { chunk };
        if chunk == self.chunk {
            return;
        }
        match self.step {
            Step::Start => {}
            Step::Data(off) => {
                // Every Data frame from `from` to `off` was a whole chunk.
                self.before += (off - self.from) / self.chunk;
                self.from = off;
            }
            // No Data frame is left to cut.
            Step::End | Step::Done => return,
        }
        self.chunk = chunk;
    }

    /// The frame a plan at `step` hands out, and the step after it.
    #[inline(always)]
    const fn frame(&self, step: Step) -> Option<(PlannedFrame, Step)> {
        let (kind, len, offset, next) = match step {
            Step::Start => {
                let next = if self.total == 0 {
                    Step::End
                } else {
                    Step::Data(0)
                };
                (FrameType::Start, self.start_len, 0, next)
            }
            Step::Data(off) => {
                let left = self.total - off;
                let len = if left < self.chunk { left } else { self.chunk };
                let next = if off + len >= self.total {
                    Step::End
                } else {
                    Step::Data(off + len)
                };
                (FrameType::Data, len, off, next)
            }
            Step::End => (FrameType::End, 0, self.total, Step::Done),
            Step::Done => return None,
        };
        let frame = PlannedFrame {
            header: Header::new(kind, self.id, len),
            offset,
        };
        Some((frame, next))
    }

    /// For a driver that walked the frames by hand and must hand its progress over: the
    /// frame it was at — Start (`None`), or the frame at payload `offset` (the Data frame
    /// starting there, End once `offset` reaches the total) — and the plan of the frames after it.
    pub(crate) fn split_at(&self, offset: Option<u32>) -> (PlannedFrame, Self) {
        let step = match offset {
            None => Step::Start,
            Some(off) if off < self.total => Step::Data(off),
            Some(_) => Step::End,
        };
        let (frame, next) = match self.frame(step) {
            Some(f) => f,
            // Unreachable: only `Done` has no frame.
            None => (
                PlannedFrame {
                    header: Header::new(FrameType::End, self.id, 0),
                    offset: self.total,
                },
                Step::Done,
            ),
        };
        (
            frame,
            Self {
                step: next,
                ..*self
            },
        )
    }

    /// The message id.
    #[inline]
    pub const fn id(&self) -> u32 {
        self.id
    }

    /// The size of every Data frame but the last (at least 1).
    #[inline]
    pub(crate) const fn chunk(&self) -> u32 {
        self.chunk
    }

    /// The Start frame's length field.
    #[inline]
    pub(crate) const fn start_len(&self) -> u32 {
        self.start_len
    }

    /// The message's payload size.
    #[inline]
    pub const fn total(&self) -> u32 {
        self.total
    }

    /// Frames of the whole message: Start, its Data frames, End.
    #[inline]
    pub const fn frame_count(&self) -> u32 {
        self.before + crate::histogram::frames_per_message(self.total - self.from, self.chunk)
    }

    /// Whether every frame has been handed out.
    #[inline]
    pub const fn is_done(&self) -> bool {
        matches!(self.step, Step::Done)
    }

    /// Number of bytes the whole message takes on the wire, or `None` if that does not fit a
    /// `usize` (on 16- and 32-bit targets: a message near the u32 size limit in small frames
    /// takes up to about 43 GB on the wire).
    pub const fn checked_wire_len(&self) -> Option<usize> {
        let chunks = self.before as u64 + (self.total - self.from).div_ceil(self.chunk) as u64;
        // At most 2^32 + 9 × (2^32 + 2): no overflow in u64.
        let len = self.total as u64 + HEADER_LEN as u64 * (2 + chunks);
        if len > usize::MAX as u64 {
            None
        } else {
            Some(len as usize)
        }
    }

    /// Number of bytes the whole message takes on the wire, saturating at `usize::MAX` where
    /// it does not fit (see [`checked_wire_len`](Self::checked_wire_len)): as a buffer size,
    /// a saturated value is one no buffer can have, so a caller sizing or checking a buffer
    /// with it fails cleanly.
    pub const fn wire_len(&self) -> usize {
        match self.checked_wire_len() {
            Some(len) => len,
            None => usize::MAX,
        }
    }
}

impl Iterator for FramePlan {
    type Item = PlannedFrame;

    #[inline]
    fn next(&mut self) -> Option<PlannedFrame> {
        let (frame, next) = self.frame(self.step)?;
        self.step = next;
        Some(frame)
    }

    /// Skips `n` frames in constant time (every Data frame but the last is one chunk, so a
    /// frame's place in the message says where it is), then hands out the next one.
    #[inline]
    fn nth(&mut self, n: usize) -> Option<PlannedFrame> {
        if n > 0 {
            self.step = self.skipped(n);
        }
        self.next()
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.frames_after(self.step);
        let left = usize::try_from(left).unwrap_or(usize::MAX);
        (left, Some(left))
    }
}

impl FramePlan {
    /// The step `n` frames after the current one.
    #[inline]
    const fn skipped(&self, n: usize) -> Step {
        // Data frames are cut at `chunk` from `from` on (the step is never before `from`).
        let data = (self.total - self.from).div_ceil(self.chunk) as u64;
        // The frame's place: Start 0, Data 1..=data, End data + 1, Done after it (counting
        // the Data frames from `from`).
        let at = match self.step {
            Step::Start => 0,
            Step::Data(off) => 1 + ((off - self.from) / self.chunk) as u64,
            Step::End => data + 1,
            Step::Done => return Step::Done,
        };
        let to = at.saturating_add(n as u64);
        if to == 0 {
            Step::Start
        } else if to <= data {
            // Below `data`: the offset is below the total, so it fits a u32.
            Step::Data(self.from + ((to - 1) * self.chunk as u64) as u32)
        } else if to == data + 1 {
            Step::End
        } else {
            Step::Done
        }
    }

    /// Frames still to hand out from `step` on.
    #[inline]
    const fn frames_after(&self, step: Step) -> u64 {
        let data = (self.total - self.from).div_ceil(self.chunk) as u64;
        match step {
            Step::Start => data + 2,
            Step::Data(off) => data - ((off - self.from) / self.chunk) as u64 + 1,
            Step::End => 1,
            Step::Done => 0,
        }
    }
}

/// Frames of a message paired with their bodies: `(header bytes, body)`.
#[derive(Debug, Clone)]
pub struct Frames<'a> {
    plan: FramePlan,
    payload: &'a [u8],
}

impl<'a> Frames<'a> {
    /// The frames of `payload` sent as message `id` with `strategy`.
    pub fn new<S: Strategy>(strategy: &S, id: u32, payload: &'a [u8]) -> Result<Self, EncodeError> {
        Ok(Self {
            plan: FramePlan::new(strategy, id, payload.len())?,
            payload,
        })
    }

    /// Bytes the whole message takes on the wire, saturating at `usize::MAX` (see
    /// [`FramePlan::wire_len`]).
    pub const fn wire_len(&self) -> usize {
        self.plan.wire_len()
    }

    /// Bytes the whole message takes on the wire, or `None` if that does not fit a `usize`
    /// (see [`FramePlan::checked_wire_len`]).
    pub const fn checked_wire_len(&self) -> Option<usize> {
        self.plan.checked_wire_len()
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = ([u8; HEADER_LEN], &'a [u8]);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let f = self.plan.next()?;
        let start = f.offset as usize;
        let body = &self.payload[start..start + f.body_len() as usize];
        Some((f.header.to_bytes(), body))
    }
}

/// Encodes a whole message into `out`, returning the bytes used.
///
/// ```
/// use mux_nostd::{encode_into, Original};
/// let mut out = [0u8; 64];
/// let n = encode_into(&Original, 7, b"hi", &mut out).unwrap();
/// assert_eq!(&out[..n], &[1,0,0,0,7,0,0,0,2, 3,0,0,0,7,0,0,0,2, b'h', b'i', 2,0,0,0,7,0,0,0,0]);
/// ```
pub fn encode_into<S: Strategy>(
    strategy: &S,
    id: u32,
    payload: &[u8],
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    let frames = Frames::new(strategy, id, payload)?;
    let need = frames.checked_wire_len().ok_or(EncodeError::TooLarge)?;
    let out = out
        .get_mut(..need)
        .ok_or(EncodeError::BufferTooSmall { needed: need })?;
    let mut at = 0;
    for (header, body) in frames {
        out[at..at + HEADER_LEN].copy_from_slice(&header);
        at += HEADER_LEN;
        out[at..at + body.len()].copy_from_slice(body);
        at += body.len();
    }
    Ok(at)
}

/// Filler for the body of a frame whose payload is no longer reachable (its send was
/// dropped): the message is aborted right after, so the receiver discards these bytes.
static FILLER: [u8; 64] = [0; 64];

/// The progress of one message through a writer.
///
/// A driver asks [`Outgoing::pending`] for the bytes to write next (the rest of the current
/// header and the rest of its body), writes as many as the sink takes, and reports them with
/// [`Outgoing::advance`]. If the send stops early — an I/O error, a cancellation, an async
/// future dropped mid-message — the writer keeps this value and calls [`Outgoing::settle`]
/// before anything else: the frame in flight is completed (with filler if its payload is gone)
/// and an `Abort` for the id follows, so the stream stays in sync.
#[derive(Debug, Clone)]
pub struct Outgoing {
    plan: FramePlan,
    header: [u8; HEADER_LEN],
    header_done: u8,
    body_offset: u32,
    body_len: u32,
    body_done: u32,
    phase: Phase,
    cancelled: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Sending the message's own frames.
    Sending,
    /// Finishing the frame in flight with filler, then writing Abort.
    Settling,
    /// Writing the Abort header (in `header`).
    Aborting,
    /// Nothing more is owed.
    Done,
}

impl Outgoing {
    /// Cuts the Data frames after the one in flight at `chunk` bytes (see
    /// [`FramePlan::set_chunk`]).
    #[inline]
    pub fn set_chunk(&mut self, chunk: u32) {
        self.plan.set_chunk(chunk);
    }

    /// Starts a message; the first bytes pending are its Start header.
    pub fn new<S: Strategy>(strategy: &S, id: u32, total: usize) -> Result<Self, EncodeError> {
        let mut o = Self {
            plan: FramePlan::new(strategy, id, total)?,
            header: [0; HEADER_LEN],
            header_done: 0,
            body_offset: 0,
            body_len: 0,
            body_done: 0,
            phase: Phase::Sending,
            cancelled: false,
        };
        o.load_next();
        Ok(o)
    }

    /// The progress of a message whose frames were being written straight from a
    /// [`FramePlan`]: `frame` is the frame that was in flight (already taken from `rest`) and
    /// `written` how many of its bytes (header first) reached the sink. Lets a fast driver keep
    /// no state while all goes well and build this only when a write fails or is cancelled.
    pub fn resume(rest: FramePlan, frame: PlannedFrame, written: usize) -> Self {
        let header_done = written.min(HEADER_LEN);
        let body_len = frame.body_len();
        let mut o = Self {
            plan: rest,
            header: frame.header.to_bytes(),
            header_done: header_done as u8,
            body_offset: frame.offset,
            body_len,
            body_done: ((written - header_done) as u32).min(body_len),
            phase: Phase::Sending,
            cancelled: false,
        };
        if o.header_done as usize == HEADER_LEN && o.body_done == body_len {
            o.load_next();
        }
        o
    }

    /// The message id.
    #[inline]
    pub const fn id(&self) -> u32 {
        self.plan.id()
    }

    /// The message's payload size.
    #[inline]
    pub const fn total(&self) -> u32 {
        self.plan.total()
    }

    /// Frames of the whole message: Start, its Data frames, End (an Abort is not counted).
    #[inline]
    pub const fn frame_count(&self) -> u32 {
        self.plan.frame_count()
    }

    #[inline]
    fn load_next(&mut self) {
        match self.plan.next() {
            Some(f) => {
                self.header = f.header.to_bytes();
                self.header_done = 0;
                self.body_offset = f.offset;
                self.body_len = f.body_len();
                self.body_done = 0;
            }
            None => self.phase = Phase::Done,
        }
    }

    /// The bytes to write next: the rest of the current header, then the rest of its body.
    /// Both empty means nothing is owed any more. `payload` is the message's payload (ignored
    /// while settling).
    ///
    /// # Panics
    /// If `payload` is shorter than the size the message was planned with (a caller bug; the
    /// crate's drivers always pass the message's own payload).
    #[inline]
    pub fn pending<'a>(&'a self, payload: &'a [u8]) -> (&'a [u8], &'a [u8]) {
        if self.phase == Phase::Done {
            return (&[], &[]);
        }
        let head = &self.header[self.header_done as usize..];
        let body = match self.phase {
            Phase::Sending if self.body_done == self.body_len => &[],
            Phase::Sending => {
                let from = (self.body_offset + self.body_done) as usize;
                let to = (self.body_offset + self.body_len) as usize;
                &payload[from..to]
            }
            Phase::Settling => {
                let left = (self.body_len - self.body_done) as usize;
                &FILLER[..left.min(FILLER.len())]
            }
            Phase::Aborting | Phase::Done => &[],
        };
        (head, body)
    }

    /// Records that the first `n` bytes of what [`pending`](Self::pending) returned (header
    /// part first) reached the sink.
    #[inline]
    pub fn advance(&mut self, mut n: usize) {
        let head_left = HEADER_LEN - self.header_done as usize;
        let h = n.min(head_left);
        self.header_done += h as u8;
        n -= h;
        // `n` never exceeds what `pending` offered, so this fits the body's u32 length.
        self.body_done += n as u32;
        if self.header_done as usize == HEADER_LEN && self.body_done == self.body_len {
            match self.phase {
                Phase::Sending => self.load_next(),
                Phase::Settling => self.begin_abort(),
                Phase::Aborting | Phase::Done => self.phase = Phase::Done,
            }
        }
    }

    fn begin_abort(&mut self) {
        self.header = Header::new(FrameType::Abort, self.id(), 0).to_bytes();
        self.header_done = 0;
        self.body_len = 0;
        self.body_done = 0;
        self.phase = Phase::Aborting;
    }

    /// The next bytes for the sink, or `None` when nothing more is owed. Before each frame it
    /// asks `cancel`; a cancelled message is settled (Abort follows if its Start was written).
    #[inline]
    pub fn next_bytes<'a>(
        &'a mut self,
        payload: &'a [u8],
        cancel: &mut impl FnMut() -> bool,
    ) -> Option<&'a [u8]> {
        if self.phase == Phase::Sending && self.header_done == 0 && cancel() {
            self.settle();
        }
        let (head, body) = self.pending(payload);
        let buf = if head.is_empty() { body } else { head };
        (!buf.is_empty()).then_some(buf)
    }

    /// Whether the writer sits between two frames of the message (a clean point to cancel).
    #[inline]
    pub const fn at_frame_boundary(&self) -> bool {
        self.header_done == 0
    }

    /// Whether nothing more is owed to the wire.
    #[inline]
    pub const fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    /// Whether this message was cut short: it ends (or ended) with an Abort, or was cancelled
    /// before any of it was written.
    #[inline]
    pub const fn is_cancelled(&self) -> bool {
        self.cancelled
    }

    /// Turns the rest of the message into "finish the frame in flight, then Abort".
    /// Called for a cancellation, or before the next operation after an interrupted send.
    /// A message whose End was already started is completed normally instead.
    pub fn settle(&mut self) {
        if self.phase != Phase::Sending {
            return;
        }
        let current_is_end = self.header[0] == FrameType::End as u8 && self.plan.is_done();
        if current_is_end && self.header_done > 0 {
            return; // the End frame is half written: finishing it completes the message.
        }
        self.cancelled = true;
        if self.header_done == 0 && self.header[0] == FrameType::Start as u8 {
            self.phase = Phase::Done; // nothing of the message was written: nothing is owed.
        } else if self.header_done == 0 {
            self.begin_abort();
        } else {
            self.phase = Phase::Settling;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::{Optimized, Original};

    fn drive(o: &mut Outgoing, payload: &[u8], out: &mut heapless::Vec<u8, 4096>, step: usize) {
        loop {
            let (h, b) = o.pending(payload);
            if h.is_empty() && b.is_empty() {
                break;
            }
            let mut n = 0;
            for &byte in h.iter().chain(b.iter()).take(step) {
                out.push(byte).unwrap();
                n += 1;
            }
            o.advance(n);
        }
    }

    #[test]
    // Plan arithmetic only (no unsafe code), and minutes under Miri: natively only.
    #[cfg_attr(miri, ignore)]
    fn nth_and_size_hint_agree_with_walking_the_frames() {
        for total in [0usize, 1, 1023, 1024, 1025, 3000, 4096, 70_000] {
            for chunk_of in [Original.chunk_size(total as u32), 7] {
                let plan = FramePlan {
                    chunk: chunk_of,
                    ..FramePlan::new(&Original, 5, total).unwrap()
                };
                let all: heapless::Vec<PlannedFrame, 10_100> = plan.clone().collect();
                for from in 0..all.len().min(12) {
                    for n in [0, 1, 2, 5, all.len(), all.len() + 3] {
                        let mut p = plan.clone();
                        if from > 0 {
                            p.nth(from - 1);
                        }
                        assert_eq!(p.size_hint(), (all.len() - from, Some(all.len() - from)));
                        assert_eq!(p.nth(n), all.get(from + n).copied(), "{total} {from} {n}");
                        let left = all.len().saturating_sub(from + n + 1);
                        assert_eq!(p.size_hint().0, left);
                        assert_eq!(
                            p.collect::<heapless::Vec<_, 10_100>>(),
                            all[all.len() - left..]
                        );
                    }
                }
            }
        }
    }

    #[test]
    #[cfg_attr(miri, ignore)] // plan arithmetic only (no unsafe code): natively only
    fn nth_and_size_hint_agree_with_walking_a_plan_cut_anew_midway() {
        for (first, then, at) in [(1024, 100, 2), (100, 4096, 3), (7, 3, 5), (1000, 1, 1)] {
            let mut plan = FramePlan {
                chunk: first,
                ..FramePlan::new(&Original, 5, 2500).unwrap()
            };
            for _ in 0..at {
                plan.next();
            }
            plan.set_chunk(then);
            let all: heapless::Vec<PlannedFrame, 4096> = plan.clone().collect();
            for n in 0..all.len().min(40) + 2 {
                let mut p = plan.clone();
                assert_eq!(p.size_hint().0, all.len());
                assert_eq!(p.nth(n), all.get(n).copied(), "{first} {then} {at} {n}");
                assert_eq!(p.size_hint().0, all.len().saturating_sub(n + 1));
            }
        }
    }

    #[test]
    #[cfg_attr(miri, ignore)] // plan arithmetic only (no unsafe code): natively only
    fn a_plan_cut_anew_midway_covers_the_payload_and_counts_its_frames() {
        for (first, then, at) in [(1024, 100, 2), (100, 4096, 3), (7, 7, 5), (1000, 1, 1)] {
            let chunk = |c| {
                crate::strategy::AnyStrategy::Adaptive(crate::AdaptiveConfig {
                    floor: c,
                    ceiling: c,
                    ..crate::AdaptiveConfig::DEFAULT
                })
            };
            let mut plan = FramePlan::new(&chunk(first), 3, 2500).unwrap();
            let mut frames: heapless::Vec<PlannedFrame, 4096> = heapless::Vec::new();
            for _ in 0..at {
                frames.push(plan.next().unwrap()).unwrap();
            }
            plan.set_chunk(then);
            let (count, wire) = (plan.frame_count(), plan.wire_len());
            frames.extend(plan.by_ref());
            plan.set_chunk(first + 1); // after the end: nothing changes
            assert_eq!(plan.frame_count(), count);
            assert_eq!(frames.len() as u32, count, "{first} then {then}");
            let mut next = 0;
            for f in &frames[1..frames.len() - 1] {
                assert_eq!((f.header.kind, f.offset), (FrameType::Data, next));
                next += f.header.len;
            }
            assert_eq!(next, 2500);
            assert_eq!(frames.last().unwrap().header.kind, FrameType::End);
            assert_eq!(wire, 2500 + HEADER_LEN * frames.len());
        }
    }

    #[test]
    fn outgoing_matches_encode_into_for_any_step() {
        let payload: heapless::Vec<u8, 3000> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        let mut want = [0u8; 4096];
        let n = encode_into(&Original, 3, &payload, &mut want).unwrap();
        for step in [1, 2, 7, 9, 100, 5000] {
            let mut o = Outgoing::new(&Original, 3, payload.len()).unwrap();
            let mut got = heapless::Vec::new();
            drive(&mut o, &payload, &mut got, step);
            assert!(o.is_done());
            assert_eq!(got.as_slice(), &want[..n], "step {step}");
        }
    }

    #[test]
    fn settle_mid_body_pads_then_aborts() {
        let payload = [0xAAu8; 100];
        let mut o = Outgoing::new(&Optimized, 5, payload.len()).unwrap();
        // Start (9) + Data header (9) + 10 body bytes reach the wire, then the send is dropped.
        let mut written: heapless::Vec<u8, 4096> = heapless::Vec::new();
        for _ in 0..3 {
            let (h, b) = o.pending(&payload);
            let take = if h.is_empty() { 10 } else { h.len() };
            let bytes: heapless::Vec<u8, 64> = h.iter().chain(b).take(take).copied().collect();
            written.extend_from_slice(&bytes).unwrap();
            o.advance(bytes.len());
        }
        assert_eq!(written.len(), 28);
        o.settle();
        drive(&mut o, &[], &mut written, 13);
        assert!(o.is_done());
        // 90 filler bytes complete the Data frame, then Abort(5).
        assert_eq!(written.len(), 9 + 9 + 100 + 9);
        assert!(written[28..118].iter().all(|&b| b == 0));
        assert_eq!(&written[118..], &[6, 0, 0, 0, 5, 0, 0, 0, 0]);
    }

    #[test]
    fn cancel_before_start_writes_nothing_after_start_writes_abort() {
        let mut o = Outgoing::new(&Original, 9, 10).unwrap();
        o.settle();
        assert!(o.is_done() && o.is_cancelled());
        assert_eq!(o.pending(&[0; 10]), (&[][..], &[][..]));

        let mut o = Outgoing::new(&Original, 9, 10).unwrap();
        o.advance(9); // Start written
        o.settle();
        let mut w = heapless::Vec::new();
        drive(&mut o, &[], &mut w, 64);
        assert_eq!(w.as_slice(), &[6, 0, 0, 0, 9, 0, 0, 0, 0]);
        assert!(o.is_cancelled());
    }

    #[test]
    fn half_written_end_completes_instead_of_aborting() {
        let payload = [1u8; 3];
        let mut o = Outgoing::new(&Original, 2, 3).unwrap();
        for n in [9, 9, 3, 4] {
            o.advance(n); // Start, Data header, its body, 4 bytes of End
        }
        o.settle();
        assert!(!o.is_cancelled());
        let mut rest = heapless::Vec::new();
        drive(&mut o, &payload, &mut rest, 64);
        assert_eq!(rest.as_slice(), &[2, 0, 0, 0, 0]); // the End header's last 5 bytes
        assert!(o.is_done());
    }

    /// A strategy of one-byte Data frames: the most frames a message can have.
    #[derive(Debug, Clone, Copy)]
    struct Bytewise;

    impl Strategy for Bytewise {
        fn chunk_size(&self, _total: u32) -> u32 {
            1
        }
        fn start_len(&self, _total: u32) -> u32 {
            0
        }
    }

    #[test]
    fn wire_len_of_the_largest_plan_does_not_overflow() {
        // u32::MAX bytes in one-byte frames: 4294967295 + 9 × (4294967295 + 2) wire bytes,
        // more than a 32-bit usize holds.
        let plan = FramePlan::new(&Bytewise, 1, u32::MAX as usize).unwrap();
        let exact = u64::from(u32::MAX) + 9 * (u64::from(u32::MAX) + 2);
        assert_eq!(plan.checked_wire_len(), usize::try_from(exact).ok());
        assert_eq!(plan.wire_len() as u64, exact.min(usize::MAX as u64));
        // Small plans are exact everywhere.
        let plan = FramePlan::new(&Original, 1, 3000).unwrap();
        assert_eq!(plan.checked_wire_len(), Some(3000 + 9 * 5));
        assert_eq!(plan.wire_len(), 3000 + 9 * 5);
    }

    #[test]
    fn too_large_is_rejected_before_writing() {
        #[cfg(target_pointer_width = "64")]
        assert_eq!(
            FramePlan::new(&Original, 1, u32::MAX as usize + 1).unwrap_err(),
            EncodeError::TooLarge
        );
        let mut small = [0u8; 10];
        assert_eq!(
            encode_into(&Original, 1, b"abc", &mut small),
            Err(EncodeError::BufferTooSmall { needed: 30 })
        );
    }
}

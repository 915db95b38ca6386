//! Sans-IO frame decoder: bytes in, frame events out.
//!
//! The decoder is fed slices cut anywhere (one byte at a time works) and never allocates,
//! copies payload, or panics. Payload comes out as chunks borrowed from the input. It knows
//! nothing of messages: which ids are open is the [`Demux`](crate::Demux)'s business.

use core::ops::Range;

use crate::error::ProtocolError;
use crate::frame::{FrameType, HEADER_LEN, Header, RawHeader};

/// One step of frame decoding, with its payload chunk as a `C`: a borrow of the input in
/// [`FrameEvent`], which is what [`Decoder::decode`] gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FrameEventOf<C> {
    /// A Start frame.
    Start {
        /// Message id.
        id: u32,
        /// The length field (a size hint; 0 from the Optimized and Hybrid writers).
        len_hint: u32,
    },
    /// Payload bytes of a Data frame. A frame gives one or more of these: the first as soon
    /// as its header is complete (with whatever payload came with it, possibly none), the
    /// others as more payload arrives.
    Data {
        /// Message id.
        id: u32,
        /// The bytes (in [`FrameEvent`], borrowed from the input).
        chunk: C,
        /// Whether this is the frame's first event (its header was just read).
        first: bool,
        /// Offset of `chunk` within the frame's payload.
        offset: u32,
        /// The frame's length field.
        frame_len: u32,
    },
    /// An End frame.
    End {
        /// Message id.
        id: u32,
    },
    /// An Abort frame.
    Abort {
        /// Message id.
        id: u32,
    },
    /// A malformed frame ([`ProtocolError::UnknownType`] or [`ProtocolError::FrameTooLarge`]);
    /// decoding goes on in sync.
    Error(ProtocolError),
}

/// One step of frame decoding, its payload chunk borrowed from the input.
pub type FrameEvent<'a> = FrameEventOf<&'a [u8]>;

/// A frame event whose chunk is a range of the input instead of a borrow (lets I/O drivers
/// decide when to borrow their buffer).
pub(crate) type RawFrameEvent = FrameEventOf<Range<usize>>;

impl<C> FrameEventOf<C> {
    /// The same event with its chunk mapped by `f` (the other variants carry no chunk).
    #[inline]
    fn map_chunk<D>(self, f: impl FnOnce(C) -> D) -> FrameEventOf<D> {
        match self {
            Self::Start { id, len_hint } => FrameEventOf::Start { id, len_hint },
            Self::Data {
                id,
                chunk,
                first,
                offset,
                frame_len,
            } => FrameEventOf::Data {
                id,
                chunk: f(chunk),
                first,
                offset,
                frame_len,
            },
            Self::End { id } => FrameEventOf::End { id },
            Self::Abort { id } => FrameEventOf::Abort { id },
            Self::Error(e) => FrameEventOf::Error(e),
        }
    }
}

impl RawFrameEvent {
    #[inline]
    pub(crate) fn view(self, input: &[u8]) -> FrameEvent<'_> {
        self.map_chunk(|range| &input[range])
    }
}

#[derive(Debug, Clone)]
enum State {
    Header {
        buf: [u8; HEADER_LEN],
        have: u8,
    },
    Payload {
        id: u32,
        len: u32,
        done: u32,
        skip: bool,
    },
}

enum AfterHeader {
    /// A header-only frame, complete.
    Done(RawFrameEvent),
    /// A Data header; payload follows (an oversize error to report first, if any).
    Payload(Option<RawFrameEvent>),
}

/// The sans-IO frame decoder: bytes in, frame events out.
///
/// It is fed slices cut anywhere (one byte at a time works) and never allocates, copies
/// payload, or panics. Payload comes out as chunks borrowed from the input. It knows nothing
/// of messages: which ids are open is the [`Demux`](crate::Demux)'s business.
#[derive(Debug, Clone)]
pub struct Decoder {
    max_frame: u32,
    state: State,
}

impl Decoder {
    /// A decoder that rejects (and skips) Data frames longer than `max_frame` bytes.
    pub const fn new(max_frame: u32) -> Self {
        Self {
            max_frame,
            state: State::Header {
                buf: [0; HEADER_LEN],
                have: 0,
            },
        }
    }

    /// The Data frame limit.
    pub const fn max_frame(&self) -> u32 {
        self.max_frame
    }

    /// Decodes from the front of `input`: returns how many bytes were consumed and the event
    /// they completed, if any. Call again with the rest; `(0, None)` only for empty input.
    ///
    /// ```
    /// use mux_nostd::{Decoder, FrameEvent};
    /// let wire = [1, 0, 0, 0, 7, 0, 0, 0, 0,  3, 0, 0, 0, 7, 0, 0, 0, 2, b'h', b'i'];
    /// let mut d = Decoder::new(1024);
    /// let (n, ev) = d.decode(&wire);
    /// assert_eq!((n, ev), (9, Some(FrameEvent::Start { id: 7, len_hint: 0 })));
    /// let (_, ev) = d.decode(&wire[n..]);
    /// assert!(matches!(ev, Some(FrameEvent::Data { id: 7, chunk: b"hi", .. })));
    /// ```
    #[inline]
    pub fn decode<'a>(&mut self, input: &'a [u8]) -> (usize, Option<FrameEvent<'a>>) {
        let (n, raw) = self.step(input);
        (n, raw.map(|r| r.view(input)))
    }

    /// Whether the decoder sits on a frame boundary (the stream may end here cleanly).
    pub const fn is_idle(&self) -> bool {
        matches!(self.state, State::Header { have: 0, .. })
    }

    /// Called at end of stream: `Err(Truncated)` if it ended inside a frame. Resets the decoder.
    pub fn finish(&mut self) -> Result<(), ProtocolError> {
        let missing = match self.state {
            State::Header { have: 0, .. } => return Ok(()),
            State::Header { have, .. } => (HEADER_LEN - have as usize) as u32,
            State::Payload { len, done, .. } => len - done,
        };
        self.state = State::Header {
            buf: [0; HEADER_LEN],
            have: 0,
        };
        Err(ProtocolError::Truncated { missing })
    }

    /// Forgets a frame in progress (its header bytes or the rest of its payload): the next
    /// byte is taken as the start of a frame. For a link layer that lost bytes and knows where
    /// the next frame begins.
    pub fn reset(&mut self) {
        self.state = State::Header {
            buf: [0; HEADER_LEN],
            have: 0,
        };
    }

    #[inline]
    pub(crate) fn step(&mut self, input: &[u8]) -> (usize, Option<RawFrameEvent>) {
        match &mut self.state {
            State::Header { buf, have } => {
                if *have == 0
                    && let Some(bytes) = input.first_chunk::<HEADER_LEN>()
                {
                    // Fast path: a whole header in the input, no copy.
                    return match self.on_header(bytes) {
                        AfterHeader::Payload(p) => self.step_payload(input, HEADER_LEN, true, p),
                        AfterHeader::Done(ev) => (HEADER_LEN, Some(ev)),
                    };
                }
                let take = (HEADER_LEN - *have as usize).min(input.len());
                buf[*have as usize..*have as usize + take].copy_from_slice(&input[..take]);
                *have += take as u8;
                if (*have as usize) < HEADER_LEN {
                    return (take, None);
                }
                let bytes = *buf;
                match self.on_header(&bytes) {
                    AfterHeader::Payload(p) => self.step_payload(input, take, true, p),
                    AfterHeader::Done(ev) => (take, Some(ev)),
                }
            }
            State::Payload { .. } => self.step_payload(input, 0, false, None),
        }
    }

    /// Handles a complete header: header-only frames give their event, Data frames switch the
    /// state to `Payload`.
    #[inline]
    fn on_header(&mut self, bytes: &[u8; HEADER_LEN]) -> AfterHeader {
        self.state = State::Header {
            buf: [0; HEADER_LEN],
            have: 0,
        };
        let ev = match Header::parse(bytes) {
            Ok(Header {
                kind: FrameType::Data,
                id,
                len,
            }) => {
                let skip = len > self.max_frame;
                self.state = State::Payload {
                    id,
                    len,
                    done: 0,
                    skip,
                };
                let err = ProtocolError::FrameTooLarge {
                    id,
                    len,
                    max: self.max_frame,
                };
                return AfterHeader::Payload(skip.then_some(RawFrameEvent::Error(err)));
            }
            Ok(Header {
                kind: FrameType::Start,
                id,
                len,
            }) => RawFrameEvent::Start { id, len_hint: len },
            Ok(Header {
                kind: FrameType::End,
                id,
                ..
            }) => RawFrameEvent::End { id },
            Ok(Header {
                kind: FrameType::Abort,
                id,
                ..
            }) => RawFrameEvent::Abort { id },
            Err(RawHeader { type_byte, id, .. }) => {
                RawFrameEvent::Error(ProtocolError::UnknownType { type_byte, id })
            }
        };
        AfterHeader::Done(ev)
    }

    /// Continues a payload at `input[at..]`. `first`: the header was just read; `pending` is
    /// an event it produced (the oversize error), which takes precedence over payload bytes.
    #[inline]
    fn step_payload(
        &mut self,
        input: &[u8],
        at: usize,
        first: bool,
        pending: Option<RawFrameEvent>,
    ) -> (usize, Option<RawFrameEvent>) {
        let State::Payload {
            id,
            len,
            done,
            skip,
        } = &mut self.state
        else {
            return (at, pending);
        };
        let (id, len) = (*id, *len);
        let left = (len - *done) as usize;
        let take = left.min(input.len() - at);
        let offset = *done;
        *done += take as u32;
        let finished = *done == len;
        let skip = *skip;
        if finished {
            self.state = State::Header {
                buf: [0; HEADER_LEN],
                have: 0,
            };
        }
        if let Some(ev) = pending {
            // The oversize error: skip what payload is already here, report the error.
            return (at + take, Some(ev));
        }
        if skip || (take == 0 && !first) {
            return (at + take, None);
        }
        let ev = RawFrameEvent::Data {
            id,
            chunk: at..at + take,
            first,
            offset,
            frame_len: len,
        };
        (at + take, Some(ev))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_events(d: &mut Decoder, input: &[u8], cut: usize) -> heapless::Vec<(u8, u32, u32), 64> {
        // (kind, id, bytes) with Data chunks of one frame merged by summing sizes.
        let mut out = heapless::Vec::new();
        for piece in input.chunks(cut.max(1)) {
            let mut rest = piece;
            while !rest.is_empty() {
                let (n, ev) = d.decode(rest);
                assert!(n > 0);
                rest = &rest[n..];
                let item = match ev {
                    None => continue,
                    Some(FrameEvent::Start { id, len_hint }) => (1, id, len_hint),
                    Some(FrameEvent::End { id }) => (2, id, 0),
                    Some(FrameEvent::Data { id, chunk, .. }) => (3, id, chunk.len() as u32),
                    Some(FrameEvent::Abort { id }) => (6, id, 0),
                    Some(FrameEvent::Error(_)) => (0, 0, 0),
                };
                out.push(item).unwrap();
            }
        }
        out
    }

    #[test]
    fn one_byte_at_a_time_gives_same_frames() {
        let mut wire = [0u8; 64];
        let n = crate::encode_into(&crate::Original, 4, b"hello world", &mut wire).unwrap();
        let whole = all_events(&mut Decoder::new(100), &wire[..n], n);
        assert_eq!(whole.as_slice(), &[(1, 4, 11), (3, 4, 11), (2, 4, 0)]);
        let bytewise = all_events(&mut Decoder::new(100), &wire[..n], 1);
        // Start, the Data header's event (no payload yet), 11 one-byte chunks, End.
        assert_eq!(bytewise.len(), 2 + 1 + 11);
        assert_eq!(bytewise[1], (3, 4, 0));
        assert!(bytewise[2..13].iter().all(|e| *e == (3, 4, 1)));
    }

    #[test]
    fn oversize_payload_is_skipped_and_sync_kept() {
        let mut wire = heapless::Vec::<u8, 128>::new();
        wire.extend_from_slice(&Header::new(FrameType::Data, 5, 20).to_bytes())
            .unwrap();
        wire.extend_from_slice(&[0xEE; 20]).unwrap();
        wire.extend_from_slice(&Header::new(FrameType::End, 9, 0).to_bytes())
            .unwrap();
        for cut in [1, 3, 9, 40] {
            let mut d = Decoder::new(10);
            let evs = all_events(&mut d, &wire, cut);
            assert_eq!(evs.as_slice(), &[(0, 0, 0), (2, 9, 0)], "cut {cut}");
            assert!(d.finish().is_ok());
        }
    }

    #[test]
    fn truncation_is_reported() {
        let mut d = Decoder::new(10);
        assert_eq!(d.decode(&[3, 0, 0]).0, 3);
        assert_eq!(d.finish(), Err(ProtocolError::Truncated { missing: 6 }));
        let (_, ev) = d.decode(&[3, 0, 0, 0, 1, 0, 0, 0, 4, b'a']);
        assert!(matches!(ev, Some(FrameEvent::Data { chunk: b"a", .. })));
        assert_eq!(d.finish(), Err(ProtocolError::Truncated { missing: 3 }));
        assert!(d.is_idle());
    }
}

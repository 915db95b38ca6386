//! Where a message stands between its holds.

#[cfg(feature = "tokio")]
use mux_nostd::Outgoing;
use mux_nostd::{FramePlan, HEADER_LEN, PlannedFrame, Strategy};

use crate::adaptive::Resolved;

use crate::error::SendError;

/// Where a message stands: the frame to write next (`None` once the last is written), how
/// many of its bytes are written (header first), and the frames after it. Between holds it
/// sits at a frame boundary (`written == 0`).
pub(crate) struct Cursor {
    pub(super) next: Option<PlannedFrame>,
    pub(super) written: usize,
    pub(super) rest: FramePlan,
    /// The whole message is at most [`SMALL`] frames.
    pub(crate) small: bool,
    /// Under Adaptive, the frames not written yet are cut at the chunk of the rate estimated
    /// before each write call ([`Resolved::follows`]).
    pub(super) follows: bool,
}

impl Cursor {
    #[inline]
    pub(crate) fn new(strategy: &Resolved, id: u32, len: usize) -> Result<Self, SendError> {
        let mut rest = FramePlan::new(strategy, id, len)?;
        // One chunk at most: Start, Data, End (as the plan cuts it).
        let small = len <= strategy.chunk_size(len as u32).max(1) as usize;
        Ok(Self {
            next: rest.next(),
            written: 0,
            rest,
            small,
            follows: strategy.follows(),
        })
    }

    /// Whether the message's last frame is written.
    #[cfg(feature = "tokio")]
    #[inline]
    pub(crate) fn is_done(&self) -> bool {
        self.next.is_none()
    }

    /// Frames of the whole message.
    #[cfg(feature = "tokio")]
    #[inline]
    pub(crate) fn frame_count(&self) -> u32 {
        self.rest.frame_count()
    }

    /// Hands what is left of the message over as an [`Outgoing`] (which can settle it: finish
    /// the frame in flight, then Abort), leaving this cursor done; `None` if nothing is left.
    #[cfg(feature = "tokio")]
    pub(crate) fn take_owed(&mut self) -> Option<Outgoing> {
        let frame = self.next.take()?;
        let written = std::mem::take(&mut self.written);
        Some(Outgoing::resume(self.rest.clone(), frame, written))
    }

    /// Past the current frame (at a frame boundary, after it was buffered).
    #[inline]
    pub(super) fn step(&mut self) {
        self.written = 0;
        self.next = self.rest.next();
    }

    /// Past `frames` whole frames (a batch written in full).
    #[inline]
    pub(super) fn skip(&mut self, frames: usize) {
        self.written = 0;
        if frames > 1 {
            self.rest.nth(frames - 2);
        }
        self.next = self.rest.next();
    }

    /// Records `n` bytes written from the current frame on; returns the payload bytes of
    /// the frames completed.
    #[inline]
    pub(super) fn consume(&mut self, mut n: usize) -> usize {
        let mut body = 0;
        while n > 0
            && let Some(f) = self.next
        {
            let left = HEADER_LEN + f.body_len() as usize - self.written;
            if n < left {
                self.written += n;
                break;
            }
            n -= left;
            body += f.body_len() as usize;
            self.step();
        }
        body
    }
}

/// The frames of a message of one chunk at most, for the fast paths: the Start header with
/// the next one (Data, or End for an empty message), the payload, the End header after a
/// Data frame.
pub(super) struct SmallFrames<'p> {
    pub(super) heads: [u8; 2 * HEADER_LEN],
    pub(super) body: &'p [u8],
    pub(super) end: Option<[u8; HEADER_LEN]>,
    /// Frames of the message (2 or 3).
    pub(super) count: u32,
}

impl<'p> SmallFrames<'p> {
    /// The core's plan of `payload` as message `id`; `None` if it takes more than one Data
    /// frame (or does not fit the wire format).
    #[inline]
    pub(super) fn plan(strategy: &Resolved, id: u32, payload: &'p [u8]) -> Option<Self> {
        let mut plan = FramePlan::new(strategy, id, payload.len()).ok()?;
        let (start, second) = (plan.next()?, plan.next()?);
        let third = plan.next();
        if plan.next().is_some() {
            return None; // more than one Data frame
        }
        let mut heads = [0u8; 2 * HEADER_LEN];
        heads[..HEADER_LEN].copy_from_slice(&start.header.to_bytes());
        heads[HEADER_LEN..].copy_from_slice(&second.header.to_bytes());
        let at = second.offset as usize;
        Some(Self {
            heads,
            body: payload.get(at..at + second.body_len() as usize)?,
            end: third.map(|f| f.header.to_bytes()),
            count: 2 + u32::from(third.is_some()),
        })
    }

    /// The End header after a Data frame (empty for an empty message).
    #[inline]
    pub(super) fn end(&self) -> &[u8] {
        self.end.as_ref().map_or(&[][..], |e| &e[..])
    }

    /// Bytes of the whole message on the wire.
    #[inline]
    pub(super) fn wire_len(&self) -> usize {
        2 * HEADER_LEN + self.body.len() + self.end().len()
    }
}

//! Where a message stands between its holds.

use mux_nostd::{FramePlan, HEADER_LEN, Outgoing, PlannedFrame, Strategy};

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
    #[inline]
    pub(crate) fn is_done(&self) -> bool {
        self.next.is_none()
    }

    /// Frames of the whole message.
    #[inline]
    pub(crate) fn frame_count(&self) -> u32 {
        self.rest.frame_count()
    }

    /// Hands what is left of the message over as an [`Outgoing`] (which can settle it: finish
    /// the frame in flight, then Abort), leaving this cursor done; `None` if nothing is left.
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

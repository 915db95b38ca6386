//! The async sender's hold: when it ends, and its write calls (one vectored write per
//! hold of several frames).

use std::io::IoSlice;

use mux_nostd::{FrameType, HEADER_LEN, Outgoing};

use super::coalescer::*;

/// Whether a hold that wrote `body` payload bytes ends before the next frame: it writes at
/// least one Data frame, then stops before a Data frame that would take it past `budget`
/// (header-only frames, like the End right after the last chunk, always go along). (The
/// async sender's rule for every hold.)
#[inline]
pub(crate) fn ends_before(
    body: usize,
    next_is_data: bool,
    next_body: usize,
    budget: usize,
) -> bool {
    next_is_data && body > 0 && body + next_body > budget
}

/// Whether the hold ends here (`out` at a frame boundary). (The async sender's.)
#[inline]
pub(crate) fn hold_ends(out: &Outgoing, payload: &[u8], body: usize, budget: usize) -> bool {
    if out.is_done() {
        return true;
    }
    if !out.at_frame_boundary() {
        return false;
    }
    let (h, b) = out.pending(payload);
    ends_before(
        body,
        h.first() == Some(&(FrameType::Data as u8)),
        b.len(),
        budget,
    )
}

/// Most frames one write call of the async sender gathers.
pub(super) const PLAN_GATHER: usize = 16;

/// One write call of the async sender: the buffered bytes, the rest of the current frame,
/// and the whole frames after it that the same hold writes (their headers copied here, their
/// bodies the caller's payload), so that a hold of several frames is one vectored write.
pub(crate) struct Plan {
    pub(super) heads: [[u8; HEADER_LEN]; PLAN_GATHER],
    pub(super) bodies: [(usize, usize); PLAN_GATHER],
    pub(super) frames: usize,
}

impl Plan {
    /// Plans the frames after the current one that fit the hold (`body` payload bytes
    /// written in it so far).
    #[inline]
    pub(crate) fn new(out: &Outgoing, payload: &[u8], body: usize, budget: usize) -> Self {
        let mut plan = Self {
            heads: [[0; HEADER_LEN]; PLAN_GATHER],
            bodies: [(0, 0); PLAN_GATHER],
            frames: 0,
        };
        // A message being settled carries filler, not its payload: frame by frame then.
        if out.is_done() || out.is_cancelled() {
            return plan;
        }
        let mut probe = out.clone();
        let (h, b) = probe.pending(payload);
        let mut body = body + b.len();
        probe.advance(h.len() + b.len());
        while plan.frames < PLAN_GATHER && !probe.is_done() {
            let (h, b) = probe.pending(payload);
            let is_data = h.first() == Some(&(FrameType::Data as u8));
            if ends_before(body, is_data, b.len(), budget) {
                break;
            }
            let Ok(head) = <[u8; HEADER_LEN]>::try_from(h) else {
                break;
            };
            // The body is a part of `payload`: find where.
            let at = (b.as_ptr() as usize).wrapping_sub(payload.as_ptr() as usize);
            if !b.is_empty() && payload.get(at..at + b.len()) != Some(b) {
                break;
            }
            plan.heads[plan.frames] = head;
            plan.bodies[plan.frames] = (if b.is_empty() { 0 } else { at }, b.len());
            plan.frames += 1;
            body += b.len();
            let n = h.len() + b.len();
            probe.advance(n);
        }
        plan
    }

    /// The slices to write and how many of them there are.
    #[inline]
    pub(crate) fn slices<'a>(
        &'a self,
        co: &'a Coalescer,
        out: &'a Outgoing,
        payload: &'a [u8],
    ) -> ([IoSlice<'a>; 3 + 2 * PLAN_GATHER], usize) {
        let (h, b) = out.pending(payload);
        let mut iov = [IoSlice::new(&[]); 3 + 2 * PLAN_GATHER];
        iov[0] = IoSlice::new(co.pending());
        iov[1] = IoSlice::new(h);
        iov[2] = IoSlice::new(b);
        for k in 0..self.frames {
            let (at, len) = self.bodies[k];
            iov[3 + 2 * k] = IoSlice::new(&self.heads[k]);
            iov[4 + 2 * k] = IoSlice::new(&payload[at..at + len]);
        }
        (iov, 3 + 2 * self.frames)
    }
}

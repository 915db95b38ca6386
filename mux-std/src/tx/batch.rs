//! One write call of the blocking sender: how many frames and bytes it gathers, and the
//! budget a hold keeps to once others wait.

use std::io::IoSlice;

use mux_nostd::{FrameType, HEADER_LEN, PlannedFrame};

use super::cursor::*;

/// Most frames one write call of the blocking sender gathers: two slices each at most (a
/// run of headers, a body), 130 `iovec`s in all, well within Linux's `IOV_MAX` of 1024.
/// ([`Batch`] is on the stack for each write call: about 3.7 KiB.)
pub(super) const GATHER: usize = 64;

/// Most payload bytes one vectored write call carries beyond its first frame. A sender that
/// starts waiting for the lock waits for the call in flight, so this bounds that wait (256 KiB:
/// about 2 ms on a 1 Gbit/s link) while keeping system calls few (the raw Unix socket pair
/// carries as much with 256 KiB writes as with 1 MiB ones here).
pub(super) const GATHER_BYTES: usize = 256 << 10;

/// Payload bytes a holder may still write once others wait, when all of them are senders of
/// messages of several chunks (at least; [`Config::hold_budget`] if larger). A one-chunk
/// message, a flush or a close waiting makes the holder yield within `hold_budget` as usual:
/// the bound for small messages stays one frame, while large messages interleave in 256 KiB
/// turns instead of handing the lock over at every 16 KiB chunk.
pub(super) const BULK_BUDGET: usize = 256 << 10;
/// Slices of such a write call: the shared buffer, a header run and a body per frame, the
/// last header run.
pub(super) const GATHER_IOV: usize = 2 * GATHER + 2;
/// Messages of at most this many frames (Start, Data, End: every message of one chunk) use a
/// small [`Batch`], which costs less to set up.
pub(super) const SMALL: usize = 4;
/// Slices of a small batch.
pub(super) const SMALL_IOV: usize = 2 * SMALL + 2;

/// Whether a Data frame of `len` payload bytes is past what a hold may still write once a
/// contender was seen: `since` bytes were written since, `body` in the whole hold (a hold
/// always writes one Data frame). Also a cancellable send's limit per write call.
#[inline]
pub(super) fn past_budget(body: usize, since: usize, len: usize, budget: usize) -> bool {
    body > 0 && since + len > budget
}

/// One write call of the blocking sender: the rest of the current frame and up to `F - 1`
/// whole frames after it (their headers here, their bodies the caller's payload).
pub(super) struct Batch<const F: usize> {
    pub(super) heads: [[u8; HEADER_LEN]; F],
    pub(super) bodies: [(u32, u32); F],
    pub(super) frames: usize,
    /// Wire bytes of the batch from the message's current position on (what a whole write
    /// takes), and the payload bytes of its frames.
    pub(super) wire: usize,
    pub(super) body: usize,
}

impl<const F: usize> Batch<F> {
    /// Gathers the frames of one write call. `body` payload bytes were written in this hold;
    /// if a contender was seen, `hold_budget` counts from `seen_at` and the call stops where
    /// the hold must. A `cancellable` send writes one Data frame per call (plus `budget`), so
    /// that it asks whether to stop within one chunk.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn gather(
        &mut self,
        msg: &Cursor,
        body: usize,
        seen_at: Option<usize>,
        hold_budget: usize,
        cancellable: bool,
        budget: usize,
        call_cap: usize,
    ) {
        let Some(first) = msg.next else {
            return;
        };
        self.push(&first);
        self.wire -= msg.written;
        let mut call = first.body_len() as usize;
        let mut probe = msg.rest.clone();
        while self.frames < F
            && let Some(f) = probe.next()
        {
            if f.header.kind == FrameType::Data {
                let len = f.header.len as usize;
                let upto = body + call;
                if seen_at
                    .is_some_and(|a| past_budget(upto, upto.saturating_sub(a), len, hold_budget))
                    || (cancellable && past_budget(call, call, len, budget))
                    || past_budget(call, call, len, call_cap)
                {
                    break;
                }
            }
            self.push(&f);
            call += f.body_len() as usize;
        }
        self.body = call;
    }

    #[inline]
    pub(super) fn push(&mut self, f: &PlannedFrame) {
        self.heads[self.frames] = f.header.to_bytes();
        self.bodies[self.frames] = (f.offset, f.body_len());
        self.wire += HEADER_LEN + f.body_len() as usize;
        self.frames += 1;
    }

    /// Fills `iov` with the slices to write (`buffered` first, then the frames, the first of
    /// them `skip` bytes in) and returns how many there are. Headers with no body between
    /// them share one slice.
    #[inline(always)]
    pub(super) fn slices<'a>(
        &'a self,
        iov: &mut [IoSlice<'a>],
        buffered: &'a [u8],
        skip: usize,
        payload: &'a [u8],
    ) -> usize {
        let heads = self.heads[..self.frames].as_flattened();
        let mut k = 0;
        if !buffered.is_empty() {
            iov[0] = IoSlice::new(buffered);
            k = 1;
        }
        // Header bytes from `run` on are not in a slice yet.
        let mut run = skip.min(HEADER_LEN);
        for (f, &(at, len)) in self.bodies[..self.frames].iter().enumerate() {
            let (mut at, mut len) = (at as usize, len as usize);
            if f == 0 && skip > HEADER_LEN {
                at += skip - HEADER_LEN;
                len -= skip - HEADER_LEN;
            }
            if len == 0 {
                continue;
            }
            let end = HEADER_LEN * (f + 1);
            if run < end {
                iov[k] = IoSlice::new(&heads[run..end]);
                k += 1;
            }
            iov[k] = IoSlice::new(&payload[at..at + len]);
            k += 1;
            run = end;
        }
        if run < heads.len() {
            iov[k] = IoSlice::new(&heads[run..]);
            k += 1;
        }
        k
    }
}

//! The shared write buffer where small frames of several senders gather.

#[cfg(feature = "tokio")]
use mux_nostd::Outgoing;
use mux_nostd::{FrameType, HEADER_LEN, Header, PlannedFrame};

use crate::config::Config;

/// The shared write buffer: small frames are copied here, written by the last sender out.
/// It never holds more than `cap` bytes (no allocation after it is made).
#[derive(Debug)]
pub(crate) struct Coalescer {
    pub(super) buf: Vec<u8>,
    pub(super) off: usize,
    pub(super) frame_max: usize,
    pub(super) cap: usize,
}

impl Coalescer {
    /// The buffer of a validated `config`: `write_buffer` bytes (at least `coalesce_frame`),
    /// or, with coalescing off, room for one Abort header.
    pub(crate) fn new(config: &Config) -> Self {
        let cap = if config.coalesce_frame == 0 {
            HEADER_LEN
        } else {
            config
                .write_buffer
                .max(config.coalesce_frame)
                .max(HEADER_LEN)
        };
        Self {
            buf: Vec::with_capacity(cap),
            off: 0,
            frame_max: config.coalesce_frame,
            cap,
        }
    }

    /// Copies the rest of the current frame if it is small and fits; advances `out`.
    /// Returns the payload bytes copied. (The async sender's.)
    #[cfg(feature = "tokio")]
    #[inline]
    pub(crate) fn try_copy(&mut self, out: &mut Outgoing, payload: &[u8]) -> Option<usize> {
        let (h, b) = out.pending(payload);
        let n = h.len() + b.len();
        if n > self.frame_max || self.buf.len() + n > self.cap {
            return None;
        }
        self.buf.extend_from_slice(h);
        self.buf.extend_from_slice(b);
        let body = b.len();
        out.advance(n);
        Some(body)
    }

    /// Records `n` bytes of a [`Plan`]'s slices written: buffered bytes first, then the
    /// frames of `out`. Adds the payload bytes among them to `body`. (The async sender's.)
    #[cfg(feature = "tokio")]
    #[inline]
    pub(crate) fn consumed(
        &mut self,
        out: &mut Outgoing,
        payload: &[u8],
        n: usize,
        body: &mut usize,
    ) {
        let from_buf = n.min(self.buf.len() - self.off);
        self.sent(from_buf);
        let mut n = n - from_buf;
        while n > 0 {
            let (h, b) = out.pending(payload);
            let take = n.min(h.len() + b.len());
            if take == 0 {
                break; // never: a write takes no more than was offered
            }
            *body += take.saturating_sub(h.len());
            out.advance(take);
            n -= take;
        }
    }

    /// Copies a whole frame (header and body) if it is small and fits.
    #[inline]
    pub(super) fn put(&mut self, frame: &PlannedFrame, payload: &[u8]) -> bool {
        let body = frame.body_len() as usize;
        let n = HEADER_LEN + body;
        if n > self.frame_max || self.buf.len() + n > self.cap {
            return false;
        }
        let at = frame.offset as usize;
        self.buf.extend_from_slice(&frame.header.to_bytes());
        self.buf.extend_from_slice(&payload[at..at + body]);
        true
    }

    /// Copies the frames of a small message — `heads` (two headers), `body` (the second
    /// one's), `end` (a header or nothing) — if every one of them is small and all fit, as
    /// [`put`](Self::put) of each in turn would.
    #[inline]
    pub(super) fn put_all(&mut self, heads: &[u8], body: &[u8], end: &[u8]) -> bool {
        let n = heads.len() + body.len() + end.len();
        // The largest frame is the second header with the body.
        if HEADER_LEN + body.len() > self.frame_max || self.buf.len() + n > self.cap {
            return false;
        }
        self.buf.extend_from_slice(heads);
        self.buf.extend_from_slice(body);
        self.buf.extend_from_slice(end);
        true
    }

    /// Buffered bytes not yet written.
    #[inline]
    pub(crate) fn pending(&self) -> &[u8] {
        &self.buf[self.off..]
    }

    /// Records `n` buffered bytes written.
    #[inline]
    pub(crate) fn sent(&mut self, n: usize) {
        self.off += n;
        if self.off == self.buf.len() {
            self.buf.clear();
            self.off = 0;
        }
    }

    /// Buffers an Abort header (for a message cut between two holds) if it fits; `false`:
    /// the buffer is full, write it out first.
    #[must_use]
    pub(crate) fn push_abort(&mut self, id: u32) -> bool {
        if self.buf.len() + HEADER_LEN > self.cap {
            return false;
        }
        self.buf
            .extend_from_slice(&Header::new(FrameType::Abort, id, 0).to_bytes());
        true
    }
}

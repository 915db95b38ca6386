//! The write path: one message framed into an in-memory buffer that is reused every
//! iteration (the seed's benchmark), and its floor, a plain copy of the payload into the same
//! buffer.

use std::hint::black_box;
use std::io::{self, IoSlice, Write};

use mux_nostd::{AnyStrategy, Frames, Original, Strategy, Writer, encode_into};

use crate::{DST_PAGE_OFFSET, PageBuf, SRC_PAGE_OFFSET};

/// The message id every benchmark message carries.
pub const ID: u32 = 7;

/// A payload and a buffer big enough for it framed by any strategy.
#[derive(Debug)]
pub struct WriteBench {
    /// The message payload (at [`SRC_PAGE_OFFSET`] in its page).
    pub payload: PageBuf,
    /// The buffer the message is framed into, reused by every iteration (at
    /// [`DST_PAGE_OFFSET`] in its page).
    pub buf: PageBuf,
}

impl WriteBench {
    /// A bench for messages of `len` bytes, payload and buffer placed as
    /// [`SRC_PAGE_OFFSET`] and [`DST_PAGE_OFFSET`] say.
    pub fn new(len: usize) -> Self {
        Self::with_layout(len, SRC_PAGE_OFFSET, DST_PAGE_OFFSET)
    }

    /// A bench whose payload and buffer start at the given offsets within their pages.
    pub fn with_layout(len: usize, src_page_offset: usize, dst_page_offset: usize) -> Self {
        let payload = PageBuf::from_slice(&crate::payload(len), src_page_offset);
        // Original has the most frames (1 KiB chunks), so the largest wire size.
        let cap = Frames::new(&Original, ID, &payload)
            .expect("message fits u32")
            .wire_len();
        Self {
            payload,
            buf: PageBuf::zeroed(cap, dst_page_offset),
        }
    }

    /// The floor: the payload copied into the buffer.
    #[inline(always)]
    pub fn floor(&mut self) {
        let p = black_box(&self.payload[..]);
        self.buf[..p.len()].copy_from_slice(p);
        black_box(&mut self.buf);
    }

    /// Sends the payload as one message through mux-nostd's blocking [`Writer`] over
    /// `&mut [u8]` (an `embedded_io::Write`), returning the wire bytes written.
    #[inline(always)]
    pub fn nostd<S: Strategy>(&mut self, strategy: S) -> usize {
        let cap = self.buf.len();
        let mut w = Writer::new(&mut self.buf[..], strategy);
        if w.send_with_id(ID, black_box(&self.payload[..])).is_err() {
            panic!("the buffer holds the whole message");
        }
        let n = cap - w.into_inner().len();
        black_box(&mut self.buf);
        n
    }

    /// The framing floor: the same frames as `strategy` writes (headers and payload chunks at
    /// the same offsets), by a hand-written loop with no state machine and no I/O trait: what
    /// the wire format itself costs with the platform's `memcpy`. Returns the bytes written.
    #[inline(always)]
    pub fn framed_floor<S: Strategy>(&mut self, strategy: S) -> usize {
        let p = black_box(&self.payload[..]);
        let total = p.len() as u32;
        let chunk = strategy.chunk_size(total).max(1) as usize;
        let buf = &mut self.buf[..];
        let mut at = 0;
        let header = |buf: &mut [u8], at: &mut usize, kind: u8, len: u32| {
            buf[*at] = kind;
            buf[*at + 1..*at + 5].copy_from_slice(&ID.to_be_bytes());
            buf[*at + 5..*at + 9].copy_from_slice(&len.to_be_bytes());
            *at += 9;
        };
        header(buf, &mut at, 1, strategy.start_len(total));
        for c in p.chunks(chunk) {
            header(buf, &mut at, 3, c.len() as u32);
            buf[at..at + c.len()].copy_from_slice(c);
            at += c.len();
        }
        header(buf, &mut at, 2, 0);
        black_box(&mut self.buf);
        at
    }

    /// Encodes the message with the sans-IO [`encode_into`] (no `Writer`).
    #[inline(always)]
    pub fn encode<S: Strategy>(&mut self, strategy: S) -> usize {
        let n = encode_into(&strategy, ID, black_box(&self.payload[..]), &mut self.buf)
            .expect("the buffer holds the whole message");
        black_box(&mut self.buf);
        n
    }
}

/// An in-memory `std::io::Write` sink of exactly one message's wire size that starts over at
/// its beginning once full: a sink owned by a mux-std [`Sender`](mux_std::Sender) that is
/// "reset each iteration" without reaching into the sender.
#[derive(Debug)]
pub struct CycleSink {
    buf: PageBuf,
    pos: usize,
}

impl CycleSink {
    /// A sink of `len` bytes, placed at [`DST_PAGE_OFFSET`] in its page.
    pub fn new(len: usize) -> Self {
        Self {
            buf: PageBuf::zeroed(len.max(1), DST_PAGE_OFFSET),
            pos: 0,
        }
    }
}

impl Write for CycleSink {
    #[inline]
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.pos == self.buf.len() {
            self.pos = 0;
        }
        let n = data.len().min(self.buf.len() - self.pos);
        self.buf[self.pos..self.pos + n].copy_from_slice(&data[..n]);
        self.pos += n;
        Ok(n)
    }

    /// What [`write`](Self::write) would do slice by slice, with the buffer looked up once per
    /// call rather than once per slice: the sink's own cost stays small beside the writer's.
    #[inline]
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let buf: &mut [u8] = &mut self.buf;
        let mut pos = self.pos;
        let mut total = 0;
        for b in bufs {
            if pos == buf.len() {
                pos = 0;
            }
            let n = b.len().min(buf.len() - pos);
            buf[pos..pos + n].copy_from_slice(&b[..n]);
            pos += n;
            total += n;
            if n < b.len() {
                break;
            }
        }
        self.pos = pos;
        Ok(total)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One message framed by mux-std's thread-safe [`Sender`](mux_std::Sender) (default
/// configuration but the strategy) into a [`CycleSink`] of exactly its wire size.
pub struct StdWrite {
    /// The message payload (at [`SRC_PAGE_OFFSET`] in its page).
    pub payload: PageBuf,
    sender: mux_std::Sender<CycleSink>,
}

impl std::fmt::Debug for StdWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdWrite")
            .field("len", &self.payload.len())
            .finish_non_exhaustive()
    }
}

impl StdWrite {
    /// A bench for `len`-byte messages sent with `strategy`. Checks once that the sender's
    /// bytes equal the sans-IO encoder's.
    pub fn new(len: usize, strategy: impl Into<AnyStrategy>) -> Self {
        Self::with_histograms(len, strategy, true)
    }

    /// [`new`](Self::new) with the sender's distributions
    /// ([`Config::histograms`](mux_std::Config::histograms)) on or off.
    pub fn with_histograms(len: usize, strategy: impl Into<AnyStrategy>, on: bool) -> Self {
        let strategy = strategy.into();
        let payload = PageBuf::from_slice(&crate::payload(len), SRC_PAGE_OFFSET);
        let cfg = mux_std::Config {
            histograms: on,
            ..mux_std::Config::with_strategy(strategy)
        };
        let wire = Frames::new(&strategy, ID, &payload)
            .expect("message fits u32")
            .wire_len();
        let mut check = Vec::new();
        {
            let tx = mux_std::Sender::new(&mut check, &cfg).expect("valid config");
            tx.send_with_id(ID, &payload).expect("send");
            tx.flush().expect("flush");
        }
        let mut want = vec![0; wire];
        encode_into(&strategy, ID, &payload, &mut want).expect("fits");
        assert!(
            check == want,
            "mux-std's Sender output differs from encode_into"
        );
        Self {
            payload,
            sender: mux_std::Sender::new(CycleSink::new(wire), &cfg).expect("valid config"),
        }
    }

    /// Sends the payload as one message (the sender writes it to the sink before returning).
    #[inline(always)]
    pub fn send(&mut self) {
        if self
            .sender
            .send_with_id(ID, black_box(&self.payload[..]))
            .is_err()
        {
            panic!("an in-memory sink cannot fail");
        }
    }
}

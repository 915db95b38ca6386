//! The write path: one message framed into an in-memory buffer that is reused every
//! iteration (the seed's benchmark), and its floor, a plain copy of the payload into the same
//! buffer.

use std::hint::black_box;

use mux_nostd::{Frames, Original, Strategy, Writer, encode_into};

/// The message id every benchmark message carries.
pub const ID: u32 = 7;

/// A payload and a buffer big enough for it framed by any strategy.
#[derive(Debug)]
pub struct WriteBench {
    /// The message payload.
    pub payload: Vec<u8>,
    /// The buffer the message is framed into, reused by every iteration.
    pub buf: Vec<u8>,
}

impl WriteBench {
    /// A bench for messages of `len` bytes.
    pub fn new(len: usize) -> Self {
        let payload = crate::payload(len);
        // Original has the most frames (1 KiB chunks), so the largest wire size.
        let cap = Frames::new(&Original, ID, &payload)
            .expect("message fits u32")
            .wire_len();
        Self {
            payload,
            buf: vec![0; cap],
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

    /// Encodes the message with the sans-IO [`encode_into`] (no `Writer`).
    #[inline(always)]
    pub fn encode<S: Strategy>(&mut self, strategy: S) -> usize {
        let n = encode_into(&strategy, ID, black_box(&self.payload[..]), &mut self.buf)
            .expect("the buffer holds the whole message");
        black_box(&mut self.buf);
        n
    }
}

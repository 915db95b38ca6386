//! The read path: the streams of the write path decoded and reassembled from memory, and its
//! floor, a plain copy of the payload into a buffer.
//!
//! Three receivers, all from mux-nostd:
//! - [`ReadBench::reassemble`]: the sans-IO [`Reassembler`] fed the whole stream, collecting the
//!   message in [`READ_POOL`] blocks (one copy of the payload);
//! - [`ReadBench::reader`]: the blocking [`Reader`] over `&[u8]` (an `embedded_io::Read`) with
//!   a [`RX_BUF`]-byte receive buffer and the same reassembler (two copies: into the receive
//!   buffer, then into the pool);
//! - [`ReadBench::streaming`]: the streaming [`Demux`] (no message buffer), its chunks copied
//!   into a flat buffer (one copy).

use std::hint::black_box;

use crate::PageBuf;
use mux_nostd::{Demux, Event, Limits, Pool, Reader, Reassembler, Received, Strategy, encode_into};

/// Block size of the read path's pool.
pub const BLOCK: usize = 16 * 1024;
/// Blocks in the read path's pool: room for one 4 MiB message.
pub const BLOCKS: usize = 260;
/// The receive buffer of [`ReadBench::reader`].
pub const RX_BUF: usize = 16 * 1024;

/// The pool the read benchmarks reassemble into (static, as on a microcontroller).
pub static READ_POOL: Pool<BLOCKS, BLOCK> = Pool::new();

/// The reassembler type used by the read benchmarks.
pub type BenchReassembler = Reassembler<'static, 4, BLOCKS, BLOCK>;

/// One encoded message and a destination buffer.
#[derive(Debug)]
pub struct ReadBench {
    /// The payload (to check what was received; the floor's source), half a page away from
    /// [`READ_POOL`]'s page offset.
    pub payload: PageBuf,
    /// The message on the wire, half a page away from [`READ_POOL`]'s page offset.
    pub wire: PageBuf,
    /// Where the floor and the streaming receiver copy the payload, at [`READ_POOL`]'s page
    /// offset.
    pub dest: PageBuf,
    /// The blocking reader's receive buffer.
    pub rx: Vec<u8>,
}

impl ReadBench {
    /// A stream of one `len`-byte message framed with `strategy`.
    pub fn new<S: Strategy>(len: usize, strategy: S) -> Self {
        let payload = crate::payload(len);
        let mut wire = vec![0; len + 9 * (len / 1024 + 3)];
        let n = encode_into(&strategy, crate::write::ID, &payload, &mut wire).expect("fits");
        // The pool is a static whose page offset the linker chose: the stream and the payload
        // sit half a page away from it, and the flat destination at the pool's offset, so that
        // no copy of the read path runs into 4K aliasing (see `crate::DST_PAGE_OFFSET`).
        let pool = core::ptr::addr_of!(READ_POOL) as usize % 4096;
        let src = (pool + 2048) % 4096;
        Self {
            dest: PageBuf::zeroed(len, pool),
            payload: PageBuf::from_slice(&payload, src),
            wire: PageBuf::from_slice(&wire[..n], src),
            rx: vec![0; RX_BUF],
        }
    }

    /// The floor: the payload copied into a buffer.
    #[inline(always)]
    pub fn floor(&mut self) {
        let p = black_box(&self.payload[..]);
        self.dest[..p.len()].copy_from_slice(p);
        black_box(&mut self.dest);
    }

    /// Reassembles the stream with the sans-IO [`Reassembler`]; returns the message size.
    #[inline(always)]
    pub fn reassemble(&mut self) -> usize {
        let mut core: BenchReassembler = Reassembler::new(&READ_POOL, Limits::REFERENCE);
        let mut got = 0;
        core.feed_all(black_box(&self.wire[..]), |item| match item {
            Received::Message(m) => got += black_box(&m).len(),
            other => panic!("unexpected {other:?}"),
        });
        got
    }

    /// Receives the stream through the blocking [`Reader`] and the [`Reassembler`].
    #[inline(always)]
    pub fn reader(&mut self) -> usize {
        let core: BenchReassembler = Reassembler::new(&READ_POOL, Limits::REFERENCE);
        let mut rx = Reader::new(black_box(&self.wire[..]), &mut self.rx, core);
        let mut got = 0;
        while let Some(item) = rx.recv().expect("reading memory cannot fail") {
            match item {
                Received::Message(m) => got += black_box(&m).len(),
                other => panic!("unexpected {other:?}"),
            }
        }
        got
    }

    /// Receives the stream with the streaming [`Demux`], copying chunks into a flat buffer.
    #[inline(always)]
    pub fn streaming(&mut self) -> usize {
        let mut demux: Demux<(), 4> = Demux::new(Limits::REFERENCE);
        let mut input = black_box(&self.wire[..]);
        let mut at = 0;
        let mut done = 0;
        while !input.is_empty() {
            let (n, ev) = demux.feed(input);
            match ev {
                Some(Event::Data { chunk, .. }) => {
                    self.dest[at..at + chunk.len()].copy_from_slice(chunk);
                    at += chunk.len();
                }
                Some(Event::Completed { .. }) => done = at,
                Some(Event::Started { .. }) | None => {}
                Some(other) => panic!("unexpected {other:?}"),
            }
            input = &input[n..];
        }
        black_box(&mut self.dest);
        done
    }

    /// Checks that every receiver delivers the payload intact (not timed).
    pub fn verify(&mut self) {
        let want = self.payload.len();
        let mut core: BenchReassembler = Reassembler::new(&READ_POOL, Limits::REFERENCE);
        let mut ok = false;
        core.feed_all(&self.wire, |item| {
            if let Received::Message(m) = item {
                ok = m.body().eq_slice(&self.payload);
            }
        });
        assert!(ok, "reassembled payload differs");
        assert_eq!(self.reader(), want);
        self.dest.fill(0);
        assert_eq!(self.streaming(), want);
        assert!(
            self.dest[..] == self.payload[..],
            "streamed payload differs"
        );
        assert_eq!(READ_POOL.stats().in_use, 0, "blocks leaked");
    }
}

/// A `std::io::Read` that yields the same encoded stream `times` times over.
#[derive(Debug)]
struct Repeat {
    wire: std::sync::Arc<Vec<u8>>,
    pos: usize,
    left: usize,
}

impl std::io::Read for Repeat {
    /// Fills `buf` with as much of the repeated stream as it holds, as a socket or pipe with
    /// that much waiting does.
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut done = 0;
        while self.left > 0 && done < buf.len() {
            let n = (self.wire.len() - self.pos).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&self.wire[self.pos..self.pos + n]);
            self.pos += n;
            done += n;
            if self.pos == self.wire.len() {
                self.pos = 0;
                self.left -= 1;
            }
        }
        Ok(done)
    }
}

/// mux-std's read path from memory: a [`mux_std::Receiver`] (default configuration: its
/// reader thread, a 256 KiB read buffer, pooled heap buffers, a channel) over a reader that
/// yields `wire` (one encoded message of `msg_len` bytes) `times` times, drained by this
/// thread. Returns nanoseconds per message, thread start included.
pub fn std_receiver(wire: &std::sync::Arc<Vec<u8>>, msg_len: usize, times: usize) -> f64 {
    let start = std::time::Instant::now();
    let src = Repeat {
        wire: std::sync::Arc::clone(wire),
        pos: 0,
        left: times,
    };
    let rx = mux_std::Receiver::spawn(src, &mux_std::Config::default()).expect("reader thread");
    let mut got = 0usize;
    loop {
        match rx.recv() {
            Ok(mux_std::Received::Message(m)) => {
                assert_eq!(black_box(&m).body().len(), msg_len, "message size");
                got += 1;
            }
            Ok(other) => panic!("unexpected {other:?}"),
            Err(mux_std::RecvError::Closed) => break,
            Err(e) => panic!("receive: {e}"),
        }
    }
    assert_eq!(got, times, "messages lost");
    start.elapsed().as_nanos() as f64 / times as f64
}

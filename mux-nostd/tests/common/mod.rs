//! Helpers shared by the core's integration tests.
#![allow(dead_code)]

use mux_nostd::{Limits, Pool, ProtocolError, Reassembler, Received};

#[allow(unused_imports)] // each test binary uses some of them
pub use mux_test_support::{rule_r, vector, vectors_with_prefix};

/// What a receiver delivered, owned, for comparisons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Msg(u32, Vec<u8>),
    Aborted(u32),
    Err(ProtocolError),
}

impl Outcome {
    pub fn msg(id: u32, body: &[u8]) -> Self {
        Self::Msg(id, body.to_vec())
    }
}

pub fn own<const B: usize, const S: usize>(r: Received<'_, B, S>) -> Outcome {
    match r {
        Received::Message(m) => {
            let mut v = vec![0; m.len()];
            assert_eq!(m.body().copy_to(&mut v), m.len());
            let mut joined = Vec::new();
            for c in m.body().chunks() {
                joined.extend_from_slice(c);
            }
            assert_eq!(joined, v, "chunks and copy_to agree");
            Outcome::Msg(m.id(), v)
        }
        Received::Aborted { id } => Outcome::Aborted(id),
        Received::Error(e) => Outcome::Err(e),
    }
}

/// Decodes `wire` fed in pieces of `cut` bytes with a reassembler of table capacity 8 over
/// `pool`, and the end-of-stream reports; checks that every block went back to the pool.
pub fn decode_with<const B: usize, const S: usize>(
    pool: &Pool<B, S>,
    limits: Limits,
    wire: &[u8],
    cut: usize,
) -> Vec<Outcome> {
    let mut out = Vec::new();
    {
        let mut r: Reassembler<'_, 8, B, S> = Reassembler::new(pool, limits);
        for piece in wire.chunks(cut.max(1)) {
            r.feed_all(piece, |item| out.push(own(item)));
        }
        while let Some(item) = r.finish() {
            out.push(own(item));
        }
        assert_eq!(r.open_count(), 0);
    }
    assert_eq!(pool.stats().in_use, 0, "pool back to full");
    out
}

/// `decode_with` on a 4 MiB static pool of 1 KiB blocks (one test at a time uses it) and
/// the reference's 10 MiB limit.
pub fn decode(wire: &[u8], cut: usize) -> Vec<Outcome> {
    static POOL: Pool<4096, 1024> = Pool::new();
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    decode_with(&POOL, Limits::REFERENCE, wire, cut)
}

/// Cut sizes every decoding test runs with (one byte at a time included).
pub const CUTS: [usize; 7] = [1, 2, 5, 9, 10, 64, usize::MAX];

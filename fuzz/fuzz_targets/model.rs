//! (c) The reassembler compared with the plain reference model of `mux_fuzz::Model`, on
//! streams of arbitrary frames (valid and not) cut at arbitrary points.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use mux_fuzz::{Model, normalise, reassemble};
use mux_nostd::{Limits, Pool};

#[derive(Debug, Arbitrary)]
struct Frame {
    ty: u8,
    id: u8,
    len: u8,
    fill: u8,
    /// Put fewer (or more) payload bytes than the length field says.
    lie: Option<u8>,
}

#[derive(Debug, Arbitrary)]
struct Input {
    frames: Vec<Frame>,
    cuts: Vec<u8>,
}

fuzz_target!(|input: Input| {
    let mut wire = Vec::new();
    for f in &input.frames {
        // Mostly the four valid types, sometimes any byte.
        let ty = match f.ty % 8 {
            0 | 1 => 1,
            2 => 2,
            3 | 4 | 5 => 3,
            6 => 6,
            _ => f.ty,
        };
        let id = u32::from(f.id % 12);
        let len = u32::from(f.len) * 2;
        wire.push(ty);
        wire.extend_from_slice(&id.to_be_bytes());
        wire.extend_from_slice(&len.to_be_bytes());
        if ty == 3 {
            let n = f.lie.map_or(len as usize, usize::from);
            wire.extend(std::iter::repeat_n(f.fill, n));
        }
    }
    let limits = Limits {
        max_message: 600,
        max_frame: 300,
    };
    let model = Model {
        capacity: 4,
        blocks: 12,
        block_size: 64,
        limits,
        memory: 4, // the table's capacity
    };
    let want = normalise(model.run(&wire));
    let cuts: Vec<usize> = input.cuts.iter().map(|&c| usize::from(c) + 1).collect();
    let pool: Pool<12, 64> = Pool::new();
    let got = normalise(reassemble::<4, 12, 64>(&pool, limits, &wire, &cuts));
    assert_eq!(got, want);
});

//! Corruption of valid streams: flipped, dropped or inserted bytes never panic, never hang,
//! never leak a pool block; and where the framing survives (length fields untouched), every
//! message whose frames were untouched is still delivered intact.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{Outcome, decode_with};
use mux_nostd::{AnyStrategy, Frames, Limits, Pool};
use proptest::prelude::*;

fn strategy() -> impl Strategy<Value = AnyStrategy> {
    prop_oneof![
        Just(AnyStrategy::Original),
        Just(AnyStrategy::Optimized),
        Just(AnyStrategy::Hybrid { threshold: 8192 }),
    ]
}

/// A stream of messages (ids 1000, 2000, …) interleaved round-robin, with the byte range
/// of every frame and which message it belongs to.
struct Stream {
    wire: Vec<u8>,
    /// (start, end, message index) of each frame.
    frames: Vec<(usize, usize, usize)>,
    payloads: Vec<Vec<u8>>,
}

fn build(msgs: &[(AnyStrategy, Vec<u8>)]) -> Stream {
    let mut iters: Vec<_> = msgs
        .iter()
        .enumerate()
        .map(|(i, (s, p))| Frames::new(s, (i as u32 + 1) * 1000, p).unwrap())
        .collect();
    let mut wire = Vec::new();
    let mut frames = Vec::new();
    loop {
        let mut any = false;
        for (i, it) in iters.iter_mut().enumerate() {
            if let Some((h, body)) = it.next() {
                let start = wire.len();
                wire.extend_from_slice(&h);
                wire.extend_from_slice(body);
                frames.push((start, wire.len(), i));
                any = true;
            }
        }
        if !any {
            break;
        }
    }
    Stream {
        wire,
        frames,
        payloads: msgs.iter().map(|m| m.1.clone()).collect(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: if cfg!(miri) { 2 } else { 256 }, ..ProptestConfig::default() })]

    #[test]
    fn untouched_messages_survive_corruption_that_keeps_the_framing(
        // At most 3 messages and 5 hits: even if every hit turns a Start into a new id that is
        // never closed, the 8-entry table never refuses a valid message.
        msgs in prop::collection::vec((strategy(), prop::collection::vec(any::<u8>(), 0..6000)), 2..=3),
        hits in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..=5),
        cut in 1usize..200,
    ) {
        let Stream { mut wire, frames, payloads } = build(&msgs);
        // Corrupt only bytes that do not carry framing: payload bytes and id bytes.
        let mut touched = BTreeSet::new();
        let mut corrupted_ids = BTreeSet::new();
        for (at, x) in hits {
            let (start, end, m) = frames[at.index(frames.len())];
            let offset = at.index(end - start);
            if (5..9).contains(&offset) {
                continue; // a length byte: would change the framing
            }
            if offset == 0 {
                continue; // the type byte decides whether a payload follows
            }
            wire[start + offset] ^= x;
            touched.insert(m);
            if (1..5).contains(&offset) {
                let id = u32::from_be_bytes(wire[start + 1..start + 5].try_into().unwrap());
                corrupted_ids.insert(id);
            }
        }
        let pool: Pool<64, 1024> = Pool::new();
        let got = decode_with(&pool, Limits::new(8192), &wire, cut);
        let delivered: BTreeMap<u32, &Vec<u8>> = got
            .iter()
            .filter_map(|o| match o { Outcome::Msg(id, b) => Some((*id, b)), _ => None })
            .collect();
        for (m, payload) in payloads.iter().enumerate() {
            let id = (m as u32 + 1) * 1000;
            if touched.contains(&m) || corrupted_ids.contains(&id) {
                continue;
            }
            prop_assert_eq!(delivered.get(&id), Some(&payload), "message {} lost", id);
        }
    }

    #[test]
    fn any_flip_drop_or_insert_never_panics_or_leaks(
        msgs in prop::collection::vec((strategy(), prop::collection::vec(any::<u8>(), 0..6000)), 1..6),
        hits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..10),
        cut in 1usize..200,
    ) {
        let Stream { mut wire, .. } = build(&msgs);
        for (at, byte, how) in hits {
            let i = at.index(wire.len());
            match how {
                0 => wire[i] ^= byte | 1,
                1 => { wire.remove(i); }
                _ => wire.insert(i, byte),
            }
        }
        let pool: Pool<16, 256> = Pool::new();
        // decode_with asserts the pool is full again and the table empty afterwards.
        let got = decode_with(&pool, Limits::new(4096), &wire, cut);
        prop_assert!(got.len() <= wire.len() / 9 + 8 + 1, "bounded output");
    }
}

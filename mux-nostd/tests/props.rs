//! Property tests: any payloads (up to 200 KiB), any strategy, any interleaving of up to the
//! table's capacity of messages, any cut points: everything decodes byte-exact; any corruption
//! never panics and leaks nothing.

mod common;

use common::{Outcome, decode_with, own};
use mux_nostd::{AnyStrategy, Demux, Event, Frames, Limits, Pool, Reassembler, encode_into};
use proptest::prelude::*;

const CAPACITY: usize = 8;

fn strategy() -> impl Strategy<Value = AnyStrategy> {
    prop_oneof![
        Just(AnyStrategy::Original),
        Just(AnyStrategy::Optimized),
        Just(AnyStrategy::Hybrid { threshold: 4096 }),
        Just(AnyStrategy::Hybrid { threshold: 8192 }),
    ]
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    let size = prop_oneof![
        4 => 0usize..2048,
        2 => 2048usize..70_000,
        1 => 70_000usize..=200 * 1024,
    ];
    (size, any::<u8>()).prop_map(|(n, seed)| {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(seed | 1).wrapping_add(seed))
            .collect()
    })
}

/// Interleaves the frames of `msgs` as `order` says (each entry picks the message, among those
/// with frames left, whose next frame goes out). Returns the wire and the ids in End order.
fn interleave(msgs: &[(u32, AnyStrategy, Vec<u8>)], order: &[usize]) -> (Vec<u8>, Vec<u32>) {
    let mut frames: Vec<_> = msgs
        .iter()
        .map(|(id, s, p)| Frames::new(s, *id, p).unwrap().peekable())
        .collect();
    let mut wire = Vec::new();
    let mut ends = Vec::new();
    let mut pick = order.iter().cycle();
    while frames.iter_mut().any(|f| f.peek().is_some()) {
        let live: Vec<usize> = (0..frames.len())
            .filter(|&i| frames[i].peek().is_some())
            .collect();
        let i = live[pick.next().copied().unwrap_or(0) % live.len()];
        let (h, body) = frames[i].next().unwrap();
        if h[0] == 2 {
            ends.push(msgs[i].0);
        }
        wire.extend_from_slice(&h);
        wire.extend_from_slice(body);
    }
    (wire, ends)
}

/// Feeds `wire` cut at the given points (sizes cycle).
fn pieces<'a>(wire: &'a [u8], cuts: &'a [usize]) -> impl Iterator<Item = &'a [u8]> {
    let mut at = 0;
    let mut sizes = cuts.iter().cycle();
    std::iter::from_fn(move || {
        if at >= wire.len() {
            return None;
        }
        let n = (*sizes.next().unwrap_or(&wire.len())).clamp(1, wire.len() - at);
        at += n;
        Some(&wire[at - n..at])
    })
}

static BIG: Pool<2048, 1024> = Pool::new();
static BIG_TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

proptest! {
    #![proptest_config(ProptestConfig { cases: if cfg!(miri) { 2 } else { 128 }, ..ProptestConfig::default() })]

    #[test]
    fn any_messages_any_interleaving_any_cuts_decode_byte_exact(
        msgs in prop::collection::vec((strategy(), payload()), 1..=CAPACITY),
        order in prop::collection::vec(0usize..CAPACITY, 1..64),
        cuts in prop::collection::vec(prop_oneof![1usize..10, 1usize..5000, Just(65536)], 1..16),
    ) {
        let msgs: Vec<(u32, AnyStrategy, Vec<u8>)> = msgs
            .into_iter()
            .enumerate()
            .map(|(i, (s, p))| (i as u32 * 7919 + 1, s, p))
            .collect();
        let (wire, ends) = interleave(&msgs, &order);

        // Whole messages through the reassembler and the static pool.
        let _turn = BIG_TURN.lock().unwrap_or_else(|e| e.into_inner());
        let mut got = Vec::new();
        {
            let mut r: Reassembler<'_, CAPACITY, 2048, 1024> = Reassembler::new(&BIG, Limits::REFERENCE);
            for piece in pieces(&wire, &cuts) {
                r.feed_all(piece, |x| got.push(own(x)));
            }
            prop_assert!(r.finish().is_none());
        }
        let want: Vec<Outcome> = ends
            .iter()
            .map(|id| {
                let (_, _, p) = msgs.iter().find(|m| m.0 == *id).unwrap();
                Outcome::Msg(*id, p.clone())
            })
            .collect();
        prop_assert_eq!(got, want);
        prop_assert_eq!(BIG.stats().in_use, 0);

        // The same stream as streaming events: chunks per id concatenate to the payloads.
        let mut demux: Demux<(), CAPACITY> = Demux::new(Limits::REFERENCE);
        let mut bodies: Vec<(u32, Vec<u8>)> = Vec::new();
        let mut done = Vec::new();
        for piece in pieces(&wire, &cuts) {
            let mut rest = piece;
            while !rest.is_empty() {
                let (n, ev) = demux.feed(rest);
                rest = &rest[n..];
                match ev {
                    Some(Event::Started { id, .. }) => bodies.push((id, Vec::new())),
                    Some(Event::Data { id, chunk }) => {
                        bodies.iter_mut().find(|b| b.0 == id).unwrap().1.extend_from_slice(chunk)
                    }
                    Some(Event::Completed { id, .. }) => done.push(id),
                    None => {}
                    Some(other) => prop_assert!(false, "unexpected {:?}", other),
                }
            }
        }
        prop_assert_eq!(&done, &ends);
        for (id, _, p) in &msgs {
            prop_assert_eq!(&bodies.iter().find(|b| b.0 == *id).unwrap().1, p);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_leak_nothing(
        wire in prop::collection::vec(any::<u8>(), 0..4096),
        cut in 1usize..64,
    ) {
        let pool: Pool<8, 32> = Pool::new();
        let got = decode_with(&pool, Limits::new(200), &wire, cut); // asserts the pool is full again
        prop_assert!(got.len() <= wire.len() / 9 + 2);
    }

    #[test]
    fn corrupted_streams_never_panic_and_leak_nothing(
        msgs in prop::collection::vec((strategy(), prop::collection::vec(any::<u8>(), 0..3000)), 1..6),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
        cut in 1usize..100,
    ) {
        let mut wire = Vec::new();
        for (i, (s, p)) in msgs.iter().enumerate() {
            let mut buf = vec![0; p.len() + 200];
            let n = encode_into(s, i as u32, p, &mut buf).unwrap();
            wire.extend_from_slice(&buf[..n]);
        }
        for (at, byte, how) in flips {
            let i = at.index(wire.len());
            match how {
                0 => wire[i] ^= byte | 1,          // flip
                1 => { wire.remove(i); }           // drop
                _ => wire.insert(i, byte),          // insert
            }
        }
        let pool: Pool<16, 256> = Pool::new();
        let _ = decode_with(&pool, Limits::new(4096), &wire, cut);
    }
}

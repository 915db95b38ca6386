//! Frame turns with Adaptive framing, as a firmware's tasks would share one UART: a bulk
//! message written frame by frame while small messages are queued at random moments. Every
//! small message starts on the wire after at most one bulk frame (the one in flight), and
//! everything decodes byte-exact.

mod common;

use std::cell::{Cell, RefCell};

use common::{Outcome, decode};
use embassy_futures::join::join;
use embassy_futures::yield_now;
use mux_nostd::{AdaptiveConfig, AnyStrategy, FrameTurns, Frames, encode_into};
use proptest::prelude::*;

/// The shared link: bytes in the order written; each write takes a few executor rounds.
struct Wire {
    bytes: RefCell<Vec<u8>>,
}

impl Wire {
    async fn write(&self, buf: &[u8]) {
        for _ in 0..3 {
            yield_now().await; // the bytes' time on the wire
        }
        self.bytes.borrow_mut().extend_from_slice(buf);
    }

    fn len(&self) -> usize {
        self.bytes.borrow().len()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_small_message_waits_for_at_most_the_frame_in_flight(
        bulk_len in 1usize..6000,
        gaps in prop::collection::vec(0usize..40, 1..6),
        priority in any::<bool>(),
    ) {
        // 11,520 B/s with a 10 ms budget: 106-byte chunks, 115-byte frames.
        let strategy = AnyStrategy::Adaptive(AdaptiveConfig { link_rate: 11_520, ..AdaptiveConfig::DEFAULT });
        let turns: FrameTurns<4> = FrameTurns::new(priority);
        let wire = Wire { bytes: RefCell::new(Vec::new()) };
        let bulk: Vec<u8> = (0..bulk_len).map(|i| (i * 7) as u8).collect();
        let bulk_done = Cell::new(false);
        // (wire length when queued, wire length when its bytes started)
        let waits = RefCell::new(Vec::new());
        let bulk_task = async {
            let mut turn = turns.take(false).await;
            for (k, (head, body)) in Frames::new(&strategy, 1, &bulk).unwrap().enumerate() {
                if k > 0 {
                    turn.pass().await;
                }
                let mut frame = head.to_vec();
                frame.extend_from_slice(body);
                wire.write(&frame).await;
            }
            drop(turn);
            bulk_done.set(true);
        };
        let small_task = async {
            for (k, &gap) in gaps.iter().enumerate() {
                for _ in 0..gap {
                    yield_now().await;
                }
                let during = !bulk_done.get();
                let queued = wire.len();
                let turn = turns.take(true).await;
                let started = wire.len();
                let mut buf = [0u8; 64];
                let n = encode_into(&strategy, 100 + k as u32, &[k as u8; 32], &mut buf).unwrap();
                wire.write(&buf[..n]).await;
                drop(turn);
                if during {
                    waits.borrow_mut().push((queued, started));
                }
            }
        };
        embassy_futures::block_on(join(bulk_task, small_task));
        for (queued, started) in waits.into_inner() {
            // The frame in flight: Start with the first Data frame's header, or one Data frame
            // (or the End).
            let max_frame = 9 + 9 + 106;
            prop_assert!(started - queued <= max_frame, "waited {} bytes", started - queued);
        }
        let mut want = vec![Outcome::Msg(1, bulk.clone())];
        want.extend((0..gaps.len()).map(|k| Outcome::Msg(100 + k as u32, vec![k as u8; 32])));
        let mut got = decode(&wire.bytes.borrow(), usize::MAX);
        got.sort_by_key(|o| match o { Outcome::Msg(id, _) => *id, _ => 0 });
        prop_assert_eq!(got, want);
    }
}

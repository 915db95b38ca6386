//! The Adaptive strategy over a simulated link: a sink whose writes take `bytes / rate` on a
//! simulated clock, timed by [`Timed`]. The estimator converges after a rate change within a
//! bounded number of messages, every Data frame keeps to the budget at any rate and size the
//! floor allows, and everything written decodes byte-exact.

mod common;

use std::cell::Cell;

use common::{Outcome, decode};
use mux_nostd::{
    Adaptive, AdaptiveConfig, Clock, FramePlan, FrameType, HEADER_LEN, LinkEstimator, Strategy,
    Timed, Writer, size_bucket,
};
use proptest::prelude::*;

/// A link of `rate` bytes per second on a simulated clock: each write takes its bytes' time.
struct SimLink<'c> {
    wire: Vec<u8>,
    rate: u64,
    now: &'c Cell<u64>,
}

impl embedded_io::ErrorType for SimLink<'_> {
    type Error = core::convert::Infallible;
}

impl embedded_io::Write for SimLink<'_> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.wire.extend_from_slice(buf);
        self.now
            .set(self.now.get() + buf.len() as u64 * 1_000_000 / self.rate);
        Ok(buf.len())
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// The simulated clock.
struct SimClock<'c>(&'c Cell<u64>);

impl Clock for SimClock<'_> {
    fn now_us(&self) -> u32 {
        self.0.get() as u32
    }
}

/// Data frame lengths of a wire holding whole frames.
fn data_frames(wire: &[u8]) -> Vec<u32> {
    let mut at = 0;
    let mut lens = Vec::new();
    while at < wire.len() {
        let len = u32::from_be_bytes(wire[at + 5..at + 9].try_into().unwrap());
        at += HEADER_LEN;
        if wire[at - HEADER_LEN] == FrameType::Data as u8 {
            lens.push(len);
            at += len as usize;
        }
    }
    lens
}

/// Sends one message of `len` bytes over a link of `rate`, returning its Data frame lengths.
fn send_at(link: &LinkEstimator, now: &Cell<u64>, rate: u64, len: usize) -> Vec<u32> {
    let sink = SimLink {
        wire: Vec::new(),
        rate,
        now,
    };
    let mut w = Writer::new(
        Timed::new(sink, SimClock(now), link),
        Adaptive::new(AdaptiveConfig::DEFAULT, link),
    );
    w.send(&vec![7u8; len]).unwrap();
    data_frames(&w.into_inner().into_inner().wire)
}

#[test]
fn the_estimate_follows_a_rate_change_fast_slow_fast_within_few_messages() {
    let link = LinkEstimator::new();
    let now = Cell::new(0);
    let cfg = AdaptiveConfig::DEFAULT;
    let fast = 2_000_000_000u64;
    let slow = 11_520u64;
    // Messages until the chunk is the one of the new rate (within 10 %).
    let settle = |rate: u64, len: usize| {
        let want = cfg.chunk_at(rate as u32);
        (1..=2048)
            .find(|_| {
                send_at(&link, &now, rate, len);
                link.config_now(&cfg).chunk().abs_diff(want) <= want / 10
            })
            .expect("converges")
    };
    let first = settle(fast, 1 << 20);
    let to_slow = settle(slow, 2048);
    let back = settle(fast, 1 << 20);
    assert!(first <= 2, "first: {first}");
    // A slower link wins at once: the next message is already sized for it.
    assert_eq!(to_slow, 1);
    // A faster one at most doubles the estimate per 1 ms of writes (at the estimate): the
    // first message of 1 MiB is thousands of writes, so one message suffices.
    assert!(back <= 2, "back to fast: {back}");
    // Small messages alone (127 bytes on the wire each) need more of them as the estimate
    // grows, as each doubling needs 8 ms worth of writes (the chunk matters only to larger
    // messages, whose own writes then raise the estimate within the message).
    settle(slow, 2048);
    let small = settle(fast, 100);
    assert!((20..=1024).contains(&small), "{small}");
    // Right after the slow phase, the very first message is framed for the slow link.
    settle(slow, 2048);
    let frames = send_at(&link, &now, slow, 4000);
    assert!(frames.iter().all(|&f| f <= 106), "{frames:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// At any rate where the floor fits the budget, after one measured write every Data frame
    /// of any message holds the link for at most the budget, and every chunk is within the
    /// floor and the ceiling.
    #[test]
    fn every_frame_keeps_to_the_budget(
        rate in 1_000u32..=u32::MAX,
        budget_us in 1_000u32..100_000,
        floor in 1u32..512,
        sizes in prop::collection::vec(0u32..3_000_000, 1..8),
    ) {
        let cfg = AdaptiveConfig { budget_us, floor, ceiling: 65_536, link_rate: 0 };
        let link = LinkEstimator::new();
        // One write that took a whole budget at this rate.
        let bytes = (u64::from(rate) * u64::from(budget_us) / 1_000_000).max(1);
        link.record_write(bytes as usize, (bytes * 1_000_000 / u64::from(rate)) as u32);
        let s = Adaptive::new(cfg, &link);
        let budget_holds = u64::from(floor + 9) * 1_000_000 <= u64::from(rate) * u64::from(budget_us);
        for total in sizes {
            let plan = FramePlan::new(&s, 1, total as usize).unwrap();
            let chunk = s.chunk_now();
            prop_assert!(chunk >= floor && chunk <= 65_536);
            for f in plan.filter(|f| f.header.kind == FrameType::Data) {
                prop_assert!(f.header.len <= chunk);
                if budget_holds {
                    let wire_us = (u64::from(f.header.len) + 9) * 1_000_000 / u64::from(link.rate());
                    // The estimate is within a rounding error of the rate.
                    prop_assert!(wire_us <= u64::from(budget_us) + 1, "{} µs", wire_us);
                }
            }
        }
    }

    /// Whatever the rates and sizes, what Adaptive writes decodes to the same messages.
    #[test]
    fn everything_written_decodes_byte_exact(
        steps in prop::collection::vec((1_000u64..200_000_000, 0usize..40_000, any::<u8>()), 1..6),
        cut in prop::sample::select(vec![1usize, 9, 100, usize::MAX]),
    ) {
        let link = LinkEstimator::new();
        let now = Cell::new(0);
        let mut wire = Vec::new();
        let mut want = Vec::new();
        for (id, (rate, len, seed)) in steps.into_iter().enumerate() {
            let payload: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(seed | 1)).collect();
            let sink = SimLink { wire: Vec::new(), rate, now: &now };
            let mut w = Writer::new(
                Timed::new(sink, SimClock(&now), &link),
                Adaptive::new(AdaptiveConfig::DEFAULT, &link),
            );
            w.send_with_id(id as u32 + 1, &payload).unwrap();
            wire.extend(w.into_inner().into_inner().wire);
            want.push(Outcome::Msg(id as u32 + 1, payload));
        }
        prop_assert_eq!(decode(&wire, cut), want);
    }
}

#[test]
fn the_threshold_separates_the_small_messages_from_the_bulk() {
    let link = LinkEstimator::new();
    let s = Adaptive::new(AdaptiveConfig::DEFAULT, &link);
    assert_eq!(link.threshold(), 4096);
    // Sensor readings of 32 bytes, and now and then a 64 KiB log dump.
    for k in 0..1024u32 {
        let total = if k % 50 == 0 { 65_536 } else { 32 };
        s.chunk_size(total);
    }
    let t = link.threshold();
    assert!((32..65_536).contains(&t), "{t}");
    assert!(s.is_small(32) && !s.is_small(65_536));
    // The workload changes: 200-byte readings and 2 MiB transfers. Decay lets it follow.
    for k in 0..8192u32 {
        let total = if k % 10 == 0 { 2 << 20 } else { 200 };
        s.chunk_size(total);
    }
    let t = link.threshold();
    assert!((200..2 << 20).contains(&t), "{t}");
    assert!(s.is_small(200) && !s.is_small(65_536));
    let h = link.histogram();
    assert!(h.iter().sum::<u32>() <= 4096 + 512, "decayed: {h:?}");
}

#[test]
fn the_histogram_learns_while_the_budget_binds_and_a_fast_link_skips_the_count() {
    let link = LinkEstimator::new();
    let config = AdaptiveConfig::DEFAULT;
    let s = Adaptive::new(config, &link);
    // Not measured yet: below the top rate, every message is counted.
    for _ in 0..10 {
        s.chunk_size(32);
    }
    assert_eq!(link.histogram()[size_bucket(32)], 10);
    // A link at the top rate: the ceiling chunk, and nothing counted.
    link.record_write(1 << 30, 100_000);
    assert!(link.rate() >= config.top_rate());
    for _ in 0..1000 {
        assert_eq!(s.chunk_size(1024), config.ceiling);
    }
    assert_eq!(link.histogram().iter().sum::<u32>(), 10);
    // The link slows down (a 100 ms write at 11,520 B/s): counting resumes, and what was
    // learned before is still there.
    link.record_write(1152, 100_000);
    assert_eq!(link.rate(), 11_520);
    s.chunk_size(32);
    s.chunk_size(65_536);
    let h = link.histogram();
    assert_eq!(h[size_bucket(32)], 11);
    assert_eq!(h[size_bucket(65_536)], 1);
}

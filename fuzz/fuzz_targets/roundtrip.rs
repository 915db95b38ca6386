//! (b) Round trip: arbitrary messages, strategies, interleavings, cancellations and cut
//! points, written with the sans-IO encoder then read back, compared with the input.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use mux_fuzz::{Outcome, reassemble};
use mux_nostd::{AnyStrategy, Limits, Outgoing, Pool};

#[derive(Debug, Arbitrary)]
struct Msg {
    strategy: u8,
    len: u16,
    seed: u8,
    /// Cancel before this frame (counting from 0), if set.
    cancel_before: Option<u8>,
}

#[derive(Debug, Arbitrary)]
struct Input {
    msgs: Vec<Msg>,
    order: Vec<u8>,
    cuts: Vec<u16>,
}

fuzz_target!(|input: Input| {
    let msgs: Vec<_> = input.msgs.iter().take(8).collect();
    if msgs.is_empty() {
        return;
    }
    let strategies = [
        AnyStrategy::Original,
        AnyStrategy::Optimized,
        AnyStrategy::Hybrid { threshold: 4096 },
        AnyStrategy::Hybrid { threshold: 8192 },
    ];
    let payloads: Vec<Vec<u8>> = msgs
        .iter()
        .map(|m| {
            (0..usize::from(m.len) % 20_000)
                .map(|i| (i as u8) ^ m.seed)
                .collect()
        })
        .collect();
    let mut outs: Vec<Outgoing> = msgs
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let s = strategies[usize::from(m.strategy) % 4];
            Outgoing::new(&s, i as u32 + 1, payloads[i].len()).unwrap()
        })
        .collect();
    let mut frames_sent = vec![0u32; msgs.len()];
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    let mut pick = input.order.iter().cycle();
    loop {
        let live: Vec<usize> = (0..outs.len()).filter(|&i| !outs[i].is_done()).collect();
        if live.is_empty() {
            break;
        }
        let i = live[usize::from(pick.next().copied().unwrap_or(0)) % live.len()];
        let cancel_at = msgs[i].cancel_before.map(u32::from);
        let mut cancel = || cancel_at == Some(frames_sent[i]);
        // One whole frame of message i (header and body).
        let was_cancelled = outs[i].is_cancelled();
        while let Some(b) = outs[i].next_bytes(&payloads[i], &mut cancel) {
            let n = b.len();
            wire.extend_from_slice(b);
            outs[i].advance(n);
            if outs[i].at_frame_boundary() {
                break;
            }
        }
        frames_sent[i] += 1;
        if outs[i].is_done() {
            let id = i as u32 + 1;
            if !outs[i].is_cancelled() {
                expected.push(Outcome::Msg(id, payloads[i].clone()));
            } else if !was_cancelled && frames_sent[i] == 1 && cancel_at == Some(0) {
                // Cancelled before its Start: nothing was written, nothing is delivered.
            } else {
                expected.push(Outcome::Aborted(id));
            }
        }
    }
    let cuts: Vec<usize> = input.cuts.iter().map(|&c| usize::from(c) + 1).collect();
    static POOL: Pool<1024, 256> = Pool::new();
    let got = reassemble::<8, 1024, 256>(&POOL, Limits::new(1 << 20), &wire, &cuts);
    assert_eq!(got, expected);
});

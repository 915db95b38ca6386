//! (a) The decoder and reassembler fed arbitrary bytes, cut anywhere, with a small table and
//! pool: no panic, no leak, bounded output; the streaming `Demux` alike.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mux_fuzz::reassemble;
use mux_nostd::{Demux, Limits, Pool};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, wire)) = data.split_first() else {
        return;
    };
    let cuts = [usize::from(cut % 32) + 1, 9, 1];
    let pool: Pool<8, 32> = Pool::new();
    let out = reassemble::<4, 8, 32>(&pool, Limits::new(200), wire, &cuts);
    assert!(
        out.len() <= wire.len() / 9 + 2 + 4,
        "at most one item per frame, plus the end"
    );

    let mut d: Demux<(), 4> = Demux::new(Limits::new(200));
    let mut rest = wire;
    while !rest.is_empty() {
        let (n, _) = d.feed(&rest[..rest.len().min(usize::from(cut) + 1)]);
        rest = &rest[n..];
    }
    while d.finish().is_some() {}
    assert!(d.is_idle());
});

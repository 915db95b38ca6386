//! The `histograms` feature: the writers and receivers fill their distributions from what
//! really goes over the wire.
#![cfg(feature = "histograms")]

use embassy_futures::block_on;
use mux_nostd::{
    AsyncWriter, Demux, Limits, Optimized, Original, Pool, Reassembler, Received, Writer,
};

#[test]
fn writer_and_reassembler_record_sizes_frames_and_pool_use() {
    let mut wire = vec![0u8; 1 << 20];
    let mut tx = Writer::new(&mut wire[..], Original);
    let sizes = [0usize, 64, 64, 1000, 5000];
    for &n in &sizes {
        tx.send(&vec![7u8; n]).unwrap();
    }
    let m = *tx.metrics();
    // Sizes: 0 in bucket 0, 64 in bucket 7 (64..=127), 1000 in 10, 5000 in 13.
    let c = m.sizes.counts();
    assert_eq!((c[0], c[7], c[10], c[13]), (1, 2, 1, 1));
    assert_eq!(m.sizes.count(), 5);
    // Frames (1 KiB chunks): 2, 3, 3, 3, 2 + 5 = 7.
    let f = m.frames.counts();
    assert_eq!(
        (f[2], f[3]),
        (4, 1),
        "2 and 3 frames in bucket 2, 7 in bucket 3"
    );
    let used = (1 << 20) - tx.into_inner().len();

    static POOL: Pool<16, 1024> = Pool::new();
    let mut rx: Reassembler<'_, 4, 16, 1024> = Reassembler::new(&POOL, Limits::default());
    let mut got = 0;
    rx.feed_all(&wire[..used], |r| {
        assert!(matches!(r, Received::Message(_)));
        got += 1;
    });
    assert_eq!(got, 5);
    assert_eq!(
        rx.metrics().sizes,
        m.sizes,
        "the receiver sees the sender's sizes"
    );
    // Blocks in use at each completion, the message's own: 0, 1, 1, 1, 5 (1 KiB blocks).
    let p = rx.pool_use().counts();
    assert_eq!((p[0], p[1], p[3]), (1, 3, 1));
}

#[test]
fn async_writer_and_streaming_demux_record_too() {
    let mut wire = [0u8; 40_000];
    let mut tx = AsyncWriter::new(&mut wire[..], Optimized);
    block_on(tx.send(&[1u8; 20_000])).unwrap();
    let m = *tx.metrics();
    assert_eq!(m.sizes.counts()[15], 1, "20000 is in 16384..=32767");
    // Optimized: 4 KiB chunks at 20000 bytes, 5 Data frames + Start + End.
    assert_eq!(m.frames.quantile(1000), Some(7));
    let used = 40_000 - tx.into_inner().len();

    let mut d: Demux<(), 2> = Demux::new(Limits::default());
    let mut input = &wire[..used];
    while !input.is_empty() {
        let (n, _) = d.feed(input);
        input = &input[n..];
    }
    assert_eq!(d.metrics().sizes, m.sizes);
    assert_eq!(d.metrics().messages, 1);
}

#[test]
fn aborted_messages_are_not_in_the_sizes() {
    use mux_nostd::{FrameType, Header};
    let mut wire = Vec::new();
    wire.extend_from_slice(&Header::new(FrameType::Start, 1, 0).to_bytes());
    wire.extend_from_slice(&Header::new(FrameType::Data, 1, 3).to_bytes());
    wire.extend_from_slice(b"abc");
    wire.extend_from_slice(&Header::new(FrameType::Abort, 1, 0).to_bytes());
    let mut d: Demux<(), 2> = Demux::new(Limits::default());
    let mut input = &wire[..];
    while !input.is_empty() {
        let (n, _) = d.feed(input);
        input = &input[n..];
    }
    assert_eq!(d.metrics().aborted, 1);
    assert_eq!(d.metrics().sizes.count(), 0);
}

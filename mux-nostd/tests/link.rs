//! The serial link profile end to end through the drivers: `Writer` over a `LinkWriter`,
//! `Reader::with_link` (and the async pair), clean and with bytes flipped, dropped and
//! inserted on the wire.

use mux_nostd::{
    AnyStrategy, AsyncReader, AsyncWriter, Limits, LinkWriter, Pool, ProtocolError, Reader,
    Reassembler, Received, Writer,
};
use mux_test_support::stream_byte;
use proptest::prelude::*;

/// The link buffer of both ends in these tests (small, so that large messages span frames).
const LINK: usize = 256;

fn payload(id: u32, len: usize) -> Vec<u8> {
    (0..len).map(|k| stream_byte(id, k)).collect()
}

/// A sink collecting the wire.
#[derive(Default)]
struct Wire(Vec<u8>);

impl embedded_io::ErrorType for Wire {
    type Error = core::convert::Infallible;
}

impl embedded_io::Write for Wire {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

impl embedded_io_async::Write for Wire {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        embedded_io::Write::write(self, buf)
    }
    async fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// The wire of messages `1..=sizes.len()` sent one after another over a link writer, and
/// where each message's bytes end on it.
fn send_all(strategy: AnyStrategy, sizes: &[usize]) -> (Vec<u8>, Vec<usize>) {
    let mut tx = Writer::new(LinkWriter::<_, LINK>::new(Wire::default()), strategy);
    let mut ends = Vec::new();
    for (i, &len) in sizes.iter().enumerate() {
        let id = i as u32 + 1;
        tx.send_with_id(id, &payload(id, len)).unwrap();
        ends.push(tx.get_ref().get_ref().0.len());
    }
    (tx.into_inner().into_inner().0, ends)
}

/// What came out of a link reader: messages (id, whether their payload is intact) and
/// errors.
#[derive(Debug, Default)]
struct Got {
    messages: Vec<(u32, bool)>,
    errors: Vec<ProtocolError>,
}

impl Got {
    fn lost(&self) -> Vec<u32> {
        self.errors
            .iter()
            .filter_map(|e| match e {
                ProtocolError::Lost { id } => Some(*id),
                _ => None,
            })
            .collect()
    }
}

/// Reads `wire` in pieces of `cut` bytes through `Reader::with_link` and a reassembler.
fn receive(wire: &[u8], cut: usize) -> Got {
    struct Cut<'a>(&'a [u8], usize);
    impl embedded_io::ErrorType for Cut<'_> {
        type Error = core::convert::Infallible;
    }
    impl embedded_io::Read for Cut<'_> {
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
            let n = self.0.len().min(buf.len()).min(self.1);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let pool: Pool<256, 64> = Pool::new();
    let mut rx = [0u8; LINK];
    let core: Reassembler<'_, 8, 256, 64> = Reassembler::new(&pool, Limits::new(16 << 10));
    let mut reader = Reader::with_link(Cut(wire, cut), &mut rx, core);
    let mut got = Got::default();
    while let Some(item) = reader.recv().unwrap() {
        match item {
            Received::Message(m) => {
                let mut body = Vec::new();
                for chunk in m.body().chunks() {
                    body.extend_from_slice(chunk);
                }
                got.messages.push((
                    m.id(),
                    body == payload(m.id(), body.len()) && !body.is_empty(),
                ));
            }
            Received::Error(e) => got.errors.push(e),
            Received::Aborted { id } => panic!("abort {id}"),
        }
    }
    assert_eq!(pool.stats().in_use, 0, "every block back in the pool");
    got
}

#[test]
fn messages_cross_a_clean_link_whole_in_any_read_size() {
    let sizes = [1usize, 1000, 1024, 5000, 9000, 3];
    for strategy in [
        AnyStrategy::Original,
        AnyStrategy::Optimized,
        AnyStrategy::Hybrid { threshold: 8192 },
    ] {
        let (wire, _) = send_all(strategy, &sizes);
        for cut in [1, 13, 100, 4096] {
            let got = receive(&wire, cut);
            let ids: Vec<(u32, bool)> = (1..=sizes.len() as u32).map(|id| (id, true)).collect();
            assert_eq!(got.messages, ids, "{strategy:?} cut {cut}");
            assert!(got.errors.is_empty(), "{:?}", got.errors);
        }
    }
}

#[test]
fn a_missing_link_frame_inside_a_message_loses_that_message_only() {
    // Message 2 spans several link frames; its third one vanishes (the End still arrives).
    let (wire, ends) = send_all(AnyStrategy::Original, &[100, 3000, 100]);
    let frames: Vec<(usize, usize)> = {
        let mut v = Vec::new();
        let mut start = None;
        for (i, &b) in wire.iter().enumerate() {
            match (b, start) {
                (0, None) => start = Some(i),
                (0, Some(s)) if i > s + 1 => {
                    v.push((s, i + 1));
                    start = None;
                }
                (0, Some(_)) => start = Some(i),
                _ => {}
            }
        }
        v
    };
    let of_2: Vec<_> = frames
        .iter()
        .filter(|(s, e)| *s >= ends[0] && *e <= ends[1])
        .collect();
    assert!(of_2.len() > 4);
    let (cut_from, cut_to) = *of_2[2];
    let mut damaged = wire[..cut_from].to_vec();
    damaged.extend_from_slice(&wire[cut_to..]);
    let got = receive(&damaged, 64);
    assert_eq!(got.messages, [(1, true), (3, true)]);
    assert_eq!(
        got.errors,
        [
            ProtocolError::LinkGap { missing: 1 },
            ProtocolError::Lost { id: 2 }
        ]
    );
}

#[test]
fn a_message_whose_start_was_lost_is_reported_at_its_next_frame() {
    let (wire, ends) = send_all(AnyStrategy::Original, &[10, 3000, 10]);
    // The first link frame of message 2 (its Start and first bytes) is flipped. Decoding
    // resumes at its next Data frame, which begins inside a later link frame (that frame's
    // `first` says where): an unknown id after a gap, so message 2 is reported lost.
    let mut noisy = wire.clone();
    noisy[ends[0] + 4] ^= 0x40;
    let got = receive(&noisy, 4096);
    assert_eq!(got.messages, [(1, true), (3, true)]);
    assert_eq!(
        got.errors,
        [
            ProtocolError::LinkGap { missing: 1 },
            ProtocolError::Lost { id: 2 }
        ]
    );
}

#[test]
fn after_a_gap_a_frame_of_an_unknown_id_reports_its_message_lost() {
    // Two messages interleaved by hand, each frame in a link frame of its own (flushes).
    let mut tx = Writer::new(
        LinkWriter::<_, LINK>::new(Wire::default()),
        AnyStrategy::Original,
    );
    let mut frames = Vec::new();
    for (kind, id, body) in [
        (1u8, 5u32, &b""[..]),
        (1, 6, b""),
        (3, 5, b"ab"),
        (3, 6, b"cd"),
        (2, 5, b""),
        (2, 6, b""),
    ] {
        let mut f = vec![kind];
        f.extend_from_slice(&id.to_be_bytes());
        f.extend_from_slice(&(body.len() as u32).to_be_bytes());
        f.extend_from_slice(body);
        frames.push(f);
    }
    let mut ends = Vec::new();
    for f in &frames {
        embedded_io::Write::write_all(tx.get_mut(), f).unwrap();
        embedded_io::Write::flush(tx.get_mut()).unwrap();
        ends.push(tx.get_ref().get_ref().0.len());
    }
    let wire = tx.into_inner().into_inner().0;
    // The link frame holding Start(6) is damaged: 6's Data comes for an unknown id.
    let mut noisy = wire.clone();
    noisy[ends[0] + 3] ^= 1;
    let got = receive(&noisy, 4096);
    assert_eq!(got.messages, []);
    assert_eq!(
        got.errors,
        [
            ProtocolError::LinkGap { missing: 1 },
            ProtocolError::Lost { id: 5 },
            ProtocolError::Lost { id: 6 },
        ]
    );
}

#[test]
fn a_damaged_last_frame_is_reported_at_the_end_of_the_stream() {
    let (wire, ends) = send_all(AnyStrategy::Original, &[10, 3000]);
    let got = receive(&wire[..wire.len() - 10], 4096);
    assert_eq!(got.messages, [(1, true)]);
    assert_eq!(
        got.errors,
        [
            ProtocolError::LinkGap { missing: 1 },
            ProtocolError::Lost { id: 2 }
        ]
    );
    assert!(ends[1] == wire.len());
}

#[test]
fn the_async_pair_speaks_the_same_profile() {
    let sizes = [0usize, 700, 2500];
    let mut tx = AsyncWriter::new(
        LinkWriter::<_, LINK>::new(Wire::default()),
        AnyStrategy::Optimized,
    );
    for (i, &len) in sizes.iter().enumerate() {
        let id = i as u32 + 1;
        embassy_futures::block_on(tx.send_with_id(id, &payload(id, len))).unwrap();
    }
    let wire = tx.into_inner().into_inner().0;
    assert_eq!(wire, send_all(AnyStrategy::Optimized, &sizes).0);
    let pool: Pool<256, 64> = Pool::new();
    let mut rx = [0u8; LINK];
    let core: Reassembler<'_, 4, 256, 64> = Reassembler::new(&pool, Limits::new(16 << 10));
    let mut reader = AsyncReader::with_link(&wire[..], &mut rx, core);
    let mut lens = Vec::new();
    while let Some(item) = embassy_futures::block_on(reader.recv()).unwrap() {
        match item {
            Received::Message(m) => lens.push(m.len()),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(lens, sizes);
    let m = *reader.link_metrics().unwrap();
    assert!(m.good > 3 && m.damaged == 0 && m.missing == 0, "{m:?}");
}

/// One change on the wire: at `at`, flip a bit, drop the byte or insert one before it.
#[derive(Debug, Clone, Copy)]
enum Hit {
    Flip(usize, u8),
    Drop(usize),
    Insert(usize, u8),
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Nothing damaged is delivered; every message whose link frames (delimiters included)
    /// were untouched is delivered intact; every other one is reported lost by id, or
    /// lies wholly in frames a `LinkGap` reported missing.
    #[test]
    fn noise_never_delivers_damage_and_spares_untouched_messages(
        sizes in proptest::collection::vec(1usize..3000, 1..8),
        hits in proptest::collection::vec(
            prop_oneof![
                (any::<prop::sample::Index>(), 0u8..8).prop_map(|(i, b)| (0u8, i, b)),
                any::<prop::sample::Index>().prop_map(|i| (1u8, i, 0)),
                (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| (2u8, i, b)),
            ],
            0..4,
        ),
        cut in 1usize..600,
    ) {
        let (wire, ends) = send_all(AnyStrategy::Optimized, &sizes);
        let mut hits: Vec<Hit> = hits
            .into_iter()
            .map(|(k, i, b)| {
                let at = i.index(wire.len());
                match k {
                    0 => Hit::Flip(at, 1 << b),
                    1 => Hit::Drop(at),
                    _ => Hit::Insert(at, b),
                }
            })
            .collect();
        hits.sort_by_key(|h| std::cmp::Reverse(match *h { Hit::Flip(a, _) | Hit::Drop(a) | Hit::Insert(a, _) => a }));
        let mut noisy = wire.clone();
        let mut touched = vec![false; sizes.len()];
        for h in &hits {
            let at = match *h {
                Hit::Flip(a, bit) => { noisy[a] ^= bit; a }
                Hit::Drop(a) => { noisy.remove(a); a }
                Hit::Insert(a, b) => { noisy.insert(a, b); a }
            };
            // The message whose bytes `at` falls in; an insertion right at the start of a
            // message's bytes lands between two delimiters and touches none.
            let m = ends.partition_point(|&e| e <= at);
            let between = matches!(h, Hit::Insert(..)) && (at == 0 || ends.contains(&at));
            if m < touched.len() && !between {
                touched[m] = true;
            }
        }
        let got = receive(&noisy, cut);
        for &(id, intact) in &got.messages {
            prop_assert!(intact, "message {id} delivered damaged");
        }
        let delivered: Vec<u32> = got.messages.iter().map(|m| m.0).collect();
        for (i, t) in touched.iter().enumerate() {
            let id = i as u32 + 1;
            prop_assert!(*t || delivered.contains(&id), "untouched message {id} not delivered: {got:?}");
        }
        let lost = got.lost();
        let missing: u32 = got.errors.iter().map(|e| match e {
            ProtocolError::LinkGap { missing } => u32::from(*missing),
            _ => 0,
        }).sum();
        for (i, t) in touched.iter().enumerate() {
            let id = i as u32 + 1;
            if *t && !delivered.contains(&id) {
                prop_assert!(lost.contains(&id) || missing > 0, "message {id} lost silently: {got:?}");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Arbitrary bytes (with many zeros, so that they fall into frames) never make the link
    /// reader panic or leak a pool block, whatever the read size; it always ends.
    #[test]
    fn arbitrary_bytes_never_panic_the_link_reader(
        wire in proptest::collection::vec(
            prop_oneof![Just(0u8), Just(0x80u8), Just(3u8), any::<u8>()],
            0..2000,
        ),
        cut in 1usize..300,
    ) {
        let got = receive(&wire, cut);
        prop_assert!(got.messages.len() + got.errors.len() <= wire.len() + 8);
    }
}

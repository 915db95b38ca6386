//! Every row of the bad-input table of `docs/PROTOCOL.md` ("we" column), and every `bad-*`,
//! `edge-*`, `abort-*` and `interleaved-*` vector with the outcome it must give, fed whole and
//! cut at many points (one byte at a time included).

mod common;

use Outcome::{Aborted, Err as E};
use common::{CUTS, Outcome, decode, decode_with, rule_r, vector, vectors_with_prefix};
use mux_nostd::{
    FrameType, Header, Limits, Original, Pool, ProtocolError as P, Reader, Reassembler, Received,
    Writer,
};

fn ok9() -> Outcome {
    Outcome::msg(9, b"ok")
}

/// The outcome of every bad/edge/abort/interleaved vector, ours (the reference's except where
/// docs/PROTOCOL.md says we do better; those rows say why).
fn expected(name: &str) -> Vec<Outcome> {
    let unknown = |id, kind| E(P::UnknownId { id, kind });
    match name {
        "abort-partial.bin" => vec![Aborted(5), ok9()],
        "bad-abort-unknown-id.bin" => vec![unknown(5, FrameType::Abort), ok9()],
        "bad-data-after-end.bin" => vec![
            Outcome::msg(5, b"abc"),
            unknown(5, FrameType::Data),
            unknown(5, FrameType::End),
            ok9(),
        ],
        "bad-data-unknown-id.bin" => vec![unknown(5, FrameType::Data), ok9()],
        // Better than the reference: the stale partial message is dropped and reported, the
        // new one starts clean (the reference merged them into "XXok").
        "bad-duplicate-start-of-9.bin" => vec![E(P::DuplicateStart { id: 9 }), ok9()],
        "bad-duplicate-start.bin" => {
            vec![
                E(P::DuplicateStart { id: 5 }),
                Outcome::msg(5, b"abc"),
                ok9(),
            ]
        }
        "bad-end-oversize-len.bin" => vec![Outcome::msg(5, b"abc"), ok9()], // End is header-only
        "bad-end-unknown-id.bin" => vec![unknown(5, FrameType::End), ok9()],
        // Pending message 5 is reported lost (the reference dropped it silently); a stream
        // ending right after a Data header is truncated (the reference ended quietly).
        "bad-eof-after-data-header.bin" => vec![
            ok9(),
            E(P::Truncated { missing: 100 }),
            E(P::Unfinished { id: 5 }),
        ],
        "bad-eof-pending.bin" => vec![ok9(), E(P::Unfinished { id: 5 })],
        // The oversized Data's declared payload is skipped (so the stream would stay in sync
        // if it were there); these files carry none, so skipping reaches end of stream.
        "bad-oversize-data.bin" => vec![
            E(P::FrameTooLarge {
                id: 5,
                len: 10_485_761,
                max: 10_485_760,
            }),
            E(P::Truncated {
                missing: 10_485_761 - 29,
            }),
        ],
        "bad-oversize-data-in-message.bin" => vec![
            E(P::FrameTooLarge {
                id: 5,
                len: u32::MAX,
                max: 10_485_760,
            }),
            E(P::Truncated {
                missing: u32::MAX - 50,
            }),
        ],
        "bad-reserved-types.bin" => {
            let mut v: Vec<_> = [0u8, 4, 5, 255]
                .map(|t| {
                    E(P::UnknownType {
                        type_byte: t,
                        id: 5,
                    })
                })
                .to_vec();
            v.push(ok9());
            v
        }
        // One error for the message; its later frames are consumed quietly.
        "bad-start-huge-len.bin" => vec![
            E(P::MessageTooLarge {
                id: 5,
                size: u32::MAX,
                max: 10_485_760,
            }),
            ok9(),
        ],
        "bad-truncated-header.bin" => vec![ok9(), E(P::Truncated { missing: 4 })],
        "bad-truncated-payload.bin" => vec![
            ok9(),
            E(P::Truncated { missing: 60 }),
            E(P::Unfinished { id: 5 }),
        ],
        // Type 7 is header-only (as in the reference); the 4 bytes the sender put after it
        // ("WXYZ") are read as the start of the next header, so the stream cannot stay in sync
        // here. The 9-byte windows that follow are: 'W' 0x58595A01 · 00 0x00000203 ·
        // 00 0x0000026F, all unknown types, then 6 bytes short of a header at end of stream.
        "bad-unknown-type-with-payload.bin" => vec![
            E(P::UnknownType {
                type_byte: 7,
                id: 5,
            }),
            E(P::UnknownType {
                type_byte: b'W',
                id: 0x5859_5A01,
            }),
            E(P::UnknownType {
                type_byte: 0,
                id: 0x0203,
            }),
            E(P::UnknownType {
                type_byte: 0,
                id: 0x026F,
            }),
            E(P::Truncated { missing: 3 }),
        ],
        "bad-unknown-type.bin" => vec![
            E(P::UnknownType {
                type_byte: 7,
                id: 5,
            }),
            ok9(),
        ],
        "bad-zero-data-unknown-id.bin" => vec![unknown(5, FrameType::Data), ok9()],
        "edge-end-abort-nonzero-len.bin" => vec![Outcome::msg(5, b"abc"), Aborted(6), ok9()],
        "edge-id-reuse.bin" => vec![Outcome::msg(5, b"one"), Outcome::msg(5, b"two"), ok9()],
        "edge-ids-0-and-max.bin" => {
            vec![
                Outcome::msg(0, b"zero"),
                Outcome::msg(u32::MAX, b"max"),
                ok9(),
            ]
        }
        "edge-start-len-at-limit.bin" => vec![Outcome::msg(5, b"abc"), ok9()],
        "edge-zero-data.bin" => vec![Outcome::msg(5, b"abc"), ok9()],
        "interleaved-original.bin" => {
            vec![Outcome::Msg(2, rule_r(100)), Outcome::Msg(1, rule_r(3000))]
        }
        "interleaved-hybrid.bin" => vec![
            Outcome::msg(3, b""),
            Outcome::Msg(2, rule_r(5000)),
            Outcome::Msg(1, rule_r(70000)),
        ],
        other => panic!("no expected outcome written for {other}"),
    }
}

#[test]
fn every_bad_edge_abort_and_interleaved_vector_gives_its_outcome() {
    let mut seen = 0;
    for prefix in ["bad-", "edge-", "abort-", "interleaved-"] {
        for (name, wire) in vectors_with_prefix(prefix) {
            let want = expected(&name);
            for cut in CUTS {
                assert_eq!(
                    decode(&wire, cut),
                    want,
                    "{name}, fed {cut} bytes at a time"
                );
            }
            seen += 1;
        }
    }
    assert_eq!(
        seen, 26,
        "all 26 hand-built and interleaved vectors were checked"
    );
}

// ---- helpers to build streams ----

fn frame(kind: FrameType, id: u32, body: &[u8]) -> Vec<u8> {
    let mut v = Header::new(kind, id, body.len() as u32).to_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

fn header(kind: FrameType, id: u32, len: u32) -> Vec<u8> {
    Header::new(kind, id, len).to_bytes().to_vec()
}

fn message(id: u32, body: &[u8]) -> Vec<u8> {
    let mut v = vec![0; body.len() + 64];
    let n = mux_nostd::encode_into(&Original, id, body, &mut v).unwrap();
    v.truncate(n);
    v
}

fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

fn small_limits() -> Limits {
    Limits::new(100)
}

fn decode_small(wire: &[u8], cut: usize) -> Vec<Outcome> {
    let pool: Pool<16, 32> = Pool::new();
    decode_with(&pool, small_limits(), wire, cut)
}

// ---- one test per row of the table ----

#[test]
fn row_unknown_type_is_typed_header_only_and_decoding_continues() {
    let wire = cat(&[
        header(FrameType::Start, 1, 0),
        vec![9, 0, 0, 0, 1, 0, 0, 0, 3],
        message(2, b"hi"),
    ]);
    for cut in CUTS {
        assert_eq!(
            decode_small(&wire, cut),
            [
                E(P::UnknownType {
                    type_byte: 9,
                    id: 1
                }),
                Outcome::msg(2, b"hi"),
                E(P::Unfinished { id: 1 })
            ]
        );
    }
}

#[test]
fn row_data_for_unknown_id_is_reported_and_its_payload_skipped() {
    let wire = cat(&[frame(FrameType::Data, 4, &[3; 40]), message(2, b"hi")]);
    for cut in CUTS {
        assert_eq!(
            decode_small(&wire, cut),
            [
                E(P::UnknownId {
                    id: 4,
                    kind: FrameType::Data
                }),
                Outcome::msg(2, b"hi")
            ]
        );
    }
}

#[test]
fn row_oversized_data_is_skipped_stream_stays_in_sync_one_error_per_message() {
    // Limit 100; message 1 gets a 150-byte Data frame (its payload really present), then more
    // frames. One error, the rest of message 1 consumed quietly, message 2 intact.
    let wire = cat(&[
        header(FrameType::Start, 1, 0),
        frame(FrameType::Data, 1, b"abc"),
        frame(FrameType::Data, 1, &[0xEE; 150]),
        frame(FrameType::Data, 1, &[0xEE; 150]),
        frame(FrameType::Data, 1, b"def"),
        header(FrameType::End, 1, 0),
        message(2, b"still in sync"),
        frame(FrameType::Data, 3, &[0xEE; 150]), // unknown id and oversized: one error
        message(4, b"and again"),
    ]);
    for cut in CUTS {
        assert_eq!(
            decode_small(&wire, cut),
            [
                E(P::FrameTooLarge {
                    id: 1,
                    len: 150,
                    max: 100
                }),
                Outcome::msg(2, b"still in sync"),
                E(P::FrameTooLarge {
                    id: 3,
                    len: 150,
                    max: 100
                }),
                Outcome::msg(4, b"and again"),
            ],
            "cut {cut}"
        );
    }
}

#[test]
fn row_message_growing_over_the_limit_is_dropped_once() {
    let wire = cat(&[
        header(FrameType::Start, 1, 0),
        frame(FrameType::Data, 1, &[1; 60]),
        frame(FrameType::Data, 1, &[1; 60]),
        frame(FrameType::Data, 1, &[1; 60]),
        header(FrameType::End, 1, 0),
        message(2, b"next"),
    ]);
    for cut in CUTS {
        assert_eq!(
            decode_small(&wire, cut),
            [
                E(P::MessageTooLarge {
                    id: 1,
                    size: 120,
                    max: 100
                }),
                Outcome::msg(2, b"next")
            ],
            "cut {cut}"
        );
    }
}

#[test]
fn row_end_and_abort_length_fields_are_ignored_whatever_they_say() {
    let wire = cat(&[
        header(FrameType::Start, 1, 0),
        frame(FrameType::Data, 1, b"a"),
        header(FrameType::End, 1, u32::MAX),
        header(FrameType::Start, 2, 0),
        header(FrameType::Abort, 2, u32::MAX),
        message(3, b"c"),
    ]);
    for cut in CUTS {
        assert_eq!(
            decode_small(&wire, cut),
            [Outcome::msg(1, b"a"), Aborted(2), Outcome::msg(3, b"c")]
        );
    }
}

#[test]
fn row_start_hint_over_the_limit_rejects_the_message_at_its_start() {
    let wire = cat(&[
        header(FrameType::Start, 1, 101),
        frame(FrameType::Data, 1, b"x"),
        frame(FrameType::Data, 1, b"y"),
        header(FrameType::End, 1, 0),
        message(2, b"ok"),
    ]);
    assert_eq!(
        decode_small(&wire, 3),
        [
            E(P::MessageTooLarge {
                id: 1,
                size: 101,
                max: 100
            }),
            Outcome::msg(2, b"ok")
        ]
    );
}

#[test]
fn row_duplicate_start_drops_the_stale_message_and_starts_clean() {
    let wire = cat(&[
        header(FrameType::Start, 1, 0),
        frame(FrameType::Data, 1, b"stale"),
        header(FrameType::Start, 1, 0),
        frame(FrameType::Data, 1, b"fresh"),
        header(FrameType::End, 1, 0),
    ]);
    assert_eq!(
        decode_small(&wire, 4),
        [E(P::DuplicateStart { id: 1 }), Outcome::msg(1, b"fresh")]
    );
}

#[test]
fn row_end_and_abort_for_unknown_ids_are_reported() {
    let wire = cat(&[
        header(FrameType::End, 8, 0),
        header(FrameType::Abort, 9, 0),
        message(1, b"k"),
    ]);
    assert_eq!(
        decode_small(&wire, 5),
        [
            E(P::UnknownId {
                id: 8,
                kind: FrameType::End
            }),
            E(P::UnknownId {
                id: 9,
                kind: FrameType::Abort
            }),
            Outcome::msg(1, b"k"),
        ]
    );
}

#[test]
fn row_abort_reports_aborted_and_returns_buffers_to_the_pool() {
    let pool: Pool<8, 16> = Pool::new();
    let mut r: Reassembler<'_, 4, 8, 16> = Reassembler::new(&pool, small_limits());
    let part = cat(&[
        header(FrameType::Start, 6, 0),
        frame(FrameType::Data, 6, &[7; 40]),
    ]);
    r.feed_all(&part, |_| panic!("nothing completes yet"));
    assert_eq!(pool.stats().in_use, 3, "40 bytes in 16-byte blocks");
    let mut got = Vec::new();
    r.feed_all(&header(FrameType::Abort, 6, 0), |x| {
        got.push(common::own(x))
    });
    assert_eq!(got, [Aborted(6)]);
    assert_eq!(pool.stats().in_use, 0);
    assert_eq!(r.metrics().aborted, 1);
}

#[test]
fn row_more_messages_in_flight_than_the_table_holds_is_bounded_and_in_sync() {
    // 200 Starts (the reference's heap grew ~200 MiB on this); table capacity 8. While the
    // table is full, message 1 is refused too (its later frames consumed quietly); once the
    // peer aborts the 8 open ones, message 2 goes through.
    let mut parts: Vec<Vec<u8>> = (100..300)
        .map(|id| header(FrameType::Start, id, 1 << 20))
        .collect();
    parts.push(message(1, b"refused"));
    parts.extend((100..108).map(|id| header(FrameType::Abort, id, 0)));
    parts.push(message(2, b"survives"));
    let wire = cat(&parts);
    let pool: Pool<16, 32> = Pool::new();
    let got = decode_with(&pool, Limits::new(2 << 20), &wire, 64);
    let too_many = got
        .iter()
        .filter(|o| matches!(o, E(P::TooManyStreams { .. })))
        .count();
    assert_eq!(too_many, 193);
    assert!(got.contains(&E(P::TooManyStreams { id: 1 })));
    let aborted = got.iter().filter(|o| matches!(o, Aborted(_))).count();
    assert_eq!(aborted, 8);
    assert_eq!(got.last(), Some(&Outcome::msg(2, b"survives")));
    assert_eq!(
        got.len(),
        193 + 8 + 1,
        "nothing else: no error per frame of message 1"
    );
    // Memory is the table's fixed size whatever the input: nothing here can grow. (The
    // `histograms` feature adds fixed-size histograms: pool use here, sizes and Start-to-End
    // times in the counters, and a start time per entry.)
    let histograms = if cfg!(feature = "histograms") {
        3 * core::mem::size_of::<mux_nostd::Histogram>() + 8 + 8 * 4
    } else {
        0
    };
    assert!(core::mem::size_of::<Reassembler<'_, 8, 16, 32>>() < 512 + histograms);
}

#[test]
fn row_no_pool_buffer_left_drops_that_message_and_keeps_sync() {
    // 4 blocks of 16 bytes: message 1 takes all of them, message 2 cannot get any.
    let wire = cat(&[
        header(FrameType::Start, 1, 0),
        header(FrameType::Start, 2, 0),
        frame(FrameType::Data, 1, &[1; 64]),
        frame(FrameType::Data, 2, &[2; 10]),
        frame(FrameType::Data, 2, &[2; 10]),
        header(FrameType::End, 2, 0),
        header(FrameType::End, 1, 0),
        message(3, b"after"),
    ]);
    let pool: Pool<4, 16> = Pool::new();
    assert_eq!(
        decode_with(&pool, small_limits(), &wire, 9),
        [
            E(P::PoolExhausted { id: 2 }),
            Outcome::Msg(1, vec![1; 64]),
            Outcome::msg(3, b"after")
        ]
    );
    assert_eq!(pool.stats().exhausted, 1);
}

#[test]
fn pool_running_out_inside_a_run_of_data_frames_drops_only_that_message() {
    // Message 1's frames arrive back to back (the reassembler's bulk path takes them in one
    // go); the pool runs out at its third frame. Whatever the cut, the same outcome.
    let wire = cat(&[
        header(FrameType::Start, 1, 0),
        frame(FrameType::Data, 1, &[1; 16]),
        frame(FrameType::Data, 1, &[1; 16]),
        frame(FrameType::Data, 1, &[1; 16]),
        frame(FrameType::Data, 1, &[1; 16]),
        header(FrameType::End, 1, 0),
        message(2, &[2; 32]),
    ]);
    for cut in [1, 7, 9, 25, 50, usize::MAX] {
        let pool: Pool<2, 16> = Pool::new();
        assert_eq!(
            decode_with(&pool, small_limits(), &wire, cut),
            [E(P::PoolExhausted { id: 1 }), Outcome::Msg(2, vec![2; 32])],
            "cut {cut}"
        );
        assert_eq!(pool.stats().exhausted, 1, "cut {cut}");
    }
}

#[test]
fn the_rejected_id_memory_forgets_the_oldest_and_an_ended_id() {
    // Ten messages refused at their Start (too large); eight ids are remembered.
    let mut parts: Vec<Vec<u8>> = (1..=10)
        .map(|id| header(FrameType::Start, id, 1000))
        .collect();
    // Ids 1 and 2, the oldest, were forgotten: their Data is reported. Ids 3..=10 are
    // consumed quietly.
    parts.extend((1..=10).map(|id| frame(FrameType::Data, id, b"x")));
    // An End forgets id 5 (quietly); its next Data is reported again.
    parts.push(header(FrameType::End, 5, 0));
    parts.push(frame(FrameType::Data, 5, b"y"));
    parts.push(message(11, b"ok"));
    let wire = cat(&parts);
    let too_large = |id| {
        E(P::MessageTooLarge {
            id,
            size: 1000,
            max: 100,
        })
    };
    let unknown = |id| {
        E(P::UnknownId {
            id,
            kind: FrameType::Data,
        })
    };
    let mut want: Vec<Outcome> = (1..=10).map(too_large).collect();
    want.extend([unknown(1), unknown(2), unknown(5), Outcome::msg(11, b"ok")]);
    for cut in CUTS {
        assert_eq!(decode_small(&wire, cut), want, "cut {cut}");
    }
}

#[test]
fn row_end_of_stream_inside_header_or_payload_is_truncated() {
    let wire = cat(&[
        message(1, b"a"),
        header(FrameType::Data, 2, 10)[..4].to_vec(),
    ]);
    assert_eq!(
        decode_small(&wire, 1),
        [Outcome::msg(1, b"a"), E(P::Truncated { missing: 5 })]
    );
}

#[test]
fn row_end_of_stream_with_messages_in_flight_reports_each_id() {
    let wire = cat(&[
        header(FrameType::Start, 4, 0),
        header(FrameType::Start, 5, 0),
    ]);
    let mut got = decode_small(&wire, 9);
    got.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(
        got,
        [E(P::Unfinished { id: 4 }), E(P::Unfinished { id: 5 })]
    );
}

/// A source that fails on every read and counts how often it was asked.
struct Broken {
    reads: usize,
}

type Fault = embedded_io::ErrorKind;
const FAULT: Fault = embedded_io::ErrorKind::BrokenPipe;
impl embedded_io::ErrorType for Broken {
    type Error = Fault;
}
impl embedded_io::Read for Broken {
    fn read(&mut self, _buf: &mut [u8]) -> Result<usize, Fault> {
        self.reads += 1;
        Err(FAULT)
    }
}

#[test]
fn row_a_failing_source_returns_its_error_once_and_the_reader_does_not_spin() {
    let pool: Pool<4, 16> = Pool::new();
    let mut rx = [0u8; 16];
    let core: Reassembler<'_, 4, 4, 16> = Reassembler::new(&pool, small_limits());
    let mut r = Reader::new(Broken { reads: 0 }, &mut rx, core);
    assert!(r.recv().is_err());
    for _ in 0..1000 {
        assert!(matches!(r.recv(), Ok(None)));
    }
    assert_eq!(r.get_mut().reads, 1);
}

#[test]
fn reader_reports_open_messages_after_an_io_error() {
    struct Once<'a>(&'a [u8], bool);
    impl embedded_io::ErrorType for Once<'_> {
        type Error = Fault;
    }
    impl embedded_io::Read for Once<'_> {
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, Fault> {
            if self.1 {
                return Err(FAULT);
            }
            self.1 = true;
            let n = self.0.len().min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            Ok(n)
        }
    }
    let wire = cat(&[
        header(FrameType::Start, 3, 0),
        frame(FrameType::Data, 3, b"par"),
    ]);
    let pool: Pool<4, 16> = Pool::new();
    let mut rx = [0u8; 64];
    let core: Reassembler<'_, 4, 4, 16> = Reassembler::new(&pool, small_limits());
    let mut r = Reader::new(Once(&wire, false), &mut rx, core);
    assert!(r.recv().is_err());
    assert!(matches!(
        r.recv(),
        Ok(Some(Received::Error(P::Unfinished { id: 3 })))
    ));
    assert!(matches!(r.recv(), Ok(None)));
    assert_eq!(pool.stats().in_use, 0);
}

#[test]
fn errors_are_counted_by_kind() {
    let pool: Pool<4, 16> = Pool::new();
    let mut r: Reassembler<'_, 4, 4, 16> = Reassembler::new(&pool, small_limits());
    let wire = vector("bad-reserved-types.bin");
    r.feed_all(&wire, |_| {});
    assert_eq!(r.metrics().errors.unknown_type, 4);
    assert_eq!(r.metrics().errors.total(), 4);
    assert_eq!((r.metrics().messages, r.metrics().bytes), (1, 2));
}

#[test]
fn writer_counts_messages_and_cancellations() {
    let mut buf = [0u8; 4096];
    let mut w = Writer::new(&mut buf[..], Original);
    w.send(&[1; 3000]).unwrap();
    let mut frames = 0;
    let r = w.send_cancellable(9, &[2; 3000], || {
        frames += 1;
        frames > 2 // Start and one Data frame go out, then cancel
    });
    assert!(matches!(r, Err(mux_nostd::SendError::Cancelled)));
    let m = *w.metrics();
    assert_eq!((m.messages, m.bytes, m.aborted), (1, 3000, 1));
    let used = 4096 - w.into_inner().len();
    let got = decode(&buf[..used], usize::MAX);
    assert_eq!(got, [Outcome::Msg(1, vec![1; 3000]), Aborted(9)]);
    // What went out for message 9: Start, one 1024-byte Data frame, Abort.
    assert_eq!(used, (5 * 9 + 3000) + (9 + 9 + 1024 + 9));
}

#[test]
fn data_header_for_unknown_id_is_reported_even_without_payload_bytes() {
    // Found by the `model` fuzz target: the error used to wait for the first payload byte.
    let wire = header(FrameType::Data, 11, 90);
    for cut in CUTS {
        assert_eq!(
            decode_small(&wire, cut),
            [
                E(P::UnknownId {
                    id: 11,
                    kind: FrameType::Data
                }),
                E(P::Truncated { missing: 90 })
            ]
        );
    }
}

#[test]
fn a_run_time_cap_below_the_table_capacity_refuses_extra_messages() {
    let mut d: mux_nostd::Demux<(), 8> = mux_nostd::Demux::new(small_limits());
    d.set_max_open(2);
    assert_eq!(d.max_open(), 2);
    let wire = cat(&[
        header(FrameType::Start, 1, 0),
        header(FrameType::Start, 2, 0),
        header(FrameType::Start, 3, 0),
        frame(FrameType::Data, 3, b"quiet"),
        header(FrameType::End, 3, 0),
        header(FrameType::End, 1, 0),
        header(FrameType::Start, 4, 0),
    ]);
    let mut errors = Vec::new();
    let mut completed = Vec::new();
    let mut rest = &wire[..];
    while !rest.is_empty() {
        let (n, ev) = d.feed(rest);
        rest = &rest[n..];
        match ev {
            Some(mux_nostd::Event::Error { error, .. }) => errors.push(error),
            Some(mux_nostd::Event::Completed { id, .. }) => completed.push(id),
            _ => {}
        }
    }
    assert_eq!(errors, [P::TooManyStreams { id: 3 }]);
    assert_eq!(completed, [1]);
    assert_eq!(
        d.open_count(),
        2,
        "2 and 4 are open: the slot freed by 1 was reused"
    );
}

/// Feeds `wire` whole into `d`, recording each Data chunk into the message's value (through
/// [`Demux::current_mut`](mux_nostd::Demux::current_mut), as a reassembler does); returns the
/// completed messages.
fn feed_values(d: &mut mux_nostd::Demux<u32, 4>, wire: &[u8]) -> Vec<(u32, u32)> {
    let mut done = Vec::new();
    let mut rest = wire;
    while !rest.is_empty() {
        let (n, ev) = d.feed(rest);
        rest = &rest[n..];
        match ev {
            Some(mux_nostd::Event::Data { id, .. }) => {
                // The value counts the chunks, tagged with the id they came for.
                let v = d
                    .current_mut()
                    .expect("the message of the Data just received");
                assert!(*v == 0 || *v / 100 == id, "chunk of {id} went to value {v}");
                *v = id * 100 + *v % 100 + 1;
            }
            Some(mux_nostd::Event::Completed { id, value }) => done.push((id, value)),
            _ => {}
        }
    }
    done
}

#[test]
fn the_current_message_is_the_last_data_s_even_after_another_one_ends() {
    // 1, 2, 3 open; Data for 3, then for 1; 1 ends (its slot is swap-removed: 3 moves into it).
    let wire = cat(&[
        header(FrameType::Start, 1, 0),
        header(FrameType::Start, 2, 0),
        header(FrameType::Start, 3, 0),
        frame(FrameType::Data, 3, b"c"),
        frame(FrameType::Data, 1, b"a"),
        header(FrameType::End, 1, 0),
    ]);
    let mut d: mux_nostd::Demux<u32, 4> = mux_nostd::Demux::new(small_limits());
    assert_eq!(feed_values(&mut d, &wire), [(1, 101)]);
    // The last Data's message (1) is gone: nothing is current, nothing can be dropped.
    assert_eq!(d.current_mut(), None);
    assert_eq!(d.drop_current(P::PoolExhausted { id: 1 }), None);
    assert_eq!(d.metrics().errors.pool_exhausted, 0);
    // 2 and 3 are whole and still open.
    let wire = cat(&[
        frame(FrameType::Data, 3, b"c"),
        header(FrameType::End, 3, 0),
        header(FrameType::End, 2, 0),
    ]);
    assert_eq!(feed_values(&mut d, &wire), [(3, 302), (2, 0)]);

    // The current message is the one moved by the swap-remove: 1, 2, 3 open, Data for 3,
    // then 1 ends (3 moves into its slot): 3 is still current, and dropping drops 3.
    let wire = cat(&[
        header(FrameType::Start, 1, 0),
        header(FrameType::Start, 2, 0),
        header(FrameType::Start, 3, 0),
        frame(FrameType::Data, 3, b"c"),
        header(FrameType::End, 1, 0),
    ]);
    let mut d: mux_nostd::Demux<u32, 4> = mux_nostd::Demux::new(small_limits());
    assert_eq!(feed_values(&mut d, &wire), [(1, 0)]);
    assert_eq!(d.current_mut(), Some(&mut 301));
    assert_eq!(d.drop_current(P::PoolExhausted { id: 3 }), Some(301));
    // 3's later frames are consumed quietly; 2 is untouched.
    let wire = cat(&[
        frame(FrameType::Data, 3, b"c"),
        header(FrameType::End, 3, 0),
        frame(FrameType::Data, 2, b"b"),
        header(FrameType::End, 2, 0),
    ]);
    assert_eq!(feed_values(&mut d, &wire), [(2, 201)]);
    assert_eq!(d.metrics().errors.total(), 1);
}

#[test]
fn many_rejected_messages_in_flight_cost_one_error_each() {
    // A table of 48 with 8 messages open at most: 8 open ones, then 40 more Starts, each
    // refused with `TooManyStreams`. All 48 go on sending Data and End. The one-error rule
    // holds for every refused message: as many rejected ids are remembered as the table has
    // slots, not 8.
    const N: usize = 48;
    let ids = 1..=48u32;
    let mut parts: Vec<Vec<u8>> = ids
        .clone()
        .map(|id| header(FrameType::Start, id, 0))
        .collect();
    for _ in 0..3 {
        parts.extend(ids.clone().map(|id| frame(FrameType::Data, id, b"x")));
    }
    parts.extend(ids.clone().map(|id| header(FrameType::End, id, 0)));
    parts.push(message(100, b"after"));
    let wire = cat(&parts);
    for cut in CUTS {
        let mut d: mux_nostd::Demux<(), N> = mux_nostd::Demux::new(small_limits());
        d.set_max_open(8);
        let mut errors = Vec::new();
        let mut completed = Vec::new();
        let mut rest = &wire[..];
        while !rest.is_empty() {
            let (n, ev) = d.feed(&rest[..cut.min(rest.len())]);
            rest = &rest[n..];
            match ev {
                Some(mux_nostd::Event::Error { error, .. }) => errors.push(error),
                Some(mux_nostd::Event::Completed { id, .. }) => completed.push(id),
                _ => {}
            }
        }
        let want: Vec<P> = (9..=48).map(|id| P::TooManyStreams { id }).collect();
        assert_eq!(errors, want, "cut {cut}: one error per refused message");
        let mut want_done: Vec<u32> = (1..=8).collect();
        want_done.push(100);
        assert_eq!(completed, want_done, "cut {cut}");
        assert!(d.is_idle());
        assert_eq!(d.metrics().errors.too_many_streams, 40, "cut {cut}");
        assert_eq!(d.metrics().errors.unknown_id, 0, "cut {cut}");
    }
}

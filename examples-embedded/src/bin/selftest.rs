//! `selftest`: the core's conformance, run on the target.
//!
//! 1. **Encode**: every single-message golden vector (Original, Optimized, Hybrid and Hybrid
//!    8 KiB; 0 B to 1 MiB + 1) is re-encoded on the target and its SHA-256 compared with the
//!    one in `MANIFEST.md`. Messages up to 8193 bytes go through the blocking `Writer` (payload
//!    in RAM); all of them also through `FramePlan` with the payload generated as it is hashed
//!    (a 1 MiB message does not fit 64 KiB of RAM). The two interleaved vectors are rebuilt by
//!    merging the frames of their messages round-robin. A few small ones are also compared
//!    byte for byte with `encode_into`.
//! 2. **Decode**: every bad-input and edge vector, and four valid ones, are decoded with the
//!    blocking `Reader` and a `Reassembler` on a static pool, from a source that hands out 1 to
//!    13 bytes per read; the outcome (messages, aborts, typed errors) is compared with the
//!    rules of `docs/PROTOCOL.md`. The 75 KB `interleaved-hybrid` vector is decoded in streaming
//!    mode (`Demux`, no buffer at all) and its three payloads checked byte by byte.
//!
//! Prints one line per case over semihosting; exits 0 only if all pass.

#![no_std]
#![no_main]

use core::fmt::Write as _;

use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use mux_examples_embedded::exit::exit;
use mux_nostd::{
    AnyStrategy, Demux, Event, FramePlan, Limits, Pool, Reader, Reassembler, Received, Writer,
    encode_into,
};
use sha2::{Digest, Sha256};

/// Single-message vectors: strategy, payload size (rule R, id 7), sha256 of the file; generated
/// by `build.rs` from `tests/vectors/MANIFEST.md`.
const ENCODE: &[(&str, u32, &str)] = include!(concat!(env!("OUT_DIR"), "/encode_vectors.rs"));

/// Payload rule R of the vectors: byte `i` is `(i·31 + 7) mod 251`.
fn rule_r(i: usize) -> u8 {
    ((i * 31 + 7) % 251) as u8
}

/// Hashes `len` bytes of rule-R payload starting at `offset`.
fn hash_r(h: &mut Sha256, offset: usize, len: usize) {
    let mut block = [0u8; 256];
    let mut at = offset;
    while at < offset + len {
        let n = block.len().min(offset + len - at);
        for (k, b) in block[..n].iter_mut().enumerate() {
            *b = rule_r(at + k);
        }
        h.update(&block[..n]);
        at += n;
    }
}

/// Encodes the messages `(id, size)` with `strategy`, merging their frames round-robin (one
/// message alone is just its frames), payloads by rule R; returns the SHA-256.
fn encode_planned(strategy: &AnyStrategy, msgs: &[(u32, usize)]) -> [u8; 32] {
    let mut plans: heapless::Vec<FramePlan, 4> = msgs
        .iter()
        .map(|&(id, size)| FramePlan::new(strategy, id, size).expect("size fits u32"))
        .collect();
    let mut h = Sha256::new();
    loop {
        let mut progressed = false;
        for plan in plans.iter_mut() {
            if let Some(f) = plan.next() {
                h.update(f.header.to_bytes());
                hash_r(&mut h, f.offset as usize, f.body_len() as usize);
                progressed = true;
            }
        }
        if !progressed {
            break;
        }
    }
    h.finalize().into()
}

/// An `embedded_io::Write` sink that hashes what it is given.
struct HashSink(Sha256);

impl embedded_io::ErrorType for HashSink {
    type Error = core::convert::Infallible;
}

impl embedded_io::Write for HashSink {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// Largest payload sent through the `Writer` path (held in RAM).
const WRITER_MAX: usize = 8193;

fn hex(d: &[u8; 32]) -> heapless::String<64> {
    let mut s = heapless::String::new();
    for b in d {
        let _ = write!(s, "{b:02x}");
    }
    s
}

struct Tally {
    passed: u32,
    failed: u32,
}

impl Tally {
    fn check(&mut self, ok: bool, what: core::fmt::Arguments<'_>, detail: &str) {
        if ok {
            self.passed += 1;
            hprintln!("ok   {}", what);
        } else {
            self.failed += 1;
            hprintln!("FAIL {} {}", what, detail);
        }
    }
}

fn encode_all(t: &mut Tally, payload: &[u8]) {
    for &(name, size, want) in ENCODE {
        let strategy: AnyStrategy = name.parse().expect("known strategy name");
        let planned = hex(&encode_planned(&strategy, &[(7, size as usize)]));
        let mut ok = planned.as_str() == want;
        let mut paths = "FramePlan";
        if size as usize <= WRITER_MAX {
            let mut w = Writer::new(HashSink(Sha256::new()), strategy);
            let sent = w.send_with_id(7, &payload[..size as usize]).is_ok();
            let written = hex(&w.into_inner().0.finalize().into());
            ok &= sent && written.as_str() == want;
            paths = "FramePlan+Writer";
        }
        t.check(ok, format_args!("encode {name}-{size} ({paths})"), &planned);
    }
    for (name, strategy, msgs, want) in [
        (
            "interleaved-original",
            AnyStrategy::Original,
            &[(1, 3000), (2, 100)][..],
            "3b36aa559f9afa6efda77d0d0351a868da55377068c565badbd9e8a46cb6830d",
        ),
        (
            "interleaved-hybrid",
            AnyStrategy::default(),
            &[(1, 70000), (2, 5000), (3, 0)][..],
            "f22c51ba848c9b12a1631836fcf9b4203c962af0ed7f4272d607b6f92fd16047",
        ),
    ] {
        let got = hex(&encode_planned(&strategy, msgs));
        t.check(
            got.as_str() == want,
            format_args!("encode {name} (frames merged round-robin)"),
            &got,
        );
    }
    // Byte-for-byte, with `encode_into`.
    let mut out = [0u8; 1100];
    for (name, strategy, size, file) in [
        (
            "original-1",
            AnyStrategy::Original,
            1,
            &include_bytes!("../../../tests/vectors/original-1.bin")[..],
        ),
        (
            "optimized-1000",
            AnyStrategy::Optimized,
            1000,
            &include_bytes!("../../../tests/vectors/optimized-1000.bin")[..],
        ),
        (
            "original-1025",
            AnyStrategy::Original,
            1025,
            &include_bytes!("../../../tests/vectors/original-1025.bin")[..],
        ),
        (
            "hybrid-0",
            AnyStrategy::default(),
            0,
            &include_bytes!("../../../tests/vectors/hybrid-0.bin")[..],
        ),
    ] {
        let n = encode_into(&strategy, 7, &payload[..size], &mut out);
        let ok = n.is_ok_and(|n| &out[..n] == file);
        t.check(ok, format_args!("encode_into {name} (bytes)"), "");
    }
}

/// A source handing out 1 to 13 bytes per read, so that frames are cut everywhere.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl embedded_io::ErrorType for Trickle<'_> {
    type Error = core::convert::Infallible;
}

impl embedded_io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        self.step = self.step % 13 + 1;
        let n = self.step.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

static POOL: Pool<128, 64> = Pool::new();

type Outcome = heapless::String<200>;

/// Decodes `data` and describes what came out: `C<id>:<text>` (payloads up to 8 bytes) or
/// `C<id>:<n>B` (rule-R payloads, checked), `A<id>`, `E:<error kind>`.
fn decode(data: &[u8]) -> Outcome {
    let mut buf = [0u8; 32];
    let core: Reassembler<'static, 4, 128, 64> = Reassembler::new(&POOL, Limits::REFERENCE);
    let mut rx = Reader::new(Trickle { data, step: 0 }, &mut buf, core);
    let mut out = Outcome::new();
    let Ok(mut next) = rx.recv();
    while let Some(item) = next {
        let _ = match item {
            Received::Message(m) if m.len() <= 8 => {
                let mut text = [0u8; 8];
                let n = m.body().copy_to(&mut text);
                let text = core::str::from_utf8(&text[..n]).unwrap_or("?");
                write!(out, "C{}:{} ", m.id(), text)
            }
            Received::Message(m) => {
                let mut at = 0;
                let mut good = true;
                for chunk in m.body().chunks() {
                    for &b in chunk {
                        good &= b == rule_r(at);
                        at += 1;
                    }
                }
                let bad = if good { "" } else { "!bad" };
                write!(out, "C{}:{}B{} ", m.id(), m.len(), bad)
            }
            Received::Aborted { id } => write!(out, "A{id} "),
            Received::Error(e) => write!(out, "E:{} ", e.kind_name()),
        };
        let Ok(n) = rx.recv();
        next = n;
    }
    if POOL.stats().in_use != 0 {
        let _ = out.push_str("LEAK");
    }
    let len = out.trim_end().len();
    out.truncate(len);
    out
}

macro_rules! vector {
    ($name:literal, $want:literal) => {
        (
            $name,
            include_bytes!(concat!("../../../tests/vectors/", $name, ".bin")),
            $want,
        )
    };
}

/// Decoding cases: the file and the outcome `docs/PROTOCOL.md`'s rules give (limits: 10 MiB).
const DECODE: &[(&str, &[u8], &str)] = &[
    vector!("abort-partial", "A5 C9:ok"),
    vector!("bad-abort-unknown-id", "E:unknown-id C9:ok"),
    vector!(
        "bad-data-after-end",
        "C5:abc E:unknown-id E:unknown-id C9:ok"
    ),
    vector!("bad-data-unknown-id", "E:unknown-id C9:ok"),
    vector!("bad-duplicate-start-of-9", "E:duplicate-start C9:ok"),
    vector!("bad-duplicate-start", "E:duplicate-start C5:abc C9:ok"),
    vector!("bad-end-oversize-len", "C5:abc C9:ok"),
    vector!("bad-end-unknown-id", "E:unknown-id C9:ok"),
    vector!(
        "bad-eof-after-data-header",
        "C9:ok E:truncated E:unfinished"
    ),
    vector!("bad-eof-pending", "C9:ok E:unfinished"),
    vector!(
        "bad-oversize-data-in-message",
        "E:frame-too-large E:truncated"
    ),
    vector!("bad-oversize-data", "E:frame-too-large E:truncated"),
    vector!(
        "bad-reserved-types",
        "E:unknown-type E:unknown-type E:unknown-type E:unknown-type C9:ok"
    ),
    vector!("bad-start-huge-len", "E:message-too-large C9:ok"),
    vector!("bad-truncated-header", "C9:ok E:truncated"),
    vector!("bad-truncated-payload", "C9:ok E:truncated E:unfinished"),
    // Type 7 is header-only, so its 4 stray bytes shift every later header: the next three
    // 9-byte windows start with type bytes 'W' (87), 0 and 0, and 6 bytes are left over.
    vector!(
        "bad-unknown-type-with-payload",
        "E:unknown-type E:unknown-type E:unknown-type E:unknown-type E:truncated"
    ),
    vector!("bad-unknown-type", "E:unknown-type C9:ok"),
    vector!("bad-zero-data-unknown-id", "E:unknown-id C9:ok"),
    vector!("edge-end-abort-nonzero-len", "C5:abc A6 C9:ok"),
    vector!("edge-id-reuse", "C5:one C5:two C9:ok"),
    vector!("edge-ids-0-and-max", "C0:zero C4294967295:max C9:ok"),
    vector!("edge-start-len-at-limit", "C5:abc C9:ok"),
    vector!("edge-zero-data", "C5:abc C9:ok"),
    vector!("original-1025", "C7:1025B"),
    vector!("hybrid8k-6000", "C7:6000B"),
    vector!("optimized-4097", "C7:4097B"),
    vector!("interleaved-original", "C2:100B C1:3000B"),
];

fn decode_all(t: &mut Tally) {
    for &(name, data, want) in DECODE {
        let got = decode(data);
        t.check(
            got.as_str() == want,
            format_args!("decode {name}: {want}"),
            &got,
        );
    }
}

/// Streams `interleaved-hybrid` through a `Demux` (no message buffer) and checks every
/// payload byte against rule R at its offset within its message.
fn stream_interleaved(t: &mut Tally) {
    let data = include_bytes!("../../../tests/vectors/interleaved-hybrid.bin");
    let mut rx: Demux<(), 4> = Demux::new(Limits::REFERENCE);
    let mut offsets: heapless::Vec<(u32, usize), 4> = heapless::Vec::new();
    let mut out = Outcome::new();
    let mut good = true;
    let mut input = &data[..];
    while !input.is_empty() {
        // Feed in pieces of 100 bytes, as a UART driver would.
        let piece = &input[..input.len().min(100)];
        let mut rest = piece;
        while !rest.is_empty() {
            let (used, ev) = rx.feed(rest);
            rest = &rest[used..];
            match ev {
                Some(Event::Started { id, .. }) => good &= offsets.push((id, 0)).is_ok(),
                Some(Event::Data { id, chunk }) => {
                    if let Some(o) = offsets.iter_mut().find(|o| o.0 == id) {
                        for &b in chunk {
                            good &= b == rule_r(o.1);
                            o.1 += 1;
                        }
                    }
                }
                Some(Event::Completed { id, .. }) => {
                    let n = offsets.iter().find(|o| o.0 == id).map_or(0, |o| o.1);
                    offsets.retain(|o| o.0 != id);
                    let _ = write!(out, "C{id}:{n}B ");
                }
                Some(other) => {
                    good = false;
                    let _ = write!(out, "{other:?} ");
                }
                None => {}
            }
        }
        input = &input[piece.len()..];
    }
    good &= rx.finish().is_none();
    let want = "C3:0B C2:5000B C1:70000B";
    let ok = good && out.trim_end() == want;
    t.check(
        ok,
        format_args!("stream interleaved-hybrid (Demux, 100-byte pieces): {want}"),
        &out,
    );
}

#[entry]
fn main() -> ! {
    hprintln!("selftest: mux-nostd conformance on {}", env!("TARGET_DESC"));
    let mut t = Tally {
        passed: 0,
        failed: 0,
    };
    let payload = cortex_m::singleton!(: [u8; WRITER_MAX] = [0; WRITER_MAX]).expect("once");
    for (i, b) in payload.iter_mut().enumerate() {
        *b = rule_r(i);
    }
    encode_all(&mut t, payload);
    decode_all(&mut t);
    stream_interleaved(&mut t);
    let s = POOL.stats();
    hprintln!(
        "selftest: {} passed, {} failed (decode pool high water {}/{} blocks)",
        t.passed,
        t.failed,
        s.high_water,
        s.blocks
    );
    exit(t.failed == 0)
}

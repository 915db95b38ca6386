//! The serial link profile: its encoder and decoder on the host, in bytes of the plain stream
//! per second, and its bytes on the wire above the plain format; the profile's goals.

use std::hint::black_box;

use mux_nostd::{
    AnyStrategy, DEFAULT_LINK_BUFFER, Frames, Hybrid, LinkDecoder, LinkEncoder, encode_into,
};
use mux_test_support::rule_r;

use crate::config::Config;
use crate::goals::Goals;
use crate::json::Ratios;
use crate::rounds::interleaved;

/// A plain stream of `count` messages of `size` bytes with `strategy`.
fn plain_stream(strategy: AnyStrategy, count: u32, payload: &[u8]) -> Vec<u8> {
    let mut wire = Vec::new();
    for id in 1..=count {
        for (h, body) in Frames::new(&strategy, id, payload).unwrap() {
            wire.extend_from_slice(&h);
            wire.extend_from_slice(body);
        }
    }
    wire
}

/// Encodes `plain` through a link encoder with the default buffer, into `out`.
fn encode(enc: &mut LinkEncoder<Vec<u8>>, mut plain: &[u8], out: &mut Vec<u8>) {
    out.clear();
    while !plain.is_empty() {
        let n = enc.push(plain);
        plain = &plain[n..];
        out.extend_from_slice(enc.output());
        let k = enc.output().len();
        enc.consume(k);
    }
    enc.end_frame();
    out.extend_from_slice(enc.output());
    let k = enc.output().len();
    enc.consume(k);
}

/// Decodes the encoded stream `wire` as a reader would: copied into the read buffer `buf`,
/// frames found and checked in place; returns the plain bytes found.
fn decode(wire: &[u8], buf: &mut [u8]) -> usize {
    let mut dec = LinkDecoder::new();
    let (mut filled, mut got, mut rest) = (0, 0, wire);
    loop {
        while let Some(f) = dec.next(buf, &mut filled) {
            got += f.body.len();
        }
        if rest.is_empty() {
            return got;
        }
        let n = rest.len().min(buf.len() - filled).min(buf.len() / 2);
        buf[filled..filled + n].copy_from_slice(&rest[..n]);
        filled += n;
        rest = &rest[n..];
    }
}

/// Prints the "Serial link profile" section, records its ratios and goals.
pub fn section(cfg: &Config, ratios: &mut Ratios, goals: &mut Goals) {
    println!("## Serial link profile: COBS and CRC-32C on the host");
    println!();
    println!(
        "The link encoder (`LinkEncoder`, {DEFAULT_LINK_BUFFER}-byte buffer) fed a plain stream from memory, its frames copied out; the decoder (`LinkDecoder`) fed the encoded stream copied into a {0}-byte read buffer in pieces of half its size, as reads would fill it, each frame decoded and checked in place. Throughput in bytes of the plain stream per second. Overhead: bytes on the wire above the plain format.",
        4 * DEFAULT_LINK_BUFFER
    );
    println!();
    println!("| stream | encode | decode | plain bytes | on the wire | overhead |");
    println!("|---|---|---|---|---|---|");
    let kib = rule_r(1024);
    let mib = rule_r(1 << 20);
    let cases = [
        (
            "64 × 1 KiB, Hybrid",
            "1k",
            plain_stream(AnyStrategy::Hybrid { threshold: 4096 }, 64, &kib),
        ),
        (
            "1 × 1 MiB, Optimized",
            "1m",
            plain_stream(AnyStrategy::Optimized, 1, &mib),
        ),
    ];
    let mut worst_enc = f64::INFINITY;
    let mut worst_dec = f64::INFINITY;
    for (name, k, plain) in &cases {
        let mut enc = LinkEncoder::new(vec![0u8; DEFAULT_LINK_BUFFER]);
        let mut wire = Vec::with_capacity(plain.len() * 2);
        encode(&mut enc, plain, &mut wire);
        let mut buf = vec![0u8; 4 * DEFAULT_LINK_BUFFER];
        assert_eq!(
            decode(&wire, &mut buf),
            plain.len(),
            "{name}: decoded whole"
        );
        let r = interleaved!(cfg, {
            "enc" => encode(&mut enc, black_box(plain), &mut wire);
            "dec" => black_box(decode(black_box(&wire), &mut buf));
        });
        let rate = |v: &str| plain.len() as f64 / r.median(v);
        let (e, d) = (rate("enc"), rate("dec"));
        worst_enc = worst_enc.min(e);
        worst_dec = worst_dec.min(d);
        let over = 100.0 * (wire.len() as f64 / plain.len() as f64 - 1.0);
        println!(
            "| {name} | {e:.2} GB/s | {d:.2} GB/s | {} | {} | {over:.3} % |",
            plain.len(),
            wire.len()
        );
        ratios.put(format!("link_encode_gbps_{k}"), e);
        ratios.put(format!("link_decode_gbps_{k}"), d);
        ratios.put(format!("link_overhead_pct_{k}"), over);
    }
    // The overhead of one 1 KiB message with payloads of other kinds: no zero byte at all
    // (every COBS group full, the worst case) and bytes from a generator.
    let one = |payload: &[u8]| {
        let mut plain = vec![0u8; 2048];
        let n = encode_into(&Hybrid::<4096>, 1, payload, &mut plain).unwrap();
        let mut enc = LinkEncoder::new(vec![0u8; DEFAULT_LINK_BUFFER]);
        let mut wire = Vec::new();
        encode(&mut enc, &plain[..n], &mut wire);
        (n, wire.len())
    };
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let random: Vec<u8> = (0..1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    println!();
    println!("One 1 KiB message (Hybrid: Start, one Data frame, End; 1051 plain bytes):");
    println!();
    println!("| payload | on the wire | overhead |");
    println!("|---|---|---|");
    let mut worst_over: f64 = 0.0;
    for (name, payload) in [
        ("rule R (byte i = (31·i + 7) mod 251)", kib.clone()),
        ("xorshift bytes", random),
        ("no zero byte (0x55 × 1024)", vec![0x55; 1024]),
    ] {
        let (n, w) = one(&payload);
        let over = 100.0 * (w as f64 / n as f64 - 1.0);
        worst_over = worst_over.max(over);
        println!("| {name} | {w} B (+{}) | {over:.3} % |", w - n);
    }
    println!();
    let kib_over = 100.0 * (one(&kib).1 as f64 / 1051.0 - 1.0);
    goals.check(
        "serial link profile: encode on the host ≥ 1 GB/s",
        format!("{worst_enc:.2} GB/s"),
        worst_enc >= 1.0,
    );
    goals.check(
        "serial link profile: decode on the host ≥ 1 GB/s",
        format!("{worst_dec:.2} GB/s"),
        worst_dec >= 1.0,
    );
    goals.check(
        "serial link profile: ≤ 1 % more bytes than plain for 1 KiB messages (rule R payload)",
        format!("{kib_over:.3} % (worst payload {worst_over:.3} %)"),
        kib_over <= 1.0,
    );
}

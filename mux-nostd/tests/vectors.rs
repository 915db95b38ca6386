//! Byte-exact conformance with the Go reference's golden captures.

mod common;

use common::{CUTS, Outcome, decode, rule_r, vector, vectors_with_prefix};
use mux_nostd::{
    AnyStrategy, AsyncWriter, Frames, Hybrid, Hybrid8k, Optimized, Original, Outgoing, Strategy,
    Writer, encode_into,
};
use sha2::{Digest, Sha256};

/// The strategy a vector's name prefix stands for, as a static type and at run time.
fn encode_all_ways<S: Strategy>(s: S, any: AnyStrategy, payload: &[u8]) -> Vec<Vec<u8>> {
    let mut ways = Vec::new();
    // 1. encode_into (Frames under the hood).
    let mut buf = vec![0u8; payload.len() + 64 * 1024];
    let n = encode_into(&s, 7, payload, &mut buf).unwrap();
    ways.push(buf[..n].to_vec());
    // 2. The blocking writer over embedded-io (a slice sink), static strategy.
    let mut buf2 = vec![0u8; n];
    let mut w = Writer::new(&mut buf2[..], &s);
    w.send_with_id(7, payload).unwrap();
    assert_eq!(w.into_inner().len(), 0);
    ways.push(buf2);
    // 3. The same with the run-time strategy.
    let mut buf3 = vec![0u8; n];
    Writer::new(&mut buf3[..], any)
        .send_with_id(7, payload)
        .unwrap();
    ways.push(buf3);
    // 4. The async writer.
    let mut buf4 = vec![0u8; n];
    embassy_futures::block_on(async {
        AsyncWriter::new(&mut buf4[..], &s)
            .send_with_id(7, payload)
            .await
            .unwrap();
    });
    ways.push(buf4);
    // 5. Outgoing driven through a sink taking 1000 bytes at a time.
    let mut o = Outgoing::new(&s, 7, payload.len()).unwrap();
    let mut buf5 = Vec::new();
    while let Some(b) = o.next_bytes(payload, &mut || false) {
        let take = b.len().min(1000);
        buf5.extend_from_slice(&b[..take]);
        o.advance(take);
    }
    ways.push(buf5);
    // 6. Frames, header and body pairs.
    let mut buf6 = Vec::new();
    for (h, b) in Frames::new(&s, 7, payload).unwrap() {
        buf6.extend_from_slice(&h);
        buf6.extend_from_slice(b);
    }
    ways.push(buf6);
    ways
}

fn check_prefix<S: Strategy + Copy>(prefix: &str, s: S, any: AnyStrategy) -> usize {
    let files = vectors_with_prefix(prefix);
    for (name, want) in &files {
        let size: usize = name[prefix.len()..name.len() - 4].parse().unwrap();
        let payload = rule_r(size);
        for (way, got) in encode_all_ways(s, any, &payload).iter().enumerate() {
            assert!(
                got == want,
                "{name}: encoding way {way} differs from the reference"
            );
        }
        let cuts: &[usize] = if want.len() > 100_000 {
            &[4096, usize::MAX]
        } else {
            &CUTS
        };
        for &cut in cuts {
            assert_eq!(
                decode(want, cut),
                vec![Outcome::Msg(7, payload.clone())],
                "{name} cut {cut}"
            );
        }
    }
    files.len()
}

#[test]
fn original_vectors_are_reproduced_exactly() {
    assert_eq!(
        check_prefix("original-", Original, AnyStrategy::Original),
        13
    );
}

#[test]
fn optimized_vectors_are_reproduced_exactly() {
    assert_eq!(
        check_prefix("optimized-", Optimized, AnyStrategy::Optimized),
        13
    );
}

#[test]
fn hybrid_4096_vectors_are_reproduced_exactly() {
    let any = AnyStrategy::Hybrid { threshold: 4096 };
    assert_eq!(check_prefix("hybrid-", Hybrid::<4096>, any), 13);
}

#[test]
fn hybrid_8192_vectors_are_reproduced_exactly() {
    let any = AnyStrategy::Hybrid { threshold: 8192 };
    assert_eq!(check_prefix("hybrid8k-", Hybrid8k::default(), any), 4);
}

#[test]
fn copied_vectors_match_the_manifest_checksums() {
    let manifest = String::from_utf8(vector("MANIFEST.md")).unwrap();
    let mut checked = 0;
    for line in manifest.lines().filter(|l| l.starts_with("| `")) {
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        let name = cols[1].trim_matches('`');
        // The sha256 column: the one cell that is 64 hex digits (frame lists may hold `\|`).
        let sha = cols
            .iter()
            .map(|c| c.trim_matches('`'))
            .find(|c| c.len() == 64 && c.bytes().all(|b| b.is_ascii_hexdigit()))
            .unwrap();
        let got = hex(&Sha256::digest(vector(name)));
        assert_eq!(got, sha, "{name}");
        checked += 1;
    }
    assert_eq!(checked, 71);
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn auto_numbering_starts_at_one_and_counts_up() {
    let mut buf = [0u8; 256];
    let mut w = Writer::new(&mut buf[..], Original);
    let ids: Vec<u32> = (0..3).map(|_| w.send(b"x").unwrap()).collect();
    assert_eq!(ids, [1, 2, 3]);
    let rest = w.into_inner().len();
    let got = decode(&buf[..256 - rest], usize::MAX);
    assert_eq!(got, [1, 2, 3].map(|id| Outcome::msg(id, b"x")));
}

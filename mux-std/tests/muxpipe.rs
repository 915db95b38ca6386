//! The `muxpipe` tool in real shell pipes, and as a child-process plugin spoken to over its
//! stdio by a [`Node`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use mux_std::{Config, Node, Received};
use sha2::{Digest, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_muxpipe");
const STRATEGIES: [&str; 4] = ["original", "optimized", "hybrid", "hybrid8k"];

fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors")
}

fn rule_r(size: usize) -> Vec<u8> {
    (0..size).map(|i| ((i * 31 + 7) % 251) as u8).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Runs a shell pipeline (muxpipe's path in `$M`) and returns its stdout lines.
fn pipeline(script: &str) -> Vec<String> {
    let out = Command::new("sh")
        .args(["-c", &format!("set -e; {script}")])
        .env("M", BIN)
        .stderr(Stdio::inherit())
        .output()
        .expect("run sh");
    assert!(out.status.success(), "{script}: {:?}", out.status);
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn expect_ok_lines(lines: &[String], n: usize, size: usize, what: &str) {
    let sum = sha256_hex(&rule_r(size));
    let mut want: Vec<String> = (1..=n).map(|id| format!("ok {id} {size} {sum}")).collect();
    want.push(format!("total {n}"));
    let mut got = lines.to_vec();
    // `echo` may reorder nothing here (one message at a time), but sort the ok lines to be
    // independent of it.
    let total = got.pop();
    got.sort_by_key(|l| l.split(' ').nth(1).and_then(|id| id.parse::<u32>().ok()));
    got.extend(total);
    assert_eq!(got, want, "{what}");
}

#[test]
fn write_into_read_for_all_strategies() {
    for strategy in STRATEGIES {
        for (n, size) in [(3, 0), (5, 1), (4, 4097), (3, 8193), (2, 70_000)] {
            let lines = pipeline(&format!("\"$M\" write {strategy} {n} {size} | \"$M\" read"));
            expect_ok_lines(
                &lines,
                n,
                size,
                &format!("write {strategy} {n} {size} | read"),
            );
        }
    }
}

#[test]
fn write_echo_read_for_all_strategies() {
    for strategy in STRATEGIES {
        for (n, size) in [(4, 0), (6, 1000), (3, 6000), (2, 300_000)] {
            // The echo uses the next strategy, so both framings are exercised.
            let back =
                STRATEGIES[(STRATEGIES.iter().position(|s| *s == strategy).unwrap() + 1) % 4];
            let lines = pipeline(&format!(
                "\"$M\" write {strategy} {n} {size} | \"$M\" echo {back} | \"$M\" read"
            ));
            expect_ok_lines(&lines, n, size, &format!("{strategy} | echo {back} | read"));
        }
    }
}

#[test]
fn write_output_is_the_strategy_framing() {
    // Same frames as the golden vectors (those use id 7, muxpipe starts at 1).
    for (strategy, size, frames) in [
        ("original", 4096, "S4096 D1024×4 E0"),
        ("optimized", 65537, "S0 D16384×4 D1 E0"),
        ("hybrid", 6000, "S0 D4096 D1904 E0"),
        ("hybrid8k", 6000, "S0 D1024×5 D880 E0"),
    ] {
        let lines = pipeline(&format!("\"$M\" write {strategy} 1 {size} | \"$M\" frames"));
        assert_eq!(lines, [format!("1: {frames}")], "{strategy} {size}");
    }
}

/// The single-message and interleaved rows of MANIFEST.md: file and frame list.
fn manifest_rows() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(vectors().join("MANIFEST.md")).unwrap();
    text.lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let file = cells.get(1)?.trim_matches('`').to_string();
            let frames = cells.get(7)?.trim_matches('`').to_string();
            let strategy = cells.get(2)?;
            let plain = ["original", "optimized", "hybrid", "hybrid, threshold 8192"];
            plain.contains(strategy).then_some((file, frames))
        })
        .collect()
}

#[test]
fn frames_prints_the_manifest_notation_of_every_single_message_vector() {
    let rows = manifest_rows();
    assert_eq!(rows.len(), 43, "13 sizes × 3 strategies + 4 hybrid8k rows");
    for (file, frames) in rows {
        let path = vectors().join(&file);
        let lines = pipeline(&format!("\"$M\" frames < '{}'", path.display()));
        assert_eq!(lines, [format!("7: {frames}")], "{file}");
    }
    let lines = pipeline(&format!(
        "\"$M\" frames < '{}'",
        vectors().join("interleaved-original.bin").display()
    ));
    assert_eq!(lines, ["2: S100 D100 E0", "1: S3000 D1024×2 D952 E0"]);
}

#[test]
fn read_reports_aborts_and_errors_as_such() {
    let lines = pipeline(&format!(
        "\"$M\" read < '{}'",
        vectors().join("abort-partial.bin").display()
    ));
    let ok = sha256_hex(b"ok");
    assert_eq!(
        lines,
        [
            "abort 5".to_string(),
            format!("ok 9 2 {ok}"),
            "total 1".into()
        ]
    );
    let lines = pipeline(&format!(
        "\"$M\" read < '{}'",
        vectors().join("bad-eof-pending.bin").display()
    ));
    assert_eq!(
        lines,
        [
            format!("ok 9 2 {ok}"),
            "error stream ended with message 5 unfinished".into(),
            "total 1".into()
        ]
    );
}

#[test]
fn child_process_plugin_echoes_over_stdio() {
    let (node, mut child) = Node::spawn(
        Command::new(BIN).args(["echo", "hybrid8k"]),
        Config::default(),
    )
    .unwrap();
    let sizes = [0usize, 1, 1024, 4097, 9000, 70_000, 1 << 20];
    let mut want = HashMap::new();
    std::thread::scope(|s| {
        let mut handles = Vec::new();
        for t in 0..4u32 {
            let node = &node;
            handles.push(s.spawn(move || {
                let mut sent = Vec::new();
                for (k, &size) in sizes.iter().enumerate() {
                    let id = t * 100 + k as u32;
                    let payload: Vec<u8> = rule_r(size + t as usize);
                    node.send_with_id(id, &payload).unwrap();
                    sent.push((id, sha256_hex(&payload)));
                }
                sent
            }));
        }
        for h in handles {
            want.extend(h.join().unwrap());
        }
    });
    let mut got = HashMap::new();
    while got.len() < want.len() {
        match node.recv().unwrap() {
            Received::Message(m) => {
                got.insert(m.id(), sha256_hex(m.body()));
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(got, want);
    let report = node.close().unwrap();
    assert!(report.aborted.is_empty() && report.unfinished.is_empty());
    assert!(report.undelivered.is_empty());
    assert!(child.wait().unwrap().success());
}

#[test]
fn frames_shows_bad_captures_for_debugging() {
    let frames = |name: &str| {
        pipeline(&format!(
            "\"$M\" frames < '{}'",
            vectors().join(name).display()
        ))
    };
    assert_eq!(
        frames("bad-truncated-payload.bin"),
        ["9: S2 D2 E0", "5: S0 D100[+40B] (unfinished)"]
    );
    assert_eq!(
        frames("bad-data-after-end.bin"),
        [
            "5: S0 D3 E0",
            "5: D4 (unknown id)",
            "5: E0 (unknown id)",
            "9: S2 D2 E0"
        ]
    );
    assert_eq!(
        frames("edge-zero-data.bin"),
        ["5: S0 D0 D3 D0 E0", "9: S2 D2 E0"]
    );
    assert_eq!(
        frames("bad-truncated-header.bin"),
        ["9: S2 D2 E0", "truncated (4 bytes missing)"]
    );
}

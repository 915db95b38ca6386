//! `muxpipe advise` and the progress line, run as real processes in shell pipes.

use std::process::{Command, Stdio};

use mux_test_support::vectors_dir as vectors;
use sha2::{Digest, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_muxpipe");

/// Runs a shell script (muxpipe's path in `$M`): its status, stdout and stderr.
fn sh(script: &str) -> (bool, Vec<u8>, String) {
    let out = Command::new("sh")
        .args(["-c", &format!("set -e; {script}")])
        .env("M", BIN)
        .stdin(Stdio::null())
        .output()
        .expect("run sh");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success(), out.stdout, err)
}

fn advise(script: &str) -> Vec<String> {
    let (ok, out, err) = sh(script);
    assert!(ok, "{script}: {err}");
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn small_messages_get_a_one_frame_path() {
    let lines = advise("\"$M\" write original 3000 64 | \"$M\" advise");
    assert_eq!(lines.last().unwrap(), "recommend hybrid");
    assert!(
        lines[0].starts_with("3000 messages, 192000 payload bytes"),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.trim_start().starts_with("64 ..= 127") && l.ends_with(" 3000"))
    );
    assert!(
        lines.iter().any(|l| l.contains("(one-frame path)")),
        "{lines:?}"
    );
    // Every strategy frames a 64-byte message as Start, Data, End: 27 header bytes.
    for s in ["hybrid ", "optimized ", "hybrid8k ", "original "] {
        let row = lines.iter().find(|l| l.starts_with(s)).unwrap();
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!((cols[1], cols[2]), ("3.00", "27.0"), "{row}");
    }
}

#[test]
fn megabyte_messages_get_large_chunks() {
    let lines = advise("\"$M\" write original 12 1048576 | \"$M\" advise");
    let last = lines.last().unwrap();
    assert!(
        [
            "recommend hybrid",
            "recommend optimized",
            "recommend hybrid8k"
        ]
        .contains(&last.as_str()),
        "{lines:?}"
    );
    let summary = &lines[lines.len() - 2];
    assert!(summary.contains("64.00 Data frames") && summary.ends_with("chunks up to 16384 bytes"));
    let original = lines.iter().find(|l| l.starts_with("original ")).unwrap();
    assert!(original.contains("1026.00"), "{original}");
}

#[test]
fn a_latency_budget_caps_the_chunks() {
    // 2048 bytes of link time: 1 MiB messages must go in 1 KiB frames.
    let lines =
        advise("\"$M\" write hybrid 4 1048576 | \"$M\" advise --link-rate 20480 --latency-ms 100");
    assert!(
        lines.iter().any(|l| l.contains("chunk size 2048 bytes")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("hybrid ") && l.ends_with("(over the budget)"))
    );
    assert_eq!(lines.last().unwrap(), "recommend hybrid threshold 1048576");
    // Small messages fit whatever the strategy.
    let lines =
        advise("\"$M\" write hybrid 10 100 | \"$M\" advise --link-rate 20480 --latency-ms 100");
    assert_eq!(lines.last().unwrap(), "recommend hybrid");
    // Neither flag alone.
    let (ok, _, err) = sh("\"$M\" write hybrid 1 1 | \"$M\" advise --link-rate 100");
    assert!(!ok && err.contains("both"), "{err}");
}

#[test]
fn pass_copies_the_stream_and_reports_on_stderr() {
    let (ok, out, err) =
        sh("\"$M\" write hybrid 50 5000 | \"$M\" advise --pass | \"$M\" read | tail -1");
    assert!(ok, "{err}");
    assert_eq!(String::from_utf8(out).unwrap(), "total 50\n");
    assert!(
        err.lines().last().unwrap().starts_with("recommend "),
        "{err}"
    );
    // Byte for byte.
    let (_, direct, _) = sh("\"$M\" write optimized 7 70000");
    let (_, passed, _) = sh("\"$M\" write optimized 7 70000 | \"$M\" advise --pass 2>/dev/null");
    assert_eq!(Sha256::digest(&direct), Sha256::digest(&passed));
}

#[test]
fn golden_vector_mixes() {
    let v = vectors();
    for (capture, want) in [
        ("interleaved-hybrid.bin", "recommend hybrid"),
        ("interleaved-original.bin", "recommend hybrid"),
    ] {
        let lines = advise(&format!("\"$M\" advise < '{}'", v.join(capture).display()));
        assert_eq!(lines.last().unwrap(), want, "{capture}: {lines:?}");
    }
}

#[test]
fn progress_shows_messages_and_bytes_on_stderr() {
    let (ok, _, err) =
        sh("\"$M\" --progress write hybrid 3000 1000 | \"$M\" read --progress > /dev/null");
    assert!(ok, "{err}");
    assert!(err.contains("write 3000 messages, 2.86 MiB"), "{err:?}");
    assert!(err.contains("read 3000 messages"), "{err:?}");
    // Off when stderr is no terminal and nobody asks.
    let (_, _, quiet) = sh("\"$M\" write hybrid 10 10 | \"$M\" read > /dev/null");
    assert_eq!(quiet, "");
}

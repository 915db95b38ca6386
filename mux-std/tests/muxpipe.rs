//! The `muxpipe` tool in real shell pipes, and as a child-process plugin spoken to over its
//! stdio by a [`Node`].

use mux_test_support::{rule_r, vectors_dir as vectors};
use std::collections::HashMap;
use std::process::{Command, Stdio};

use mux_std::{Config, Node, Received};
use sha2::{Digest, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_muxpipe");
const STRATEGIES: [&str; 5] = ["original", "optimized", "hybrid", "hybrid8k", "adaptive"];

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
            let back = STRATEGIES
                [(STRATEGIES.iter().position(|s| *s == strategy).unwrap() + 1) % STRATEGIES.len()];
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

/// Runs muxpipe with `args`, stdin from `stdin`; returns its exit status, stdout and stderr.
fn run(args: &[&str], stdin: Stdio) -> (std::process::ExitStatus, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .stdin(stdin)
        .output()
        .expect("run muxpipe");
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (out.status, text(out.stdout), text(out.stderr))
}

#[test]
fn write_refuses_a_size_over_the_wire_limit_before_allocating() {
    for size in ["1000000000000", "4294967296"] {
        let (status, stdout, stderr) = run(&["write", "hybrid", "1", size], Stdio::null());
        // A clear error and exit status 1: not an abort (134) on a failed allocation.
        assert_eq!(
            status.code(),
            Some(1),
            "{size}: {status:?}, stderr {stderr:?}"
        );
        assert!(stderr.contains("4 GiB"), "{size}: {stderr:?}");
        assert!(!stderr.contains("memory allocation"), "{stderr:?}");
        assert!(stdout.is_empty());
    }
}

#[test]
fn frames_is_linear_in_the_messages_open() {
    // 50 000 Starts, then their Ends in the same order (each End used to scan every message
    // still open: 16 s in a debug build; well under a second now).
    const N: u32 = 50_000;
    let mut wire = Vec::with_capacity(2 * 9 * N as usize);
    for kind in [1u8, 2] {
        for id in 1..=N {
            wire.push(kind);
            wire.extend_from_slice(&id.to_be_bytes());
            wire.extend_from_slice(&0u32.to_be_bytes());
        }
    }
    let path = std::env::temp_dir().join(format!("muxpipe-frames-{}.bin", std::process::id()));
    std::fs::write(&path, &wire).unwrap();
    let t = std::time::Instant::now();
    let (status, stdout, stderr) = run(
        &["frames"],
        Stdio::from(std::fs::File::open(&path).unwrap()),
    );
    let took = t.elapsed();
    std::fs::remove_file(&path).unwrap();
    assert!(status.success(), "{status:?} {stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), N as usize);
    assert_eq!(lines[0], "1: S0 E0");
    assert_eq!(lines[N as usize - 1], format!("{N}: S0 E0"));
    assert!(took.as_secs() < 5, "frames took {took:?}");
    // What is still open at the end is listed in the order the messages started.
    let mut wire = Vec::new();
    for (kind, id) in [(1u8, 3u32), (1, 1), (1, 2), (2, 1)] {
        wire.push(kind);
        wire.extend_from_slice(&id.to_be_bytes());
        wire.extend_from_slice(&0u32.to_be_bytes());
    }
    std::fs::write(&path, &wire).unwrap();
    let (status, stdout, _) = run(
        &["frames"],
        Stdio::from(std::fs::File::open(&path).unwrap()),
    );
    std::fs::remove_file(&path).unwrap();
    assert!(status.success());
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["1: S0 E0", "3: S0 (unfinished)", "2: S0 (unfinished)"]
    );
}

#[test]
fn read_failing_to_read_its_input_exits_non_zero() {
    let dir = std::fs::File::open(vectors()).unwrap();
    let (status, stdout, stderr) = run(&["read"], Stdio::from(dir));
    assert!(!status.success(), "{status:?}: {stdout:?} {stderr:?}");
    assert!(stdout.contains("error read failed"), "{stdout:?}");
}

#[test]
fn a_closed_stdout_ends_quietly_like_other_unix_tools() {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    let capture = vectors().join("interleaved-hybrid.bin");
    // Each writes far more than a pipe holds; the reader takes 100 bytes and goes away.
    let cases: [&[&str]; 2] = [
        &["write", "hybrid", "1000", "65536"],
        &["write", "original", "3000", "1000"],
    ];
    for args in cases {
        let mut child = Command::new(BIN)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut head = [0u8; 100];
        child.stdout.take().unwrap().read_exact(&mut head).unwrap();
        // The read end is closed here (dropped).
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.is_empty(), "{args:?}: {stderr:?}");
        // Killed by SIGPIPE, or its shell status (128 + 13), like `yes | head -c 100`.
        assert!(
            out.status.signal() == Some(13) || out.status.code() == Some(141),
            "{args:?}: {:?}",
            out.status
        );
    }
    // `read` and `frames` with their output closed early (a long capture in a pipe): quiet,
    // and 141 (their output, over 150 KB, does not fit in the pipe).
    for cmd in ["read", "frames"] {
        let script = format!(
            "for i in $(seq 3000); do cat '{}'; done | \"$M\" {cmd} | head -c 10 >/dev/null",
            capture.display()
        );
        let out = Command::new("bash")
            .args(["-c", &format!("{script}; echo \"${{PIPESTATUS[1]}}\"")])
            .env("M", BIN)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.is_empty(), "{cmd}: {stderr:?}");
        let status = String::from_utf8_lossy(&out.stdout);
        assert_eq!(status.trim(), "141", "{cmd}");
    }
}

#[test]
fn link_cobs_carries_every_strategy_through_read_and_echo() {
    for strategy in STRATEGIES {
        for (n, size) in [(3, 0), (5, 1), (4, 1024), (3, 6000), (2, 70_000)] {
            let mut lines = pipeline(&format!(
                "\"$M\" write --link cobs {strategy} {n} {size} | \"$M\" echo --link cobs hybrid \
                 | \"$M\" read --link cobs"
            ));
            // The link line: every frame good, none damaged, missing or skipped.
            let link = lines.remove(lines.len() - 2);
            let counts: Vec<&str> = link.split(' ').collect();
            assert_eq!(counts[0], "link");
            assert!(counts[1].parse::<u32>().unwrap() >= n as u32, "{link}");
            assert_eq!(&counts[2..], ["0", "0", "0"], "{link}");
            expect_ok_lines(&lines, n, size, &format!("cobs {strategy} {n} {size}"));
        }
    }
    // The profile is no plain stream: a plain reader finds no message in it.
    let lines = pipeline("\"$M\" write --link cobs hybrid 3 100 | \"$M\" read");
    assert_eq!(lines.last().unwrap(), "total 0");
}

#[test]
fn link_option_is_checked() {
    let (status, _, err) = run(&["read", "--link", "hdlc"], Stdio::null());
    assert!(!status.success());
    assert!(err.contains("unknown link profile"), "{err}");
}

/// The peak resident size of process `pid` (VmHWM), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// Bytes process `pid` has read so far.
fn bytes_read(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap();
    io.lines()
        .find_map(|l| l.strip_prefix("rchar:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

/// `muxpipe CMD` fed `flood` messages of 8 MiB (Start, then Data in 1 MiB frames taking
/// turns, never an End) and then one valid message (id 7777, 1000 bytes): its peak resident
/// size once it has read everything, and what it printed.
fn flood(cmd: &[&str], messages: u32) -> (u64, Vec<u8>) {
    use std::io::{Read, Write};
    let mut child = Command::new(BIN)
        .args(cmd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let output = std::thread::spawn(move || {
        let mut v = Vec::new();
        stdout.read_to_end(&mut v).unwrap();
        v
    });
    let header = |kind: u8, id: u32, len: u32| {
        let mut h = vec![kind];
        h.extend_from_slice(&id.to_be_bytes());
        h.extend_from_slice(&len.to_be_bytes());
        h
    };
    let mut total = 0u64;
    let mut put = |bytes: &[u8]| {
        stdin.write_all(bytes).unwrap();
        total += bytes.len() as u64;
    };
    for id in 1..=messages {
        put(&header(1, id, 0));
    }
    let chunk = vec![0xA5u8; 1 << 20];
    for _ in 0..8 {
        for id in 1..=messages {
            put(&header(3, id, chunk.len() as u32));
            put(&chunk);
        }
    }
    let valid = rule_r(1000);
    put(&header(1, 7777, 0));
    put(&header(3, 7777, 1000));
    put(&valid);
    put(&header(2, 7777, 0));
    // Everything read (the peak cannot grow after that), then the end of input.
    while bytes_read(pid) < total {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::thread::sleep(std::time::Duration::from_millis(50));
    let peak = peak_rss(pid);
    drop(stdin);
    let out = output.join().unwrap();
    assert!(child.wait().unwrap().success());
    (peak, out)
}

#[test]
fn a_flood_of_unfinished_messages_stays_within_the_receive_budget() {
    // 256 messages × 8 MiB in release (2 GiB); 40 × 8 MiB in debug builds, 10 × 8 MiB where
    // the tests run emulated (80-aarch64.sh): still past the 64 MiB budget.
    let messages = if !cfg!(target_arch = "x86_64") {
        10
    } else if cfg!(debug_assertions) {
        40
    } else {
        256
    };
    let budget = Config::default().assembly_budget as u64;
    let valid = sha256_hex(&rule_r(1000));
    for cmd in [&["echo", "hybrid"][..], &["read"][..]] {
        let (base, _) = flood(cmd, 0);
        let (peak, out) = flood(cmd, messages);
        let grown = peak.saturating_sub(base);
        println!(
            "muxpipe {}: {messages} × 8 MiB unfinished: peak resident {} KB, {} KB over the \
             baseline of {} KB (budget {} KB)",
            cmd[0],
            peak / 1024,
            grown / 1024,
            base / 1024,
            budget / 1024
        );
        assert!(grown <= budget + budget / 10, "{}: grew {grown} B", cmd[0]);
        if cmd[0] == "read" {
            let text = String::from_utf8(out).unwrap();
            assert!(text.contains(&format!("ok 7777 1000 {valid}")), "{text}");
        } else {
            // The echo sends message 7777 back, whole.
            let mut demux: mux_nostd::Demux<(), 4> =
                mux_nostd::Demux::new(mux_nostd::Limits::new(1 << 20));
            let (mut input, mut body, mut done) = (&out[..], Vec::new(), false);
            while !input.is_empty() {
                let (n, ev) = demux.feed(input);
                match ev {
                    Some(mux_nostd::Event::Data { id: 7777, chunk }) => {
                        body.extend_from_slice(chunk)
                    }
                    Some(mux_nostd::Event::Completed { id: 7777, .. }) => done = true,
                    _ => {}
                }
                input = &input[n..];
            }
            assert!(
                done && body == rule_r(1000),
                "echo gave {} bytes",
                out.len()
            );
        }
    }
}

//! A noisy line between two processes: `muxpipe write | injector | muxpipe read` over real
//! pipes, with bytes flipped, dropped and inserted at a rate of 10^-4 per byte.
//!
//! With the serial link profile (`--link cobs`): every message none of whose bytes (its link
//! frames, delimiters included) the injector touched is delivered intact, no message is
//! delivered damaged, and every touched message that is not delivered is reported: lost by
//! id, or inside the link frames a `LinkGap` reports missing. Without it (the plain format)
//! the same noise is measured: damaged messages are delivered as good.
//!
//! `NOISY_MESSAGES` sets the number of 1 KiB messages (default 20,000; `60-reliability.sh`
//! runs 1,000,000 in release). The test needs `muxpipe` built beside it
//! (`cargo build -p mux-std --bin muxpipe`, which `cargo test --workspace` does).

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use mux_tests::noise::{Change, FrameMap};
use sha2::{Digest, Sha256};

const SIZE: usize = 1024;
const RATE: &str = "1e-4";
const SEED: &str = "20250101";

fn messages() -> u32 {
    std::env::var("NOISY_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

/// `muxpipe`, built in the same profile as this test.
fn muxpipe() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().parent().unwrap().join("muxpipe");
    assert!(
        path.exists(),
        "{} missing: run `cargo build -p mux-std --bin muxpipe` first",
        path.display()
    );
    path
}

fn log_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("noisy-{tag}-{}.log", std::process::id()))
}

/// What `muxpipe read` printed after the noisy pipeline.
#[derive(Default, Debug)]
struct ReadOut {
    /// Ids delivered with the right length and digest.
    intact: Vec<u32>,
    /// Ids delivered with a wrong length or digest.
    corrupted: Vec<u32>,
    /// Ids reported lost to link damage.
    lost: Vec<u32>,
    /// Link frames reported missing (sum of the gaps).
    missing: u64,
    /// Other error lines.
    other_errors: u64,
    /// `link GOOD DAMAGED MISSING SKIPPED`, with the profile.
    link: Option<[u64; 4]>,
}

/// `muxpipe write --link LINK hybrid N 1024`, its stdout piped.
fn spawn_write(link: &str, n: u32) -> std::process::Child {
    Command::new(muxpipe())
        .args([
            "write",
            "--link",
            link,
            "hybrid",
            &n.to_string(),
            &SIZE.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs `muxpipe write | injector | muxpipe read` with `link` on both ends.
fn noisy_run(link: &str, n: u32, log: &PathBuf) -> ReadOut {
    let m = muxpipe();
    let mut write = spawn_write(link, n);
    let mut inject = Command::new(env!("CARGO_BIN_EXE_injector"))
        .args(["--seed", SEED, "--rate", RATE, "--log"])
        .arg(log)
        .stdin(write.stdout.take().unwrap())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut read = Command::new(&m)
        .args(["read", "--link", link])
        .stdin(inject.stdout.take().unwrap())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let want = {
        let payload: Vec<u8> = (0..SIZE).map(mux_test_support::rule_r_byte).collect();
        let d = Sha256::digest(&payload);
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let mut out = ReadOut::default();
    for line in BufReader::new(read.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let words: Vec<&str> = line.split(' ').collect();
        match words.as_slice() {
            ["ok", id, len, sha] => {
                let id: u32 = id.parse().unwrap();
                if *len == SIZE.to_string() && *sha == want {
                    out.intact.push(id);
                } else {
                    out.corrupted.push(id);
                }
            }
            ["error", "message", id, "lost", ..] => out.lost.push(id.parse().unwrap()),
            ["error", k, "link", "frames", "lost"] => out.missing += k.parse::<u64>().unwrap(),
            ["error", ..] => out.other_errors += 1,
            ["link", a, b, c, d] => {
                out.link = Some([a, b, c, d].map(|x| x.parse().unwrap()));
            }
            _ => {}
        }
    }
    for child in [&mut write, &mut inject, &mut read] {
        assert!(child.wait().unwrap().success());
    }
    out
}

/// Which messages the changes in the injector's `log` touched: the clean stream of
/// `muxpipe write --link cobs` (the same bytes, made again) followed link frame by link frame.
fn touched(log: &PathBuf, n: u32) -> FrameMap {
    let mut map = FrameMap::new(false);
    for line in std::fs::read_to_string(log).unwrap().lines() {
        if let Some(c) = Change::parse(line) {
            map.change(c);
        }
    }
    let mut write = spawn_write("cobs", n);
    let mut input = write.stdout.take().unwrap();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let k = input.read(&mut buf).unwrap();
        if k == 0 {
            break;
        }
        map.clean(&buf[..k]);
    }
    assert!(write.wait().unwrap().success());
    assert_eq!(map.seen().len() as u32, n);
    map
}

#[test]
fn cobs_profile_on_a_noisy_pipe_delivers_every_untouched_message_and_nothing_damaged() {
    let n = messages();
    let log = log_path("cobs");
    let got = noisy_run("cobs", n, &log);
    let changes = std::fs::read_to_string(&log).unwrap().lines().count() - 1;
    let map = touched(&log, n);
    std::fs::remove_file(&log).ok();
    let (hit, wire_len) = (map.touched(), map.len());

    assert!(
        got.corrupted.is_empty(),
        "delivered damaged: {:?}",
        &got.corrupted[..got.corrupted.len().min(10)]
    );
    let delivered: HashSet<u32> = got.intact.iter().copied().collect();
    assert_eq!(
        delivered.len(),
        got.intact.len(),
        "a message delivered twice"
    );
    let untouched_missed: Vec<u32> = (1..=n)
        .filter(|id| !hit.contains(id) && !delivered.contains(id))
        .collect();
    assert!(
        untouched_missed.is_empty(),
        "untouched, not delivered: {untouched_missed:?}"
    );
    let lost: HashSet<u32> = got.lost.iter().copied().collect();
    let silent = hit
        .iter()
        .filter(|id| !delivered.contains(id) && !lost.contains(id))
        .count() as u64;
    assert!(
        silent <= got.missing,
        "{silent} touched messages neither delivered nor lost by id, {} frames reported missing",
        got.missing
    );
    assert_eq!(got.other_errors, 0);
    let [good, damaged, missing, skipped] = got.link.expect("a link line");
    assert_eq!(missing, got.missing);
    println!(
        "cobs, {n} messages of {SIZE} B ({wire_len} B on the wire, {:.3} % over the plain {} B), \
         rate {RATE}: {changes} changes touched {} messages; delivered {} intact, 0 damaged; \
         lost {} by id + {silent} inside {missing} missing link frames; link frames: \
         {good} good, {damaged} damaged, {skipped} skipped",
        100.0 * (wire_len as f64 / (n as f64 * 1051.0) - 1.0),
        n as u64 * 1051,
        hit.len(),
        delivered.len(),
        lost.len(),
    );
}

#[test]
fn plain_format_on_the_same_noisy_pipe_is_measured() {
    let n = messages().min(20_000);
    let log = log_path("plain");
    let got = noisy_run("plain", n, &log);
    std::fs::remove_file(&log).ok();
    // Without a checksum a flipped payload byte is delivered as good, and a damaged length
    // field desynchronises the stream.
    println!(
        "plain, {n} messages of {SIZE} B, rate {RATE}: delivered {} intact, {} damaged; \
         {} error reports",
        got.intact.len(),
        got.corrupted.len(),
        got.other_errors,
    );
    assert!(
        !got.corrupted.is_empty(),
        "the plain format delivered nothing damaged"
    );
}

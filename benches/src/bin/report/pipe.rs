//! The command-line tool in a shell pipe: the real `muxpipe` binaries as separate processes,
//! `muxpipe write hybrid N SIZE | muxpipe read > /dev/null` and
//! `muxpipe write hybrid N SIZE > /dev/null` run by `sh`, timed from outside; messages per
//! second and seconds, and the pipe's goals.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use mux_benches::machine;
use mux_benches::timing::median;

use crate::config::Config;
use crate::fmt::fmt_rate;
use crate::goals::Goals;
use crate::json::Ratios;

/// Messages of the goals' runs (and of every full run at 64 B).
const GOAL_MESSAGES: usize = 2_000_000;
/// Goal for `write | read`, 2,000,000 messages of 64 B, in seconds.
const GOAL_WRITE_READ_S: f64 = 0.45;
/// Goal for `write > /dev/null`, 2,000,000 messages of 64 B, in seconds.
const GOAL_WRITE_S: f64 = 0.10;
/// The Go library's own writer and reader (64 KiB `bufio` on stdin and stdout) on a machine
/// of the same kind, 2,000,000 messages of 64 B: the fastest of its runs, in seconds
/// (`write | read`, `write > /dev/null`). Not re-run here: Go is not part of the set-up.
const GO_S: (f64, f64) = (1.2, 0.29);

/// The `muxpipe` release binary: built with cargo (a no-op when up to date) under the
/// workspace's target directory, else one found there already; `None` when there is none.
fn muxpipe() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let built = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "mux-std",
            "--bin",
            "muxpipe",
        ])
        .current_dir(&root)
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let path = target.join("release").join("muxpipe");
    if !built {
        println!(
            "(`cargo build --release -p mux-std --bin muxpipe` failed or cargo is not on the PATH: using the binary already there, if any.)"
        );
        println!();
    }
    path.is_file().then_some(path)
}

/// Runs `script` with `sh -c`; its duration in seconds. Panics if it fails.
fn timed(script: &str) -> f64 {
    let t = Instant::now();
    let status = Command::new("sh")
        .args(["-c", script])
        .status()
        .expect("run sh");
    let s = t.elapsed().as_secs_f64();
    assert!(status.success(), "`{script}` failed: {status}");
    s
}

/// Checks (untimed) that `write | read` delivers `n` intact messages: every line `ok ID
/// SIZE SHA256`, then `total n`.
fn verify(m: &str, n: usize, size: usize) {
    let out = Command::new("sh")
        .args(["-c", &format!("'{m}' write hybrid {n} {size} | '{m}' read")])
        .output()
        .expect("run sh");
    assert!(out.status.success(), "muxpipe pipe failed: {out:?}");
    let text = String::from_utf8(out.stdout).expect("muxpipe read prints text");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), n + 1, "muxpipe read: {} lines", lines.len());
    assert_eq!(lines[n], format!("total {n}"));
    let len = size.to_string();
    for (i, line) in lines[..n].iter().enumerate() {
        let f: Vec<&str> = line.split(' ').collect();
        let id = (i + 1).to_string();
        assert!(
            f.len() == 4 && f[0] == "ok" && f[1] == id && f[2] == len && f[3].len() == 64,
            "muxpipe read line {i}: {line:?}"
        );
    }
}

/// Prints the "Shell pipe" section, records its figures and its goals.
pub fn section(cfg: &Config, ratios: &mut Ratios, goals: &mut Goals) {
    println!("## The command-line tool in a shell pipe");
    println!();
    let Some(path) = muxpipe() else {
        println!(
            "**`muxpipe` is missing**: no `target/release/muxpipe`, and building it failed. Build it with `cargo build --release -p mux-std --bin muxpipe` and run the report again; the pipe's goals are not checked in this run."
        );
        println!();
        goals.check(
            "pipe: muxpipe write \\| read, 2,000,000 × 64 B ≤ 0.45 s",
            "muxpipe missing".into(),
            false,
        );
        goals.check(
            "pipe: muxpipe write > /dev/null, 2,000,000 × 64 B ≤ 0.10 s",
            "muxpipe missing".into(),
            false,
        );
        return;
    };
    let m = path.display().to_string();
    let reps = if cfg.quick { 1 } else { 5 };
    // The goals are set for 2,000,000 messages of 64 B (about half a second: a quick run
    // keeps them, as fewer would mostly time the processes' start); 1 KiB runs fewer (the
    // digest of 2 GiB would take seconds per run).
    let k1 = if cfg.quick { 100_000 } else { 500_000 };
    let sizes: [(usize, usize, &str); 2] = [(64, GOAL_MESSAGES, "64B"), (1024, k1, "1KiB")];
    println!(
        "`{m}` (built by the report with `cargo build --release -p mux-std --bin muxpipe`), run by `sh -c` as separate processes: `muxpipe write hybrid N SIZE | muxpipe read > /dev/null` (read prints `ok ID LEN SHA256` per message) and `muxpipe write hybrid N SIZE > /dev/null`, timed from outside (process start included); {reps} runs each, interleaved, median and range. The output of one smaller run per size is checked line by line first."
    );
    println!();
    println!("| size | messages | `write \\| read` | `write > /dev/null` |");
    println!("|---|---|---|---|");
    let mut at_goal = (f64::NAN, f64::NAN);
    for (size, n, key) in sizes {
        verify(&m, 1000, size);
        let both = format!("'{m}' write hybrid {n} {size} | '{m}' read > /dev/null");
        let write = format!("'{m}' write hybrid {n} {size} > /dev/null");
        let (mut rw, mut w) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            rw.push(timed(&both));
            w.push(timed(&write));
        }
        let cell = |v: &mut Vec<f64>| {
            let (lo, hi) = v
                .iter()
                .fold((f64::MAX, 0.0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
            let med = median(v);
            let text = format!(
                "{}msg/s, {med:.3} s ({lo:.3}–{hi:.3} s)",
                fmt_rate(n as f64 / med)
            );
            (med, text)
        };
        let ((rw_s, rw_text), (w_s, w_text)) = (cell(&mut rw), cell(&mut w));
        println!("| {size} B | {n} | {rw_text} | {w_text} |");
        ratios.put(
            format!("pipe_{key}_write_read_ns_per_msg"),
            rw_s * 1e9 / n as f64,
        );
        ratios.put(format!("pipe_{key}_write_ns_per_msg"), w_s * 1e9 / n as f64);
        if size == 64 {
            at_goal = (rw_s, w_s);
        }
    }
    println!();
    let (rw, w) = at_goal;
    ratios.put("pipe_64B_write_read_vs_goal", rw / GOAL_WRITE_READ_S);
    ratios.put("pipe_64B_write_vs_goal", w / GOAL_WRITE_S);
    ratios.put("pipe_64B_write_read_vs_go", rw / GO_S.0);
    ratios.put("pipe_64B_write_vs_go", w / GO_S.1);
    let load =
        machine::load_average().map_or(String::new(), |l| format!(" (load average now {l:.2})"));
    println!(
        "Speed-up over the Go library's own writer and reader (measured on a machine of the same kind, not re-run here: {:.2} s and {:.2} s at best for 2,000,000 × 64 B): {:.1}× for `write | read`, {:.1}× for `write > /dev/null`; the goals are 3× on both ({GOAL_WRITE_READ_S} s and {GOAL_WRITE_S} s). The two processes, and `read`'s two threads, share this machine's cores with whatever else runs{load}.",
        GO_S.0,
        GO_S.1,
        GO_S.0 / rw,
        GO_S.1 / w
    );
    println!();
    goals.check(
        "pipe: muxpipe write \\| read, 2,000,000 × 64 B ≤ 0.45 s",
        format!("{rw:.3} s"),
        rw <= GOAL_WRITE_READ_S,
    );
    goals.check(
        "pipe: muxpipe write > /dev/null, 2,000,000 × 64 B ≤ 0.10 s",
        format!("{w:.3} s"),
        w <= GOAL_WRITE_S,
    );
}

//! `muxpipe advise`: which strategy suits the messages of a capture.
//!
//! It reads a capture (a mux stream) on stdin, or passes it through to stdout with `--pass`,
//! and collects the size of every completed message. Then it measures, for a short while,
//! what framing costs on this machine: mux-nostd's `Writer` framing messages of several sizes
//! with small and large chunks into memory, fitted to `time = c + a·frames + b·bytes` per
//! message. For each strategy it prints the frames, header bytes and modelled time per
//! message over the capture's sizes, and recommends the fastest (ties go to `hybrid`, the
//! default). With `--link-rate BYTES_PER_S` and `--latency-ms MS` it also gives the largest
//! chunk that keeps one frame's time on the link within the budget (a message waits for at
//! most the frame in flight) and recommends only strategies whose chunks on this capture stay
//! within it. The last line is `recommend STRATEGY` or `recommend hybrid threshold N`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::{Duration, Instant};

use mux_nostd::HEADER_LEN;
use mux_nostd::histogram::frames_per_message;
use mux_nostd::{Demux, Event, Strategy, Writer};
use mux_std::observe::Histogram;
use mux_std::{AnyStrategy, Config, TABLE_CAPACITY};

use crate::Fail;
use crate::progress::Progress;

/// What `advise` was asked.
#[derive(Debug, Default)]
pub struct Args {
    /// Copy the input to stdout (the report goes to stderr).
    pub pass: bool,
    /// Link rate in bytes per second.
    pub link_rate: Option<f64>,
    /// Latency budget in milliseconds.
    pub latency_ms: Option<f64>,
    /// Show the progress line.
    pub progress: bool,
}

impl Args {
    /// Parses `[--pass] [--link-rate BYTES_PER_S] [--latency-ms MS]`.
    pub fn parse(args: &[&str], progress: bool) -> Result<Self, String> {
        let mut a = Self {
            progress,
            ..Self::default()
        };
        let mut it = args.iter();
        while let Some(&arg) = it.next() {
            let mut value = |name: &str| -> Result<f64, String> {
                let v = it.next().ok_or_else(|| format!("{name} needs a value"))?;
                v.parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x > 0.0)
                    .ok_or_else(|| format!("{name}: not a positive number: {v:?}"))
            };
            match arg {
                "--pass" => a.pass = true,
                "--link-rate" => a.link_rate = Some(value("--link-rate")?),
                "--latency-ms" => a.latency_ms = Some(value("--latency-ms")?),
                other => return Err(format!("advise: unknown argument {other:?}")),
            }
        }
        Ok(a)
    }
}

/// A strategy `advise` weighs: how `muxpipe` spells it, and the strategy.
struct Candidate {
    name: String,
    strategy: AnyStrategy,
}

/// The strategies weighed, in the order ties are decided: the hybrid family first (the
/// default), thresholds from small to large, Original last.
fn candidates(largest: u64) -> Vec<Candidate> {
    let mut c: Vec<Candidate> = ["hybrid", "optimized", "hybrid8k"]
        .iter()
        .map(|n| Candidate {
            name: (*n).to_string(),
            strategy: n.parse().expect("muxpipe's strategy names"),
        })
        .collect();
    // Hybrid with thresholds above 8 KiB (1 KiB chunks up to the threshold), powers of 4
    // up to the first at least the largest message.
    let mut t: u64 = 16 << 10;
    while t < (largest.saturating_mul(4)).min(1 << 32) && t <= u64::from(u32::MAX) {
        c.push(Candidate {
            name: format!("hybrid threshold {t}"),
            strategy: AnyStrategy::Hybrid {
                threshold: t as u32,
            },
        });
        t *= 4;
    }
    c.push(Candidate {
        name: "original".into(),
        strategy: AnyStrategy::Original,
    });
    c
}

/// Time per message on this machine: `c + a·frames + b·bytes` nanoseconds.
struct Model {
    c: f64,
    a: f64,
    b: f64,
}

impl Model {
    fn ns(&self, frames: u64, bytes: u64) -> f64 {
        self.c + self.a * frames as f64 + self.b * bytes as f64
    }
}

/// Nanoseconds per message of `len` bytes framed with `s` into memory by mux-nostd's
/// `Writer` (about 2 ms of sends after a warm-up).
fn time_send(s: AnyStrategy, payload: &[u8], wire: &mut [u8]) -> f64 {
    let mut send = || {
        let mut w = Writer::new(&mut wire[..], s);
        w.send_with_id(7, payload)
            .expect("the buffer holds the message");
    };
    for _ in 0..3 {
        send();
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_millis(2) {
        for _ in 0..8 {
            send();
        }
        n += 8;
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

/// The short measurement: the same sizes framed with 1 KiB and with large chunks, fitted by
/// least squares.
fn calibrate() -> Model {
    let payload = vec![0x5Au8; 1 << 20];
    let mut wire = vec![0u8; (1 << 20) + (2 + 1024) * HEADER_LEN];
    let mut rows = Vec::new();
    for len in [64usize, 1024, 16 << 10, 64 << 10, 256 << 10, 1 << 20] {
        for s in [AnyStrategy::Original, AnyStrategy::Optimized] {
            let ns = time_send(s, &payload[..len], &mut wire);
            let frames = frames_per_message(len as u32, s.chunk_size(len as u32));
            rows.push(([1.0, f64::from(frames), len as f64], ns));
        }
    }
    let [c, a, b] = least_squares(&rows);
    Model {
        c: c.max(0.0),
        a: a.max(0.0),
        b: b.max(0.0),
    }
}

/// Solves the 3×3 normal equations of `rows` (x, y) by Gaussian elimination.
fn least_squares(rows: &[([f64; 3], f64)]) -> [f64; 3] {
    let mut m = [[0.0f64; 4]; 3];
    for (x, y) in rows {
        for i in 0..3 {
            for j in 0..3 {
                m[i][j] += x[i] * x[j];
            }
            m[i][3] += x[i] * y;
        }
    }
    for col in 0..3 {
        let pivot = (col..3)
            .max_by(|&p, &q| m[p][col].abs().total_cmp(&m[q][col].abs()))
            .unwrap_or(col);
        m.swap(col, pivot);
        if m[col][col].abs() < f64::EPSILON {
            return [0.0; 3];
        }
        for r in 0..3 {
            if r != col {
                let f = m[r][col] / m[col][col];
                let pivot_row = m[col];
                for (x, p) in m[r].iter_mut().zip(pivot_row).skip(col) {
                    *x -= f * p;
                }
            }
        }
    }
    [m[0][3] / m[0][0], m[1][3] / m[1][1], m[2][3] / m[2][2]]
}

/// Reads the capture: the size of every completed message (count per size), and the bytes.
fn sizes(args: &Args) -> Result<(BTreeMap<u64, u64>, u64), Fail> {
    let config = Config::default();
    let mut demux: Box<Demux<u64, TABLE_CAPACITY>> = Box::new(Demux::new(config.limits));
    demux.set_max_open(config.max_in_flight.clamp(1, TABLE_CAPACITY));
    let mut input = crate::stdin()?;
    let mut out = if args.pass {
        Some(crate::stdout()?)
    } else {
        None
    };
    let progress = Progress::new(args.progress, "advise");
    let mut buf = vec![0u8; 1 << 16];
    let mut sizes = BTreeMap::new();
    let (mut messages, mut bytes) = (0u64, 0u64);
    loop {
        let n = match crate::read_some(&mut input, &mut buf)? {
            0 => break,
            n => n,
        };
        if let Some(out) = out.as_mut() {
            out.write_all(&buf[..n])?;
        }
        bytes += n as u64;
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            let (used, ev) = demux.feed(rest);
            match ev {
                Some(Event::Data { chunk, .. }) => {
                    if let Some(len) = demux.current_mut() {
                        *len += chunk.len() as u64;
                    }
                }
                Some(Event::Completed { value, .. }) => {
                    *sizes.entry(value).or_insert(0) += 1;
                    messages += 1;
                }
                _ => {}
            }
            rest = &rest[used..];
        }
        progress.set(messages, bytes);
    }
    progress.finish(messages, bytes);
    Ok((sizes, bytes))
}

/// Per strategy over the capture: frames, header bytes, modelled time, largest chunk used.
struct Cost {
    frames: u64,
    time_ns: f64,
    largest_chunk: u32,
}

fn cost(s: &AnyStrategy, sizes: &BTreeMap<u64, u64>, model: &Model) -> Cost {
    let mut c = Cost {
        frames: 0,
        time_ns: 0.0,
        largest_chunk: 0,
    };
    for (&len, &n) in sizes {
        let len32 = u32::try_from(len).unwrap_or(u32::MAX);
        let chunk = s.chunk_size(len32);
        let frames = u64::from(frames_per_message(len32, chunk));
        c.frames += frames * n;
        c.time_ns += model.ns(frames, len) * n as f64;
        if len > 0 {
            c.largest_chunk = c.largest_chunk.max(chunk.min(len32));
        }
    }
    c
}

/// `muxpipe advise`.
pub fn advise(args: &Args) -> Result<(), Fail> {
    let (sizes, stream_bytes) = sizes(args)?;
    let mut report = String::new();
    let messages: u64 = sizes.values().sum();
    if messages == 0 {
        return Err(Fail::Msg("advise: no complete message in the input".into()));
    }
    let mut hist = Histogram::default();
    for (&len, &n) in &sizes {
        hist.record_n(len, n);
    }
    let payload: u64 = sizes.iter().map(|(l, n)| l * n).sum();
    let largest = *sizes.keys().next_back().unwrap_or(&0);
    let _ = writeln!(
        report,
        "{messages} messages, {payload} payload bytes ({stream_bytes} bytes of stream)"
    );
    let _ = writeln!(report, "message sizes (power-of-two buckets):");
    let mut lo = 0u64;
    for (hi, n) in hist.buckets() {
        if n > 0 {
            let _ = writeln!(report, "  {lo:>10} ..= {hi:<10} {n:>10}");
        }
        lo = hi.saturating_add(1);
    }

    let model = calibrate();
    let _ = writeln!(
        report,
        "this machine (calibrated): {:.1} ns per message + {:.2} ns per frame + {:.4} ns per byte",
        model.c, model.a, model.b
    );
    let budget_chunk = match (args.link_rate, args.latency_ms) {
        (Some(rate), Some(ms)) => {
            let bytes = rate * ms / 1000.0;
            // The largest power of two at most rate × budget.
            let chunk = if bytes >= 1.0 {
                1u64 << (63 - (bytes as u64).leading_zeros())
            } else {
                0
            };
            let _ = writeln!(
                report,
                "link {rate} B/s, latency budget {ms} ms: chunk size {chunk} bytes (one frame on the link takes at most the budget)"
            );
            Some(chunk)
        }
        (None, None) => None,
        _ => {
            return Err(Fail::Msg(
                "advise: give both --link-rate and --latency-ms, or neither".into(),
            ));
        }
    };

    let _ = writeln!(
        report,
        "{:<26} {:>12} {:>14} {:>14} {:>12}",
        "strategy", "frames/msg", "header B/msg", "model ns/msg", "max chunk"
    );
    let mut best: Option<(String, f64, f64, u32)> = None;
    for c in candidates(largest) {
        let k = cost(&c.strategy, &sizes, &model);
        let per = k.time_ns / messages as f64;
        let fits = budget_chunk.is_none_or(|b| u64::from(k.largest_chunk) <= b);
        let _ = writeln!(
            report,
            "{:<26} {:>12.2} {:>14.1} {:>14.1} {:>12}{}",
            c.name,
            k.frames as f64 / messages as f64,
            (k.frames * HEADER_LEN as u64) as f64 / messages as f64,
            per,
            k.largest_chunk,
            if fits { "" } else { "  (over the budget)" }
        );
        // Ties (within 0.5 %) go to the earlier candidate: hybrid first.
        if fits && best.as_ref().is_none_or(|(_, t, _, _)| per < t * 0.995) {
            let data_frames = k.frames as f64 / messages as f64 - 2.0;
            best = Some((c.name, per, data_frames, k.largest_chunk));
        }
    }
    let pick = match best {
        Some((name, _, data_frames, chunk)) => {
            let _ = writeln!(
                report,
                "{name}: {data_frames:.2} Data frames per message on average{}, chunks up to {chunk} bytes",
                if data_frames <= 1.0 {
                    " (one-frame path)"
                } else {
                    ""
                }
            );
            name
        }
        None => {
            let _ = writeln!(
                report,
                "no strategy keeps its frames within the budget: original has the smallest (1 KiB)"
            );
            "original".to_string()
        }
    };
    let _ = writeln!(report, "recommend {pick}");
    if args.pass {
        io::stderr().write_all(report.as_bytes())?;
    } else {
        let mut out = crate::stdout()?;
        out.write_all(report.as_bytes())?;
    }
    Ok(())
}

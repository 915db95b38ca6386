//! The benchmark report: the seed's write-path table for our crates with every figure's ratio
//! to the floor measured in the same run, the read path, allocations, end to end over a Unix
//! socket pair against the raw pair and `yamux`, the goal checks, and a last line with one JSON
//! object holding every ratio.
//!
//! `cargo run --release -p mux-benches --bin report` (about 30 s; writes `docs/benchmarks.svg`)
//! or `… -- --quick` (a few iterations, no plot). `--svg PATH` writes the plot elsewhere.

use std::hint::black_box;
use std::time::{Duration, Instant};

use mux_benches::alloc::{CountingAlloc, per_call};
use mux_benches::e2e::{self, Run};
use mux_benches::plot::{self, Series};
use mux_benches::read::{self, READ_POOL, ReadBench};
use mux_benches::timing::{Rounds, calibrate, median, ns_per_iter};
use mux_benches::write::{StdWrite, WriteBench};
use mux_benches::yamux_peer::{self, Mapping};
use mux_benches::{PLOT_SIZES, SEED_SIZES, machine, size_name};
use mux_nostd::{AnyStrategy, Hybrid, Optimized, Original, Strategy, encode_into};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// How hard to measure.
struct Config {
    quick: bool,
    /// Rounds of the interleaved micro-benchmarks (the median is reported).
    rounds: usize,
    /// Target duration of one timed batch.
    batch: Duration,
    /// Repetitions of each end-to-end run.
    e2e_reps: usize,
    /// Scale of the end-to-end message counts (1.0 in full mode).
    e2e_scale: f64,
    svg: Option<String>,
}

/// Every ratio, for the JSON line.
#[derive(Default)]
struct Ratios(Vec<(String, f64)>);

impl Ratios {
    fn put(&mut self, key: impl Into<String>, v: f64) {
        self.0.push((key.into(), v));
    }

    fn json(&self, extra: &[(&str, String)]) -> String {
        let mut parts: Vec<String> = extra.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        for (k, v) in &self.0 {
            let v = if v.is_finite() {
                format!("{:.4}", v)
            } else {
                "null".to_string()
            };
            parts.push(format!("\"{k}\":{v}"));
        }
        format!("{{{}}}", parts.join(","))
    }
}

/// The goal checks.
#[derive(Default)]
struct Goals(Vec<(String, String, bool)>);

impl Goals {
    fn check(&mut self, what: impl Into<String>, got: String, met: bool) {
        self.0.push((what.into(), got, met));
    }
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e4 {
        format!("{:.1} µs", ns / 1e3)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

fn fmt_rate(per_sec: f64) -> String {
    if per_sec >= 1e9 {
        format!("{:.2} G", per_sec / 1e9)
    } else if per_sec >= 1e6 {
        format!("{:.2} M", per_sec / 1e6)
    } else {
        format!("{:.1} k", per_sec / 1e3)
    }
}

fn key(len: usize) -> String {
    size_name(len).replace(' ', "")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let svg = match args.iter().position(|a| a == "--svg") {
        Some(i) => args.get(i + 1).cloned(),
        None if quick => None,
        None => Some(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/benchmarks.svg").to_string()),
    };
    let cfg = if quick {
        Config {
            quick,
            rounds: 3,
            batch: Duration::from_micros(300),
            e2e_reps: 1,
            e2e_scale: 0.02,
            svg,
        }
    } else {
        Config {
            quick,
            rounds: 25,
            batch: Duration::from_millis(2),
            e2e_reps: 5,
            e2e_scale: 1.0,
            svg,
        }
    };
    let started = Instant::now();
    let load_before = machine::load_average();

    println!(
        "# mux benchmark report{}",
        if cfg.quick {
            " (--quick: few iterations, figures indicative only)"
        } else {
            ""
        }
    );
    println!();
    println!("- machine: {}", machine::describe());
    if let Some(l) = load_before {
        println!("- load average (1 min) at start: {l:.2}");
    }
    println!(
        "- build: {} profile; timings are medians of {} interleaved rounds of ~{} µs batches, each after an untimed batch of the same variant (cache warm-up)",
        if cfg!(debug_assertions) {
            "debug (figures meaningless)"
        } else {
            "release"
        },
        cfg.rounds,
        cfg.batch.as_micros()
    );
    println!();

    let mut ratios = Ratios::default();
    let mut goals = Goals::default();

    let write = write_path(&cfg, &mut ratios, &mut goals);
    layout_sensitivity(&cfg, &mut ratios);
    read_path(&cfg, &mut ratios, &mut goals);
    allocations(&mut ratios, &mut goals);
    end_to_end(&cfg, &mut ratios, &mut goals);
    if let Some(path) = &cfg.svg {
        plot_write_path(&cfg, path, &write);
    }

    println!("## Goals");
    println!();
    println!("| goal | measured | |");
    println!("|---|---|---|");
    let mut missed = 0;
    for (what, got, met) in &goals.0 {
        missed += usize::from(!met);
        println!(
            "| {what} | {got} | {} |",
            if *met { "met" } else { "**missed**" }
        );
    }
    println!();
    println!(
        "{} of {} goals met{}.",
        goals.0.len() - missed,
        goals.0.len(),
        if cfg.quick {
            " (quick run: not meaningful)"
        } else {
            ""
        }
    );
    let load_after = machine::load_average();
    if let Some(l) = load_after {
        println!("Load average (1 min) at the end: {l:.2}.");
    }
    println!("Report took {:.1} s.", started.elapsed().as_secs_f64());
    println!();
    let extra = [
        ("quick", cfg.quick.to_string()),
        (
            "machine",
            format!("\"{}\"", machine::describe().replace('"', "'")),
        ),
        ("goals_met", (goals.0.len() - missed).to_string()),
        ("goals_total", goals.0.len().to_string()),
    ];
    println!("{}", ratios.json(&extra));
}

/// Write-path figures per size: (size, medians, paired ratios to the floor), each array
/// holding the floor, then Original, Optimized, Hybrid through mux-nostd's `Writer`, then the
/// same through mux-std's `Sender`.
type WriteTable = Vec<(usize, [f64; 9], [f64; 9])>;

const WRITE_VARIANTS: [&str; 9] = [
    "floor",
    "original",
    "optimized",
    "hybrid",
    "std original",
    "std optimized",
    "std hybrid",
    "framed original",
    "framed hybrid",
];

/// Medians of the floor and the three strategies through both crates for one message size,
/// and the widest spread.
fn measure_write(cfg: &Config, len: usize, with_std: bool) -> ([f64; 9], [f64; 9], f64) {
    let mut b = WriteBench::new(len);
    // Every strategy's output is checked against the sans-IO encoder once.
    check_write(&mut b, Original);
    check_write(&mut b, Optimized);
    check_write(&mut b, Hybrid::<4096>);
    let mut so = StdWrite::new(len, Original);
    let mut sp = StdWrite::new(len, Optimized);
    let mut sh = StdWrite::new(len, Hybrid::<4096>);
    let it_floor = calibrate(cfg.batch, || b.floor());
    let it_orig = calibrate(cfg.batch, || b.nostd(Original));
    let it_opt = calibrate(cfg.batch, || b.nostd(Optimized));
    let it_hyb = calibrate(cfg.batch, || b.nostd(Hybrid::<4096>));
    let it_fo = calibrate(cfg.batch, || b.framed_floor(Original));
    let it_fh = calibrate(cfg.batch, || b.framed_floor(Hybrid::<4096>));
    let it_so = calibrate(cfg.batch, || so.send());
    let it_sp = calibrate(cfg.batch, || sp.send());
    let it_sh = calibrate(cfg.batch, || sh.send());
    let mut r = Rounds::default();
    for _ in 0..cfg.rounds {
        r.push("floor", ns_per_iter(it_floor, || b.floor()));
        r.push("original", ns_per_iter(it_orig, || b.nostd(Original)));
        r.push("optimized", ns_per_iter(it_opt, || b.nostd(Optimized)));
        r.push("hybrid", ns_per_iter(it_hyb, || b.nostd(Hybrid::<4096>)));
        r.push(
            "framed original",
            ns_per_iter(it_fo, || b.framed_floor(Original)),
        );
        r.push(
            "framed hybrid",
            ns_per_iter(it_fh, || b.framed_floor(Hybrid::<4096>)),
        );
        if with_std {
            r.push("std original", ns_per_iter(it_so, || so.send()));
            r.push("std optimized", ns_per_iter(it_sp, || sp.send()));
            r.push("std hybrid", ns_per_iter(it_sh, || sh.send()));
        }
    }
    let m = WRITE_VARIANTS.map(|v| r.median(v));
    let q = WRITE_VARIANTS.map(|v| r.ratio(v, "floor"));
    (m, q, r.worst_spread())
}

fn check_write<S: Strategy + Copy>(b: &mut WriteBench, s: S) {
    let n = b.nostd(s);
    let mut want = vec![0u8; b.buf.len()];
    let m = encode_into(&s, mux_benches::write::ID, &b.payload, &mut want).expect("fits");
    assert_eq!(
        &b.buf[..n],
        &want[..m],
        "Writer output differs from encode_into"
    );
}

fn write_path(cfg: &Config, ratios: &mut Ratios, goals: &mut Goals) -> WriteTable {
    println!("## Write path: one message framed into an in-memory buffer reused every iteration");
    println!();
    let mut table = Vec::new();
    let mut noise: f64 = 0.0;
    for len in SEED_SIZES {
        let (m, q, spread) = measure_write(cfg, len, true);
        noise = noise.max(spread);
        table.push((len, m, q));
    }
    let crates = [
        (
            "mux-nostd",
            "nostd",
            1,
            "mux-nostd's blocking `Writer` over `&mut [u8]` (an `embedded_io::Write`), `send_with_id(7, &payload)`",
        ),
        (
            "mux-std",
            "std",
            4,
            "mux-std's thread-safe `Sender` (default configuration but the strategy) over an in-memory `std::io::Write` that starts over at its beginning after each message, `send_with_id(7, &payload)`",
        ),
    ];
    for (name, short, at, how) in crates {
        println!("### {name}");
        println!();
        println!(
            "{how}; floor: `buf[..n].copy_from_slice(&payload)` into a buffer of the same size. Each cell: time per message (its ratio to the floor measured in the same run)."
        );
        println!();
        println!("| size | Original | Optimized | Hybrid | plain copy of the payload (floor) |");
        println!("|---|---|---|---|---|");
        for (len, m, q) in &table {
            println!(
                "| {} | {} ({:.2}×) | {} ({:.2}×) | {} ({:.2}×) | {} |",
                size_name(*len),
                fmt_ns(m[at]),
                q[at],
                fmt_ns(m[at + 1]),
                q[at + 1],
                fmt_ns(m[at + 2]),
                q[at + 2],
                fmt_ns(m[0])
            );
            let k = key(*len);
            ratios.put(format!("write_{short}_{k}_original_vs_floor"), q[at]);
            ratios.put(format!("write_{short}_{k}_optimized_vs_floor"), q[at + 1]);
            ratios.put(format!("write_{short}_{k}_hybrid_vs_floor"), q[at + 2]);
        }
        println!();
        // Paired ratios to the floor (time ratios between variants are ratios of these).
        let get = |len: usize| table.iter().find(|(l, _, _)| *l == len).map(|(_, _, q)| *q);
        let (Some(k1), Some(k64), Some(m1)) = (get(1 << 10), get(1 << 16), get(1 << 20)) else {
            unreachable!("the seed sizes are measured");
        };
        let hyb_orig_1k = k1[at + 2] / k1[at];
        let hyb_opt_1m = m1[at + 2] / m1[at + 1];
        let ns = |len: usize, i: usize| {
            table
                .iter()
                .find(|(l, _, _)| *l == len)
                .map_or(f64::NAN, |(_, m, _)| m[i])
        };
        println!(
            "- Hybrid/Original at 1 KiB: {hyb_orig_1k:.3} (Go reference: {:.3}); Hybrid/Optimized at 1 MiB: {hyb_opt_1m:.3} (Go reference: {:.3}).",
            GO_REFERENCE[0].1[2] / GO_REFERENCE[0].1[0],
            GO_REFERENCE[2].1[2] / GO_REFERENCE[2].1[1],
        );
        println!(
            "- The Go reference's time divided by ours: Original {:.1} at 1 KiB, Hybrid {:.1} at 1 MiB (its figures come from another machine of the same kind: the ratios to the floor are what compare).",
            GO_REFERENCE[0].1[0] / ns(1 << 10, at),
            GO_REFERENCE[2].1[2] / ns(1 << 20, at + 2)
        );
        println!();
        ratios.put(
            format!("write_{short}_hybrid_over_original_1KiB"),
            hyb_orig_1k,
        );
        ratios.put(
            format!("write_{short}_hybrid_over_optimized_1MiB"),
            hyb_opt_1m,
        );
        for (len, m) in [(1 << 16, k64), (1 << 20, m1)] {
            let n = size_name(len);
            let (o, p, h) = (m[at], m[at + 1], m[at + 2]);
            goals.check(
                format!("{name} write {n}: Optimized ≤ 1.10× floor"),
                format!("{p:.2}×"),
                p <= 1.10,
            );
            goals.check(
                format!("{name} write {n}: Hybrid ≤ 1.10× floor"),
                format!("{h:.2}×"),
                h <= 1.10,
            );
            goals.check(
                format!("{name} write {n}: Original ≤ 1.25× floor"),
                format!("{o:.2}×"),
                o <= 1.25,
            );
        }
        let worst_1k = (at..at + 3).map(|i| k1[i]).fold(0.0, f64::max);
        goals.check(
            format!("{name} write 1 KiB: every strategy ≤ 3× floor"),
            format!("worst {worst_1k:.2}×"),
            worst_1k <= 3.0,
        );
        goals.check(
            format!("{name}: Hybrid at 1 KiB within 2 % of Original"),
            format!("{hyb_orig_1k:.3}"),
            hyb_orig_1k <= 1.02,
        );
        goals.check(
            format!("{name}: Hybrid at 1 MiB within 2 % of Optimized"),
            format!("{hyb_opt_1m:.3}"),
            hyb_opt_1m <= 1.02,
        );
    }
    println!("### What the wire format itself costs");
    println!();
    println!(
        "The framing floor: the same frames (9-byte headers and payload chunks at the same offsets) written by a hand-written loop with no state machine and no I/O trait, next to mux-nostd's `Writer`; ratios to the plain-copy floor of the same run. The gap between the plain copy and the framing floor is the price of the layout (chunk-sized `memcpy` calls to destinations shifted by the headers); the gap between the framing floor and the `Writer` is the implementation's."
    );
    println!();
    println!(
        "| size | framing floor, Original frames | `Writer`, Original | framing floor, Hybrid frames | `Writer`, Hybrid |"
    );
    println!("|---|---|---|---|---|");
    for (len, m, q) in &table {
        println!(
            "| {} | {} ({:.2}×) | {} ({:.2}×) | {} ({:.2}×) | {} ({:.2}×) |",
            size_name(*len),
            fmt_ns(m[7]),
            q[7],
            fmt_ns(m[1]),
            q[1],
            fmt_ns(m[8]),
            q[8],
            fmt_ns(m[3]),
            q[3]
        );
        let k = key(*len);
        ratios.put(format!("write_framing_floor_{k}_original_vs_floor"), q[7]);
        ratios.put(format!("write_framing_floor_{k}_hybrid_vs_floor"), q[8]);
    }
    println!();
    println!("### The Go reference");
    println!();
    println!(
        "On this kind of machine (its `go test -bench`, medians of 5), with its ratio to its floor:"
    );
    println!();
    println!("| size | Original | Optimized | Hybrid | floor |");
    println!("|---|---|---|---|---|");
    for (len, [o, p, h, f]) in GO_REFERENCE {
        println!(
            "| {} | {} ({:.1}×) | {} ({:.1}×) | {} ({:.1}×) | {} |",
            size_name(len),
            fmt_ns(o),
            o / f,
            fmt_ns(p),
            p / f,
            fmt_ns(h),
            h / f,
            fmt_ns(f)
        );
    }
    println!();
    println!(
        "Noise: the widest spread (max − min) / median of any write-path variant over the rounds was {:.0} %.",
        noise * 100.0
    );
    println!();
    table
}

/// The write path with payload and buffer at the same offset within their pages (as glibc
/// places large blocks) against the neutral layout of the other tables.
fn layout_sensitivity(cfg: &Config, ratios: &mut Ratios) {
    println!("### Layout sensitivity");
    println!();
    println!(
        "The tables above place the payload and the buffer half a page apart (`SRC_PAGE_OFFSET` 0, `DST_PAGE_OFFSET` 2048), the same in every run. glibc hands out large blocks at the same offset within a page, so the framed copies' destinations then sit 18, 27, 36 … bytes after their sources modulo 4096 (4K aliasing). The same measurements in that layout (offset 16 for both), ratios to the plain copy in the same layout:"
    );
    println!();
    println!(
        "| size | layout | floor | framing floor, Hybrid frames | `Writer`, Hybrid | `Writer`, Original |"
    );
    println!("|---|---|---|---|---|---|");
    for len in [1usize << 16, 1 << 20] {
        for (name, short, src, dst) in [
            (
                "half a page apart",
                "neutral",
                mux_benches::SRC_PAGE_OFFSET,
                mux_benches::DST_PAGE_OFFSET,
            ),
            ("same page offset", "aliased", 16, 16),
        ] {
            let mut b = WriteBench::with_layout(len, src, dst);
            let it_f = calibrate(cfg.batch, || b.floor());
            let it_ff = calibrate(cfg.batch, || b.framed_floor(Hybrid::<4096>));
            let it_h = calibrate(cfg.batch, || b.nostd(Hybrid::<4096>));
            let it_o = calibrate(cfg.batch, || b.nostd(Original));
            let mut r = Rounds::default();
            for _ in 0..cfg.rounds {
                r.push("floor", ns_per_iter(it_f, || b.floor()));
                r.push("ff", ns_per_iter(it_ff, || b.framed_floor(Hybrid::<4096>)));
                r.push("h", ns_per_iter(it_h, || b.nostd(Hybrid::<4096>)));
                r.push("o", ns_per_iter(it_o, || b.nostd(Original)));
            }
            let cell = |v: &str| format!("{} ({:.2}×)", fmt_ns(r.median(v)), r.ratio(v, "floor"));
            println!(
                "| {} | {name} | {} | {} | {} | {} |",
                size_name(len),
                fmt_ns(r.median("floor")),
                cell("ff"),
                cell("h"),
                cell("o")
            );
            let k = key(len);
            ratios.put(
                format!("layout_{short}_{k}_framing_floor_vs_floor"),
                r.ratio("ff", "floor"),
            );
            ratios.put(
                format!("layout_{short}_{k}_writer_hybrid_vs_floor"),
                r.ratio("h", "floor"),
            );
            ratios.put(
                format!("layout_{short}_{k}_writer_original_vs_floor"),
                r.ratio("o", "floor"),
            );
        }
    }
    println!();
}

/// The Go reference's write-path table on this kind of machine: Original, Optimized, Hybrid,
/// floor (ns).
const GO_REFERENCE: [(usize, [f64; 4]); 3] = [
    (1 << 10, [112.6, 160.3, 126.1, 12.1]),
    (1 << 16, [3739.0, 2377.0, 2371.0, 1358.0]),
    (1 << 20, [70704.0, 41049.0, 42088.0, 33256.0]),
];

fn read_path(cfg: &Config, ratios: &mut Ratios, goals: &mut Goals) {
    println!("## Read path: the same streams decoded and reassembled from memory");
    println!();
    println!(
        "Reassembler: mux-nostd's sans-IO `Reassembler` fed the whole stream, the message collected in a static `Pool<260, 16 KiB>` (one copy). Reader: the blocking `Reader` over `&[u8]` with a 16 KiB receive buffer and the same reassembler (two copies). Streaming: the `Demux` (no message buffer), chunks copied into a flat buffer (one copy). mux-std `Receiver`: its reader thread (256 KiB read buffer), pooled heap buffers and channel, fed the stream repeated many times from memory, drained by this thread; time per message of the whole run, ratio to the floor's median. Floor: the payload copied into a buffer. Each cell: time per message (ratio to the floor)."
    );
    println!();
    println!(
        "| size | Reassembler, Original stream | Reassembler, Optimized stream | Reassembler, Hybrid stream | Reader (blocking), Hybrid stream | Streaming `Demux`, Hybrid stream | mux-std `Receiver`, Hybrid stream | floor |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut worst_big: f64 = 0.0;
    for len in SEED_SIZES {
        let mut o = ReadBench::new(len, Original);
        let mut p = ReadBench::new(len, Optimized);
        let mut h = ReadBench::new(len, Hybrid::<4096>);
        for b in [&mut o, &mut p, &mut h] {
            b.verify();
        }
        let it_f = calibrate(cfg.batch, || h.floor());
        let it_o = calibrate(cfg.batch, || black_box(o.reassemble()));
        let it_p = calibrate(cfg.batch, || black_box(p.reassemble()));
        let it_h = calibrate(cfg.batch, || black_box(h.reassemble()));
        let it_r = calibrate(cfg.batch, || black_box(h.reader()));
        let it_s = calibrate(cfg.batch, || black_box(h.streaming()));
        let mut r = Rounds::default();
        for _ in 0..cfg.rounds {
            r.push("floor", ns_per_iter(it_f, || h.floor()));
            r.push("o", ns_per_iter(it_o, || black_box(o.reassemble())));
            r.push("p", ns_per_iter(it_p, || black_box(p.reassemble())));
            r.push("h", ns_per_iter(it_h, || black_box(h.reassemble())));
            r.push("r", ns_per_iter(it_r, || black_box(h.reader())));
            r.push("s", ns_per_iter(it_s, || black_box(h.streaming())));
        }
        let f = r.median("floor");
        let mut cells: Vec<String> = ["o", "p", "h", "r", "s"]
            .iter()
            .map(|v| {
                let m = r.median(v);
                format!("{} ({:.2}×)", fmt_ns(m), r.ratio(v, "floor"))
            })
            .collect();
        // mux-std's Receiver: a throughput run (reader thread and channel), not a batch, so
        // its ratio is to the floor's median.
        let wire = std::sync::Arc::new(h.wire.to_vec());
        let volume = if cfg.quick { 2e6 } else { 64e6 };
        let times = (volume / len as f64).clamp(20.0, 100_000.0) as usize;
        let mut runs: Vec<f64> = (0..if cfg.quick { 1 } else { 5 })
            .map(|_| read::std_receiver(&wire, len, times))
            .collect();
        let std_ns = median(&mut runs);
        cells.push(format!("{} ({:.2}×)", fmt_ns(std_ns), std_ns / f));
        ratios.put(
            format!("read_{}_std_receiver_vs_floor", key(len)),
            std_ns / f,
        );
        println!(
            "| {} | {} | {} |",
            size_name(len),
            cells.join(" | "),
            fmt_ns(f)
        );
        let k = key(len);
        for (v, name) in [
            ("o", "reassemble_original"),
            ("p", "reassemble_optimized"),
            ("h", "reassemble_hybrid"),
            ("r", "reader_hybrid"),
            ("s", "streaming_hybrid"),
        ] {
            ratios.put(format!("read_{k}_{name}_vs_floor"), r.ratio(v, "floor"));
        }
        if len >= 1 << 16 {
            for v in ["o", "p", "h"] {
                worst_big = worst_big.max(r.ratio(v, "floor"));
            }
        }
    }
    assert_eq!(READ_POOL.stats().in_use, 0, "the read path leaked blocks");
    println!();
    println!(
        "The read-path goal (decode and reassemble from memory within 1.5× of a plain copy) is judged on the three `Reassembler` columns: fed from memory, the sans-IO core is the one-copy path. The blocking `Reader` exists for I/O sources: it reads into its receive buffer first, as any buffered reader does, so from memory it makes a second copy of every byte (about 2× the floor at 64 KiB and 1 MiB); it is shown for what that buffer costs, not as a goal."
    );
    println!();
    goals.check(
        "read 64 KiB and 1 MiB: Reassembler ≤ 1.5× floor (all three streams)",
        format!("worst {worst_big:.2}×"),
        worst_big <= 1.5,
    );
}

fn allocations(ratios: &mut Ratios, goals: &mut Goals) {
    println!("## Allocations per message (counting global allocator)");
    println!();
    println!("| path | 1 KiB | 64 KiB | 1 MiB |");
    println!("|---|---|---|---|");
    let mut worst_write: f64 = 0.0;
    let mut worst_read: f64 = 0.0;
    let row = |name: &str, f: &mut dyn FnMut(usize) -> f64, worst: &mut f64| {
        let cells: Vec<String> = SEED_SIZES
            .iter()
            .map(|&len| {
                let a = f(len);
                *worst = worst.max(a);
                format!("{a}")
            })
            .collect();
        println!("| {name} | {} |", cells.join(" | "));
    };
    let calls = |len: usize| if len >= 1 << 20 { 50 } else { 1000 };
    let mut w: Vec<WriteBench> = SEED_SIZES.iter().map(|&l| WriteBench::new(l)).collect();
    let idx = |len: usize| SEED_SIZES.iter().position(|&l| l == len).unwrap_or(0);
    row(
        "write, Original",
        &mut |l| per_call(calls(l), || black_box(w[idx(l)].nostd(Original))).0,
        &mut worst_write,
    );
    row(
        "write, Optimized",
        &mut |l| per_call(calls(l), || black_box(w[idx(l)].nostd(Optimized))).0,
        &mut worst_write,
    );
    row(
        "write, Hybrid",
        &mut |l| per_call(calls(l), || black_box(w[idx(l)].nostd(Hybrid::<4096>))).0,
        &mut worst_write,
    );
    for (name, strategy) in [
        ("write, mux-std Sender, Original", AnyStrategy::Original),
        ("write, mux-std Sender, Optimized", AnyStrategy::Optimized),
        ("write, mux-std Sender, Hybrid", AnyStrategy::default()),
    ] {
        let mut s: Vec<StdWrite> = SEED_SIZES
            .iter()
            .map(|&l| StdWrite::new(l, strategy))
            .collect();
        row(
            name,
            &mut |l| per_call(calls(l), || s[idx(l)].send()).0,
            &mut worst_write,
        );
    }
    let mut r: Vec<ReadBench> = SEED_SIZES
        .iter()
        .map(|&l| ReadBench::new(l, Hybrid::<4096>))
        .collect();
    row(
        "read, Reassembler",
        &mut |l| per_call(calls(l), || black_box(r[idx(l)].reassemble())).0,
        &mut worst_read,
    );
    row(
        "read, blocking Reader",
        &mut |l| per_call(calls(l), || black_box(r[idx(l)].reader())).0,
        &mut worst_read,
    );
    row(
        "read, streaming Demux",
        &mut |l| per_call(calls(l), || black_box(r[idx(l)].streaming())).0,
        &mut worst_read,
    );
    println!();
    println!(
        "(The Go reference: 3 allocations per message at 1 KiB; 66 (Original) and 18 (Hybrid) at 64 KiB; 1026 and 66 at 1 MiB. End-to-end allocations are in the next section.)"
    );
    println!();
    ratios.put("alloc_write_per_message_max", worst_write);
    ratios.put("alloc_read_per_message_max", worst_read);
    goals.check(
        "write path: 0 allocations per message",
        format!("{worst_write}"),
        worst_write == 0.0,
    );
    goals.check(
        "read path: 0 allocations per message",
        format!("{worst_read}"),
        worst_read == 0.0,
    );
}

/// One end-to-end variant: its label and how to run it.
struct E2eCase {
    name: &'static str,
    size: usize,
    run: Box<dyn Fn() -> Run>,
}

fn end_to_end(cfg: &Config, ratios: &mut Ratios, goals: &mut Goals) {
    println!("## End to end: two threads over a Unix socket pair");
    println!();
    let n = |full: usize| ((full as f64 * cfg.e2e_scale) as usize).max(16);
    let (k1, m1) = (1usize << 10, 1usize << 20);
    let (big, small) = (n(1000), n(500_000));
    let (y_big, y_small, y_per) = (n(300), n(100_000), n(20_000));
    let y_big_per = n(150);
    let raw_small = n(100_000);
    let cases: Vec<E2eCase> = vec![
        E2eCase {
            name: "raw pair, 1 MiB writes",
            size: m1,
            run: Box::new(move || e2e::raw(big * m1, m1)),
        },
        E2eCase {
            name: "raw pair, 64 KiB writes",
            size: m1,
            run: Box::new(move || e2e::raw(big * m1, 64 << 10)),
        },
        E2eCase {
            name: "raw pair, 16 KiB writes",
            size: m1,
            run: Box::new(move || e2e::raw(big * m1, 16 << 10)),
        },
        E2eCase {
            name: "raw pair, 1 KiB writes",
            size: k1,
            run: Box::new(move || e2e::raw(raw_small * k1, k1)),
        },
        E2eCase {
            name: "mux-std, 1 MiB, 1 sender",
            size: m1,
            run: Box::new(move || e2e::std_node(m1, big, 1)),
        },
        E2eCase {
            name: "mux-std, 1 MiB, 8 senders",
            size: m1,
            run: Box::new(move || e2e::std_node(m1, big, 8)),
        },
        E2eCase {
            name: "mux-std (hold_budget 256 KiB), 1 MiB, 1 sender",
            size: m1,
            run: Box::new(move || {
                let cfg = mux_std::Config {
                    hold_budget: 256 << 10,
                    ..mux_std::Config::default()
                };
                e2e::std_node_with(m1, big, 1, &cfg)
            }),
        },
        E2eCase {
            name: "mux-std, 1 KiB, 1 sender",
            size: k1,
            run: Box::new(move || e2e::std_node(k1, small, 1)),
        },
        E2eCase {
            name: "mux-std, 1 KiB, 1 sender, send_buffered + flush",
            size: k1,
            run: Box::new(move || e2e::std_node_buffered(k1, small)),
        },
        E2eCase {
            name: "mux-std, 1 KiB, 8 senders",
            size: k1,
            run: Box::new(move || e2e::std_node(k1, small, 8)),
        },
        E2eCase {
            name: "mux-nostd, 1 MiB, 1 sender",
            size: m1,
            run: Box::new(move || e2e::nostd(m1, big, 1)),
        },
        E2eCase {
            name: "mux-nostd, 1 MiB, 8 senders",
            size: m1,
            run: Box::new(move || e2e::nostd(m1, big, 8)),
        },
        E2eCase {
            name: "mux-nostd, 1 KiB, 1 sender",
            size: k1,
            run: Box::new(move || e2e::nostd(k1, small, 1)),
        },
        E2eCase {
            name: "mux-nostd, 1 KiB, 8 senders",
            size: k1,
            run: Box::new(move || e2e::nostd(k1, small, 8)),
        },
        E2eCase {
            name: "yamux, 1 MiB, 1 stream",
            size: m1,
            run: Box::new(move || yamux_peer::run(m1, y_big, 1, Mapping::Shared)),
        },
        E2eCase {
            name: "yamux, 1 MiB, 8 streams",
            size: m1,
            run: Box::new(move || yamux_peer::run(m1, y_big, 8, Mapping::Shared)),
        },
        E2eCase {
            name: "yamux, 1 MiB, stream per message",
            size: m1,
            run: Box::new(move || yamux_peer::run(m1, y_big_per, 1, Mapping::PerMessage)),
        },
        E2eCase {
            name: "yamux, 1 KiB, 1 stream",
            size: k1,
            run: Box::new(move || yamux_peer::run(k1, y_small, 1, Mapping::Shared)),
        },
        E2eCase {
            name: "yamux, 1 KiB, 8 streams",
            size: k1,
            run: Box::new(move || yamux_peer::run(k1, y_small, 8, Mapping::Shared)),
        },
        E2eCase {
            name: "yamux, 1 KiB, stream per message",
            size: k1,
            run: Box::new(move || yamux_peer::run(k1, y_per, 1, Mapping::PerMessage)),
        },
    ];
    // Runs interleaved (every case once per repetition); allocations from the first repetition.
    let mut rates: Vec<Vec<Run>> = vec![Vec::new(); cases.len()];
    let mut allocs = vec![0.0; cases.len()];
    for rep in 0..cfg.e2e_reps {
        for (i, c) in cases.iter().enumerate() {
            let a0 = mux_benches::alloc::allocations();
            let run = (c.run)();
            if rep == 0 {
                allocs[i] = (mux_benches::alloc::allocations() - a0) as f64 / run.messages as f64;
            }
            rates[i].push(run);
        }
    }
    let med = |i: usize| -> (f64, f64, f64) {
        let mut m: Vec<f64> = rates[i].iter().map(Run::msgs_per_sec).collect();
        let mut b: Vec<f64> = rates[i].iter().map(Run::bytes_per_sec).collect();
        let spread = mux_benches::timing::spread(&m);
        (median(&mut m), median(&mut b), spread)
    };
    let find = |name: &str| cases.iter().position(|c| c.name == name).unwrap_or(0);
    let raw_big = med(find("raw pair, 1 MiB writes")).1;
    println!(
        "Messages per second and payload bytes per second (medians of {} runs); the last column compares with the raw pair carrying 1 MiB writes in the same run ({}B/s).",
        cfg.e2e_reps,
        fmt_rate(raw_big)
    );
    println!();
    println!(
        "| case | messages/s | bytes/s | vs raw pair | allocations/message (run setup included) | spread |"
    );
    println!("|---|---|---|---|---|---|");
    for (i, c) in cases.iter().enumerate() {
        let (m, b, s) = med(i);
        println!(
            "| {} | {} | {}B/s | {:.0} % | {:.3} | {:.0} % |",
            c.name,
            fmt_rate(m),
            fmt_rate(b),
            100.0 * b / raw_big,
            allocs[i],
            100.0 * s
        );
        let _ = c.size;
    }
    println!();
    let get = |s: &str| med(find(s));
    let (y1m, y8m, ypm) = (
        get("yamux, 1 MiB, 1 stream"),
        get("yamux, 1 MiB, 8 streams"),
        get("yamux, 1 MiB, stream per message"),
    );
    let (y1k, y8k, ypk) = (
        get("yamux, 1 KiB, 1 stream"),
        get("yamux, 1 KiB, 8 streams"),
        get("yamux, 1 KiB, stream per message"),
    );
    ratios.put("e2e_yamux_1MiB_1stream_vs_raw", y1m.1 / raw_big);
    ratios.put("e2e_raw_bytes_per_s", raw_big);
    let hb = get("mux-std (hold_budget 256 KiB), 1 MiB, 1 sender");
    ratios.put(
        "e2e_std_hold_budget_256KiB_1MiB_1sender_vs_raw",
        hb.1 / raw_big,
    );
    let std_buffered = get("mux-std, 1 KiB, 1 sender, send_buffered + flush");
    let raw_1k = get("raw pair, 1 KiB writes");
    ratios.put(
        "e2e_std_buffered_1KiB_1sender_vs_2M_per_s",
        std_buffered.0 / 2e6,
    );
    ratios.put("e2e_std_buffered_1KiB_1sender_msgs_per_s", std_buffered.0);
    ratios.put("e2e_raw_1KiB_writes_per_s", raw_1k.0);
    println!(
        "- One write per message cannot reach 2 M messages/s of 1 KiB: the raw pair itself takes {}/s 1 KiB writes. So the mux-std single-sender 1 KiB goal is judged on `send_buffered` + `flush` (the API for streams of small messages: they leave the shared buffer 64 KiB at a time); the plain `send` row, one write per message, is shown for comparison. The mux-nostd sender writes through a {} KiB `BufWriter`, which gathers the same way.",
        fmt_rate(raw_1k.0),
        e2e::TX_BUF / 1024
    );
    for (name, short) in [("mux-std", "std"), ("mux-nostd", "nostd")] {
        let o1m = get(&format!("{name}, 1 MiB, 1 sender"));
        let o8m = get(&format!("{name}, 1 MiB, 8 senders"));
        let o1k = get(&format!("{name}, 1 KiB, 1 sender"));
        let o8k = get(&format!("{name}, 1 KiB, 8 senders"));
        println!(
            "- {name} against yamux (messages/s): 1 MiB {:.2}× (1 sender vs 1 stream), {:.2}× (8 senders vs 8 streams), {:.2}× (vs a stream per message); 1 KiB {:.2}×, {:.2}×, {:.2}×.",
            o1m.0 / y1m.0,
            o8m.0 / y8m.0,
            o1m.0 / ypm.0,
            o1k.0 / y1k.0,
            o8k.0 / y8k.0,
            o1k.0 / ypk.0
        );
        ratios.put(format!("e2e_{short}_1MiB_1sender_vs_raw"), o1m.1 / raw_big);
        ratios.put(format!("e2e_{short}_1MiB_8senders_vs_raw"), o8m.1 / raw_big);
        ratios.put(format!("e2e_{short}_1KiB_1sender_vs_2M_per_s"), o1k.0 / 2e6);
        ratios.put(
            format!("e2e_{short}_1KiB_8senders_vs_2M_per_s"),
            o8k.0 / 2e6,
        );
        ratios.put(
            format!("e2e_{short}_1MiB_1sender_vs_yamux_1stream"),
            o1m.0 / y1m.0,
        );
        ratios.put(
            format!("e2e_{short}_1MiB_8senders_vs_yamux_8streams"),
            o8m.0 / y8m.0,
        );
        ratios.put(
            format!("e2e_{short}_1MiB_vs_yamux_stream_per_message"),
            o1m.0 / ypm.0,
        );
        ratios.put(
            format!("e2e_{short}_1KiB_1sender_vs_yamux_1stream"),
            o1k.0 / y1k.0,
        );
        ratios.put(
            format!("e2e_{short}_1KiB_8senders_vs_yamux_8streams"),
            o8k.0 / y8k.0,
        );
        ratios.put(
            format!("e2e_{short}_1KiB_vs_yamux_stream_per_message"),
            o1k.0 / ypk.0,
        );
        ratios.put(format!("e2e_{short}_1KiB_1sender_msgs_per_s"), o1k.0);
        ratios.put(format!("e2e_{short}_1KiB_8senders_msgs_per_s"), o8k.0);
        ratios.put(format!("e2e_{short}_1MiB_1sender_bytes_per_s"), o1m.1);
        for (what, r) in [("1 sender", o1m), ("8 senders", o8m)] {
            goals.check(
                format!("{name} end to end 1 MiB ({what}) ≥ 75 % of the raw pair"),
                format!("{:.0} %", 100.0 * r.1 / raw_big),
                r.1 >= 0.75 * raw_big,
            );
        }
        // mux-std's single sender: `send_buffered` (one write per message cannot reach it).
        let (what_1, r1) = if short == "std" {
            ("1 sender, send_buffered", std_buffered)
        } else {
            ("1 sender", o1k)
        };
        for (what, r) in [(what_1, r1), ("8 senders", o8k)] {
            goals.check(
                format!("{name} end to end 1 KiB ({what}) ≥ 2 M messages/s"),
                format!("{}/s", fmt_rate(r.0)),
                r.0 >= 2e6,
            );
        }
    }
    println!();
}

fn plot_write_path(cfg: &Config, path: &str, seed: &WriteTable) {
    let mut series = [
        ("Original", "#1f77b4", false),
        ("Optimized", "#d62728", false),
        ("Hybrid (4 KiB threshold)", "#2ca02c", false),
        ("floor: plain copy", "black", true),
        ("framing floor", "grey", true),
    ]
    .map(|(label, color, dashed)| Series {
        label: label.to_string(),
        color,
        dashed,
        points: Vec::new(),
    });
    for len in PLOT_SIZES {
        let m = match seed.iter().find(|(l, _, _)| *l == len) {
            Some((_, m, _)) => *m,
            None => {
                measure_write(
                    &Config {
                        rounds: cfg.rounds.min(9),
                        ..clone_cfg(cfg)
                    },
                    len,
                    false,
                )
                .0
            }
        };
        series[0].points.push((len as f64, m[1]));
        series[1].points.push((len as f64, m[2]));
        series[2].points.push((len as f64, m[3]));
        series[3].points.push((len as f64, m[0]));
        series[4].points.push((len as f64, m[8]));
    }
    let svg = plot::svg(
        "Write path: one message framed into a reused in-memory buffer",
        &format!(
            "mux-nostd blocking Writer over &mut [u8]; {}",
            machine::describe()
        ),
        &series,
    );
    match std::fs::write(path, svg) {
        Ok(()) => println!("Plot written to {path}.\n"),
        Err(e) => println!("Plot not written ({path}: {e}).\n"),
    }
}

fn clone_cfg(cfg: &Config) -> Config {
    Config {
        quick: cfg.quick,
        rounds: cfg.rounds,
        batch: cfg.batch,
        e2e_reps: cfg.e2e_reps,
        e2e_scale: cfg.e2e_scale,
        svg: None,
    }
}

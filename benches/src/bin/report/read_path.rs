//! The read path: the write path's streams decoded and reassembled from memory by mux-nostd's
//! `Reassembler`, blocking `Reader` and streaming `Demux`, and by mux-std's `Receiver`, each
//! with its ratio to a plain copy of the payload; the read-path goal.

use std::hint::black_box;
use std::sync::Arc;

use mux_benches::read::{self, READ_POOL, ReadBench};
use mux_benches::timing::median;
use mux_benches::{SEED_SIZES, size_name};
use mux_nostd::{Hybrid, Optimized, Original};

use crate::config::Config;
use crate::fmt::{cell, fmt_ns, key};
use crate::goals::Goals;
use crate::json::Ratios;
use crate::rounds::interleaved;

/// The interleaved variants besides the floor, in the table's order: Rounds name, JSON key
/// part, and whether the goal judges it (the three `Reassembler` columns).
const VARIANTS: [(&str, &str, bool); 5] = [
    ("o", "reassemble_original", true),
    ("p", "reassemble_optimized", true),
    ("h", "reassemble_hybrid", true),
    ("r", "reader_hybrid", false),
    ("s", "streaming_hybrid", false),
];

/// Prints the "Read path" section, records its ratios and its goal.
pub fn section(cfg: &Config, ratios: &mut Ratios, goals: &mut Goals) {
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
    // The Reassembler's and the Receiver's time per message at 1 KiB, for the small-message
    // comparison below.
    let mut k1 = (f64::NAN, f64::NAN);
    for len in SEED_SIZES {
        let mut o = ReadBench::new(len, Original);
        let mut p = ReadBench::new(len, Optimized);
        let mut h = ReadBench::new(len, Hybrid::<4096>);
        for b in [&mut o, &mut p, &mut h] {
            b.verify();
        }
        let r = interleaved!(cfg, {
            "floor" => h.floor();
            "o" => black_box(o.reassemble());
            "p" => black_box(p.reassemble());
            "h" => black_box(h.reassemble());
            "r" => black_box(h.reader());
            "s" => black_box(h.streaming());
        });
        let f = r.median("floor");
        let mut cells: Vec<String> = VARIANTS
            .iter()
            .map(|(v, _, _)| cell(r.median(v), r.ratio(v, "floor")))
            .collect();
        let std_ns = std_receiver(cfg, &h, len);
        if len == 1 << 10 {
            k1 = (r.median("h"), std_ns);
        }
        cells.push(cell(std_ns, std_ns / f));
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
        for (v, name, _) in VARIANTS {
            ratios.put(format!("read_{k}_{name}_vs_floor"), r.ratio(v, "floor"));
        }
        if len >= 1 << 16 {
            for (v, _, judged) in VARIANTS {
                if judged {
                    worst_big = worst_big.max(r.ratio(v, "floor"));
                }
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
    small_messages(cfg, k1, ratios, goals);
}

/// The "small messages" table: mux-std's `Receiver` against the sans-IO `Reassembler` per
/// message at 64 B (measured here) and 1 KiB (`k1`: the Reassembler's and the Receiver's
/// times from the table above), and its goal.
fn small_messages(cfg: &Config, k1: (f64, f64), ratios: &mut Ratios, goals: &mut Goals) {
    let mut h = ReadBench::new(64, Hybrid::<4096>);
    h.verify();
    let r = interleaved!(cfg, {
        "h" => black_box(h.reassemble());
    });
    let b64 = (r.median("h"), std_receiver(cfg, &h, 64));
    println!(
        "Small messages, Hybrid stream: the `Receiver` (reader thread, pooled buffers, queue, drained by another thread) against the `Reassembler` (one message fed and collected per call, a fresh reassembler each time, as in the table above), time per message."
    );
    println!();
    println!("| size | Reassembler | mux-std `Receiver` | Receiver / Reassembler |");
    println!("|---|---|---|---|");
    let mut worst: f64 = 0.0;
    for (len, (re, rx)) in [(64, b64), (1 << 10, k1)] {
        let ratio = rx / re;
        worst = worst.max(ratio);
        println!(
            "| {} | {} | {} | {ratio:.2}× |",
            size_name(len),
            fmt_ns(re),
            fmt_ns(rx)
        );
        ratios.put(
            format!("read_{}_std_receiver_vs_reassembler", key(len)),
            ratio,
        );
    }
    println!();
    goals.check(
        "read 64 B and 1 KiB from memory: mux-std Receiver ≤ 2× Reassembler (Hybrid stream)",
        format!("worst {worst:.2}×"),
        worst <= 2.0,
    );
}

/// mux-std's `Receiver` fed `h`'s stream (Hybrid) repeated many times: a throughput run (reader
/// thread and channel), not a batch, so its ratio is to the floor's median. Nanoseconds per
/// message, the median of a few runs.
fn std_receiver(cfg: &Config, h: &ReadBench, len: usize) -> f64 {
    let wire = Arc::new(h.wire.to_vec());
    let volume = if cfg.quick { 2e6 } else { 64e6 };
    let times = (volume / len as f64).clamp(20.0, 100_000.0) as usize;
    let mut runs: Vec<f64> = (0..if cfg.quick { 1 } else { 5 })
        .map(|_| read::std_receiver(&wire, len, times))
        .collect();
    median(&mut runs)
}

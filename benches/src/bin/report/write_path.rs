//! The write path: one message framed into an in-memory buffer reused every iteration, through
//! mux-nostd's `Writer` and mux-std's `Sender`, each figure with its ratio to the plain-copy
//! floor of the same run; the framing floor; the Go reference's table; their goals.

use mux_benches::write::{ID, StdWrite, WriteBench};
use mux_benches::{SEED_SIZES, size_name};
use mux_nostd::{Hybrid, Optimized, Original, Strategy, encode_into};

use crate::config::Config;
use crate::fmt::{cell, fmt_ns, key};
use crate::goals::Goals;
use crate::json::Ratios;
use crate::rounds::interleaved;

/// The variants of [`WriteRow`]'s arrays, in order: the floor, Original, Optimized, Hybrid
/// through mux-nostd's `Writer`, the same through mux-std's `Sender`, then the framing floor
/// of Original's and of Hybrid's frames.
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

/// Where the plain-copy floor is in [`WriteRow`]'s arrays.
pub const FLOOR: usize = 0;
/// Where mux-nostd's Original, Optimized and Hybrid (in that order) start.
pub const NOSTD: usize = 1;
/// Where mux-std's Original, Optimized and Hybrid (in that order) start.
const STD: usize = 4;
/// Where the framing floor of Original's frames is.
const FRAMED_ORIGINAL: usize = 7;
/// Where the framing floor of Hybrid's frames is.
pub const FRAMED_HYBRID: usize = 8;

/// One message size's write-path figures, indexed as [`WRITE_VARIANTS`].
pub struct WriteRow {
    /// The message size.
    pub len: usize,
    /// Medians over the rounds, nanoseconds per message.
    pub ns: [f64; 9],
    /// Medians of the paired ratios to the floor.
    pub vs_floor: [f64; 9],
    /// Medians of the paired ratios to the framing floor of the same frames (Original's for
    /// the Original variants, Hybrid's for the others: Optimized's frames are Hybrid's at
    /// every size); NaN for the floor.
    pub vs_framed: [f64; 9],
}

/// The framing floor that writes the same frames as variant `i` of [`WRITE_VARIANTS`] (`None`
/// for the plain copy).
fn framing_floor_of(i: usize) -> Option<&'static str> {
    match i {
        FLOOR => None,
        NOSTD | STD | FRAMED_ORIGINAL => Some("framed original"),
        _ => Some("framed hybrid"),
    }
}

/// How far above the framing floor mux-nostd's `Writer` may be at 64 KiB and 1 MiB.
const NOSTD_VS_FRAMED: f64 = 1.05;
/// How far above the framing floor mux-std's `Sender` may be at 64 KiB and 1 MiB.
const STD_VS_FRAMED: f64 = 1.10;

/// The Go reference's write-path table on this kind of machine: Original, Optimized, Hybrid,
/// floor (ns).
const GO_REFERENCE: [(usize, [f64; 4]); 3] = [
    (1 << 10, [112.6, 160.3, 126.1, 12.1]),
    (1 << 16, [3739.0, 2377.0, 2371.0, 1358.0]),
    (1 << 20, [70704.0, 41049.0, 42088.0, 33256.0]),
];

/// The crates whose write path is tabled: name, JSON key part, where its three strategies
/// start in [`WriteRow`], and what is measured.
const CRATES: [(&str, &str, usize, f64, &str); 2] = [
    (
        "mux-nostd",
        "nostd",
        NOSTD,
        NOSTD_VS_FRAMED,
        "mux-nostd's blocking `Writer` over `&mut [u8]` (an `embedded_io::Write`), `send_with_id(7, &payload)`",
    ),
    (
        "mux-std",
        "std",
        STD,
        STD_VS_FRAMED,
        "mux-std's thread-safe `Sender` (default configuration but the strategy) over an in-memory `std::io::Write` that starts over at its beginning after each message, `send_with_id(7, &payload)`",
    ),
];

/// The strategies in the order of [`WriteRow`]'s three-strategy groups, as JSON key parts.
const STRATEGY_KEYS: [&str; 3] = ["original", "optimized", "hybrid"];

/// Medians of the floor and the three strategies through both crates for one message size,
/// and the widest spread. The mux-std variants are timed only `with_std` (else NaN).
pub fn measure_write(cfg: &Config, len: usize, with_std: bool) -> (WriteRow, f64) {
    let mut b = WriteBench::new(len);
    // Every strategy's output is checked against the sans-IO encoder once.
    check_write(&mut b, Original);
    check_write(&mut b, Optimized);
    check_write(&mut b, Hybrid::<4096>);
    let mut so = StdWrite::new(len, Original);
    let mut sp = StdWrite::new(len, Optimized);
    let mut sh = StdWrite::new(len, Hybrid::<4096>);
    let r = interleaved!(cfg, {
        "floor" => b.floor();
        "original" => b.nostd(Original);
        "optimized" => b.nostd(Optimized);
        "hybrid" => b.nostd(Hybrid::<4096>);
        "framed original" => b.framed_floor(Original);
        "framed hybrid" => b.framed_floor(Hybrid::<4096>);
        "std original" => so.send(), if with_std;
        "std optimized" => sp.send(), if with_std;
        "std hybrid" => sh.send(), if with_std;
    });
    let row = WriteRow {
        len,
        ns: WRITE_VARIANTS.map(|v| r.median(v)),
        vs_floor: WRITE_VARIANTS.map(|v| r.ratio(v, "floor")),
        vs_framed: std::array::from_fn(|i| {
            framing_floor_of(i).map_or(f64::NAN, |f| r.ratio(WRITE_VARIANTS[i], f))
        }),
    };
    (row, r.worst_spread())
}

/// Checks once that mux-nostd's `Writer` frames `b`'s message with `s` as the sans-IO encoder
/// does.
fn check_write<S: Strategy + Copy>(b: &mut WriteBench, s: S) {
    let n = b.nostd(s);
    let mut want = vec![0u8; b.buf.len()];
    let m = encode_into(&s, ID, &b.payload, &mut want).expect("fits");
    assert_eq!(
        &b.buf[..n],
        &want[..m],
        "Writer output differs from encode_into"
    );
}

/// The "Write path" section but its layout sensitivity; returns the figures per seed size
/// (for the plot).
pub fn section(cfg: &Config, ratios: &mut Ratios, goals: &mut Goals) -> Vec<WriteRow> {
    println!("## Write path: one message framed into an in-memory buffer reused every iteration");
    println!();
    let mut table = Vec::new();
    let mut noise: f64 = 0.0;
    for len in SEED_SIZES {
        let (row, spread) = measure_write(cfg, len, true);
        noise = noise.max(spread);
        table.push(row);
    }
    for (name, short, at, limit, how) in CRATES {
        crate_subsection(&table, (name, short, at, limit, how), ratios, goals);
    }
    framing_floor(&table, ratios);
    go_reference();
    println!(
        "Noise: the widest spread (max − min) / median of any write-path variant over the rounds was {:.0} %.",
        noise * 100.0
    );
    println!();
    table
}

/// One crate's table (an entry of [`CRATES`]: strategies from `at` in [`WriteRow`], `limit`
/// the goal against the framing floor), its comparison with the Go reference, its ratios and
/// its goals.
fn crate_subsection(
    table: &[WriteRow],
    (name, short, at, limit, how): (&str, &str, usize, f64, &str),
    ratios: &mut Ratios,
    goals: &mut Goals,
) {
    println!("### {name}");
    println!();
    println!(
        "{how}; floor: `buf[..n].copy_from_slice(&payload)` into a buffer of the same size. Each cell: time per message (its ratio to the floor; its ratio to the framing floor of the same frames, see below; both measured in the same run)."
    );
    println!();
    println!("| size | Original | Optimized | Hybrid | plain copy of the payload (floor) |");
    println!("|---|---|---|---|---|");
    for row in table {
        let cells = [at, at + 1, at + 2].map(|i| {
            format!(
                "{} ({:.2}×; {:.2}× framing floor)",
                fmt_ns(row.ns[i]),
                row.vs_floor[i],
                row.vs_framed[i]
            )
        });
        println!(
            "| {} | {} | {} |",
            size_name(row.len),
            cells.join(" | "),
            fmt_ns(row.ns[FLOOR])
        );
        let k = key(row.len);
        for (i, strategy) in STRATEGY_KEYS.iter().enumerate() {
            ratios.put(
                format!("write_{short}_{k}_{strategy}_vs_floor"),
                row.vs_floor[at + i],
            );
            ratios.put(
                format!("write_{short}_{k}_{strategy}_vs_framing_floor"),
                row.vs_framed[at + i],
            );
        }
    }
    println!();
    // Paired ratios to the floor (time ratios between variants are ratios of these).
    let get = |len: usize| {
        table
            .iter()
            .find(|row| row.len == len)
            .expect("the seed sizes are measured")
    };
    let (k1, k64, m1) = (get(1 << 10), get(1 << 16), get(1 << 20));
    let hyb_orig_1k = k1.vs_floor[at + 2] / k1.vs_floor[at];
    let hyb_opt_1m = m1.vs_floor[at + 2] / m1.vs_floor[at + 1];
    println!(
        "- Hybrid/Original at 1 KiB: {hyb_orig_1k:.3} (Go reference: {:.3}); Hybrid/Optimized at 1 MiB: {hyb_opt_1m:.3} (Go reference: {:.3}).",
        GO_REFERENCE[0].1[2] / GO_REFERENCE[0].1[0],
        GO_REFERENCE[2].1[2] / GO_REFERENCE[2].1[1],
    );
    println!(
        "- The Go reference's time divided by ours: Original {:.1} at 1 KiB, Hybrid {:.1} at 1 MiB (its figures come from another machine of the same kind: the ratios to the floor are what compare).",
        GO_REFERENCE[0].1[0] / k1.ns[at],
        GO_REFERENCE[2].1[2] / m1.ns[at + 2]
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
    for row in [k64, m1] {
        let n = size_name(row.len);
        for (i, strategy) in ["Original", "Optimized", "Hybrid"].into_iter().enumerate() {
            let q = row.vs_framed[at + i];
            goals.check(
                format!("{name} write {n}: {strategy} ≤ {limit:.2}× framing floor"),
                format!("{q:.3}×"),
                q <= limit,
            );
        }
    }
    let worst_1k = (at..at + 3).map(|i| k1.vs_floor[i]).fold(0.0, f64::max);
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

/// "What the wire format itself costs": the framing floor next to mux-nostd's `Writer`.
fn framing_floor(table: &[WriteRow], ratios: &mut Ratios) {
    println!("### What the wire format itself costs");
    println!();
    println!(
        "The framing floor: the same frames (9-byte headers and payload chunks at the same offsets) written by a hand-written loop with no state machine and no I/O trait, next to mux-nostd's `Writer`; ratios to the plain-copy floor of the same run (and the `Writer`'s to the framing floor). The write-path goals at 64 KiB and 1 MiB judge the framed writers against this floor: mux-nostd within {:.0} % of it, mux-std within {:.0} %. The gap between the plain copy and the framing floor is the price of the layout (chunk-sized `memcpy` calls to destinations shifted by the headers); the gap between the framing floor and the `Writer` is the implementation's.",
        (NOSTD_VS_FRAMED - 1.0) * 100.0,
        (STD_VS_FRAMED - 1.0) * 100.0
    );
    println!();
    println!(
        "| size | framing floor, Original frames | `Writer`, Original | framing floor, Hybrid frames | `Writer`, Hybrid |"
    );
    println!("|---|---|---|---|---|");
    for row in table {
        let cells = [FRAMED_ORIGINAL, NOSTD, FRAMED_HYBRID, NOSTD + 2].map(|i| match i {
            FRAMED_ORIGINAL | FRAMED_HYBRID => cell(row.ns[i], row.vs_floor[i]),
            _ => format!(
                "{} ({:.2}×; {:.3}× framing floor)",
                fmt_ns(row.ns[i]),
                row.vs_floor[i],
                row.vs_framed[i]
            ),
        });
        println!("| {} | {} |", size_name(row.len), cells.join(" | "));
        let k = key(row.len);
        ratios.put(
            format!("write_framing_floor_{k}_original_vs_floor"),
            row.vs_floor[FRAMED_ORIGINAL],
        );
        ratios.put(
            format!("write_framing_floor_{k}_hybrid_vs_floor"),
            row.vs_floor[FRAMED_HYBRID],
        );
    }
    println!();
}

/// "The Go reference": its table, with each figure's ratio to its floor.
fn go_reference() {
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
}

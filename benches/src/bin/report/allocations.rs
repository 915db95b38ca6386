//! Allocations per message on the write and read paths (the counting global allocator), and
//! their goals.

use mux_benches::SEED_SIZES;
use mux_benches::alloc::per_call;
use mux_benches::read::ReadBench;
use mux_benches::write::{StdWrite, WriteBench};
use mux_nostd::{AnyStrategy, Hybrid, Optimized, Original};

use crate::goals::Goals;
use crate::json::Ratios;

/// Prints the "Allocations per message" section, records its ratios and its goals.
pub fn section(ratios: &mut Ratios, goals: &mut Goals) {
    println!("## Allocations per message (counting global allocator)");
    println!();
    println!("| path | 1 KiB | 64 KiB | 1 MiB |");
    println!("|---|---|---|---|");
    let mut w = SEED_SIZES.map(WriteBench::new);
    let mut worst_write = [
        row("write, Original", &mut w, |b| b.nostd(Original)),
        row("write, Optimized", &mut w, |b| b.nostd(Optimized)),
        row("write, Hybrid", &mut w, |b| b.nostd(Hybrid::<4096>)),
    ]
    .into_iter()
    .fold(0.0, f64::max);
    for (name, strategy) in [
        ("write, mux-std Sender, Original", AnyStrategy::Original),
        ("write, mux-std Sender, Optimized", AnyStrategy::Optimized),
        ("write, mux-std Sender, Hybrid", AnyStrategy::default()),
    ] {
        let mut s = SEED_SIZES.map(|len| StdWrite::new(len, strategy));
        worst_write = worst_write.max(row(name, &mut s, StdWrite::send));
    }
    let mut r = SEED_SIZES.map(|len| ReadBench::new(len, Hybrid::<4096>));
    let worst_read = [
        row("read, Reassembler", &mut r, ReadBench::reassemble),
        row("read, blocking Reader", &mut r, ReadBench::reader),
        row("read, streaming Demux", &mut r, ReadBench::streaming),
    ]
    .into_iter()
    .fold(0.0, f64::max);
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

/// Prints the row `name`: allocations per call of `f` on each seed size's bench (one per
/// [`SEED_SIZES`] entry, in order). Returns the row's largest figure.
fn row<B, R>(name: &str, benches: &mut [B], mut f: impl FnMut(&mut B) -> R) -> f64 {
    let mut worst: f64 = 0.0;
    let cells: Vec<String> = SEED_SIZES
        .iter()
        .zip(benches)
        .map(|(&len, b)| {
            let calls = if len >= 1 << 20 { 50 } else { 1000 };
            let a = per_call(calls, || f(b)).0;
            worst = worst.max(a);
            format!("{a}")
        })
        .collect();
    println!("| {name} | {} |", cells.join(" | "));
    worst
}

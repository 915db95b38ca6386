//! Allocations per message for every path, counted by a counting global allocator (a plain
//! program run by `cargo bench --bench allocations`; the `report` binary prints the same).

use std::hint::black_box;

use mux_benches::alloc::{CountingAlloc, allocations, per_call};
use mux_benches::read::ReadBench;
use mux_benches::write::{StdWrite, WriteBench};
use mux_benches::yamux_peer::{self, Mapping};
use mux_benches::{SEED_SIZES, e2e, size_name};
use mux_nostd::{Hybrid, Optimized, Original};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Steady-state allocations per message of an end-to-end run: the difference between a run of
/// `2n` and a run of `n` messages, divided by `n` (so thread spawns and buffers set up once
/// per run cancel out).
fn per_message(n: usize, run: impl Fn(usize) -> e2e::Run) -> f64 {
    let count = |m: usize| {
        let a = allocations();
        let r = run(m);
        assert_eq!(r.messages, m as u64);
        allocations() - a
    };
    let (one, two) = (count(n), count(2 * n));
    (two as f64 - one as f64) / n as f64
}

fn main() {
    // `cargo bench` passes `--bench`; a filter or `--list` from `cargo test` is ignored.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!("allocations per message (bytes requested per message in parentheses; end to end:");
    println!("steady state, the difference between a run of 2n and of n messages, over n)");
    for len in SEED_SIZES {
        let calls = if len >= 1 << 20 { 50 } else { 1000 };
        let mut w = WriteBench::new(len);
        let mut r = ReadBench::new(len, Hybrid::<4096>);
        let mut s = StdWrite::new(len, Hybrid::<4096>);
        let rows: [(&str, (f64, f64)); 7] = [
            (
                "write, mux-std Sender, Hybrid",
                per_call(calls, || s.send()),
            ),
            (
                "write, Original",
                per_call(calls, || black_box(w.nostd(Original))),
            ),
            (
                "write, Optimized",
                per_call(calls, || black_box(w.nostd(Optimized))),
            ),
            (
                "write, Hybrid",
                per_call(calls, || black_box(w.nostd(Hybrid::<4096>))),
            ),
            (
                "read, Reassembler",
                per_call(calls, || black_box(r.reassemble())),
            ),
            (
                "read, blocking Reader",
                per_call(calls, || black_box(r.reader())),
            ),
            (
                "read, streaming Demux",
                per_call(calls, || black_box(r.streaming())),
            ),
        ];
        for (name, (a, b)) in rows {
            println!("{:>8}  {name:<40} {a} ({b:.0} B)", size_name(len));
        }
    }
    for (len, n) in [(1usize << 10, 100_000usize), (1 << 20, 100)] {
        let cases: [(&str, f64); 6] = [
            (
                "end to end, mux-std, 1 sender",
                per_message(n, |m| e2e::std_node(len, m, 1)),
            ),
            (
                "end to end, mux-std, 8 senders",
                per_message(n, |m| e2e::std_node(len, m, 8)),
            ),
            (
                "end to end, mux-nostd, 1 sender",
                per_message(n, |m| e2e::nostd(len, m, 1)),
            ),
            (
                "end to end, mux-nostd, 8 senders",
                per_message(n, |m| e2e::nostd(len, m, 8)),
            ),
            (
                "end to end, yamux, 1 stream",
                per_message(n, |m| yamux_peer::run(len, m, 1, Mapping::Shared)),
            ),
            (
                "end to end, yamux, stream per message",
                per_message(n / 4, |m| yamux_peer::run(len, m, 1, Mapping::PerMessage)),
            ),
        ];
        for (name, a) in cases {
            println!("{:>8}  {name:<40} {a:.3}", size_name(len));
        }
    }
}

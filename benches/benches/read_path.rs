//! Criterion: the read path — the write path's streams decoded and reassembled from memory —
//! with the floor (a plain copy of the payload) in the same group.

use criterion::{Criterion, Throughput};
use mux_benches::read::ReadBench;
use mux_benches::{SEED_SIZES, size_name};
use mux_nostd::{Hybrid, Optimized, Original};

fn read_path(c: &mut Criterion) {
    for len in SEED_SIZES {
        let mut g = c.benchmark_group(format!("read/{}", size_name(len)));
        g.throughput(Throughput::Bytes(len as u64));
        let mut o = ReadBench::new(len, Original);
        let mut p = ReadBench::new(len, Optimized);
        let mut h = ReadBench::new(len, Hybrid::<4096>);
        for b in [&mut o, &mut p, &mut h] {
            b.verify();
        }
        g.bench_function("floor (copy)", |i| i.iter(|| h.floor()));
        g.bench_function("Reassembler, Original stream", |i| {
            i.iter(|| o.reassemble())
        });
        g.bench_function("Reassembler, Optimized stream", |i| {
            i.iter(|| p.reassemble())
        });
        g.bench_function("Reassembler, Hybrid stream", |i| i.iter(|| h.reassemble()));
        g.bench_function("blocking Reader, Hybrid stream", |i| i.iter(|| h.reader()));
        g.bench_function("streaming Demux, Hybrid stream", |i| {
            i.iter(|| h.streaming())
        });
        let wire = std::sync::Arc::new(h.wire.to_vec());
        g.bench_function(
            "mux-std Receiver (reader thread + channel), Hybrid stream",
            |i| {
                i.iter_custom(|n| {
                    let ns = mux_benches::read::std_receiver(&wire, len, n as usize) * n as f64;
                    std::time::Duration::from_nanos(ns as u64)
                })
            },
        );
        g.finish();
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    read_path(&mut c);
    c.final_summary();
}

//! Criterion: the write path of the seed's table — one message framed into an in-memory buffer
//! reused every iteration, through mux-nostd's public blocking `Writer` — with the floor (a
//! plain copy of the payload into the same buffer) in the same group.

use criterion::{BenchmarkId, Criterion, Throughput};
use mux_benches::write::{StdWrite, WriteBench};
use mux_benches::{SEED_SIZES, size_name};
use mux_nostd::{AnyStrategy, Hybrid, Optimized, Original};

fn write_path(c: &mut Criterion) {
    for len in SEED_SIZES {
        let mut g = c.benchmark_group(format!("write/{}", size_name(len)));
        g.throughput(Throughput::Bytes(len as u64));
        let mut b = WriteBench::new(len);
        g.bench_function("floor (copy)", |i| i.iter(|| b.floor()));
        g.bench_function("Original", |i| i.iter(|| b.nostd(Original)));
        g.bench_function("Optimized", |i| i.iter(|| b.nostd(Optimized)));
        g.bench_function("Hybrid<4096>", |i| i.iter(|| b.nostd(Hybrid::<4096>)));
        g.bench_function("Hybrid<8192>", |i| i.iter(|| b.nostd(Hybrid::<8192>)));
        let any = AnyStrategy::default();
        g.bench_function(BenchmarkId::new("AnyStrategy", any), |i| {
            i.iter(|| b.nostd(any))
        });
        g.bench_function("framing floor (hand-written frames), Hybrid", |i| {
            i.iter(|| b.framed_floor(Hybrid::<4096>))
        });
        for (name, s) in [
            ("mux-std Sender, Original", AnyStrategy::Original),
            ("mux-std Sender, Optimized", AnyStrategy::Optimized),
            ("mux-std Sender, Hybrid", AnyStrategy::default()),
        ] {
            let mut tx = StdWrite::new(len, s);
            g.bench_function(name, |i| i.iter(|| tx.send()));
        }
        g.bench_function("encode_into (sans-IO), Hybrid", |i| {
            i.iter(|| b.encode(Hybrid::<4096>))
        });
        g.finish();
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    write_path(&mut c);
    c.final_summary();
}

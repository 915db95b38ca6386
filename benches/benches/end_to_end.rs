//! Criterion: end to end over a Unix socket pair between two threads — the raw pair, mux-nostd
//! and mux-std (1 and 8 senders) and yamux (one stream per sender, or a stream per message) — with 1 KiB
//! and 1 MiB messages. Each sample is one run of `iters` messages; the time is from the first
//! send to the last byte received.

use std::time::Duration;

use criterion::{Criterion, Throughput};
use mux_benches::yamux_peer::{self, Mapping};
use mux_benches::{e2e, size_name};

fn end_to_end(c: &mut Criterion) {
    for len in [1usize << 10, 1 << 20] {
        let mut g = c.benchmark_group(format!("e2e/{}", size_name(len)));
        g.throughput(Throughput::Bytes(len as u64));
        g.sample_size(10);
        g.measurement_time(Duration::from_secs(3));
        let secs = |r: e2e::Run| Duration::from_secs_f64(r.secs);
        g.bench_function("raw pair", |b| {
            b.iter_custom(|n| secs(e2e::raw(n as usize * len, len)))
        });
        for senders in [1, 8] {
            g.bench_function(format!("mux-nostd, {senders} sender(s)"), |b| {
                b.iter_custom(|n| secs(e2e::nostd(len, n as usize, senders)))
            });
            g.bench_function(format!("mux-std, {senders} sender(s)"), |b| {
                b.iter_custom(|n| secs(e2e::std_node(len, n as usize, senders)))
            });
            g.bench_function(format!("yamux, {senders} stream(s)"), |b| {
                b.iter_custom(|n| secs(yamux_peer::run(len, n as usize, senders, Mapping::Shared)))
            });
        }
        g.bench_function("yamux, stream per message", |b| {
            b.iter_custom(|n| secs(yamux_peer::run(len, n as usize, 1, Mapping::PerMessage)))
        });
        g.finish();
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    end_to_end(&mut c);
    c.final_summary();
}

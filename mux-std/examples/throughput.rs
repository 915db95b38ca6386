//! Rough throughput over a Unix socket pair (not a benchmark harness: the `benches` crate
//! has those). `cargo run -p mux-std --release --example throughput -- SIZE COUNT [THREADS [BUFFERED [HOLD_BUDGET]]]`
//! (BUFFERED 1 uses `send_buffered` and one `flush` per thread at the end; HOLD_BUDGET sets
//! `Config::hold_budget`).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use mux_std::{Config, Node, Received};

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers: SIZE COUNT [THREADS]"))
        .collect();
    let (size, count, threads, buffered, budget) = match args[..] {
        [s, c] => (s, c, 1, false, 0),
        [s, c, t] => (s, c, t, false, 0),
        [s, c, t, b] => (s, c, t, b != 0, 0),
        [s, c, t, b, h] => (s, c, t, b != 0, h),
        _ => (1024, 1_000_000, 1, false, 0),
    };
    let payload = vec![0x5Au8; size];

    // Raw socket: the same bytes written in 1 MiB writes, for reference.
    let (mut a, mut b) = UnixStream::pair().unwrap();
    let total = (size + 27) * count;
    let t0 = Instant::now();
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 256 << 10];
        let mut got = 0;
        while got < total {
            got += b.read(&mut buf).unwrap();
        }
    });
    let block = vec![0u8; 1 << 20];
    let mut left = total;
    while left > 0 {
        let n = left.min(block.len());
        a.write_all(&block[..n]).unwrap();
        left -= n;
    }
    reader.join().unwrap();
    let raw = t0.elapsed().as_secs_f64();

    let (a, b) = UnixStream::pair().unwrap();
    let cfg = Config {
        hold_budget: budget,
        ..Config::default()
    };
    let tx = Node::unix(a, cfg).unwrap();
    let rx = Node::unix(b, Config::default()).unwrap();
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..count / threads {
                    if buffered {
                        tx.send_buffered(&payload).unwrap();
                    } else {
                        tx.send(&payload).unwrap();
                    }
                }
                tx.flush().unwrap();
            });
        }
        for _ in 0..(count / threads) * threads {
            match rx.recv().unwrap() {
                Received::Message(m) => assert_eq!(m.len(), size),
                other => panic!("{other:?}"),
            }
        }
    });
    let mux = t0.elapsed().as_secs_f64();
    let mib = (size * count) as f64 / 1048576.0;
    println!(
        "{count} messages of {size} B, {threads} sender thread(s): mux {:.0} msg/s, {:.0} MiB/s \
         payload; raw socket {:.0} MiB/s; mux/raw {:.0} %; {} writes",
        count as f64 / mux,
        mib / mux,
        mib / raw,
        100.0 * raw / mux,
        tx.metrics().tx.writes
    );
}

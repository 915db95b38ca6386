//! Plugins: our host calling our plugin over real pipes, against the Go library's host calling
//! its own plugin on the same machine. The plugin is this report's own executable started with
//! `--plugin` (an `echo` service on the reader thread, as `echo_plugin` serves it).

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mux_std::plugin::{Host, HostConfig, Plugin, StderrMode};

use crate::config::Config;
use crate::fmt::fmt_rate;
use crate::goals::Goals;
use crate::json::Ratios;

/// The argument that makes the report serve as the plugin.
pub const PLUGIN_ARG: &str = "--plugin";

/// Serves `echo` on stdin and stdout (the report started as the plugin).
pub fn serve() {
    let served = Plugin::new()
        .service_inline("echo", |call| Ok(call.payload().to_vec()))
        .serve_stdio();
    if let Err(e) = served {
        eprintln!("report --plugin: {e}");
        std::process::exit(2);
    }
}

/// The Go library's host calling its own plugin, measured on this machine: 64-byte echo one at
/// a time (calls/s, p99 in µs, best and worst run), with 16 callers, and 1 MiB with 4 callers.
const GO_SINGLE_RPS: (f64, f64) = (6_300.0, 13_800.0);
const GO_SINGLE_P99_US: (f64, f64) = (224.0, 359.0);
const GO_16_RPS: f64 = 28_000.0;
const GO_1M_4_RPS: (f64, f64) = (91.0, 94.0);

/// One benchmark run's figures.
struct Bench {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
}

/// `n` echo calls of `size` bytes (each payload different, each reply checked) from `conc`
/// threads.
fn bench(host: &Host, n: usize, size: usize, conc: usize) -> Bench {
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    let mut times: Vec<u32> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..conc)
            .map(|_| {
                s.spawn(|| {
                    let mut times = Vec::new();
                    let mut payload = vec![0u8; size];
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        if k >= n {
                            return times;
                        }
                        for (i, b) in payload.iter_mut().enumerate().take(64) {
                            *b = (i + k) as u8;
                        }
                        let t0 = Instant::now();
                        let reply = host.call("echo", &payload).expect("echo call");
                        times.push(u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX));
                        assert!(*reply == *payload, "echo reply differs");
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("caller"))
            .collect()
    });
    let secs = start.elapsed().as_secs_f64();
    times.sort_unstable();
    let pct = |q: f64| f64::from(times[((times.len() as f64 * q) as usize).min(times.len() - 1)]);
    Bench {
        rps: n as f64 / secs,
        p50_us: pct(0.5),
        p99_us: pct(0.99),
    }
}

/// Prints the "Plugins" section, records its ratios and goals.
pub fn section(cfg: &Config, ratios: &mut Ratios, goals: &mut Goals) {
    println!("## Plugins: our host calling our plugin over pipes");
    println!();
    let exe = std::env::current_exe().expect("own executable");
    let mut cmd = Command::new(exe);
    cmd.arg(PLUGIN_ARG);
    let host = Host::builder(cmd)
        .config(HostConfig {
            stderr: StderrMode::Inherit,
            call_timeout: Duration::from_secs(60),
            ..HostConfig::default()
        })
        .spawn()
        .expect("start the plugin");
    let scale = |n: f64| ((n * cfg.e2e_scale) as usize).max(50);
    // Warm up the pools and the page cache of both processes.
    bench(&host, scale(2_000.0), 64, 1);
    let best = |n: usize, size: usize, conc: usize| {
        let runs: Vec<Bench> = (0..cfg.e2e_reps.min(3))
            .map(|_| bench(&host, n, size, conc))
            .collect();
        runs.into_iter()
            .max_by(|a, b| a.rps.total_cmp(&b.rps))
            .expect("a run")
    };
    let single = best(scale(20_000.0), 64, 1);
    let sixteen = best(scale(100_000.0), 64, 16);
    let big = best(scale(400.0).min(400), 1 << 20, 4);
    let exit = host.shutdown();
    assert!(
        exit.acked,
        "the plugin did not acknowledge shutdown: {exit:?}"
    );
    println!(
        "Best of {} runs each; round trip per call, each reply checked.",
        cfg.e2e_reps.min(3)
    );
    println!();
    println!("| workload | ours calls/s | p50 | p99 | Go calls/s | Go p99 |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| 64 B echo, one caller | {} | {:.0} µs | {:.0} µs | {}–{} | {:.0}–{:.0} µs |",
        fmt_rate(single.rps),
        single.p50_us,
        single.p99_us,
        fmt_rate(GO_SINGLE_RPS.0),
        fmt_rate(GO_SINGLE_RPS.1),
        GO_SINGLE_P99_US.0,
        GO_SINGLE_P99_US.1
    );
    println!(
        "| 64 B echo, 16 callers | {} | {:.0} µs | {:.0} µs | {} | 2.0–2.2 ms |",
        fmt_rate(sixteen.rps),
        sixteen.p50_us,
        sixteen.p99_us,
        fmt_rate(GO_16_RPS)
    );
    println!(
        "| 1 MiB echo, 4 callers | {:.0} | {:.1} ms | {:.1} ms | {:.0}–{:.0} | |",
        big.rps,
        big.p50_us / 1e3,
        big.p99_us / 1e3,
        GO_1M_4_RPS.0,
        GO_1M_4_RPS.1
    );
    println!();
    let x16 = sixteen.rps / GO_16_RPS;
    let p99_third = single.p99_us / GO_SINGLE_P99_US.0;
    let x1m = big.rps / GO_1M_4_RPS.1;
    ratios.put("plugin_64_1_rps", single.rps);
    ratios.put("plugin_64_1_p99_us", single.p99_us);
    ratios.put("plugin_64_16_rps", sixteen.rps);
    ratios.put("plugin_1m_4_rps", big.rps);
    ratios.put("plugin_64_16_vs_go", x16);
    ratios.put("plugin_64_1_p99_vs_go_best", p99_third);
    ratios.put("plugin_1m_4_vs_go", x1m);
    goals.check(
        "plugin 64 B echo, 16 callers: 5× the Go host's calls/s",
        format!("{x16:.1}×"),
        x16 >= 5.0,
    );
    goals.check(
        "plugin 64 B echo one at a time: p99 at most a third of Go's (its best run, 224 µs)",
        format!("{:.0} µs ({:.2} of Go's best)", single.p99_us, p99_third),
        p99_third <= 1.0 / 3.0,
    );
    goals.check(
        "plugin 1 MiB echo, 4 callers: 5× the Go host's calls/s (its best run)",
        format!("{x1m:.1}×"),
        x1m >= 5.0,
    );
}

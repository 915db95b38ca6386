//! The benchmark report: the seed's write-path table for our crates with every figure's ratio
//! to the floor measured in the same run, the read path, allocations, end to end over a Unix
//! socket pair against the raw pair and `yamux`, the goal checks, and a last line with one JSON
//! object holding every ratio.
//!
//! `cargo run --release -p mux-benches --bin report` (about 30 s; writes `docs/benchmarks.svg`)
//! or `… -- --quick` (a few iterations, no plot). `--svg PATH` writes the plot elsewhere.
//! `--only latency,adaptive-write` runs only those sections ([`config::SECTIONS`] names them).
//! `--save-baseline NAME` appends the run's JSON line to the baseline `NAME`, `--baseline NAME`
//! compares the run with it and exits with status 1 on a regression (see
//! [`mux_benches::baseline`]); baselines live in `target/report-baselines/` or `--baseline-dir DIR`.
//!
//! One module per section, in the order they print: [`write_path`] and [`layout`], [`read_path`],
//! [`allocations`], [`end_to_end`], [`pipe`] (`muxpipe` in a shell pipe), [`link`] (the serial link profile), [`tokio_e2e`], [`plugin`], then the [`plot`]. Each records its ratios for the JSON line
//! ([`json`]) and its goal checks ([`goals`]); [`rounds`] times the micro-benchmarks, [`fmt`]
//! writes the figures, [`config`] reads the command line.

mod allocations;
mod config;
mod end_to_end;
mod fmt;
mod goals;
mod json;
mod latency;
mod layout;
mod link;
mod observe;
mod pipe;
mod plot;
mod plugin;
mod read_path;
mod rounds;
mod tokio_e2e;
mod write_path;

use std::time::Instant;

use mux_benches::alloc::CountingAlloc;
use mux_benches::baseline;
use mux_benches::machine;

use config::Config;
use goals::Goals;
use json::Ratios;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == plugin::PLUGIN_ARG) {
        return plugin::serve();
    }
    let cfg = Config::from_args(&args);
    let started = Instant::now();
    print_header(&cfg);

    let mut ratios = Ratios::default();
    let mut goals = Goals::default();

    let write = cfg
        .runs("write")
        .then(|| write_path::section(&cfg, &mut ratios, &mut goals));
    if cfg.runs("layout") {
        layout::section(&cfg, &mut ratios);
    }
    if cfg.runs("observe") {
        observe::section(&cfg, &mut ratios, &mut goals);
    }
    if cfg.runs("read") {
        read_path::section(&cfg, &mut ratios, &mut goals);
    }
    if cfg.runs("allocations") {
        allocations::section(&mut ratios, &mut goals);
    }
    if cfg.runs("end-to-end") {
        end_to_end::section(&cfg, &mut ratios, &mut goals);
    }
    if cfg.runs("pipe") {
        pipe::section(&cfg, &mut ratios, &mut goals);
    }
    if cfg.runs("link") {
        link::section(&cfg, &mut ratios, &mut goals);
    }
    if cfg.runs("tokio") {
        tokio_e2e::section(&cfg, &mut ratios, &mut goals);
    }
    if cfg.runs("plugin") {
        plugin::section(&cfg, &mut ratios, &mut goals);
    }
    if cfg.runs("latency") {
        latency::section(&cfg, &mut ratios, &mut goals);
    }
    if cfg.runs("adaptive-write") {
        latency::write_path(&cfg, &mut ratios, &mut goals);
    }
    if let (Some(path), Some(write)) = (&cfg.svg, &write) {
        plot::write_path(&cfg, path, write);
    }

    goals.print(cfg.quick);
    if let Some(l) = machine::load_average() {
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
        ("goals_met", goals.met().to_string()),
        ("goals_total", goals.total().to_string()),
    ];
    let line = ratios.json(&extra);
    let regressed = baseline(&cfg, &line);
    println!("{line}");
    if regressed {
        std::process::exit(1);
    }
}

/// `--save-baseline NAME` appends this run's JSON line to the baseline `NAME`; `--baseline
/// NAME` compares it with that baseline's runs and prints the table. Returns whether a figure
/// regressed.
fn baseline(cfg: &Config, line: &str) -> bool {
    let path = |name: &str| std::path::Path::new(&cfg.baseline_dir).join(format!("{name}.jsonl"));
    let mut regressed = false;
    if let Some(name) = &cfg.baseline {
        let p = path(name);
        let text = std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("cannot read baseline {}: {e}", p.display()));
        let runs: Vec<_> = text.lines().filter_map(baseline::parse_line).collect();
        let now = baseline::parse_line(line).expect("the report's own line parses");
        let rows = baseline::compare(&runs, &now);
        let bad: Vec<&str> = rows
            .iter()
            .filter(|r| r.regressed)
            .map(|r| r.key.as_str())
            .collect();
        let n = runs.len();
        println!(
            "## Compared with baseline `{name}` ({n} run{})",
            if n == 1 { "" } else { "s" }
        );
        println!();
        print!("{}", baseline::table(&rows));
        println!();
        if bad.is_empty() {
            println!("No figure is worse than the baseline by more than its run-to-run spread.");
        } else {
            println!("REGRESSION in {} figure(s): {}", bad.len(), bad.join(", "));
            regressed = true;
        }
        println!();
    }
    if let Some(name) = &cfg.save_baseline {
        let p = path(name);
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).expect("create the baseline directory");
        }
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .unwrap_or_else(|e| panic!("cannot write baseline {}: {e}", p.display()));
        writeln!(f, "{line}").expect("write the baseline");
        println!("Saved this run to baseline `{name}` ({}).", p.display());
        println!();
    }
    regressed
}

/// The title and how the figures were taken: machine, load, build, timing method.
fn print_header(cfg: &Config) {
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
}

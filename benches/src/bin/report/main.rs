//! The benchmark report: the seed's write-path table for our crates with every figure's ratio
//! to the floor measured in the same run, the read path, allocations, end to end over a Unix
//! socket pair against the raw pair and `yamux`, the goal checks, and a last line with one JSON
//! object holding every ratio.
//!
//! `cargo run --release -p mux-benches --bin report` (about 30 s; writes `docs/benchmarks.svg`)
//! or `… -- --quick` (a few iterations, no plot). `--svg PATH` writes the plot elsewhere.
//!
//! One module per section, in the order they print: [`write_path`] and [`layout`], [`read_path`],
//! [`allocations`], [`end_to_end`], [`plugin`], then the [`plot`]. Each records its ratios for the JSON line
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
mod plot;
mod plugin;
mod read_path;
mod rounds;
mod write_path;

use std::time::Instant;

use mux_benches::alloc::CountingAlloc;
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

    let write = write_path::section(&cfg, &mut ratios, &mut goals);
    layout::section(&cfg, &mut ratios);
    read_path::section(&cfg, &mut ratios, &mut goals);
    allocations::section(&mut ratios, &mut goals);
    end_to_end::section(&cfg, &mut ratios, &mut goals);
    plugin::section(&cfg, &mut ratios, &mut goals);
    latency::section(&cfg, &mut ratios, &mut goals);
    if let Some(path) = &cfg.svg {
        plot::write_path(&cfg, path, &write);
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
    println!("{}", ratios.json(&extra));
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

//! How hard to measure, and where the plot goes: the command line.

use std::time::Duration;

/// How hard to measure.
#[derive(Clone)]
pub struct Config {
    /// `--quick`: a few iterations, figures indicative only, no plot unless `--svg` asks.
    pub quick: bool,
    /// Rounds of the interleaved micro-benchmarks (the median is reported).
    pub rounds: usize,
    /// Target duration of one timed batch.
    pub batch: Duration,
    /// Repetitions of each end-to-end run.
    pub e2e_reps: usize,
    /// Scale of the end-to-end message counts (1.0 in full mode).
    pub e2e_scale: f64,
    /// Where to write the plot (`--svg PATH`; `docs/benchmarks.svg` in full mode).
    pub svg: Option<String>,
    /// `--save-baseline NAME`: append this run to baseline `NAME`.
    pub save_baseline: Option<String>,
    /// `--baseline NAME`: compare this run with baseline `NAME`.
    pub baseline: Option<String>,
    /// `--baseline-dir DIR`: where baselines are (default `target/report-baselines`).
    pub baseline_dir: String,
    /// `--only NAME[,NAME…]`: run only these sections (see [`SECTIONS`]); all when empty.
    pub only: Vec<String>,
}

/// The sections' names for `--only`, in the order they print.
pub const SECTIONS: [&str; 12] = [
    "write",
    "layout",
    "observe",
    "read",
    "allocations",
    "end-to-end",
    "pipe",
    "link",
    "tokio",
    "plugin",
    "latency",
    "adaptive-write",
];

impl Config {
    /// The configuration the arguments (without the program name) ask for: `--quick`,
    /// `--svg PATH`, `--save-baseline NAME`, `--baseline NAME`, `--baseline-dir DIR`,
    /// `--only NAME[,NAME…]` (no plot unless `--svg` asks).
    pub fn from_args(args: &[String]) -> Self {
        let value = |flag: &str| {
            args.iter().position(|a| a == flag).map(|i| {
                args.get(i + 1)
                    .cloned()
                    .unwrap_or_else(|| panic!("{flag} needs a value"))
            })
        };
        let (save_baseline, baseline) = (value("--save-baseline"), value("--baseline"));
        let baseline_dir = value("--baseline-dir").unwrap_or_else(|| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../target/report-baselines").to_string()
        });
        let quick = args.iter().any(|a| a == "--quick");
        let only: Vec<String> = value("--only")
            .map(|v| v.split(',').map(str::to_string).collect())
            .unwrap_or_default();
        if let Some(bad) = only.iter().find(|n| !SECTIONS.contains(&n.as_str())) {
            panic!(
                "--only: unknown section {bad}; expected one of {}",
                SECTIONS.join(", ")
            );
        }
        let svg = match args.iter().position(|a| a == "--svg") {
            Some(i) => args.get(i + 1).cloned(),
            None if quick || !only.is_empty() => None,
            None => {
                Some(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/benchmarks.svg").to_string())
            }
        };
        if quick {
            Self {
                quick,
                rounds: 3,
                batch: Duration::from_micros(300),
                e2e_reps: 1,
                e2e_scale: 0.02,
                svg,
                save_baseline,
                baseline,
                baseline_dir,
                only,
            }
        } else {
            Self {
                quick,
                rounds: 25,
                batch: Duration::from_millis(2),
                e2e_reps: 5,
                e2e_scale: 1.0,
                svg,
                save_baseline,
                baseline,
                baseline_dir,
                only,
            }
        }
    }

    /// Whether the section `name` (one of [`SECTIONS`]) runs.
    pub fn runs(&self, name: &str) -> bool {
        debug_assert!(SECTIONS.contains(&name), "{name}");
        self.only.is_empty() || self.only.iter().any(|n| n == name)
    }
}

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
}

impl Config {
    /// The configuration the arguments (without the program name) ask for: `--quick`,
    /// `--svg PATH`.
    pub fn from_args(args: &[String]) -> Self {
        let quick = args.iter().any(|a| a == "--quick");
        let svg = match args.iter().position(|a| a == "--svg") {
            Some(i) => args.get(i + 1).cloned(),
            None if quick => None,
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
            }
        } else {
            Self {
                quick,
                rounds: 25,
                batch: Duration::from_millis(2),
                e2e_reps: 5,
                e2e_scale: 1.0,
                svg,
            }
        }
    }
}

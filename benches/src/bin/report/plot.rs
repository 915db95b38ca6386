//! The plot: mux-nostd's write path (time per message against size) with both floors, written
//! as SVG.

use mux_benches::plot::{Series, svg};
use mux_benches::{PLOT_SIZES, machine};

use crate::config::Config;
use crate::write_path::{FLOOR, FRAMED_HYBRID, NOSTD, WriteRow, measure_write};

/// Writes the plot to `path`, taking the seed sizes' figures from `seed` and measuring the
/// other sizes (mux-nostd only, at most 9 rounds); says where it went.
pub fn write_path(cfg: &Config, path: &str, seed: &[WriteRow]) {
    // Each line and where its figures are in a `WriteRow`.
    let lines = [
        ("Original", "#1f77b4", false, NOSTD),
        ("Optimized", "#d62728", false, NOSTD + 1),
        ("Hybrid (4 KiB threshold)", "#2ca02c", false, NOSTD + 2),
        ("floor: plain copy", "black", true, FLOOR),
        ("framing floor", "grey", true, FRAMED_HYBRID),
    ];
    let mut series = lines.map(|(label, color, dashed, _)| Series {
        label: label.to_string(),
        color,
        dashed,
        points: Vec::new(),
    });
    let fewer_rounds = Config {
        rounds: cfg.rounds.min(9),
        svg: None,
        ..cfg.clone()
    };
    for len in PLOT_SIZES {
        let ns = match seed.iter().find(|row| row.len == len) {
            Some(row) => row.ns,
            None => measure_write(&fewer_rounds, len, false).0.ns,
        };
        for (s, (_, _, _, at)) in series.iter_mut().zip(lines) {
            s.points.push((len as f64, ns[at]));
        }
    }
    let svg = svg(
        "Write path: one message framed into a reused in-memory buffer",
        &format!(
            "mux-nostd blocking Writer over &mut [u8]; {}",
            machine::describe()
        ),
        &series,
    );
    match std::fs::write(path, svg) {
        Ok(()) => println!("Plot written to {path}.\n"),
        Err(e) => println!("Plot not written ({path}: {e}).\n"),
    }
}

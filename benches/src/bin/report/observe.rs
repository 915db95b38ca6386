//! What a node's distributions cost on the write path: mux-std's `Sender` (Hybrid) at the seed
//! sizes with `Config::histograms` on and off, timed in the same interleaved rounds.

use mux_benches::write::StdWrite;
use mux_benches::{SEED_SIZES, size_name};
use mux_nostd::Hybrid;

use crate::config::Config;
use crate::fmt::{fmt_ns, key};
use crate::goals::Goals;
use crate::json::Ratios;
use crate::rounds::interleaved;

/// The "Metrics cost" section: time per message with distributions on and off, their paired
/// ratio, and the goal at 1 KiB.
pub fn section(cfg: &Config, ratios: &mut Ratios, goals: &mut Goals) {
    println!("## Metrics cost: mux-std write path with distributions on and off");
    println!();
    println!(
        "mux-std's `Sender` (Hybrid) as in the write-path table, with `Config::histograms` on (the default: message size, frames per message and send wait recorded per message) and off; ratio: median over rounds of on / off in the same round."
    );
    println!();
    println!("| size | on | off | on / off |");
    println!("|---|---|---|---|");
    for len in SEED_SIZES {
        let mut on = StdWrite::with_histograms(len, Hybrid::<4096>, true);
        let mut off = StdWrite::with_histograms(len, Hybrid::<4096>, false);
        let r = interleaved!(cfg, {
            "off" => off.send();
            "on" => on.send();
        });
        let q = r.ratio("on", "off");
        println!(
            "| {} | {} | {} | {q:.3} |",
            size_name(len),
            fmt_ns(r.median("on")),
            fmt_ns(r.median("off"))
        );
        ratios.put(format!("write_std_{}_histograms_on_over_off", key(len)), q);
        if len == 1 << 10 {
            goals.check(
                "mux-std write 1 KiB: distributions on within 2 % of off",
                format!("{q:.3}"),
                q <= 1.02,
            );
        }
    }
    println!();
}

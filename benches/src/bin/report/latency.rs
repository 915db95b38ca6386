//! Latency under load: a 32-byte message every 10 ms from one thread while another sends a
//! bulk message through the same mux-std `Sender`, on links paced by the emulator
//! ([`mux_benches::link`]) at 11,520 B/s (115,200 baud) and 1 MB/s and on the unpaced socket
//! pair, for every strategy; then Adaptive's cost on the write path against Hybrid's. Ratios,
//! goals.

use std::time::Duration;

use mux_benches::latency::{self, LatencyRun, Link, SMALL_WIRE};
use mux_benches::timing::median;
use mux_benches::write::{StdWrite, WriteBench};
use mux_benches::{SEED_SIZES, size_name};
use mux_nostd::{Adaptive, AdaptiveConfig, AnyStrategy, Hybrid, LinkEstimator};

use crate::config::Config;
use crate::fmt::{fmt_ns, fmt_rate, key};
use crate::goals::Goals;
use crate::json::Ratios;
use crate::rounds::interleaved;

/// The strategies compared, with their JSON key parts.
const STRATEGIES: [(&str, AnyStrategy); 4] = [
    ("original", AnyStrategy::Original),
    ("optimized", AnyStrategy::Optimized),
    ("hybrid", AnyStrategy::Hybrid { threshold: 4096 }),
    ("adaptive", AnyStrategy::Adaptive(AdaptiveConfig::DEFAULT)),
];

/// How often the small messages go.
const PERIOD: Duration = Duration::from_millis(10);

/// One link of the table: its name, JSON key part, the link, the bulk size (full, quick) and
/// the runs per strategy (full, quick; their samples pooled).
struct Case {
    name: &'static str,
    key: &'static str,
    link: Link,
    bulk: (usize, usize),
    runs: (usize, usize),
}

const CASES: [Case; 3] = [
    Case {
        name: "11,520 B/s (115,200 baud)",
        key: "115200",
        link: Link::Paced(11_520),
        bulk: (16 << 10, 4 << 10),
        runs: (1, 1),
    },
    Case {
        name: "1 MB/s",
        key: "1M",
        link: Link::Paced(1_000_000),
        bulk: (1 << 20, 256 << 10),
        runs: (1, 1),
    },
    Case {
        name: "unpaced socket pair",
        key: "fast",
        link: Link::Unpaced,
        bulk: (64 << 20, 16 << 20),
        // A run is about 70 ms: its throughput is whatever the scheduler gave it, so the
        // median of nine interleaved runs is compared.
        runs: (9, 1),
    },
];

/// The runs of one strategy on one link, pooled.
struct Pooled {
    small_ms: Vec<f64>,
    bulk_rates: Vec<f64>,
    goodput_left: Vec<f64>,
    pacing: Vec<f64>,
}

impl Pooled {
    fn q(&self, q: f64) -> f64 {
        LatencyRun {
            small_ms: self.small_ms.clone(),
            ..LatencyRun::default()
        }
        .quantile(q)
    }
}

/// The section.
pub fn section(cfg: &Config, ratios: &mut Ratios, goals: &mut Goals) {
    let budget_ms = f64::from(AdaptiveConfig::DEFAULT.budget_us) / 1e3;
    println!("## Latency under load");
    println!();
    println!(
        "A 32-byte message every 10 ms from one thread while another thread sends one bulk message, both through one mux-std `Sender` (default configuration but the strategy) to a `Receiver` over a Unix socket pair, paced by the link emulator (`mux_benches::link`: every write call returns once its bytes are through at the rate, as a blocking UART write does) or unpaced. Latency: from just before the small message's send call to its complete arrival. Goodput: the bulk's payload rate over what the small messages' wire bytes ({SMALL_WIRE} per message) leave of the link. A 1 KiB message goes first, alone, for every strategy. Adaptive's budget: {budget_ms} ms."
    );
    println!();
    println!(
        "| link | bulk | strategy | small p50 | p99 | max | samples | bulk payload rate | goodput (of the link) | goodput (of what the small messages leave) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut notes = Vec::new();
    for case in &CASES {
        let bulk = if cfg.quick { case.bulk.1 } else { case.bulk.0 };
        let runs = if cfg.quick { case.runs.1 } else { case.runs.0 };
        let mut pooled: Vec<Pooled> = STRATEGIES
            .iter()
            .map(|_| Pooled {
                small_ms: Vec::new(),
                bulk_rates: Vec::new(),
                goodput_left: Vec::new(),
                pacing: Vec::new(),
            })
            .collect();
        // Unpaced, Optimized runs a second time in every round: its ratio to itself is how
        // far two series of the same code differ here (the noise the goal is read against).
        let mut control = Vec::new();
        // Interleaved: every strategy once per round.
        for _ in 0..runs {
            if case.link == Link::Unpaced {
                control.push(
                    latency::run(case.link, AnyStrategy::Optimized, bulk, PERIOD).bulk_rate(),
                );
            }
            for ((_, s), p) in STRATEGIES.iter().zip(&mut pooled) {
                let r = latency::run(case.link, *s, bulk, PERIOD);
                p.small_ms.extend(&r.small_ms);
                p.bulk_rates.push(r.bulk_rate());
                if let Link::Paced(rate) = case.link {
                    p.goodput_left.push(r.goodput_of_left(rate));
                }
                p.pacing.extend(r.pacing_error);
            }
        }
        for p in &mut pooled {
            p.small_ms.sort_by(f64::total_cmp);
        }
        let rate = match case.link {
            Link::Paced(r) => Some(r as f64),
            Link::Unpaced => None,
        };
        for ((name, _), p) in STRATEGIES.iter().zip(&mut pooled) {
            let bulk_rate = median(&mut p.bulk_rates.clone());
            let (of_link, of_left) = match rate {
                Some(r) => (
                    format!("{:.1} %", 100.0 * bulk_rate / r),
                    format!("{:.1} %", 100.0 * median(&mut p.goodput_left.clone())),
                ),
                None => ("—".into(), "—".into()),
            };
            println!(
                "| {} | {} | {name} | {:.2} ms | {:.2} ms | {:.2} ms | {} | {}B/s | {of_link} | {of_left} |",
                case.name,
                size_name(bulk),
                p.q(0.5),
                p.q(0.99),
                p.q(1.0),
                p.small_ms.len(),
                fmt_rate(bulk_rate),
            );
            ratios.put(format!("latency_{}_{name}_p99_ms", case.key), p.q(0.99));
            if rate.is_some() {
                ratios.put(
                    format!("latency_{}_{name}_goodput", case.key),
                    median(&mut p.goodput_left.clone()),
                );
            }
        }
        let adaptive = &pooled[3];
        // Goal: p99 within twice the budget plus the small message's own time on the wire.
        let own_ms = rate.map_or(0.0, |r| SMALL_WIRE as f64 / r * 1e3);
        let bound = 2.0 * budget_ms + own_ms;
        let p99 = adaptive.q(0.99);
        goals.check(
            format!(
                "latency under load, {}: Adaptive's small-message p99 ≤ 2 × budget + its own transmission ({bound:.1} ms)",
                case.name
            ),
            format!("{p99:.2} ms"),
            p99 <= bound,
        );
        let worst_fixed = pooled[..3]
            .iter()
            .map(|p| p.q(0.99))
            .fold(f64::NAN, f64::min);
        notes.push(format!(
            "{}: the fixed strategies' small-message p99 is {:.0}× Adaptive's at best ({worst_fixed:.1} ms against {p99:.1} ms).",
            case.name,
            worst_fixed / p99
        ));
        if let Some(r) = rate {
            let errs: Vec<String> = pooled
                .iter()
                .flat_map(|p| &p.pacing)
                .map(|e| format!("{:+.2} %", e * 100.0))
                .collect();
            notes.push(format!(
                "{}: the emulator's pacing error (achieved rate while busy against {} B/s), per run: {}.",
                case.name,
                r as u64,
                errs.join(", ")
            ));
            let want = if case.key == "115200" { 0.90 } else { 0.97 };
            let g = median(&mut adaptive.goodput_left.clone());
            goals.check(
                format!(
                    "latency under load, {}: Adaptive's bulk goodput ≥ {:.0} % of what the small messages leave of the link",
                    case.name,
                    want * 100.0
                ),
                format!("{:.1} %", g * 100.0),
                g >= want,
            );
        } else {
            let a = median(&mut adaptive.bulk_rates.clone());
            let o = median(&mut pooled[1].bulk_rates.clone());
            let again = median(&mut control) / o;
            notes.push(format!(
                "{}: Optimized against itself (a second series of {} runs interleaved with the others): {again:.3}×; Adaptive against Optimized: {:.3}×.",
                case.name,
                runs,
                a / o
            ));
            ratios.put("adaptive_fast_throughput_vs_optimized", a / o);
            ratios.put("latency_fast_optimized_vs_itself", again);
            goals.check(
                "latency under load, unpaced: Adaptive's bulk throughput ≥ 0.97 × Optimized's",
                format!("{:.3}×", a / o),
                a / o >= 0.97,
            );
        }
    }
    println!();
    for n in notes {
        println!("- {n}");
    }
    println!();
}

/// Adaptive against Hybrid on the seed's write path (one message into memory), through
/// mux-nostd's `Writer` (an estimator that measured a fast link) and mux-std's `Sender`
/// (which measures its in-memory sink itself).
pub fn write_path(cfg: &Config, ratios: &mut Ratios, goals: &mut Goals) {
    static FAST: LinkEstimator = LinkEstimator::new();
    FAST.record_write(1 << 30, 100_000); // about 10 GB/s: the estimate saturates
    let adaptive = Adaptive::new(AdaptiveConfig::DEFAULT, &FAST);
    println!("### Adaptive on the write path");
    println!();
    println!(
        "The seed's write path (as in \"Write path\" above): Adaptive against Hybrid, medians of interleaved rounds. mux-nostd: `Writer` with `Adaptive` over an estimator that measured a fast link (it frames in 64 KiB chunks); mux-std: `Sender` with `AnyStrategy::Adaptive` (configured `link_rate`: fast) over the in-memory sink, measuring it."
    );
    println!();
    println!(
        "| message | nostd Hybrid | nostd Adaptive | ratio | std Hybrid | std Adaptive | ratio |"
    );
    println!("|---|---|---|---|---|---|---|");
    let (mut worst_nostd, mut worst_std) = (0.0f64, 0.0f64);
    for len in SEED_SIZES {
        let mut b = WriteBench::new(len);
        let mut sh = StdWrite::new(len, Hybrid::<4096>);
        // Configured for a fast link, so that its first message (before anything is
        // measured) is framed as the others and fits the cycling sink as they do.
        let mut sa = StdWrite::new(
            len,
            AdaptiveConfig {
                link_rate: u32::MAX,
                ..AdaptiveConfig::DEFAULT
            },
        );
        let r = interleaved!(cfg, {
            "hybrid" => b.nostd(Hybrid::<4096>);
            "adaptive" => b.nostd(adaptive);
            "std hybrid" => sh.send();
            "std adaptive" => sa.send();
        });
        let nostd = r.ratio("adaptive", "hybrid");
        let std = r.ratio("std adaptive", "std hybrid");
        worst_nostd = worst_nostd.max(nostd);
        worst_std = worst_std.max(std);
        println!(
            "| {} | {} | {} | {nostd:.3}× | {} | {} | {std:.3}× |",
            size_name(len),
            fmt_ns(r.median("hybrid")),
            fmt_ns(r.median("adaptive")),
            fmt_ns(r.median("std hybrid")),
            fmt_ns(r.median("std adaptive")),
        );
        ratios.put(format!("adaptive_vs_hybrid_nostd_{}", key(len)), nostd);
        ratios.put(format!("adaptive_vs_hybrid_std_{}", key(len)), std);
    }
    println!();
    goals.check(
        "write path: mux-nostd Adaptive's per-message cost ≤ 1.05 × Hybrid's (worst of the seed sizes)",
        format!("{worst_nostd:.3}×"),
        worst_nostd <= 1.05,
    );
    goals.check(
        "write path: mux-std Adaptive's per-message cost ≤ 1.05 × Hybrid's (worst of the seed sizes)",
        format!("{worst_std:.3}×"),
        worst_std <= 1.05,
    );
}

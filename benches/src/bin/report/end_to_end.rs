//! End to end: two threads over a Unix socket pair and over TCP loopback, every case of
//! [`cases`] run in interleaved repetitions; the table, the comparisons with the raw connection
//! (the best of several write and read sizes, measured in the same run) and yamux, their ratios
//! and goals.

mod cases;

use mux_benches::alloc::allocations;
use mux_benches::e2e::{self, Run, Transport};
use mux_benches::size_name;
use mux_benches::timing::{median, spread};

use crate::config::Config;
use crate::fmt::fmt_rate;
use crate::goals::Goals;
use crate::json::Ratios;
use cases::Product::{Nostd, Raw, Std, Yamux};
use cases::Sending::{Buffered, HoldBudget, Senders, StreamPerMessage, Writes};
use cases::{Case, HOLD_BUDGET, K1, M1, Product, Sending};

/// One case's figures over the repetitions.
#[derive(Clone, Copy)]
struct Figures {
    /// Median messages per second.
    msgs_per_s: f64,
    /// Median payload bytes per second.
    bytes_per_s: f64,
    /// Relative spread of the messages per second.
    spread: f64,
    /// Allocations per message in the first repetition (run setup included).
    allocs: f64,
}

/// Runs every case `cfg.e2e_reps` times, interleaved (every case once per repetition), and
/// returns their figures in the same order; allocations from the first repetition.
fn measure(cfg: &Config, cases: &[Case]) -> Vec<Figures> {
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); cases.len()];
    let mut allocs = vec![0.0; cases.len()];
    for rep in 0..cfg.e2e_reps {
        for (i, c) in cases.iter().enumerate() {
            let a0 = allocations();
            let run = c.run(cfg.e2e_scale);
            if rep == 0 {
                allocs[i] = (allocations() - a0) as f64 / run.messages as f64;
            }
            runs[i].push(run);
        }
    }
    runs.iter()
        .zip(allocs)
        .map(|(runs, allocs)| {
            let mut m: Vec<f64> = runs.iter().map(Run::msgs_per_sec).collect();
            let mut b: Vec<f64> = runs.iter().map(Run::bytes_per_sec).collect();
            let spread = spread(&m);
            Figures {
                msgs_per_s: median(&mut m),
                bytes_per_s: median(&mut b),
                spread,
                allocs,
            }
        })
        .collect()
}

/// Prints the "End to end" section, records its ratios and its goals.
pub fn section(cfg: &Config, ratios: &mut Ratios, goals: &mut Goals) {
    println!("## End to end: two threads over a Unix socket pair and over TCP loopback");
    println!();
    let cases = cases::all();
    let figures = measure(cfg, &cases);
    let find = |over: Transport, product: Product, size: usize, sending: Sending| {
        let case = Case {
            product,
            size,
            sending,
            over,
        };
        let i = cases.iter().position(|c| *c == case);
        figures[i.expect("a case of the plan")]
    };
    let get = |product, size, sending| find(Transport::Unix, product, size, sending);
    // The floor of each transport: the best raw figure at 1 MiB of any write and read size.
    let best_raw = |over: Transport| {
        cases
            .iter()
            .zip(&figures)
            .filter(|(c, _)| c.over == over && c.product == Raw && c.size == M1)
            .max_by(|a, b| a.1.bytes_per_s.total_cmp(&b.1.bytes_per_s))
            .map(|(c, f)| (*c, f.bytes_per_s))
            .expect("raw cases at 1 MiB")
    };
    let (raw_case, raw_big) = best_raw(Transport::Unix);
    let (tcp_case, raw_tcp) = best_raw(Transport::Tcp);
    let floor_of = |over: Transport| match over {
        Transport::Unix => raw_big,
        Transport::Tcp => raw_tcp,
    };
    let sizes = |c: Case| match c.sending {
        Writes(w, r) => format!("{} writes, {} reads", size_name(w), size_name(r)),
        _ => unreachable!("a raw case"),
    };
    println!(
        "Messages per second and payload bytes per second (medians of {} runs); the last column compares with the raw connection of the same transport: the best of its 1 MiB rows, which try several write and read sizes in the same run (Unix socket pair: {}B/s with {}; TCP loopback: {}B/s with {}).",
        cfg.e2e_reps,
        fmt_rate(raw_big),
        sizes(raw_case),
        fmt_rate(raw_tcp),
        sizes(tcp_case),
    );
    println!();
    println!(
        "| case | messages/s | bytes/s | vs raw (same transport) | allocations/message (run setup included) | spread |"
    );
    println!("|---|---|---|---|---|---|");
    for (c, f) in cases.iter().zip(&figures) {
        println!(
            "| {} | {} | {}B/s | {:.0} % | {:.3} | {:.0} % |",
            c.label(),
            fmt_rate(f.msgs_per_s),
            fmt_rate(f.bytes_per_s),
            100.0 * f.bytes_per_s / floor_of(c.over),
            f.allocs,
            100.0 * f.spread
        );
    }
    println!();
    // yamux with 1 stream, 8 streams, a stream per message.
    let yamux = |size| [Senders(1), Senders(8), StreamPerMessage].map(|s| get(Yamux, size, s));
    let (yamux_1m, yamux_1k) = (yamux(M1), yamux(K1));
    ratios.put(
        "e2e_yamux_1MiB_1stream_vs_raw",
        yamux_1m[0].bytes_per_s / raw_big,
    );
    ratios.put("e2e_raw_bytes_per_s", raw_big);
    ratios.put("e2e_raw_tcp_bytes_per_s", raw_tcp);
    let hb = get(Std, M1, HoldBudget(HOLD_BUDGET));
    ratios.put(
        "e2e_std_hold_budget_256KiB_1MiB_1sender_vs_raw",
        hb.bytes_per_s / raw_big,
    );
    let std_buffered = get(Std, K1, Buffered);
    let raw_1k = get(Raw, K1, Writes(K1, 64 << 10));
    ratios.put(
        "e2e_std_buffered_1KiB_1sender_vs_2M_per_s",
        std_buffered.msgs_per_s / 2e6,
    );
    ratios.put(
        "e2e_std_buffered_1KiB_1sender_msgs_per_s",
        std_buffered.msgs_per_s,
    );
    ratios.put("e2e_raw_1KiB_writes_per_s", raw_1k.msgs_per_s);
    println!(
        "- One write per message cannot reach 2 M messages/s of 1 KiB: the raw pair itself takes {}/s 1 KiB writes. mux-std's plain `send` autocorks (`Config::autocork`, 20 µs: sends that follow each other faster than that, nothing received in between, gather in the shared buffer and leave together), so its single-sender 1 KiB row is plain `send`, as a node's sender does it; `send_buffered` + `flush` (explicit batching) is shown beside it ({}/s). The mux-nostd sender writes through a {} KiB `BufWriter`, which gathers the same way.",
        fmt_rate(raw_1k.msgs_per_s),
        fmt_rate(std_buffered.msgs_per_s),
        e2e::TX_BUF / 1024
    );
    ping_pong(cfg, ratios, goals);
    for product in [Std, Nostd] {
        let (name, short) = (product.name(), product.key());
        let [o1m, o8m] = [1, 8].map(|n| get(product, M1, Senders(n)));
        let [o1k, o8k] = [1, 8].map(|n| get(product, K1, Senders(n)));
        // Messages/s against yamux: 1 sender vs 1 stream, 8 senders vs 8 streams, 1 sender
        // vs a stream per message.
        let vs_yamux = |[one, eight]: [Figures; 2], y: [Figures; 3]| {
            [(one, y[0]), (eight, y[1]), (one, y[2])].map(|(o, y)| o.msgs_per_s / y.msgs_per_s)
        };
        let (v1m, v1k) = (
            vs_yamux([o1m, o8m], yamux_1m),
            vs_yamux([o1k, o8k], yamux_1k),
        );
        println!(
            "- {name} against yamux (messages/s): 1 MiB {:.2}× (1 sender vs 1 stream), {:.2}× (8 senders vs 8 streams), {:.2}× (vs a stream per message); 1 KiB {:.2}×, {:.2}×, {:.2}×.",
            v1m[0], v1m[1], v1m[2], v1k[0], v1k[1], v1k[2]
        );
        ratios.put(
            format!("e2e_{short}_1MiB_1sender_vs_raw"),
            o1m.bytes_per_s / raw_big,
        );
        ratios.put(
            format!("e2e_{short}_1MiB_8senders_vs_raw"),
            o8m.bytes_per_s / raw_big,
        );
        ratios.put(
            format!("e2e_{short}_1KiB_1sender_vs_2M_per_s"),
            o1k.msgs_per_s / 2e6,
        );
        ratios.put(
            format!("e2e_{short}_1KiB_8senders_vs_2M_per_s"),
            o8k.msgs_per_s / 2e6,
        );
        for (size, v) in [("1MiB", v1m), ("1KiB", v1k)] {
            let whats = [
                "1sender_vs_yamux_1stream",
                "8senders_vs_yamux_8streams",
                "vs_yamux_stream_per_message",
            ];
            for (what, v) in whats.into_iter().zip(v) {
                ratios.put(format!("e2e_{short}_{size}_{what}"), v);
            }
        }
        ratios.put(
            format!("e2e_{short}_1KiB_1sender_msgs_per_s"),
            o1k.msgs_per_s,
        );
        ratios.put(
            format!("e2e_{short}_1KiB_8senders_msgs_per_s"),
            o8k.msgs_per_s,
        );
        ratios.put(
            format!("e2e_{short}_1MiB_1sender_bytes_per_s"),
            o1m.bytes_per_s,
        );
        for (what, r) in [("1 sender", o1m), ("8 senders", o8m)] {
            goals.check(
                format!("{name} end to end 1 MiB ({what}) ≥ 75 % of the raw pair"),
                format!("{:.0} %", 100.0 * r.bytes_per_s / raw_big),
                r.bytes_per_s >= 0.75 * raw_big,
            );
        }
        let what_1 = if product == Std {
            "1 sender, plain send, autocorking"
        } else {
            "1 sender"
        };
        for (what, r) in [(what_1, o1k), ("8 senders", o8k)] {
            goals.check(
                format!("{name} end to end 1 KiB ({what}) ≥ 2 M messages/s"),
                format!("{}/s", fmt_rate(r.msgs_per_s)),
                r.msgs_per_s >= 2e6,
            );
        }
    }
    tcp_summary(&find, raw_tcp, ratios);
    println!();
}

/// A lone ping-pong's round trip between two nodes with autocorking on (the default) and
/// off, interleaved: autocorking must not slow a request that waits for its reply.
fn ping_pong(cfg: &Config, ratios: &mut Ratios, goals: &mut Goals) {
    let nodes = PingPong {
        line: "- A lone ping-pong (two nodes over a Unix socket pair",
        key: "e2e_std",
        goal: "mux-std",
        run: e2e::ping_pong,
    };
    nodes.check(cfg, ratios, goals);
}

/// A lone ping-pong between two nodes of one kind, with autocorking on and off.
pub(crate) struct PingPong {
    /// How the printed line starts (what runs, over what).
    pub(crate) line: &'static str,
    /// The prefix of its JSON figures and of its goal.
    pub(crate) key: &'static str,
    pub(crate) goal: &'static str,
    /// One run: payload length, round trips, `Config::autocork`; the median round trip in ns.
    pub(crate) run: fn(usize, usize, std::time::Duration) -> f64,
}

impl PingPong {
    /// Runs both, interleaved, prints the line and records the figures and the goal (with
    /// autocorking at most 1.10 × without).
    pub(crate) fn check(&self, cfg: &Config, ratios: &mut Ratios, goals: &mut Goals) {
        let rounds = if cfg.quick { 2_000 } else { 20_000 };
        let on = mux_std::Config::default().autocork;
        let (mut with, mut without) = (Vec::new(), Vec::new());
        for _ in 0..cfg.e2e_reps.max(3) {
            with.push((self.run)(64, rounds, on));
            without.push((self.run)(64, rounds, std::time::Duration::ZERO));
        }
        let (w, wo) = (median(&mut with), median(&mut without));
        println!(
            "{}, 64 B echoed, {rounds} round trips, median of each run, median of {} interleaved runs): {:.1} µs with autocorking, {:.1} µs without ({:.3}×).",
            self.line,
            with.len(),
            w / 1e3,
            wo / 1e3,
            w / wo
        );
        ratios.put(format!("{}_ping_pong_us", self.key), w / 1e3);
        ratios.put(format!("{}_ping_pong_autocork_vs_off", self.key), w / wo);
        goals.check(
            format!(
                "{}: a lone ping-pong's round trip with autocorking ≤ 1.10 × without",
                self.goal
            ),
            format!("{:.3}×", w / wo),
            w <= 1.10 * wo,
        );
    }
}

/// The TCP loopback figures of mux-std and mux-nostd: a line and their ratios to the raw TCP
/// connection (no goals: the goals are judged on the Unix socket pair).
fn tcp_summary(
    find: &impl Fn(Transport, Product, usize, Sending) -> Figures,
    raw_tcp: f64,
    ratios: &mut Ratios,
) {
    let mut parts = Vec::new();
    for product in [Std, Nostd] {
        let (name, short) = (product.name(), product.key());
        let [o1m, o8m] = [1, 8].map(|n| find(Transport::Tcp, product, M1, Senders(n)));
        let [o1k, o8k] = [1, 8].map(|n| find(Transport::Tcp, product, K1, Senders(n)));
        parts.push(format!(
            "{name} 1 MiB {:.0} % (1 sender), {:.0} % (8 senders) of the raw TCP connection; 1 KiB {}/s and {}/s",
            100.0 * o1m.bytes_per_s / raw_tcp,
            100.0 * o8m.bytes_per_s / raw_tcp,
            fmt_rate(o1k.msgs_per_s),
            fmt_rate(o8k.msgs_per_s),
        ));
        for (what, r) in [("1sender", o1m), ("8senders", o8m)] {
            ratios.put(
                format!("e2e_tcp_{short}_1MiB_{what}_vs_raw"),
                r.bytes_per_s / raw_tcp,
            );
        }
        for (what, r) in [("1sender", o1k), ("8senders", o8k)] {
            ratios.put(
                format!("e2e_tcp_{short}_1KiB_{what}_msgs_per_s"),
                r.msgs_per_s,
            );
        }
    }
    println!("- Over TCP loopback: {}.", parts.join("; "));
}

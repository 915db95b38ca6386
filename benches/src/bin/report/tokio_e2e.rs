//! tokio: mux-std's `AsyncNode` against yamux on the same runtime set-up (two threads, each a
//! current-thread runtime, a Unix socket pair; yamux with one stream per sender).

use mux_benches::timing::median;
use mux_benches::tokio_node;
use mux_benches::yamux_peer::{self, Mapping};

use crate::config::Config;
use crate::end_to_end::PingPong;
use crate::fmt::fmt_rate;
use crate::goals::Goals;
use crate::json::Ratios;

const K1: usize = 1 << 10;
const M1: usize = 1 << 20;

/// Median messages per second of `reps` interleaved runs of both products.
fn pair(cfg: &Config, size: usize, count: usize, tasks: usize) -> (f64, f64) {
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..cfg.e2e_reps {
        ours.push(tokio_node::run(size, count, tasks).msgs_per_sec());
        theirs.push(yamux_peer::run(size, count, tasks, Mapping::Shared).msgs_per_sec());
    }
    (median(&mut ours), median(&mut theirs))
}

/// Prints the section, records its ratios and goals.
pub fn section(cfg: &Config, ratios: &mut Ratios, goals: &mut Goals) {
    println!("## tokio: `AsyncNode` against yamux on the same runtime");
    println!();
    println!(
        "Two threads, each a current-thread tokio runtime, over a Unix socket pair; TASKS sending tasks on one side (yamux: one stream per task, length-prefixed messages), the whole messages received on the other. Messages per second, medians of {} interleaved runs.",
        cfg.e2e_reps
    );
    println!();
    println!("| size | tasks | `AsyncNode` | yamux | ratio |");
    println!("|---|---|---|---|---|");
    let scale = |n: f64| ((n * cfg.e2e_scale) as usize).max(16);
    for (size, label, count, goal) in [
        (K1, "1KiB", scale(200_000.0), 3.0),
        (M1, "1MiB", scale(2_000.0), 2.0),
    ] {
        for tasks in [1usize, 8] {
            let (ours, theirs) = pair(cfg, size, count, tasks);
            let ratio = ours / theirs;
            println!(
                "| {label} | {tasks} | {} | {} | {ratio:.2}× |",
                fmt_rate(ours),
                fmt_rate(theirs)
            );
            ratios.put(format!("tokio_{label}_{tasks}tasks_vs_yamux"), ratio);
            ratios.put(format!("tokio_{label}_{tasks}tasks_msgs_per_s"), ours);
            goals.check(
                format!("tokio `AsyncNode` {label}, {tasks} task(s): {goal}× yamux"),
                format!("{ratio:.2}×"),
                ratio >= goal,
            );
        }
    }
    ping_pong(cfg, ratios, goals);
    println!();
}

/// A lone ping-pong's round trip between two `AsyncNode`s with autocorking on (the default)
/// and off, interleaved: autocorking must not slow a request that waits for its reply.
fn ping_pong(cfg: &Config, ratios: &mut Ratios, goals: &mut Goals) {
    println!();
    let nodes = PingPong {
        line: "A lone ping-pong (two `AsyncNode`s over a Unix socket pair",
        key: "tokio",
        goal: "tokio `AsyncNode`",
        run: tokio_node::ping_pong,
    };
    nodes.check(cfg, ratios, goals);
}

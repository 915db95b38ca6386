//! The latency workload over the link emulator, checked for what it must show whatever the
//! machine's speed: with Adaptive, no write call of the sender holds the paced link for more
//! than about one budget while a bulk message goes, and every small message arrives; with a
//! fixed strategy, one call carries the whole bulk message. (The latencies themselves are
//! measured by the report.)

use std::time::Duration;

use mux_benches::latency::{Link, run};
use mux_std::{AdaptiveConfig, AnyStrategy};

#[test]
fn adaptive_keeps_every_write_call_within_a_budget_on_a_paced_link() {
    let rate = 1_000_000; // 10 ms: 10,000 bytes
    let bulk = 64 << 10;
    let a = run(
        Link::Paced(rate),
        AnyStrategy::Adaptive(AdaptiveConfig::DEFAULT),
        bulk,
        Duration::from_millis(5),
    );
    let largest = a.largest_call.unwrap();
    // One frame of the budget, plus small messages the bulk sender wrote along with it.
    assert!(largest <= 12_000, "largest write call {largest} bytes");
    assert!(!a.small_ms.is_empty());
    let est = a.estimate.unwrap();
    assert!((500_000..2_000_000).contains(&est), "estimate {est}");
    let h = run(
        Link::Paced(rate),
        AnyStrategy::Hybrid { threshold: 4096 },
        bulk,
        Duration::from_millis(5),
    );
    assert!(h.largest_call.unwrap() >= bulk as u64);
}

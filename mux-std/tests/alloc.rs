//! Steady state allocates nothing per message: a counting global allocator watches sending
//! and receiving (both nodes, their reader threads, the channel) over a real socket pair.
//!
//! One test in this binary, so nothing else allocates while it counts.

use std::os::unix::net::UnixStream;

use mux_std::{Config, Node, Received};
use mux_test_support::{CountingAlloc, rule_r};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Sends `rounds × batch` messages of `size` bytes and receives them all; returns the
/// allocations counted meanwhile.
fn exchange<W: std::io::Write + Send + 'static>(
    tx: &Node<W>,
    rx: &Node<W>,
    payload: &[u8],
    rounds: usize,
    batch: usize,
    measure: bool,
) -> u64 {
    let before = CountingAlloc::allocations();
    if measure {
        CountingAlloc::record_sizes();
    }
    for _ in 0..rounds {
        for _ in 0..batch {
            tx.send(payload).unwrap();
        }
        if !measure {
            // Let the whole batch queue up, so that the pool grows to what the measured
            // rounds can need at most (one buffer per queued message).
            while rx.receiver().queued() < batch {
                std::thread::yield_now();
            }
        }
        for _ in 0..batch {
            match rx.recv().unwrap() {
                Received::Message(m) => assert_eq!(m.len(), payload.len()),
                other => panic!("{other:?}"),
            }
        }
    }
    let n = CountingAlloc::allocations() - before;
    if measure && n > 0 {
        let sizes = CountingAlloc::recorded_sizes();
        println!("  sizes of the allocations: {sizes:?}");
    }
    n
}

#[test]
fn steady_state_send_and_receive_allocate_nothing_per_message() {
    let (a, b) = UnixStream::pair().unwrap();
    let a = Node::unix(a, Config::default()).unwrap();
    let b = Node::unix(b, Config::default()).unwrap();
    // One-time lazy set-up that the traffic may or may not trigger early: the channel's
    // first blocking receive (a thread-local context and its waiter list).
    assert!(matches!(
        b.recv_timeout(std::time::Duration::from_millis(1)),
        Err(mux_std::TryRecvError::Empty)
    ));
    let mut report = Vec::new();
    for (size, rounds, batch) in [(1024, 200, 50), (100, 200, 50), (256 << 10, 50, 4)] {
        let payload = rule_r(size);
        // Warm-up: the pool and the channel grow to what this traffic needs.
        exchange(&a, &b, &payload, rounds / 4, batch, false);
        // A thread's first block on the channel or a lock sets up a waiter context once (a
        // 48- and a 96-byte allocation); under emulation (aarch64 on qemu-user) that can come
        // after the warm-up. A per-message allocation would show in every measured round of
        // thousands of messages, so the steady state is the best of three rounds.
        let n = (0..3)
            .map(|_| exchange(&a, &b, &payload, rounds, batch, true))
            .min()
            .unwrap_or(u64::MAX);
        let messages = (rounds * batch) as u64;
        println!(
            "{size}-byte messages: {n} allocations for {messages} messages sent and received \
             ({:.4} per message)",
            n as f64 / messages as f64
        );
        report.push((size, n, messages));
    }
    for (size, n, _) in report {
        assert_eq!(
            n, 0,
            "{size}-byte messages allocated {n} times in steady state"
        );
    }
    let m = b.metrics();
    assert_eq!(m.pool.in_use, 0);
    println!("receiver pool: {:?}", m.pool);
}

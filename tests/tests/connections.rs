//! Many connections: 200 socket pairs, a node at each end (400 nodes, each with its reader
//! thread and its sender's autocork flusher: 800 threads at once), every pair exchanging messages both ways at the same time.
//! A counting global allocator measures what each node costs at rest and under load, and the
//! test asserts it stays within what the configuration implies:
//!
//! - at rest, per node: the reader's buffer (`read_buffer`), the shared write buffer
//!   (`write_buffer`), the receive table (`TABLE_CAPACITY` slots, boxed), the item queue
//!   (`queue_depth` slots of one item each), the node's distributions
//!   (`mux_std::observe::NODE_BYTES`) and a fixed allowance for the node's shared state,
//!   the reader thread's handle, the flusher thread's handle and state, and the channel's
//!   bookkeeping ([`OVERHEAD`]);
//! - in use, on top: at most `max_buffers` receive buffers, each of capacity below twice the
//!   message limit (a `Vec` at most doubles past what it holds).
//!
//! Thread stacks are mapped by the OS, not allocated through the global allocator, and are
//! not counted. One test in this binary, so nothing else allocates while it counts.

mod common;

use std::os::unix::net::UnixStream;

use common::{Rng, is_payload, payload, within};
use mux_nostd::{Demux, Limits};
use mux_std::{Buffer, Config, Message, Node, Received, TABLE_CAPACITY};
use mux_test_support::CountingAlloc;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

const PAIRS: usize = 200;
const NODES: usize = 2 * PAIRS;
/// Messages each node sends to its peer.
const PER_NODE: u32 = 12;
/// Per node: the node's and the sender's shared state, the receiver's, the reader thread's
/// handle and name, the autocork flusher's handle, name and state, the channel's counters
/// and wakers (measured: about 4.1 KiB).
const OVERHEAD: usize = 9 << 9;
const MAX_MESSAGE: usize = 64 << 10;

fn config() -> Config {
    Config {
        limits: Limits::new(MAX_MESSAGE as u32),
        max_in_flight: 8,
        max_buffers: 16,
        retain_capacity: 2 * MAX_MESSAGE,
        queue_depth: 32,
        read_buffer: 16 << 10,
        write_buffer: 8 << 10,
        ..Config::default()
    }
}

/// What one node may take at rest, from its configuration.
fn rest_bound(cfg: &Config) -> usize {
    let table = size_of::<Demux<Option<Buffer>, TABLE_CAPACITY>>();
    // A queue slot holds one item (a `Received` or an I/O error) and a stamp.
    let slot = size_of::<Received>() + 2 * size_of::<usize>();
    cfg.read_buffer
        + cfg.write_buffer
        + table
        + cfg.queue_depth * slot
        + mux_std::observe::NODE_BYTES
        + OVERHEAD
}

/// What one node may take on top of that while messages are in flight or held.
fn in_use_bound(cfg: &Config) -> usize {
    cfg.max_buffers * 2 * cfg.limits.max_message as usize
}

#[test]
fn two_hundred_connections_memory_per_node_as_configured() {
    within(300, "200 connections", run);
}

fn run() {
    let cfg = config();
    // The payloads, made before counting: sizes 0 to 64 KiB.
    let mut rng = Rng::new(7);
    let sizes: Vec<usize> = (0..PER_NODE)
        .map(|i| match i % 3 {
            0 => rng.below(200) as usize,
            1 => rng.below(8192) as usize,
            _ => rng.below(MAX_MESSAGE as u64 + 1) as usize,
        })
        .collect();
    let payloads: Vec<Vec<u8>> = (0..PER_NODE)
        .map(|i| payload(i + 1, sizes[i as usize]))
        .collect();
    let mut nodes: Vec<Node<UnixStream>> = Vec::with_capacity(NODES);
    let mut held: Vec<Vec<Message>> = (0..NODES)
        .map(|_| Vec::with_capacity(PER_NODE as usize))
        .collect();
    let mut scratch = Vec::with_capacity(MAX_MESSAGE);

    let base = CountingAlloc::live_bytes();
    for _ in 0..PAIRS {
        let (a, b) = UnixStream::pair().unwrap();
        nodes.push(Node::unix(a, cfg.clone()).unwrap());
        nodes.push(Node::unix(b, cfg.clone()).unwrap());
    }
    // An empty message each way: every reader thread is running (its buffer allocated) and
    // the link works; empty messages take no pool buffer.
    for n in &nodes {
        n.send(b"").unwrap();
    }
    for n in &nodes {
        match n.recv().unwrap() {
            Received::Message(m) => assert!(m.is_empty()),
            other => panic!("{other:?}"),
        }
    }
    let rest = CountingAlloc::live_bytes() - base;
    let rest_per_node = rest / NODES;
    CountingAlloc::reset_peak();

    // Load: every node sends its messages to its peer from 8 threads (25 pairs each), and
    // every node keeps what it received until all of it is in.
    std::thread::scope(|s| {
        for chunk in nodes.chunks(NODES / 8) {
            let payloads = &payloads;
            s.spawn(move || {
                for (i, p) in payloads.iter().enumerate() {
                    for n in chunk {
                        n.send_with_id(i as u32 + 1, p).unwrap();
                    }
                }
            });
        }
        for (n, keep) in nodes.iter().zip(held.iter_mut()) {
            for _ in 0..PER_NODE {
                match n.recv().unwrap() {
                    Received::Message(m) => keep.push(m),
                    other => panic!("{other:?}"),
                }
            }
        }
    });
    let peak = CountingAlloc::peak_bytes() - base;
    let peak_per_node = peak / NODES;
    for keep in &held {
        let mut ids: Vec<u32> = keep.iter().map(Message::id).collect();
        ids.sort_unstable();
        assert_eq!(ids, (1..=PER_NODE).collect::<Vec<_>>());
        for m in keep {
            let size = sizes[m.id() as usize - 1];
            assert!(is_payload(m.id(), size, m.body(), &mut scratch));
        }
    }
    for n in &nodes {
        let pool = n.metrics().pool;
        assert!(pool.high_water <= cfg.max_buffers, "{pool:?}");
    }
    drop(held);
    for n in &nodes {
        assert!(n.metrics().pool.is_full());
        assert_eq!(n.metrics().rx.errors.total(), 0);
    }

    // Close everything: each side ends its stream, then waits for the peer's end.
    for n in &nodes {
        n.close_write().unwrap();
    }
    for n in nodes {
        let report = n.close().unwrap();
        assert!(report.unfinished.is_empty() && report.read_error.is_none());
    }
    let after = CountingAlloc::live_bytes().saturating_sub(base);

    let rest_limit = rest_bound(&cfg);
    let use_limit = rest_limit + in_use_bound(&cfg);
    println!(
        "connections: {PAIRS} socket pairs, {NODES} nodes, {} messages of 0 to {} KiB; per node: \
         {rest_per_node} bytes at rest (bound {rest_limit}: read buffer {} + write buffer {} + \
         table {} + queue {} x {} + distributions {} + {OVERHEAD}), {peak_per_node} bytes at the peak with {} \
         messages held (bound {use_limit}: + {} buffers x 2 x {} bytes); {after} bytes left \
         after closing all",
        NODES as u32 * PER_NODE,
        MAX_MESSAGE >> 10,
        cfg.read_buffer,
        cfg.write_buffer,
        size_of::<Demux<Option<Buffer>, TABLE_CAPACITY>>(),
        cfg.queue_depth,
        size_of::<Received>() + 2 * size_of::<usize>(),
        mux_std::observe::NODE_BYTES,
        PER_NODE,
        cfg.max_buffers,
        cfg.limits.max_message,
    );
    assert!(
        rest_per_node <= rest_limit,
        "{rest_per_node} > {rest_limit} at rest"
    );
    assert!(
        peak_per_node <= use_limit,
        "{peak_per_node} > {use_limit} in use"
    );
    // Nothing stays behind once every node is closed (a little slack for the thread-locals
    // of the threads that ran).
    assert!(after <= 64 << 10, "{after} bytes still allocated");
}

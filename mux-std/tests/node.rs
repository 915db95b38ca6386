//! The blocking node against the golden vectors and over real sockets and pipes: byte-exact
//! sending, typed receive outcomes of the bad-input captures, cancellation, deadlines,
//! streaming, close reports, a broken link.

use mux_test_support::{rule_r, vectors_dir as vectors};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use mux_std::{
    AnyStrategy, CancelToken, Config, ConfigError, FrameType, Node, ProtocolError, Received,
    Receiver, RecvError, SendError, SendOptions, Sender,
};

/// What a receiver delivers, as comparable values.
#[derive(Debug, PartialEq, Eq)]
enum Out {
    Ok(u32, Vec<u8>),
    Aborted(u32),
    Err(ProtocolError),
}

fn receive_file(name: &str) -> Vec<Out> {
    let file = File::open(vectors().join(name)).unwrap();
    let rx = Receiver::spawn(file, &Config::default()).unwrap();
    let out = collect(&rx);
    assert!(rx.pool().stats().is_full());
    out
}

fn collect(rx: &Receiver) -> Vec<Out> {
    rx.iter()
        .map(|item| match item.unwrap() {
            Received::Message(m) => Out::Ok(m.id(), m.body().to_vec()),
            Received::Aborted { id } => Out::Aborted(id),
            Received::Error(e) => Out::Err(e),
            other => panic!("{other:?}"),
        })
        .collect()
}

fn ok9() -> Out {
    Out::Ok(9, b"ok".to_vec())
}

#[test]
fn sending_is_byte_exact_with_the_golden_vectors() {
    let mut checked = 0;
    for entry in std::fs::read_dir(vectors()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let Some((strategy, size)) = name.strip_suffix(".bin").and_then(|s| s.split_once('-'))
        else {
            continue;
        };
        let (Ok(strategy), Ok(size)) = (strategy.parse::<AnyStrategy>(), size.parse::<usize>())
        else {
            continue;
        };
        let (a, mut b) = UnixStream::pair().unwrap();
        let reader = std::thread::spawn(move || {
            let mut wire = Vec::new();
            b.read_to_end(&mut wire).unwrap();
            wire
        });
        let tx = Sender::new(a, &Config::with_strategy(strategy)).unwrap();
        tx.send_with_id(7, &rule_r(size)).unwrap();
        tx.close().unwrap();
        let want = std::fs::read(vectors().join(&name)).unwrap();
        assert!(reader.join().unwrap() == want, "{name}");
        checked += 1;
    }
    assert_eq!(checked, 43);
}

#[test]
fn receiving_the_golden_vectors() {
    let r = |n| rule_r(n);
    assert_eq!(
        receive_file("hybrid-1048577.bin"),
        [Out::Ok(7, r(1_048_577))]
    );
    assert_eq!(
        receive_file("interleaved-hybrid.bin"),
        [
            Out::Ok(3, vec![]),
            Out::Ok(2, r(5000)),
            Out::Ok(1, r(70_000))
        ]
    );
    assert_eq!(receive_file("abort-partial.bin"), [Out::Aborted(5), ok9()]);
    assert_eq!(
        receive_file("bad-duplicate-start-of-9.bin"),
        [Out::Err(ProtocolError::DuplicateStart { id: 9 }), ok9()]
    );
    assert_eq!(
        receive_file("bad-start-huge-len.bin"),
        [
            Out::Err(ProtocolError::MessageTooLarge {
                id: 5,
                size: u32::MAX,
                max: 10 << 20
            }),
            ok9()
        ]
    );
    assert_eq!(
        receive_file("bad-data-unknown-id.bin"),
        [
            Out::Err(ProtocolError::UnknownId {
                id: 5,
                kind: FrameType::Data
            }),
            ok9()
        ]
    );
    assert_eq!(
        receive_file("bad-eof-pending.bin"),
        [ok9(), Out::Err(ProtocolError::Unfinished { id: 5 })]
    );
    assert_eq!(
        receive_file("bad-truncated-payload.bin"),
        [
            ok9(),
            Out::Err(ProtocolError::Truncated { missing: 60 }),
            Out::Err(ProtocolError::Unfinished { id: 5 })
        ]
    );
    assert_eq!(
        receive_file("edge-ids-0-and-max.bin"),
        [
            Out::Ok(0, b"zero".to_vec()),
            Out::Ok(u32::MAX, b"max".to_vec()),
            ok9()
        ]
    );
    assert_eq!(receive_file("bad-reserved-types.bin")[4..], [ok9()]);
}

/// Starts sending 8 MiB as message `id` over a socket nobody reads yet, lets `during` run
/// while the sender is stuck mid-message, then reads the socket: what arrived, and the send's
/// result.
fn stuck_send(
    id: u32,
    opts: impl FnOnce() -> SendOptions + Send,
    during: impl FnOnce(),
) -> (Vec<Out>, Result<u32, SendError>) {
    let (a, b) = UnixStream::pair().unwrap();
    let tx = Sender::new(a, &Config::default()).unwrap();
    let payload = rule_r(8 << 20);
    let (rx, r) = std::thread::scope(|s| {
        let h = s.spawn(|| {
            tx.send_with(
                &payload,
                &SendOptions {
                    id: Some(id),
                    ..opts()
                },
            )
        });
        // Long enough for the sender to fill the socket buffer and block (a few writes).
        std::thread::sleep(Duration::from_millis(200));
        during();
        let rx = Receiver::spawn(b, &Config::default()).unwrap();
        (rx, h.join().unwrap())
    });
    tx.send_with_id(id + 1, b"next").unwrap();
    tx.close().unwrap();
    (collect(&rx), r)
}

#[test]
fn cancel_token_and_deadline_abort_on_the_wire() {
    // Cancelled before it starts: nothing is written.
    let (a, mut b) = UnixStream::pair().unwrap();
    let tx = Sender::new(a, &Config::default()).unwrap();
    let token = CancelToken::new();
    token.cancel();
    let opts = SendOptions {
        cancel: Some(token),
        ..SendOptions::default()
    };
    assert!(matches!(
        tx.send_with(&rule_r(1 << 20), &opts),
        Err(SendError::Cancelled)
    ));
    let past = SendOptions {
        deadline: Some(Instant::now()),
        ..SendOptions::default()
    };
    assert!(matches!(
        tx.send_with(b"late", &past),
        Err(SendError::TimedOut)
    ));
    tx.close().unwrap();
    let mut wire = Vec::new();
    b.read_to_end(&mut wire).unwrap();
    assert!(wire.is_empty());
    assert_eq!(
        tx.next_id(),
        3,
        "each refused send still took an automatic id"
    );

    // Cancelled mid-way by another thread while the sender is stuck in the socket.
    let token = CancelToken::new();
    let t2 = token.clone();
    let (got, r) = stuck_send(
        77,
        move || SendOptions {
            cancel: Some(t2),
            ..SendOptions::default()
        },
        || token.cancel(),
    );
    assert!(matches!(r, Err(SendError::Cancelled)), "{r:?}");
    assert_eq!(got, [Out::Aborted(77), Out::Ok(78, b"next".to_vec())]);

    // A deadline that passes while it is stuck.
    let (got, r) = stuck_send(
        88,
        || SendOptions {
            deadline: Some(Instant::now() + Duration::from_millis(20)),
            ..SendOptions::default()
        },
        || {},
    );
    assert!(matches!(r, Err(SendError::TimedOut)), "{r:?}");
    assert_eq!(got, [Out::Aborted(88), Out::Ok(89, b"next".to_vec())]);
}

#[test]
fn close_reports_messages_in_flight_both_ways() {
    let (a, b) = UnixStream::pair().unwrap();
    let node = Node::unix(b, Config::default()).unwrap();
    // The peer: opens message 5 and never finishes it; reads slowly what we send.
    let mut peer = a;
    peer.write_all(&[1, 0, 0, 0, 5, 0, 0, 0, 0, 3, 0, 0, 0, 5, 0, 0, 0, 1, b'x'])
        .unwrap();
    let mut peer_in = peer.try_clone().unwrap();
    let slow_reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 << 10];
        let mut total = 0usize;
        let mut tail = Vec::new();
        loop {
            let n = peer_in.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            total += n;
            tail.extend_from_slice(&buf[..n]);
            let keep = tail.len().saturating_sub(9);
            tail.drain(..keep);
            std::thread::sleep(Duration::from_millis(1));
        }
        (total, tail)
    });
    // Our own message cut by close: another thread is mid-way through a large send.
    let big = rule_r(32 << 20);
    let aborted = std::thread::scope(|s| {
        let sending = s.spawn(|| node.send_with_id(9, &big));
        // The slow reader takes about 0.5 s for all of it: close comes mid-way.
        std::thread::sleep(Duration::from_millis(150));
        let aborted = node.close_write().unwrap();
        assert!(matches!(sending.join().unwrap(), Err(SendError::Closed)));
        aborted
    });
    assert_eq!(aborted, [9]);
    let (total, tail) = slow_reader.join().unwrap();
    assert!(total < 32 << 20, "the message was cut");
    assert_eq!(tail, [6, 0, 0, 0, 9, 0, 0, 0, 0], "it ends with Abort(9)");
    drop(peer); // the peer's stream ends with message 5 open
    let report = node.close().unwrap();
    assert_eq!(report.unfinished, [5]);
    assert!(matches!(
        report.undelivered[..],
        [Received::Error(ProtocolError::Unfinished { id: 5 })]
    ));
    assert!(matches!(node_send_after_close(), Err(SendError::Closed)));
}

fn node_send_after_close() -> Result<u32, SendError> {
    let (a, _b) = UnixStream::pair().unwrap();
    let node = Node::unix(a, Config::default()).unwrap();
    node.close_write().unwrap();
    node.send(b"late")
}

#[test]
fn streaming_mode_delivers_chunks_in_order() {
    let (a, b) = UnixStream::pair().unwrap();
    let tx = Node::unix(a, Config::default()).unwrap();
    let rx = Node::unix(b, Config::default().streaming()).unwrap();
    let big = rule_r(3 << 20);
    tx.send_with_id(4, &big).unwrap();
    tx.send_with_id(5, b"").unwrap();
    let mut body = Vec::new();
    let mut chunks = 0;
    assert!(matches!(
        rx.recv().unwrap(),
        Received::Started { id: 4, .. }
    ));
    loop {
        match rx.recv().unwrap() {
            Received::Chunk { id: 4, data } => {
                body.extend_from_slice(&data);
                chunks += 1;
            }
            Received::Ended { id: 4 } => break,
            other => panic!("{other:?}"),
        }
    }
    assert!(body == big && chunks > 1);
    assert!(matches!(
        rx.recv().unwrap(),
        Received::Started { id: 5, .. }
    ));
    assert!(matches!(rx.recv().unwrap(), Received::Ended { id: 5 }));
    assert!(rx.metrics().pool.is_full());
}

#[test]
fn tcp_round_trip_and_a_peer_that_vanishes() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = Node::tcp(TcpStream::connect(addr).unwrap(), Config::default()).unwrap();
    let server = Node::tcp(listener.accept().unwrap().0, Config::default()).unwrap();
    for size in [0, 10, 100_000] {
        let id = client.send(&rule_r(size)).unwrap();
        match server.recv().unwrap() {
            Received::Message(m) => assert!(m.id() == id && m.body() == rule_r(size)),
            other => panic!("{other:?}"),
        }
    }
    // The server goes away: the client's writes fail once with the I/O error, then Broken.
    drop(server.split());
    let payload = rule_r(1 << 20);
    let first_err = (0..10_000)
        .find_map(|_| client.send(&payload).err())
        .expect("writes to a vanished peer fail");
    assert!(matches!(first_err, SendError::Io(_)), "{first_err:?}");
    assert!(matches!(client.send(b"x"), Err(SendError::Broken)));
    assert!(client.sender().is_broken());
    // The client's reader sees the end of stream (or a reset, reported once), then Closed.
    loop {
        match client.recv() {
            Err(RecvError::Closed) => break,
            Err(RecvError::Io(_)) => continue,
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn many_threads_receive_from_one_node() {
    let (a, b) = UnixStream::pair().unwrap();
    let tx = Node::unix(a, Config::default()).unwrap();
    let rx = Node::unix(b, Config::default()).unwrap();
    let total: usize = std::thread::scope(|s| {
        let workers: Vec<_> = (0..3)
            .map(|_| {
                let r = rx.receiver().clone();
                s.spawn(move || {
                    r.iter()
                        .filter(|i| matches!(i, Ok(Received::Message(_))))
                        .count()
                })
            })
            .collect();
        for _ in 0..300 {
            tx.send(b"work").unwrap();
        }
        tx.close_write().unwrap();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    assert_eq!(total, 300);
}

#[test]
fn buffered_sends_leave_together_at_flush() {
    let (a, b) = UnixStream::pair().unwrap();
    let tx = Node::unix(a, Config::default()).unwrap();
    let rx = Node::unix(b, Config::default()).unwrap();
    for _ in 0..100 {
        tx.send_buffered(b"small").unwrap();
    }
    assert_eq!(
        tx.metrics().tx.writes,
        0,
        "all 100 messages wait in the write buffer"
    );
    assert!(matches!(
        rx.recv_timeout(Duration::from_millis(50)),
        Err(mux_std::TryRecvError::Empty)
    ));
    tx.flush().unwrap();
    assert_eq!(tx.metrics().tx.writes, 1);
    for want in 1..=100 {
        match rx.recv().unwrap() {
            Received::Message(m) => assert_eq!((m.id(), m.body()), (want, &b"small"[..])),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_small_message_interleaves_with_a_large_one() {
    // The large message is 16 MiB in 64 KiB chunks (Hybrid); the peer reads slowly (at most
    // 64 KiB per millisecond), so it is mid-way when the small one is sent from another
    // thread.
    let (a, b) = UnixStream::pair().unwrap();
    let tx = Sender::new(a, &Config::default()).unwrap();
    let slow = std::thread::spawn(move || {
        let mut b = b;
        let mut wire = Vec::new();
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = b.read(&mut buf).unwrap();
            if n == 0 {
                break wire;
            }
            wire.extend_from_slice(&buf[..n]);
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    let big = rule_r(16 << 20);
    std::thread::scope(|s| {
        s.spawn(|| tx.send_with_id(1, &big).unwrap());
        std::thread::sleep(Duration::from_millis(80));
        tx.send_with_id(2, b"urgent").unwrap();
    });
    tx.close().unwrap();
    let wire = slow.join().unwrap();
    // Frame list: (type, id, len).
    let mut frames = Vec::new();
    let mut at = 0;
    while at < wire.len() {
        let h = &wire[at..at + 9];
        let len = u32::from_be_bytes([h[5], h[6], h[7], h[8]]);
        let id = u32::from_be_bytes([h[1], h[2], h[3], h[4]]);
        frames.push((h[0], id, len));
        at += 9 + if h[0] == 3 { len as usize } else { 0 };
    }
    let small: Vec<usize> = (0..frames.len()).filter(|&i| frames[i].1 == 2).collect();
    assert_eq!(small.len(), 3, "Start, Data, End of the small message");
    assert_eq!(small[2] - small[0], 2, "its frames are contiguous");
    let big_before = frames[..small[0]]
        .iter()
        .filter(|f| f.1 == 1 && f.0 == 3)
        .count();
    let big_after = frames[small[2]..]
        .iter()
        .filter(|f| f.1 == 1 && f.0 == 3)
        .count();
    assert!(
        big_before > 0 && big_after > 0,
        "{big_before} chunks before, {big_after} after"
    );
    assert_eq!(big_before + big_after, 256);
}

#[test]
fn limits_are_configuration_and_errors_are_counted_by_kind() {
    let (a, b) = UnixStream::pair().unwrap();
    let tx = Node::unix(a, Config::default()).unwrap();
    let cfg = Config {
        limits: mux_std::Limits::new(1 << 20),
        ..Config::default()
    };
    let rx = Node::unix(b, cfg).unwrap();
    tx.send_with_id(1, &rule_r(2 << 20)).unwrap();
    tx.send_with_id(2, &rule_r(1 << 20)).unwrap();
    assert!(matches!(
        rx.recv().unwrap(),
        Received::Error(ProtocolError::MessageTooLarge { id: 1, .. })
    ));
    assert!(
        matches!(rx.recv().unwrap(), Received::Message(m) if m.id() == 2 && m.len() == 1 << 20)
    );
    let m = rx.metrics();
    assert_eq!(
        (
            m.rx.messages,
            m.rx.errors.message_too_large,
            m.rx.errors.total()
        ),
        (1, 1, 1)
    );
    assert!(m.pool.hits + m.pool.misses >= 1 && m.pool.high_water >= 1);
    assert_eq!(tx.metrics().tx.bytes, 3 << 20);
}

#[test]
fn dropping_the_node_ends_our_stream_and_writes_what_was_buffered() {
    let (a, b) = UnixStream::pair().unwrap();
    let tx = Node::unix(a, Config::default()).unwrap();
    let rx = Node::unix(b, Config::default()).unwrap();
    tx.send_buffered(b"kept").unwrap();
    drop(tx);
    assert!(matches!(rx.recv().unwrap(), Received::Message(m) if m.body() == b"kept"));
    assert!(matches!(rx.recv(), Err(RecvError::Closed)));
}

#[test]
fn metrics_do_not_wait_for_a_send_stuck_in_the_kernel() {
    let (a, b) = UnixStream::pair().unwrap();
    let tx = Sender::new(a, &Config::default()).unwrap();
    let big = rule_r(8 << 20);
    std::thread::scope(|s| {
        let stuck = s.spawn(|| tx.send(&big));
        // Until the send has written (and then fills the socket); a loaded machine may take a
        // while to run the sending thread at all.
        let t0 = std::time::Instant::now();
        while tx.counts().writes == 0 && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(100));
        let (done, wait) = std::sync::mpsc::channel();
        let tx2 = tx.clone();
        s.spawn(move || {
            let c = tx2.counts();
            let _ = done.send((c, tx2.is_broken()));
        });
        let got = wait.recv_timeout(Duration::from_secs(5));
        // Unstick the sender before asserting, so that no thread stays blocked.
        let rx = Receiver::spawn(b, &Config::default()).unwrap();
        assert!(stuck.join().unwrap().is_ok());
        let (counts, broken) = got.expect("counts() answered while a send was stuck");
        assert!(counts.writes > 0 && counts.messages == 0 && !broken);
        drop(rx);
    });
}

#[test]
fn a_send_queued_behind_a_stuck_writer_can_still_be_cancelled() {
    let (a, b) = UnixStream::pair().unwrap();
    let tx = Sender::new(a, &Config::default()).unwrap();
    let big = rule_r(8 << 20);
    let token = CancelToken::new();
    std::thread::scope(|s| {
        // Message 1 fills the socket (nobody reads yet) and blocks in the kernel holding the
        // write lock; message 2 (not started) waits for the lock, then is cancelled.
        let stuck = s.spawn(|| tx.send_with_id(1, &big));
        std::thread::sleep(Duration::from_millis(200));
        let (done, wait) = std::sync::mpsc::channel();
        let (tx2, t2) = (tx.clone(), token.clone());
        s.spawn(move || {
            let opts = SendOptions {
                id: Some(2),
                cancel: Some(t2),
                ..SendOptions::default()
            };
            let _ = done.send(tx2.send_with(b"small", &opts));
        });
        std::thread::sleep(Duration::from_millis(50));
        token.cancel();
        let queued = wait.recv_timeout(Duration::from_secs(5));
        let rx = Receiver::spawn(b, &Config::default()).unwrap();
        assert!(stuck.join().unwrap().is_ok());
        let queued = queued.expect("the cancelled send returned while the writer was stuck");
        assert!(matches!(queued, Err(SendError::Cancelled)), "{queued:?}");
        tx.close().unwrap();
        assert_eq!(collect(&rx), [Out::Ok(1, big.clone())]);
    });
}

#[test]
fn a_started_message_that_gives_up_waiting_is_aborted_on_the_wire() {
    for _ in 0..3 {
        let (a, b) = UnixStream::pair().unwrap();
        let tx = Sender::new(a, &Config::default()).unwrap();
        let big = rule_r(8 << 20);
        let token = CancelToken::new();
        let (r1, r2, got) = std::thread::scope(|s| {
            let h1 = s.spawn(|| {
                let opts = SendOptions {
                    id: Some(1),
                    cancel: Some(token.clone()),
                    ..SendOptions::default()
                };
                tx.send_with(&big, &opts)
            });
            let h2 = s.spawn(|| tx.send_with_id(2, &big));
            std::thread::sleep(Duration::from_millis(200));
            token.cancel();
            std::thread::sleep(Duration::from_millis(50));
            let rx = Receiver::spawn(b, &Config::default()).unwrap();
            let (r1, r2) = (h1.join().unwrap(), h2.join().unwrap());
            // Nothing else is sent: if message 1 had started, its Abort must not wait for a
            // later send or for close. (If message 2 took the lock first, message 1 never
            // started and nothing of it is on the wire.)
            let mut got = Vec::new();
            while let Ok(item) = rx.recv_timeout(Duration::from_secs(1)) {
                match item {
                    Received::Aborted { id } => got.push(Out::Aborted(id)),
                    Received::Message(m) => got.push(Out::Ok(m.id(), m.body().to_vec())),
                    other => panic!("{other:?}"),
                }
            }
            tx.close().unwrap();
            let rest = collect(&rx);
            (r1, r2, (got, rest))
        });
        let (got, rest) = got;
        assert!(matches!(r1, Err(SendError::Cancelled)), "{r1:?}");
        assert!(r2.is_ok());
        assert!(rest.is_empty(), "arrived only after close: {rest:?}");
        let started = got.contains(&Out::Aborted(1));
        assert_eq!(got.len(), 1 + usize::from(started));
        assert!(got.contains(&Out::Ok(2, big.clone())));
        assert_eq!(tx.counts().aborted, u64::from(started));
    }
}

#[test]
fn an_invalid_config_is_a_typed_error_not_a_panic() {
    let cases = [
        (
            "write_buffer",
            Config {
                write_buffer: usize::MAX,
                ..Config::default()
            },
        ),
        (
            "coalesce_frame",
            Config {
                coalesce_frame: usize::MAX,
                ..Config::default()
            },
        ),
        (
            "read_buffer",
            Config {
                read_buffer: usize::MAX,
                ..Config::default()
            },
        ),
        (
            "queue_depth",
            Config {
                queue_depth: usize::MAX,
                ..Config::default()
            },
        ),
    ];
    for (field, cfg) in cases {
        let (a, _b) = UnixStream::pair().unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Node::unix(a, cfg.clone()).map(drop)
        }));
        let e = match r {
            Ok(Err(e)) => e,
            Ok(Ok(())) => panic!("{field}: accepted"),
            Err(_) => panic!("{field}: Node::unix panicked"),
        };
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{field}: {e}");
        let typed = e.get_ref().and_then(|e| e.downcast_ref::<ConfigError>());
        assert!(
            matches!(typed, Some(ConfigError::TooLarge { field: f, value: usize::MAX, .. }) if *f == field),
            "{field}: {e:?}"
        );
        // The same error from the halves' constructors and from `validate`.
        assert_eq!(cfg.validate().err().as_ref(), typed);
        if field == "write_buffer" || field == "coalesce_frame" {
            let r = Sender::new(Vec::new(), &cfg).map(drop);
            assert_eq!(r.err().as_ref(), typed);
        } else {
            let r = Receiver::spawn(std::io::empty(), &cfg).map(drop);
            assert!(r.is_err_and(|e| e.kind() == std::io::ErrorKind::InvalidInput));
        }
    }
    // The bounds themselves are accepted.
    let (a, _b) = UnixStream::pair().unwrap();
    let edge = Config {
        write_buffer: mux_std::MAX_BUFFER,
        coalesce_frame: 0,
        queue_depth: mux_std::MAX_QUEUE_DEPTH,
        ..Config::default()
    };
    assert_eq!(edge.validate(), Ok(()));
    drop(Node::unix(a, edge).unwrap());
}

/// `Config` with the serial link profile.
fn cobs(strategy: AnyStrategy) -> Config {
    Config {
        link: mux_std::LinkProfile::Cobs,
        ..Config::with_strategy(strategy)
    }
}

#[test]
fn link_profile_nodes_exchange_interleaved_messages_over_a_socket() {
    let (a, b) = UnixStream::pair().unwrap();
    let a = Node::unix(a, cobs(AnyStrategy::Original)).unwrap();
    let b = Node::unix(b, cobs(AnyStrategy::Optimized)).unwrap();
    let sizes = [0usize, 1, 1024, 4097, 70_000, 1_048_577];
    std::thread::scope(|s| {
        for &size in &sizes {
            let a = &a;
            s.spawn(move || a.send(&rule_r(size)).unwrap());
        }
    });
    a.flush().unwrap();
    let mut got: Vec<usize> = (0..sizes.len())
        .map(|_| match b.recv().unwrap() {
            Received::Message(m) => {
                assert!(m.body() == rule_r(m.len()));
                m.len()
            }
            other => panic!("{other:?}"),
        })
        .collect();
    got.sort_unstable();
    assert_eq!(got, sizes);
    let m = b.metrics().rx;
    assert!(
        m.link.good > 0 && m.link.damaged == 0 && m.link.missing == 0,
        "{:?}",
        m.link
    );
    // And back, with the other strategy.
    b.send(&rule_r(5000)).unwrap();
    assert!(matches!(a.recv().unwrap(), Received::Message(m) if m.body() == rule_r(5000)));
}

#[test]
fn link_profile_receiver_drops_a_damaged_frame_and_reports_the_message_lost() {
    // Three messages, each a link frame of its own; the second one's frame is damaged.
    let mut wire = mux_std::LinkWrite::new(Vec::new(), 2048);
    let mut ends = Vec::new();
    for id in 1..=3u32 {
        let mut plain = [0u8; 64];
        let n = mux_nostd::encode_into(&AnyStrategy::Original, id, b"payload", &mut plain).unwrap();
        wire.write_all(&plain[..n]).unwrap();
        ends.push(wire.get_ref().len());
    }
    wire.flush().unwrap();
    let mut wire = wire.into_inner();
    wire[ends[0] + 12] ^= 0x08;
    let (mut w, r) = UnixStream::pair().unwrap();
    let rx = Receiver::spawn(r, &cobs(AnyStrategy::Original)).unwrap();
    w.write_all(&wire).unwrap();
    drop(w);
    let out = collect(&rx);
    assert_eq!(
        out,
        [
            Out::Ok(1, b"payload".to_vec()),
            Out::Err(ProtocolError::LinkGap { missing: 1 }),
            Out::Ok(3, b"payload".to_vec()),
        ]
    );
    let link = rx.counts().link;
    assert_eq!((link.good, link.damaged, link.missing), (2, 1, 1));
}

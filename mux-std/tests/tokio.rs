//! The node under the tokio runtime (feature `tokio`): round trips for every strategy,
//! concurrent spawned senders, a send future dropped mid-message.
#![cfg(feature = "tokio")]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use mux_std::tokio::{AsyncNode, AsyncReceiver, AsyncSender};
use mux_std::{
    AnyStrategy, Config, ConfigError, Received, RecvError, SendError, SendOptions, TryRecvError,
};
use tokio::io::AsyncReadExt;
use tokio::net::UnixStream;

use mux_test_support::{rule_r, stream_byte as byte};

/// Checks that futures are `Send` (usable with `tokio::spawn`).
fn assert_send<T: Send>(t: T) -> T {
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_every_strategy() {
    for name in ["original", "optimized", "hybrid", "hybrid8k"] {
        let strategy: AnyStrategy = name.parse().unwrap();
        let (a, b) = UnixStream::pair().unwrap();
        let a = AsyncNode::unix(a, Config::with_strategy(strategy)).unwrap();
        let b = AsyncNode::unix(b, Config::default()).unwrap();
        let sizes = [0usize, 1, 1024, 1025, 4097, 8193, 65_537, 1_048_577];
        for &size in &sizes {
            let payload = rule_r(size);
            let id = assert_send(a.send(&payload)).await.unwrap();
            match b.recv().await.unwrap() {
                Received::Message(m) => {
                    assert_eq!(m.id(), id);
                    assert!(m.body() == payload, "{name} {size}");
                }
                other => panic!("{other:?}"),
            }
        }
        let m = b.metrics();
        assert_eq!(m.rx.messages, sizes.len() as u64);
        assert!(m.pool.is_full());
        b.close_write().await.unwrap();
        let report = a.close().await.unwrap();
        assert!(report.aborted.is_empty() && report.undelivered.is_empty());
        let report = b.close().await.unwrap();
        assert!(report.undelivered.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_spawned_senders() {
    const TASKS: u32 = 16;
    const EACH: u32 = 100;
    let (a, b) = UnixStream::pair().unwrap();
    let (tx, _rx_a): (AsyncSender<_>, AsyncReceiver) =
        AsyncNode::unix(a, Config::default()).unwrap().split();
    let b = AsyncNode::unix(b, Config::default()).unwrap();
    let tx = Arc::new(tx);
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..EACH {
                let id = (t << 16) | i;
                let size = [0usize, 10, 1000, 5000, 70_000][(i % 5) as usize] + t as usize;
                let payload: Vec<u8> = (0..size).map(|k| byte(id, k)).collect();
                let opts = SendOptions {
                    id: Some(id),
                    strategy: Some(["original", "hybrid"][(t % 2) as usize].parse().unwrap()),
                    ..SendOptions::default()
                };
                tx.send_with(&payload, &opts).await.unwrap();
            }
        }));
    }
    let mut seen = HashSet::new();
    while seen.len() < (TASKS * EACH) as usize {
        match b.recv().await.unwrap() {
            Received::Message(m) => {
                let id = m.id();
                assert!(seen.insert(id), "{id:#x} twice");
                let size = [0usize, 10, 1000, 5000, 70_000][((id & 0xFFFF) % 5) as usize]
                    + (id >> 16) as usize;
                assert_eq!(m.len(), size);
                assert!(m.body().iter().enumerate().all(|(k, &x)| x == byte(id, k)));
            }
            other => panic!("{other:?}"),
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(tx.counts().messages, u64::from(TASKS * EACH));
    assert!(b.metrics().pool.is_full());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_send_future_is_settled_with_abort() {
    let (a, mut b) = UnixStream::pair().unwrap();
    let (_, w) = a.into_split();
    let tx = AsyncSender::new(w, &Config::default()).unwrap();
    // Nobody reads yet: the 8 MiB send blocks in the socket and is dropped by the timeout,
    // mid-message (possibly mid-frame).
    let big = rule_r(8 << 20);
    let r = tokio::time::timeout(Duration::from_millis(100), tx.send_with_id(5, &big)).await;
    assert!(r.is_err(), "the send should still be blocked");
    // Read everything from now on, then send another message: the next holder first
    // completes the interrupted frame and writes Abort(5).
    let reader = tokio::spawn(async move {
        let mut wire = Vec::new();
        b.read_to_end(&mut wire).await.unwrap();
        wire
    });
    tx.send_with_id(6, b"after").await.unwrap();
    tx.close().await.unwrap();
    let wire = reader.await.unwrap();
    let rx = AsyncReceiver::spawn(std::io::Cursor::new(wire), &Config::default()).unwrap();
    let mut got = Vec::new();
    loop {
        match rx.recv().await {
            Ok(Received::Aborted { id }) => got.push(format!("abort {id}")),
            Ok(Received::Message(m)) => got.push(format!("ok {} {:?}", m.id(), m.body())),
            Ok(other) => panic!("{other:?}"),
            Err(RecvError::Closed) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(got, ["abort 5", "ok 6 [97, 102, 116, 101, 114]"]);
    assert_eq!(tx.counts().aborted, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_dropped_while_waiting_for_the_lock_leaves_no_trace() {
    // Message 1 blocks in the socket (nobody reads yet), holding the write lock.
    let (tx, first, b) = stuck_sender(1, 8 << 20).await;
    let r = tokio::time::timeout(Duration::from_millis(50), tx.send_with_id(2, b"gone")).await;
    assert!(r.is_err(), "message 2 waits for the lock and is dropped");
    let rx = AsyncReceiver::spawn(b, &Config::default()).unwrap();
    first.await.unwrap().unwrap();
    // A small write-through send must reach the peer (no phantom waiter keeps it buffered).
    tx.send_with_id(3, b"small").await.unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        let item = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("message 3 arrives")
            .unwrap();
        match item {
            Received::Message(m) => got.push((m.id(), m.len())),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(got, [(1, 8 << 20), (3, 5)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_with_an_id_in_flight_is_refused() {
    // Message 7 blocks in the socket mid-message (nobody reads yet).
    let (tx, first, b) = stuck_sender(7, 4 << 20).await;
    // Another message with id 7 queues for the lock behind it.
    let second = tokio::spawn({
        let tx = tx.clone();
        async move { tx.send_with_id(7, &[0xEE; 1 << 20]).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let rx = AsyncReceiver::spawn(b, &Config::default()).unwrap();
    let first = first.await.unwrap();
    let second = second.await.unwrap();
    assert!(first.is_ok(), "{first:?}");
    assert!(
        matches!(second, Err(SendError::IdInFlight { id: 7 })),
        "the second send of id 7: {second:?}"
    );
    tx.close().await.unwrap();
    let mut got = Vec::new();
    loop {
        match rx.recv().await {
            Ok(Received::Message(m)) => {
                assert!(
                    m.id() == 7 && m.body() == &rule_r(4 << 20)[..],
                    "message 7 is the first's"
                );
                got.push(m.id());
            }
            Ok(other) => panic!("{other:?}"),
            Err(RecvError::Closed) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(got, [7]);
}

/// A source that hands out `wire`, then panics in `poll_read`.
struct PanickingRead(std::io::Cursor<Vec<u8>>);

impl tokio::io::AsyncRead for PanickingRead {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.0).poll_read(cx, buf);
        if buf.filled().len() == before {
            panic!("injected panic in poll_read");
        }
        r
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_the_reader_task_is_reported_not_a_clean_end() {
    // Message 9 whole, then message 5 open when `poll_read` panics.
    let mut wire = vec![0u8; 64];
    let n = mux_nostd::encode_into(&AnyStrategy::default(), 9, b"ok", &mut wire).unwrap();
    wire.truncate(n);
    wire.extend_from_slice(&mux_nostd::Header::new(mux_nostd::FrameType::Start, 5, 0).to_bytes());
    let rx = AsyncReceiver::spawn(
        PanickingRead(std::io::Cursor::new(wire)),
        &Config::default(),
    )
    .unwrap();
    let mut got = Vec::new();
    let mut errors = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
            Ok(Ok(Received::Message(m))) => got.push(format!("ok {}", m.id())),
            Ok(Ok(Received::Error(e))) => got.push(format!("error {e}")),
            Ok(Ok(other)) => panic!("{other:?}"),
            Ok(Err(RecvError::Closed)) => break,
            Ok(Err(RecvError::ReaderPanicked(m))) => errors.push(m),
            Ok(Err(e)) => panic!("{e}"),
            Err(_) => panic!("receiver stalled; so far {got:?}"),
        }
    }
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("injected panic in poll_read"),
        "{errors:?}"
    );
    assert_eq!(
        got,
        ["ok 9", "error stream ended with message 5 unfinished"]
    );
    assert_eq!(rx.unfinished(), [5]);
    assert_eq!(
        rx.reader_panic().as_deref(),
        Some("injected panic in poll_read")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_config_is_a_typed_error_not_a_panic() {
    let (a, _b) = UnixStream::pair().unwrap();
    let cfg = Config {
        write_buffer: usize::MAX,
        ..Config::default()
    };
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        AsyncNode::unix(a, cfg).map(drop)
    }));
    let Ok(r) = r else {
        panic!("AsyncNode::unix panicked");
    };
    assert!(
        matches!(
            r,
            Err(ConfigError::TooLarge {
                field: "write_buffer",
                value: usize::MAX,
                max: mux_std::MAX_BUFFER
            })
        ),
        "{r:?}"
    );
    let cfg = Config {
        read_buffer: usize::MAX,
        ..Config::default()
    };
    let r = AsyncReceiver::spawn(tokio::io::empty(), &cfg).map(drop);
    assert!(
        matches!(
            r,
            Err(ConfigError::TooLarge {
                field: "read_buffer",
                ..
            })
        ),
        "{r:?}"
    );
}

/// What a captured wire holds, one entry per item: `abort ID` or `ok ID LEN`.
async fn decode(wire: Vec<u8>) -> Vec<String> {
    let rx = AsyncReceiver::spawn(std::io::Cursor::new(wire), &Config::default()).unwrap();
    let mut got = Vec::new();
    loop {
        match rx.recv().await {
            Ok(Received::Aborted { id }) => got.push(format!("abort {id}")),
            Ok(Received::Message(m)) => got.push(format!("ok {} {}", m.id(), m.len())),
            Ok(other) => panic!("{other:?}"),
            Err(RecvError::Closed) => break,
            Err(e) => panic!("{e}"),
        }
    }
    got
}

/// A sender over a socket pair whose message `id` (`size` bytes of rule R) is stuck in the
/// kernel holding the write lock: nobody reads the peer (returned) yet.
async fn stuck_sender(
    id: u32,
    size: usize,
) -> (
    Arc<AsyncSender<tokio::net::unix::OwnedWriteHalf>>,
    tokio::task::JoinHandle<Result<(), SendError>>,
    UnixStream,
) {
    let (a, b) = UnixStream::pair().unwrap();
    let (_, w) = a.into_split();
    let tx = Arc::new(AsyncSender::new(w, &Config::default()).unwrap());
    let big = rule_r(size);
    let first = tokio::spawn({
        let tx = tx.clone();
        async move { tx.send_with_id(id, &big).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    (tx, first, b)
}

/// Everything the peer `b` reads until our end closes.
fn read_all(mut b: UnixStream) -> tokio::task::JoinHandle<Vec<u8>> {
    tokio::spawn(async move {
        let mut wire = Vec::new();
        b.read_to_end(&mut wire).await.unwrap();
        wire
    })
}

/// The two ways a send with options gives up: a deadline 100 ms away, or a token cancelled
/// 100 ms from now (by another task).
fn give_up_in_100ms(id: u32, deadline: bool) -> SendOptions {
    let when = std::time::Instant::now() + Duration::from_millis(100);
    if deadline {
        return SendOptions {
            id: Some(id),
            deadline: Some(when),
            ..SendOptions::default()
        };
    }
    let token = mux_std::CancelToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        tokio::time::sleep_until(when.into()).await;
        t.cancel();
    });
    SendOptions {
        id: Some(id),
        cancel: Some(token),
        ..SendOptions::default()
    }
}

fn gave_up(r: &Result<u32, SendError>, deadline: bool) -> bool {
    if deadline {
        matches!(r, Err(SendError::TimedOut))
    } else {
        matches!(r, Err(SendError::Cancelled))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_or_cancel_fires_while_waiting_for_the_write_lock() {
    for deadline in [true, false] {
        // Message 1 fills the socket (nobody reads yet) and holds the write lock, stuck.
        let (tx, first, b) = stuck_sender(1, 8 << 20).await;
        let started = std::time::Instant::now();
        let opts = give_up_in_100ms(2, deadline);
        let r = tokio::time::timeout(Duration::from_secs(3), tx.send_with(b"small", &opts)).await;
        let r = r.unwrap_or_else(|_| panic!("deadline {deadline}: still pending after 3 s"));
        assert!(gave_up(&r, deadline), "deadline {deadline}: {r:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
        // Message 2 never started: nothing of it is on the wire.
        let reader = read_all(b);
        first.await.unwrap().unwrap();
        tx.close().await.unwrap();
        assert_eq!(
            decode(reader.await.unwrap()).await,
            [format!("ok 1 {}", 8 << 20)]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_or_cancel_fires_while_a_write_is_stuck_in_the_kernel() {
    for deadline in [true, false] {
        let (a, b) = UnixStream::pair().unwrap();
        let (_, w) = a.into_split();
        let tx = AsyncSender::new(w, &Config::default()).unwrap();
        let big = rule_r(8 << 20);
        // Nobody reads: the send blocks in the kernel mid-message (perhaps mid-frame).
        let started = std::time::Instant::now();
        let opts = give_up_in_100ms(5, deadline);
        let r = tokio::time::timeout(Duration::from_secs(3), tx.send_with(&big, &opts)).await;
        let r = r.unwrap_or_else(|_| panic!("deadline {deadline}: still pending after 3 s"));
        assert!(gave_up(&r, deadline), "deadline {deadline}: {r:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
        // The next writer finishes the frame that was cut and writes Abort(5) first.
        let reader = read_all(b);
        tx.send_with_id(6, b"after").await.unwrap();
        tx.close().await.unwrap();
        assert_eq!(decode(reader.await.unwrap()).await, ["abort 5", "ok 6 5"]);
        assert_eq!(tx.counts().aborted, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_send_that_gives_up_is_aborted_without_another_send() {
    for _ in 0..3 {
        let (a, b) = UnixStream::pair().unwrap();
        let (_, w) = a.into_split();
        let tx = Arc::new(AsyncSender::new(w, &Config::default()).unwrap());
        let big = Arc::new(rule_r(8 << 20));
        // Messages 1 (with a deadline) and 2 take turns at the lock until the socket is
        // full; then one is stuck in the kernel and the other waits for the lock.
        let opts = give_up_in_100ms(1, true);
        let one = tokio::spawn({
            let (tx, big) = (tx.clone(), big.clone());
            async move { tx.send_with(&big, &opts).await }
        });
        let two = tokio::spawn({
            let (tx, big) = (tx.clone(), big.clone());
            async move { tx.send_with_id(2, &big).await }
        });
        let r1 = tokio::time::timeout(Duration::from_secs(3), one)
            .await
            .expect("message 1 gave up within 3 s")
            .unwrap();
        assert!(matches!(r1, Err(SendError::TimedOut)), "{r1:?}");
        let rx = AsyncReceiver::spawn(b, &Config::default()).unwrap();
        two.await.unwrap().unwrap();
        // Nothing else is sent: Abort(1), if owed, must not wait for a later send or close.
        let mut got = Vec::new();
        while let Ok(item) = tokio::time::timeout(Duration::from_secs(1), rx.recv()).await {
            match item.unwrap() {
                Received::Aborted { id } => got.push(format!("abort {id}")),
                Received::Message(m) => got.push(format!("ok {} {}", m.id(), m.len())),
                other => panic!("{other:?}"),
            }
        }
        let started = got.contains(&"abort 1".to_owned());
        assert!(got.contains(&format!("ok 2 {}", 8 << 20)), "{got:?}");
        assert_eq!(got.len(), 1 + usize::from(started), "{got:?}");
        assert_eq!(tx.counts().aborted, u64::from(started));
    }
}

/// `AsyncSender::counts`, `is_broken` and `strategy` are plain calls that never wait for the
/// write lock: they answer while a send holds it, stuck in a socket nobody reads; a failed
/// write shows in `is_broken`, and later sends get `Broken`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_and_is_broken_do_not_wait_for_the_lock() {
    let (a, b) = UnixStream::pair().unwrap();
    let a = AsyncNode::unix(a, Config::with_strategy(AnyStrategy::Original)).unwrap();
    let tx = a.sender().clone();
    assert_eq!(tx.strategy(), AnyStrategy::Original);
    let id = a.send(b"ping").await.unwrap();
    let counts = tx.counts();
    assert_eq!((counts.messages, counts.bytes), (1, 4), "{counts:?}");
    assert!(!tx.is_broken());
    assert_eq!(a.metrics().tx, counts);
    // A message larger than the socket buffer: its send holds the lock, stuck in the kernel.
    let big = Arc::new(rule_r(8 << 20));
    let stuck = tokio::spawn({
        let (tx, big) = (tx.clone(), big.clone());
        async move { tx.send_with_id(id + 1, &big).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !stuck.is_finished(),
        "the send should be stuck in the socket"
    );
    let during = tx.counts();
    assert_eq!(during.messages, 1, "{during:?}");
    assert!(during.writes > counts.writes, "{during:?}");
    assert!(!tx.is_broken());
    // The peer goes away: the stuck write fails, once, and the link is broken.
    drop(b);
    assert!(matches!(stuck.await.unwrap(), Err(SendError::Io(_))));
    assert!(tx.is_broken());
    assert!(matches!(a.send(b"after").await, Err(SendError::Broken)));
    assert_eq!(tx.counts().messages, 1);
}

/// `AsyncNode::send_buffered` leaves small messages in the shared write buffer: nothing
/// reaches the socket until `flush`, then all of them in one write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_buffered_writes_at_flush() {
    let (a, mut b) = UnixStream::pair().unwrap();
    let a = AsyncNode::unix(a, Config::default()).unwrap();
    let mut ids = Vec::new();
    for payload in [&b"one"[..], b"two", b"three"] {
        ids.push(assert_send(a.send_buffered(payload)).await.unwrap());
    }
    assert_eq!(ids, [1, 2, 3]);
    let before = a.metrics().tx;
    assert_eq!((before.messages, before.writes), (3, 0), "{before:?}");
    let mut wire = [0u8; 256];
    let unread = b.try_read(&mut wire);
    assert!(
        matches!(&unread, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "{unread:?}"
    );
    a.flush().await.unwrap();
    assert_eq!(a.metrics().tx.writes, 1);
    // Start, Data, End per message: 9-byte headers and the payloads.
    let want = 3 * 27 + "onetwothree".len();
    let mut got = vec![0u8; want];
    b.read_exact(&mut got).await.unwrap();
    let rx = AsyncReceiver::spawn(std::io::Cursor::new(got), &Config::default()).unwrap();
    let mut bodies = Vec::new();
    while let Ok(item) = rx.recv().await {
        let m = item.into_message().unwrap();
        bodies.push((m.id(), m.body().to_vec()));
    }
    assert_eq!(
        bodies,
        [
            (1, b"one".to_vec()),
            (2, b"two".to_vec()),
            (3, b"three".to_vec())
        ]
    );
}

/// `try_recv` answers at once (`Empty`, an item, then `Closed` after the end of stream) and
/// `recv_timeout` waits at most its timeout, on the node and on its receiving half.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_recv_and_recv_timeout() {
    let (a, b) = UnixStream::pair().unwrap();
    let a = AsyncNode::unix(a, Config::default()).unwrap();
    let b = AsyncNode::unix(b, Config::default()).unwrap();
    assert!(matches!(b.try_recv(), Err(TryRecvError::Empty)));
    let t = std::time::Instant::now();
    assert!(matches!(
        b.recv_timeout(Duration::from_millis(30)).await,
        Err(TryRecvError::Empty)
    ));
    assert!(t.elapsed() >= Duration::from_millis(30));
    let id = a.send(b"first").await.unwrap();
    match b.recv_timeout(Duration::from_secs(10)).await {
        Ok(Received::Message(m)) => assert_eq!((m.id(), m.body()), (id, &b"first"[..])),
        other => panic!("{other:?}"),
    }
    let id = a.send(b"second").await.unwrap();
    let (_, rx) = b.split();
    let got = loop {
        match rx.try_recv() {
            Err(TryRecvError::Empty) => tokio::time::sleep(Duration::from_millis(1)).await,
            other => break other,
        }
    };
    match got {
        Ok(Received::Message(m)) => assert_eq!((m.id(), m.body()), (id, &b"second"[..])),
        other => panic!("{other:?}"),
    }
    assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
    a.close_write().await.unwrap();
    let end = loop {
        match rx.try_recv() {
            Err(TryRecvError::Empty) => tokio::time::sleep(Duration::from_millis(1)).await,
            other => break other,
        }
    };
    assert!(
        matches!(end, Err(TryRecvError::Recv(RecvError::Closed))),
        "{end:?}"
    );
    assert!(matches!(
        rx.recv_timeout(Duration::from_secs(10)).await,
        Err(TryRecvError::Recv(RecvError::Closed))
    ));
}

/// `AsyncNode::from_parts` puts the halves together again; through its sender,
/// `send_cancellable`: a send its `stop` gives up on before the first hold writes nothing, one
/// it lets through goes out with the strategy given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_parts_and_send_cancellable() {
    let (a, b) = UnixStream::pair().unwrap();
    let (tx, rx) = AsyncNode::unix(a, Config::default()).unwrap().split();
    let a = AsyncNode::from_parts(tx, rx);
    let streaming = Config {
        streaming: true,
        ..Config::default()
    };
    let b = AsyncNode::unix(b, streaming).unwrap();
    let mut asked = 0;
    let r = a
        .sender()
        .send_cancellable(7, b"never", None, || {
            asked += 1;
            Some(SendError::Cancelled)
        })
        .await;
    assert!(matches!(r, Err(SendError::Cancelled)), "{r:?}");
    assert_eq!(asked, 1);
    assert_eq!(a.metrics().tx.writes, 0);
    let payload = rule_r(10_000);
    assert_send(
        a.sender()
            .send_cancellable(8, &payload, Some(AnyStrategy::Original), || None),
    )
    .await
    .unwrap();
    // Original: the total in the Start frame, one Data frame per 1 KiB, End.
    let mut got = Vec::new();
    let mut chunks = 0;
    loop {
        match b.recv().await.unwrap() {
            Received::Started { id, len_hint } => assert_eq!((id, len_hint), (8, 10_000)),
            Received::Chunk { id: 8, data } => {
                chunks += 1;
                got.extend_from_slice(&data);
            }
            Received::Ended { id: 8 } => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(chunks, 10);
    assert!(got == payload);
    a.close_write().await.unwrap();
    let report = b.close().await.unwrap();
    assert!(report.undelivered.is_empty() && report.unfinished.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_profile_round_trip() {
    let config = Config {
        link: mux_std::LinkProfile::Cobs,
        ..Config::default()
    };
    let (a, b) = UnixStream::pair().unwrap();
    let a = AsyncNode::unix(a, config.clone()).unwrap();
    let b = AsyncNode::unix(b, config).unwrap();
    for size in [0usize, 1, 1024, 4097, 65_537, 1_048_577] {
        let payload = rule_r(size);
        let id = a.send(&payload).await.unwrap();
        match b.recv().await.unwrap() {
            Received::Message(m) => assert!(m.id() == id && m.body() == payload, "{size}"),
            other => panic!("{other:?}"),
        }
    }
    let link = b.metrics().rx.link;
    assert!(link.good > 0 && link.damaged == 0, "{link:?}");
    b.close_write().await.unwrap();
    a.close().await.unwrap();
    b.close().await.unwrap();
}

/// With the serial link profile, the link frames a full sink did not take go out before the
/// send returns: over a pipe that holds 64 bytes, a receiver gets every message though the
/// sender writes nothing more (no flush, no close).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_profile_sends_are_whole_on_the_wire_when_they_return() {
    let config = Config {
        link: mux_std::LinkProfile::Cobs,
        ..Config::default()
    };
    for size in [0usize, 5, 3000, 100_000] {
        let (w, r) = tokio::io::duplex(64);
        let tx = AsyncSender::new(w, &config).unwrap();
        let rx = AsyncReceiver::spawn(r, &config).unwrap();
        let payload = rule_r(size);
        let sent = tokio::spawn(async move {
            for _ in 0..3 {
                tx.send(&payload).await.unwrap();
            }
            tx // kept open: nothing more is written
        });
        for i in 0..3 {
            match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
                Ok(Ok(Received::Message(m))) => assert!(m.body() == rule_r(size), "{size}"),
                other => panic!("message {i} of {size} bytes: {other:?}"),
            }
        }
        drop(sent.await.unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_receiving_from_one_receiver_each_get_distinct_items_until_the_end() {
    // Items reach the receivers in batches: every waiting task must still be woken while
    // items are left, each item taken once, and every task must see the end.
    const TASKS: usize = 4;
    const MESSAGES: u32 = 3_000;
    let (a, b) = UnixStream::pair().unwrap();
    let a = AsyncNode::unix(a, Config::default()).unwrap();
    let small_queue = Config {
        queue_depth: 8,
        ..Config::default()
    };
    let (_tx_b, rx) = AsyncNode::unix(b, small_queue).unwrap().split();
    let rx = Arc::new(rx);
    let receivers: Vec<_> = (0..TASKS)
        .map(|_| {
            let rx = rx.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                loop {
                    match rx.recv().await {
                        Ok(Received::Message(m)) => {
                            assert_eq!(m.body(), m.id().to_le_bytes());
                            ids.push(m.id());
                        }
                        Ok(other) => panic!("{other:?}"),
                        Err(RecvError::Closed) => return ids,
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    for id in 1..=MESSAGES {
        a.send_with_id(id, &id.to_le_bytes()).await.unwrap();
    }
    a.close_write().await.unwrap();
    let mut all = Vec::new();
    for r in receivers {
        all.extend(r.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(all, (1..=MESSAGES).collect::<Vec<_>>());
    assert!(matches!(
        rx.try_recv(),
        Err(TryRecvError::Recv(RecvError::Closed))
    ));
}

#[tokio::test(flavor = "current_thread")]
async fn an_autocorked_burst_reaches_the_peer_without_a_flush_and_a_lone_send_goes_at_once() {
    let (a, b) = UnixStream::pair().unwrap();
    let a = AsyncNode::unix(a, Config::default()).unwrap();
    let b = AsyncNode::unix(b, Config::default()).unwrap();
    // The first send has no burst to join: it is written before `send` returns.
    let writes = a.metrics().tx.writes;
    a.send_with_id(1, b"ping").await.unwrap();
    assert_eq!(a.metrics().tx.writes, writes + 1);
    match b.recv().await.unwrap() {
        Received::Message(m) => assert_eq!(m.body(), b"ping"),
        other => panic!("{other:?}"),
    }
    b.send_with_id(1, b"pong").await.unwrap();
    assert!(matches!(a.recv().await.unwrap(), Received::Message(_)));
    // A reply came: the next request is written through however soon it follows.
    let writes = a.metrics().tx.writes;
    a.send_with_id(2, b"ping").await.unwrap();
    assert_eq!(a.metrics().tx.writes, writes + 1);
    assert!(matches!(b.recv().await.unwrap(), Received::Message(_)));
    // A burst (some of it may be corked): every message arrives, in order, without a flush
    // or a close; the last ones are written by the flusher task once this task waits.
    for id in 10..1010u32 {
        a.send_with_id(id, &rule_r(200)).await.unwrap();
    }
    for id in 10..1010u32 {
        match b.recv().await.unwrap() {
            Received::Message(m) => assert_eq!((m.id(), m.body()), (id, &rule_r(200)[..])),
            other => panic!("{other:?}"),
        }
    }
    // Dropping the sender right after a burst loses nothing: the armed burst keeps it alive
    // until the flusher has written it.
    let (tx, _rx) = a.split();
    for id in 2000..2100u32 {
        tx.send_with_id(id, b"tail").await.unwrap();
    }
    drop(tx);
    for id in 2000..2100u32 {
        match b.recv().await.unwrap() {
            Received::Message(m) => assert_eq!(m.id(), id),
            other => panic!("{other:?}"),
        }
    }
}

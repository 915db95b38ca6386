//! mux-std's [`AsyncNode`](mux_std::tokio::AsyncNode) moving messages over a Unix socket pair
//! between two threads, each running a current-thread tokio runtime: the same set-up as
//! [`yamux_peer`](crate::yamux_peer), so that the two compare on one runtime.

use std::os::unix::net::UnixStream;

use crate::e2e::{runtime, to_tokio};
use std::thread;
use std::time::Instant;

use mux_std::tokio::{AsyncReceiver, AsyncSender};
use mux_std::{Config, Received, RecvError};

/// `count` messages of `msg_len` bytes from `senders` concurrent tasks on the client thread,
/// received whole on the server thread.
pub fn run(msg_len: usize, count: usize, senders: usize) -> crate::e2e::Run {
    run_batched(msg_len, count, senders, 0)
}

/// [`run`], but with `batch > 0` every task sends with `send_buffered` and flushes after
/// every `batch` messages of its own (and at its end).
pub fn run_batched(msg_len: usize, count: usize, senders: usize, batch: usize) -> crate::e2e::Run {
    let (a, b) = UnixStream::pair().expect("socketpair");
    let receiver = thread::spawn(move || {
        runtime().block_on(async move {
            let (read, _write) = to_tokio(b).into_split();
            let rx = AsyncReceiver::spawn(read, &Config::default()).expect("receiver");
            let (mut messages, mut bytes) = (0u64, 0u64);
            loop {
                match rx.recv().await {
                    Ok(Received::Message(m)) => {
                        assert_eq!(m.len(), msg_len, "message size");
                        messages += 1;
                        bytes += m.len() as u64;
                    }
                    Ok(other) => panic!("unexpected {other:?}"),
                    Err(RecvError::Closed) => break,
                    Err(e) => panic!("receive: {e}"),
                }
            }
            ((messages, bytes), Instant::now())
        })
    });
    let senders = senders.max(1);
    let start = Instant::now();
    runtime().block_on(async move {
        let (_read, write) = to_tokio(a).into_split();
        let tx = AsyncSender::new(write, &Config::default()).expect("sender");
        // As a node's sender: plain sends autocork (`Config::autocork`).
        tx.autocork();
        let payload = crate::payload(msg_len);
        let (tx, payload) = (&tx, &payload);
        let tasks = (0..senders).map(|t| async move {
            let n = count / senders + usize::from(t < count % senders);
            for k in 0..n {
                if batch == 0 {
                    tx.send(payload).await.expect("send");
                    continue;
                }
                tx.send_buffered(payload).await.expect("send");
                if (k + 1) % batch == 0 || k + 1 == n {
                    tx.flush().await.expect("flush");
                }
            }
        });
        futures::future::join_all(tasks).await;
        tx.close().await.expect("close");
    });
    let ((messages, bytes), end) = receiver.join().expect("receiver");
    assert_eq!(messages, count as u64, "AsyncNode lost messages");
    crate::e2e::Run {
        messages,
        bytes,
        secs: (end - start).as_secs_f64(),
    }
}

/// A lone ping-pong between two [`AsyncNode`](mux_std::tokio::AsyncNode)s over a Unix socket
/// pair, each on its own thread's current-thread runtime: `rounds` round trips of a
/// `len`-byte message echoed back, with [`Config::autocork`] `autocork` on both. Returns the
/// median round trip in nanoseconds (from just before the send to the reply's arrival).
pub fn ping_pong(len: usize, rounds: usize, autocork: std::time::Duration) -> f64 {
    use mux_std::tokio::AsyncNode;
    let (a, b) = UnixStream::pair().expect("socketpair");
    let cfg = Config {
        autocork,
        ..Config::default()
    };
    let server_cfg = cfg.clone();
    let echo = thread::spawn(move || {
        runtime().block_on(async move {
            let server = AsyncNode::unix(to_tokio(b), server_cfg).expect("node");
            while let Ok(Received::Message(m)) = server.recv().await {
                server.send(m.body()).await.expect("echo");
            }
        })
    });
    let rtt = runtime().block_on(async move {
        let client = AsyncNode::unix(to_tokio(a), cfg).expect("node");
        let payload = crate::payload(len);
        let mut rtt = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let t = Instant::now();
            client.send(&payload).await.expect("send");
            match client.recv().await {
                Ok(Received::Message(m)) => assert_eq!(m.body().len(), len),
                other => panic!("unexpected {other:?}"),
            }
            rtt.push(t.elapsed().as_nanos() as f64);
        }
        client.close_write().await.expect("close");
        rtt
    });
    echo.join().expect("echo thread");
    let mut rtt = rtt;
    crate::timing::median(&mut rtt)
}

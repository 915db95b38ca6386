//! Dropping or closing a node whose peer keeps the connection open releases everything: the
//! reader thread (or task), its file descriptor and its buffer. Threads and descriptors are
//! counted for the whole process, so the tests of this file run one at a time.

use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mux_std::{Config, Node};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The process's reader threads (named `mux-reader`): the test harness's own threads come
/// and go.
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter(|t| {
            let comm = t.as_ref().unwrap().path().join("comm");
            std::fs::read_to_string(comm).is_ok_and(|name| name.trim() == "mux-reader")
        })
        .count()
}

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Waits up to 10 s for the thread and descriptor counts to come down to at most these.
fn settles_to(threads_max: usize, fds_max: usize) -> (usize, usize) {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let now = (threads(), fds());
        if (now.0 <= threads_max && now.1 <= fds_max) || Instant::now() > until {
            return now;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Nodes of both kinds, and their peers (kept open).
type Fifty = (
    Vec<Node<UnixStream>>,
    Vec<Node<TcpStream>>,
    Vec<Box<dyn Send>>,
);

/// 25 nodes over Unix socket pairs and 25 over TCP loopback; their peers stay open (kept in
/// the returned list) and send nothing.
fn fifty_nodes(listener: &TcpListener) -> Fifty {
    let mut peers: Vec<Box<dyn Send>> = Vec::new();
    let mut unix = Vec::new();
    let mut tcp = Vec::new();
    for _ in 0..25 {
        let (a, b) = UnixStream::pair().unwrap();
        peers.push(Box::new(b));
        let node = Node::unix(a, Config::default()).unwrap();
        node.send(b"hello").unwrap();
        unix.push(node);
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        peers.push(Box::new(client));
        let node = Node::tcp(server, Config::default()).unwrap();
        node.send(b"hello").unwrap();
        tcp.push(node);
    }
    (unix, tcp, peers)
}

#[test]
fn dropping_nodes_whose_peers_stay_open_releases_threads_and_fds() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let (t0, f0) = (threads(), fds());
    let (unix, tcp, peers) = fifty_nodes(&listener);
    // (A thread names itself once it runs.)
    let until = Instant::now() + Duration::from_secs(10);
    while threads() < t0 + 50 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(threads() >= t0 + 50, "a reader thread per node");
    drop(unix);
    drop(tcp);
    // What is left: the 50 peers' descriptors, no reader thread.
    let (t, f) = settles_to(t0, f0 + 50);
    assert!(t <= t0, "reader threads left: {t} against {t0} before");
    assert!(
        f <= f0 + 50,
        "descriptors left: {f} against {f0} + 50 peers"
    );
    drop(peers);
}

/// Start of message 5 and one byte of it: the peer leaves it open.
const OPEN_5: [u8; 19] = [1, 0, 0, 0, 5, 0, 0, 0, 0, 3, 0, 0, 0, 5, 0, 0, 0, 1, b'x'];

#[test]
fn close_timeout_forces_a_close_the_peer_never_answers() {
    use std::io::{Read, Write};
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let t0 = threads();
    for (tcp, peer_closes) in [(false, false), (true, false), (false, true)] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let (report, mut peer, elapsed) = if tcp {
            let mut peer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let node = Node::tcp(listener.accept().unwrap().0, Config::default()).unwrap();
            peer.write_all(&OPEN_5).unwrap();
            node.send(b"bye").unwrap();
            let t = Instant::now();
            let report = node.close_timeout(Duration::from_millis(100)).unwrap();
            (report, Box::new(peer) as Box<dyn Read>, t.elapsed())
        } else {
            let (a, mut peer) = UnixStream::pair().unwrap();
            let node = Node::unix(a, Config::default()).unwrap();
            peer.write_all(&OPEN_5).unwrap();
            node.send(b"bye").unwrap();
            if peer_closes {
                peer.shutdown(std::net::Shutdown::Write).unwrap();
            }
            let t = Instant::now();
            let report = node.close_timeout(Duration::from_millis(100)).unwrap();
            (report, Box::new(peer) as Box<dyn Read>, t.elapsed())
        };
        let what = format!("tcp {tcp}, peer closes {peer_closes}");
        assert!(elapsed < Duration::from_secs(2), "{what}: took {elapsed:?}");
        assert_eq!(report.forced, !peer_closes, "{what}");
        assert_eq!(report.unfinished, [5], "{what}");
        assert!(
            matches!(
                report.undelivered[..],
                [mux_std::Received::Error(
                    mux_std::ProtocolError::Unfinished { id: 5 }
                )]
            ),
            "{what}: {:?}",
            report.undelivered
        );
        // Our side ended cleanly: the peer read our message and our end of stream.
        let mut wire = Vec::new();
        peer.read_to_end(&mut wire).unwrap();
        assert_eq!(wire.len(), 9 + 9 + 3 + 9, "{what}");
    }
    let (t, _) = settles_to(t0, usize::MAX);
    assert!(t <= t0, "reader threads left: {t} against {t0} before");
}

#[cfg(feature = "tokio")]
mod tokio_nodes {
    use super::*;
    use mux_std::tokio::AsyncNode;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn dropping_async_nodes_whose_peers_stay_open_releases_tasks_and_fds() {
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let rt = runtime();
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let (f0, tasks0) = (
                fds(),
                tokio::runtime::Handle::current()
                    .metrics()
                    .num_alive_tasks(),
            );
            let mut peers: Vec<Box<dyn Send>> = Vec::new();
            let mut unix = Vec::new();
            let mut tcp = Vec::new();
            for _ in 0..25 {
                let (a, b) = tokio::net::UnixStream::pair().unwrap();
                peers.push(Box::new(b));
                let node = AsyncNode::unix(a, Config::default()).unwrap();
                node.send(b"hello").await.unwrap();
                unix.push(node);
                let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
                    .await
                    .unwrap();
                let (server, _) = listener.accept().await.unwrap();
                peers.push(Box::new(client));
                let node = AsyncNode::tcp(server, Config::default()).unwrap();
                node.send(b"hello").await.unwrap();
                tcp.push(node);
            }
            let metrics = tokio::runtime::Handle::current().metrics();
            assert!(
                metrics.num_alive_tasks() >= tasks0 + 50,
                "a reader task per node"
            );
            drop(unix);
            drop(tcp);
            let until = Instant::now() + Duration::from_secs(10);
            while (fds() > f0 + 50 || metrics.num_alive_tasks() > tasks0) && Instant::now() < until
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let (f, tasks) = (fds(), metrics.num_alive_tasks());
            assert!(
                tasks <= tasks0,
                "reader tasks left: {tasks} against {tasks0} before"
            );
            assert!(
                f <= f0 + 50,
                "descriptors left: {f} against {f0} + 50 peers"
            );
            drop(peers);
        });
    }

    #[test]
    fn async_close_timeout_forces_a_close_the_peer_never_answers() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let rt = runtime();
        rt.block_on(async {
            for peer_closes in [false, true] {
                let (a, mut peer) = tokio::net::UnixStream::pair().unwrap();
                let node = AsyncNode::unix(a, Config::default()).unwrap();
                peer.write_all(&OPEN_5).await.unwrap();
                node.send(b"bye").await.unwrap();
                if peer_closes {
                    peer.shutdown().await.unwrap();
                }
                let t = Instant::now();
                let report = tokio::time::timeout(
                    Duration::from_secs(5),
                    node.close_timeout(Duration::from_millis(100)),
                )
                .await
                .expect("close_timeout returned")
                .unwrap();
                let elapsed = t.elapsed();
                assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
                assert_eq!(report.forced, !peer_closes);
                assert_eq!(report.unfinished, [5]);
                assert!(
                    matches!(
                        report.undelivered[..],
                        [mux_std::Received::Error(
                            mux_std::ProtocolError::Unfinished { id: 5 }
                        )]
                    ),
                    "{:?}",
                    report.undelivered
                );
                let mut wire = Vec::new();
                peer.read_to_end(&mut wire).await.unwrap();
                assert_eq!(wire.len(), 9 + 9 + 3 + 9);
            }
        });
    }
}

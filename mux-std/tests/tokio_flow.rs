//! The tokio sender's cap on messages under way (`Config::max_sending`, feature `tokio`).
#![cfg(feature = "tokio")]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mux_std::tokio::AsyncNode;
use mux_std::{Config, Received, RecvError, SendError, SendOptions};
use tokio::net::UnixStream;

/// 400 tasks each send 1 MiB at once; the peer admits 256 messages in flight (both nodes
/// default). The tokio sender holds the write lock for one chunk at a time, so without a cap
/// all 400 messages are under way together and the peer refuses those past 256
/// (`TooManyStreams`) although their sends return `Ok`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_tasks_than_the_peer_admits_every_ok_send_is_delivered() {
    const TASKS: usize = 400;
    const SIZE: usize = 1 << 20;
    let (a, b) = UnixStream::pair().unwrap();
    let a = Arc::new(AsyncNode::unix(a, Config::default()).unwrap());
    let b = AsyncNode::unix(b, Config::default()).unwrap();
    let payload: Arc<Vec<u8>> = Arc::new((0..SIZE).map(|i| (i * 31 + 7) as u8).collect());
    let p = payload.clone();
    let receiver = tokio::spawn(async move {
        let mut delivered = HashSet::new();
        let mut other = Vec::new();
        loop {
            match b.recv().await {
                Ok(Received::Message(m)) => {
                    assert!(m.body() == &p[..], "message {} intact", m.id());
                    assert!(delivered.insert(m.id()));
                }
                Ok(item) => other.push(format!("{item:?}")),
                Err(RecvError::Closed) => break,
                Err(e) => panic!("{e}"),
            }
        }
        (delivered, other, b.metrics().rx.errors)
    });
    let senders: Vec<_> = (0..TASKS)
        .map(|_| {
            let (a, p) = (a.clone(), payload.clone());
            tokio::spawn(async move { a.send(&p).await })
        })
        .collect();
    let mut sent = HashSet::new();
    for h in senders {
        sent.insert(h.await.unwrap().expect("send"));
    }
    a.close_write().await.unwrap();
    let (delivered, other, errors) = tokio::time::timeout(Duration::from_secs(120), receiver)
        .await
        .expect("the receiver ends")
        .unwrap();
    println!(
        "{} sends Ok, {} delivered, {} other items, errors {errors:?}",
        sent.len(),
        delivered.len(),
        other.len()
    );
    assert!(other.is_empty(), "{:?}", &other[..other.len().min(5)]);
    assert_eq!(errors.total(), 0);
    assert_eq!(sent, delivered, "every Ok send is delivered");
}

/// With `max_sending` 1 and a message under way (stuck: the peer does not read), a send
/// with a deadline waits for a slot, gives up at its deadline and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_waiting_for_a_slot_gives_up_at_its_deadline_and_writes_nothing() {
    let (a, b) = UnixStream::pair().unwrap();
    let cfg = Config {
        max_sending: 1,
        ..Config::default()
    };
    let a = Arc::new(AsyncNode::unix(a, cfg).unwrap());
    // 8 MiB: far more than the socket holds, so the first send is stuck in the kernel.
    let big = Arc::new(vec![7u8; 8 << 20]);
    let first = {
        let (a, big) = (a.clone(), big.clone());
        tokio::spawn(async move { a.send_with_id(1, &big).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let opts = SendOptions {
        id: Some(2),
        deadline: Some(Instant::now() + Duration::from_millis(100)),
        ..SendOptions::default()
    };
    let started = Instant::now();
    let r = a.send_with(b"late", &opts).await;
    assert!(matches!(r, Err(SendError::TimedOut)), "{r:?}");
    assert!(started.elapsed() >= Duration::from_millis(90));
    // Now read: message 1 arrives whole, and nothing of message 2.
    let b = AsyncNode::unix(b, Config::default()).unwrap();
    first.await.unwrap().unwrap();
    a.close_write().await.unwrap();
    let mut items = Vec::new();
    loop {
        match b.recv().await {
            Ok(item) => items.push(item),
            Err(RecvError::Closed) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(items.len(), 1, "{items:?}");
    assert!(matches!(&items[0], Received::Message(m) if m.id() == 1 && m.len() == 8 << 20));
}

//! The tokio sender's cap on messages under way (`Config::max_sending`, feature `tokio`).
#![cfg(feature = "tokio")]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mux_nostd::{Decoder, FrameEvent, FrameType};
use mux_std::tokio::AsyncNode;
use mux_std::{Config, Received, RecvError, SendError, SendOptions};
use mux_test_support::rule_r;
use tokio::io::AsyncReadExt;
use tokio::net::UnixStream;

/// 400 tasks each send 1 MiB at once; the peer admits 256 messages in flight (both nodes
/// default). The tokio sender holds the write lock for one chunk at a time, so without a cap
/// all 400 messages are under way together and the peer refuses those past 256
/// (`TooManyStreams`) although their sends return `Ok`. The 256 messages under way hold up
/// to 256 MiB at the peer, past the default `assembly_budget` (64 MiB), so the peer's budget
/// is raised here: this test is about the cap on messages, not the memory budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_tasks_than_the_peer_admits_every_ok_send_is_delivered() {
    const TASKS: usize = 400;
    const SIZE: usize = 1 << 20;
    let (a, b) = UnixStream::pair().unwrap();
    let a = Arc::new(AsyncNode::unix(a, Config::default()).unwrap());
    let roomy = Config {
        assembly_budget: 1 << 30,
        ..Config::default()
    };
    let b = AsyncNode::unix(b, roomy).unwrap();
    let payload = Arc::new(rule_r(SIZE));
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

/// With `max_sending` 1, a message sent while another is under way starts only after that
/// one ends. Without the cap it would not: the tokio sender gives the write lock up after
/// every Data frame, so the second message's frames would go out between the first's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_max_sending_1_a_second_message_starts_after_the_first_ends() {
    let (a, mut b) = UnixStream::pair().unwrap();
    let cfg = Config {
        max_sending: 1,
        ..Config::default()
    };
    let a = Arc::new(AsyncNode::unix(a, cfg).unwrap());
    // 8 MiB: far more than the socket holds, so message 1 is under way (stuck) for a while.
    let big = Arc::new(rule_r(8 << 20));
    let first = {
        let (a, big) = (a.clone(), big.clone());
        tokio::spawn(async move { a.send_with_id(1, &big).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = {
        let a = a.clone();
        tokio::spawn(async move { a.send_with_id(2, b"small").await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    // A send with a deadline waiting for the slot gives up and writes nothing.
    let opts = SendOptions {
        id: Some(3),
        deadline: Some(Instant::now() + Duration::from_millis(100)),
        ..SendOptions::default()
    };
    let r = a.send_with(b"late", &opts).await;
    assert!(matches!(r, Err(SendError::TimedOut)), "{r:?}");
    let reader = tokio::spawn(async move {
        let mut wire = Vec::new();
        b.read_to_end(&mut wire).await.unwrap();
        wire
    });
    first.await.unwrap().unwrap();
    second.await.unwrap().unwrap();
    a.close_write().await.unwrap();
    let frames = frames_of(&reader.await.unwrap());
    let at = |t: u8, id: u32| frames.iter().position(|&f| f == (t, id));
    let (end1, start2) = (at(2, 1).expect("End(1)"), at(1, 2).expect("Start(2)"));
    assert!(
        start2 > end1,
        "Start(2) at frame {start2}, End(1) at frame {end1}"
    );
    assert_eq!(at(1, 3), None, "nothing of message 3");
}

/// The (type, id) of every frame of `wire`, in order (Data once per frame).
fn frames_of(wire: &[u8]) -> Vec<(u8, u32)> {
    let mut decoder = Decoder::new(u32::MAX);
    let mut out = Vec::new();
    let mut rest = wire;
    while !rest.is_empty() {
        let (used, ev) = decoder.decode(rest);
        rest = &rest[used..];
        match ev {
            Some(FrameEvent::Start { id, .. }) => out.push((FrameType::Start as u8, id)),
            Some(FrameEvent::Data {
                id, first: true, ..
            }) => out.push((FrameType::Data as u8, id)),
            Some(FrameEvent::End { id }) => out.push((FrameType::End as u8, id)),
            Some(FrameEvent::Abort { id }) => out.push((FrameType::Abort as u8, id)),
            Some(FrameEvent::Error(e)) => panic!("{e}"),
            Some(FrameEvent::Data { .. }) | None => {}
        }
    }
    assert_eq!(decoder.finish(), Ok(()), "whole frames");
    out
}

//! Autocorking of plain sends over real Unix socket pairs: bursts gather, lone sends and a
//! ping-pong's requests are written through, a burst's tail leaves without a flush, close and
//! drop write what is corked, a failed write of the flusher breaks the link.

#![cfg(unix)]

use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mux_std::{Config, ConfigError, MAX_AUTOCORK, Node, Received, Receiver, Sender};

/// A socket that counts its write calls.
struct Counted {
    s: UnixStream,
    writes: Arc<AtomicU64>,
}

impl Write for Counted {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.s.write(buf)
    }
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.s.write_vectored(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn cfg(gap: Duration) -> Config {
    Config {
        autocork: gap,
        ..Config::default()
    }
}

/// A corking sender over one end of a socket pair (counting its writes) and a receiver over
/// the other.
fn pair(gap: Duration) -> (Sender<Counted>, Arc<AtomicU64>, Receiver) {
    let (a, b) = UnixStream::pair().unwrap();
    let writes = Arc::new(AtomicU64::new(0));
    let tx = Sender::new(
        Counted {
            s: a,
            writes: writes.clone(),
        },
        &cfg(gap),
    )
    .unwrap();
    tx.autocork().unwrap();
    (tx, writes, Receiver::spawn(b, &cfg(gap)).unwrap())
}

fn body(r: Received) -> Vec<u8> {
    match r {
        Received::Message(m) => m.body().to_vec(),
        other => panic!("expected a message, got {other:?}"),
    }
}

/// Receives `n` messages (a generous timeout each: failing means they never came).
fn take(rx: &Receiver, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|_| {
            body(
                rx.recv_timeout(Duration::from_secs(10))
                    .expect("message arrives"),
            )
        })
        .collect()
}

#[test]
fn a_burst_of_small_sends_leaves_in_few_writes_and_every_message_arrives_without_a_flush() {
    let (tx, writes, rx) = pair(Duration::from_micros(200));
    let n = 20_000;
    let reader = std::thread::spawn(move || take(&rx, n));
    for i in 0..n {
        let mut p = vec![0u8; 1024];
        p[..4].copy_from_slice(&(i as u32).to_be_bytes());
        tx.send(&p).unwrap();
    }
    // No flush, no close: the flusher writes the burst's tail.
    let got = reader.join().unwrap();
    for (i, p) in got.iter().enumerate() {
        assert_eq!(p.len(), 1024);
        assert_eq!(&p[..4], &(i as u32).to_be_bytes(), "in order");
    }
    let w = writes.load(Ordering::Relaxed);
    assert!(
        w < n as u64 / 4,
        "{w} write calls for {n} messages: the burst did not gather"
    );
    assert_eq!(tx.counts().messages, n as u64);
}

#[test]
fn a_send_after_a_pause_is_written_before_send_returns() {
    let (tx, writes, rx) = pair(Duration::from_millis(1));
    for k in 1..=3u64 {
        tx.send(b"reading").unwrap();
        assert_eq!(writes.load(Ordering::Relaxed), k, "written through");
        assert_eq!(
            body(rx.recv_timeout(Duration::from_secs(10)).unwrap()),
            b"reading"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn every_request_of_a_ping_pong_is_written_through() {
    // The longest gap: without the rule "write through once a reply came", every request
    // after the first would wait in the buffer.
    let (a, b) = UnixStream::pair().unwrap();
    let client = Node::unix(a, cfg(MAX_AUTOCORK)).unwrap();
    let server = Node::unix(b, cfg(MAX_AUTOCORK)).unwrap();
    let echo = std::thread::spawn(move || {
        for _ in 0..200 {
            let p = body(server.recv().unwrap());
            let before = server.sender().counts().writes;
            server.send(&p).unwrap();
            assert_eq!(
                server.sender().counts().writes,
                before + 1,
                "reply written through"
            );
        }
    });
    for i in 0..200u32 {
        let before = client.sender().counts().writes;
        client.send(&i.to_be_bytes()).unwrap();
        assert_eq!(
            client.sender().counts().writes,
            before + 1,
            "request {i} written through"
        );
        assert_eq!(body(client.recv().unwrap()), i.to_be_bytes());
    }
    echo.join().unwrap();
}

#[test]
fn close_and_drop_write_what_is_corked() {
    for close in [true, false] {
        let (tx, writes, rx) = pair(MAX_AUTOCORK);
        for i in 0..50u32 {
            tx.send(&i.to_be_bytes()).unwrap();
        }
        assert!(writes.load(Ordering::Relaxed) < 50, "some were corked");
        if close {
            tx.close().unwrap();
        } else {
            drop(tx);
        }
        let got = take(&rx, 50);
        for (i, p) in got.iter().enumerate() {
            assert_eq!(p[..], (i as u32).to_be_bytes());
        }
        assert!(matches!(
            rx.recv_timeout(Duration::from_secs(10)),
            Err(mux_std::TryRecvError::Recv(_))
        ));
    }
}

/// A sink that takes the first message ("first": 32 bytes on the wire) and fails after.
struct FailsAfterOne(usize);

impl Write for FailsAfterOne {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.0 >= 32 {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "gone"));
        }
        let n = buf.len().min(32 - self.0);
        self.0 += n;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_failed_write_of_the_flusher_breaks_the_link_for_the_next_send() {
    let tx = Sender::new(FailsAfterOne(0), &cfg(MAX_AUTOCORK)).unwrap();
    tx.autocork().unwrap();
    tx.send(b"first").unwrap(); // written through
    tx.send(b"second").unwrap(); // corked: the flusher's write fails
    let mut waited = 0;
    while !tx.is_broken() {
        std::thread::sleep(Duration::from_millis(5));
        waited += 1;
        assert!(waited < 2000, "the flusher never wrote");
    }
    assert!(tx.send(b"third").is_err());
}

#[test]
fn off_means_every_send_is_written_through_and_the_gap_is_bounded() {
    let (tx, writes, rx) = pair(Duration::ZERO);
    for k in 1..=100u64 {
        tx.send(b"x").unwrap();
        assert_eq!(writes.load(Ordering::Relaxed), k);
    }
    assert_eq!(take(&rx, 100).len(), 100);
    let too_long = cfg(MAX_AUTOCORK + Duration::from_micros(1));
    assert!(matches!(
        too_long.validate(),
        Err(ConfigError::TooLarge {
            field: "autocork",
            ..
        })
    ));
}

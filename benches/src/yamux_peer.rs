//! The peer a Rust user would pick instead: the `yamux` crate (default configuration) moving
//! the same messages over the same kind of Unix socket pair, between two threads.
//!
//! Each side runs a current-thread tokio runtime on its own thread (the socket adapted to
//! `futures`' I/O traits with `tokio-util`'s compat layer). How messages map to streams:
//! - [`Mapping::Shared`]: each sender opens one stream and writes its messages on it back to
//!   back, each prefixed with its length (4 bytes, big-endian; prefix and payload prepared
//!   once, so one `write_all` per message and no copy); the receiver reads the prefix, then the
//!   payload into a buffer it reuses;
//! - [`Mapping::PerMessage`]: every message is its own stream (open, write, close, then wait
//!   for the receiver's close), up to [`PER_MESSAGE_WINDOW`] in flight per sender; the
//!   receiver reads each stream to its end and drops it.

use std::cell::{Cell, RefCell};
use std::os::unix::net::UnixStream;

use crate::e2e::{runtime, to_tokio};
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::thread;
use std::time::Instant;

use futures::future::{self, poll_fn};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use tokio_util::compat::TokioAsyncReadCompatExt;
use yamux::{Config, Connection, Mode};

/// How messages map to yamux streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mapping {
    /// One stream per sender, length-prefixed messages on it.
    Shared,
    /// One stream per message.
    PerMessage,
}

/// `count` messages of `msg_len` bytes from `senders` concurrent senders (async tasks on the
/// client thread), mapped to streams as `mapping` says.
pub fn run(msg_len: usize, count: usize, senders: usize, mapping: Mapping) -> crate::e2e::Run {
    let (a, b) = UnixStream::pair().expect("socketpair");
    let receiver = thread::spawn(move || {
        let rt = runtime();
        rt.block_on(async move { server(to_tokio(b), msg_len, count, mapping).await })
    });
    let senders = senders.max(1);
    let rt = runtime();
    let start = Instant::now();
    rt.block_on(async move { client(to_tokio(a), msg_len, count, senders, mapping).await });
    let ((messages, bytes), end) = receiver.join().expect("receiver");
    assert_eq!(messages, count as u64, "yamux lost messages");
    crate::e2e::Run {
        messages,
        bytes,
        secs: (end - start).as_secs_f64(),
    }
}

async fn client(
    sock: tokio::net::UnixStream,
    msg_len: usize,
    count: usize,
    senders: usize,
    mapping: Mapping,
) {
    let conn = RefCell::new(Connection::new(
        sock.compat(),
        Config::default(),
        Mode::Client,
    ));
    let payload = crate::payload(msg_len);
    let mut framed = (msg_len as u32).to_be_bytes().to_vec();
    framed.extend_from_slice(&payload);
    let (framed, payload) = (&framed, &payload);
    let conn = &conn;
    // Drives the connection: outbound frames are written and inbound frames (window updates)
    // read only while this is polled. It runs until the server, having received everything,
    // closes the connection (closing it from this side could drop data the server has not
    // read yet).
    let driver = poll_fn(|cx| {
        loop {
            match conn.borrow_mut().poll_next_inbound(cx) {
                Poll::Ready(Some(Ok(_))) => continue,
                Poll::Ready(Some(Err(_)) | None) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
    });
    let work = async move {
        let senders = (0..senders).map(|t| async move {
            let n = count / senders + usize::from(t < count % senders);
            match mapping {
                Mapping::Shared => {
                    let mut s = open_stream(conn).await;
                    for _ in 0..n {
                        s.write_all(framed).await.expect("write");
                    }
                    s.close().await.expect("close stream");
                }
                Mapping::PerMessage => {
                    // Up to PER_MESSAGE_WINDOW messages in flight per sender; each waits for
                    // the server's end of its stream, which keeps the stream count bounded.
                    futures::stream::iter(0..n)
                        .for_each_concurrent(PER_MESSAGE_WINDOW, |_| async move {
                            let mut s = open_stream(conn).await;
                            s.write_all(payload).await.expect("write");
                            s.close().await.expect("close stream");
                            let mut end = [0u8; 1];
                            let n = s.read(&mut end).await.expect("read the server's close");
                            assert_eq!(n, 0, "the server sends nothing");
                        })
                        .await;
                }
            }
        });
        future::join_all(senders).await;
    };
    future::join(driver, work).await;
}

/// Messages in flight per sender with [`Mapping::PerMessage`].
pub const PER_MESSAGE_WINDOW: usize = 32;

/// Opens a stream. (yamux's stream limit, 512, must never be hit: the error closes the
/// connection, hence the bounded window of the per-message sender.)
async fn open_stream<T>(conn: &RefCell<Connection<T>>) -> yamux::Stream
where
    T: futures::AsyncRead + futures::AsyncWrite + Unpin,
{
    poll_fn(|cx| conn.borrow_mut().poll_new_outbound(cx))
        .await
        .expect("yamux open stream")
}

async fn server(
    sock: tokio::net::UnixStream,
    msg_len: usize,
    count: usize,
    mapping: Mapping,
) -> ((u64, u64), Instant) {
    let mut conn = Connection::new(sock.compat(), Config::default(), Mode::Server);
    let messages = Rc::new(Cell::new(0u64));
    let bytes = Rc::new(Cell::new(0u64));
    // Woken by a reader when it has counted a message.
    let waker: Rc<RefCell<Option<Waker>>> = Rc::new(RefCell::new(None));
    let local = tokio::task::LocalSet::new();
    let end = local
        .run_until(async {
            // Accept streams until every message has arrived.
            poll_fn(|cx| {
                loop {
                    if messages.get() >= count as u64 {
                        return Poll::Ready(());
                    }
                    *waker.borrow_mut() = Some(cx.waker().clone());
                    match conn.poll_next_inbound(cx) {
                        Poll::Ready(Some(Ok(s))) => {
                            let counters =
                                (Rc::clone(&messages), Rc::clone(&bytes), Rc::clone(&waker));
                            tokio::task::spawn_local(read_stream(s, msg_len, mapping, counters));
                        }
                        Poll::Ready(Some(Err(e))) => panic!("yamux server: {e}"),
                        Poll::Ready(None) => panic!("yamux server: connection closed early"),
                        Poll::Pending => return Poll::Pending,
                    }
                }
            })
            .await;
            let end = Instant::now();
            // Close; the client's driver sees the end and returns. Errors here do not matter.
            let _ = poll_fn(|cx| conn.poll_close(cx)).await;
            end
        })
        .await;
    ((messages.get(), bytes.get()), end)
}

type Counters = (Rc<Cell<u64>>, Rc<Cell<u64>>, Rc<RefCell<Option<Waker>>>);

async fn read_stream(mut s: yamux::Stream, msg_len: usize, mapping: Mapping, counters: Counters) {
    let (messages, bytes, waker) = counters;
    let count = |n: usize| {
        messages.set(messages.get() + 1);
        bytes.set(bytes.get() + n as u64);
        if let Some(w) = waker.borrow_mut().take() {
            w.wake();
        }
    };
    let mut buf = Vec::with_capacity(msg_len);
    match mapping {
        Mapping::Shared => loop {
            let mut len = [0u8; 4];
            if s.read_exact(&mut len).await.is_err() {
                break; // end of the stream
            }
            let len = u32::from_be_bytes(len) as usize;
            assert_eq!(len, msg_len, "message size");
            buf.resize(len, 0);
            s.read_exact(&mut buf).await.expect("read payload");
            count(len);
        },
        Mapping::PerMessage => {
            let n = s.read_to_end(&mut buf).await.expect("read stream");
            assert_eq!(n, msg_len, "message size");
            count(n);
        }
    }
}

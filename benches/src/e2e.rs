//! End to end: messages between two threads over a Unix socket pair (`socketpair(2)`) or a TCP
//! connection over loopback, with the raw connection as the floor.
//!
//! Every run creates a fresh connection with the system's default buffer sizes, starts the
//! receiver thread, then the clock and the sender thread(s); the clock stops when the receiver
//! has taken the last byte. The receiver checks what it got.

use std::io::{self, BufWriter, IoSlice, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Instant;

use embedded_io_adapters::std::FromStd;
use mux_nostd::{Hybrid, Limits, Pool, Reader, Reassembler, Received, Writer};

/// Receive buffer of every receiver (raw and ours): one `read(2)` takes at most this much.
pub const RX_BUF: usize = 64 * 1024;
/// The sender's `BufWriter` capacity: frames are gathered into writes of about this size
/// (`embedded-io` has no vectored write, so the no_std core's frames reach the socket through
/// this copy; 256 KiB rather than 64 KiB: measured 57–59 % → 67–75 % of the raw pair at 1 MiB,
/// fewer system calls).
pub const TX_BUF: usize = 256 * 1024;

/// Block size of the end-to-end receiver's pool.
pub const BLOCK: usize = 16 * 1024;
/// Blocks of the end-to-end receiver's pool: room for 9 messages of 1 MiB in flight.
pub const BLOCKS: usize = 9 * 64 + 16;

/// The pool the end-to-end receiver reassembles into.
pub static E2E_POOL: Pool<BLOCKS, BLOCK> = Pool::new();

/// What one run moved, and how long it took.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Run {
    /// Messages received.
    pub messages: u64,
    /// Payload bytes received.
    pub bytes: u64,
    /// Seconds from the first send to the last byte received.
    pub secs: f64,
}

impl Run {
    /// Messages per second.
    pub fn msgs_per_sec(&self) -> f64 {
        self.messages as f64 / self.secs
    }

    /// Payload bytes per second.
    pub fn bytes_per_sec(&self) -> f64 {
        self.bytes as f64 / self.secs
    }
}

/// What carries an end-to-end run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A Unix socket pair (`socketpair(2)`).
    Unix,
    /// A TCP connection over the loopback interface (`TCP_NODELAY` set at both ends).
    Tcp,
}

impl Transport {
    /// A fresh connection: the sending end, the receiving end.
    pub fn pair(self) -> (Duplex, Duplex) {
        match self {
            Self::Unix => {
                let (a, b) = UnixStream::pair().expect("socketpair");
                (Duplex::Unix(a), Duplex::Unix(b))
            }
            Self::Tcp => {
                let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
                let a =
                    TcpStream::connect(listener.local_addr().expect("address")).expect("connect");
                let (b, _) = listener.accept().expect("accept");
                for s in [&a, &b] {
                    s.set_nodelay(true).expect("TCP_NODELAY");
                }
                (Duplex::Tcp(a), Duplex::Tcp(b))
            }
        }
    }
}

/// One end of a [`Transport`]'s connection.
#[derive(Debug)]
pub enum Duplex {
    /// A Unix socket.
    Unix(UnixStream),
    /// A TCP socket.
    Tcp(TcpStream),
}

impl Duplex {
    /// Shuts the write direction down: the peer reads the end of the stream.
    pub fn shutdown_write(&self) -> io::Result<()> {
        match self {
            Self::Unix(s) => s.shutdown(Shutdown::Write),
            Self::Tcp(s) => s.shutdown(Shutdown::Write),
        }
    }
}

impl Read for Duplex {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Unix(s) => s.read(buf),
            Self::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Duplex {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Unix(s) => s.write(buf),
            Self::Tcp(s) => s.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Self::Unix(s) => s.write_vectored(bufs),
            Self::Tcp(s) => s.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The raw pair: `total` bytes written `write_len` at a time, read [`RX_BUF`] at a time.
/// `messages` is `total / write_len`.
pub fn raw(total: usize, write_len: usize) -> Run {
    raw_over(Transport::Unix, total, write_len, RX_BUF)
}

/// The raw connection over `transport`: `total` bytes written `write_len` at a time, read
/// `read_len` at a time. `messages` is `total / write_len`.
pub fn raw_over(transport: Transport, total: usize, write_len: usize, read_len: usize) -> Run {
    let (mut tx, mut rx) = transport.pair();
    let receiver = thread::spawn(move || {
        let mut buf = vec![0u8; read_len];
        let mut got = 0usize;
        loop {
            match rx.read(&mut buf).expect("read") {
                0 => break,
                n => got += n,
            }
        }
        (got, Instant::now())
    });
    let data = crate::payload(write_len);
    let start = Instant::now();
    let mut left = total;
    while left > 0 {
        let n = left.min(write_len);
        tx.write_all(&data[..n]).expect("write");
        left -= n;
    }
    drop(tx);
    let (got, end) = receiver.join().expect("receiver");
    assert_eq!(got, total, "raw pair lost bytes");
    Run {
        messages: (total / write_len) as u64,
        bytes: got as u64,
        secs: (end - start).as_secs_f64(),
    }
}

/// The receiving half of our runs: mux-nostd's blocking [`Reader`] over the socket with a
/// [`Reassembler`] collecting whole messages in [`E2E_POOL`]. Returns messages, bytes and the
/// time the last one arrived.
pub fn nostd_receiver(sock: impl Read, msg_len: usize) -> (u64, u64, Instant) {
    let mut buf = vec![0u8; RX_BUF];
    let core: Reassembler<'static, 16, BLOCKS, BLOCK> =
        Reassembler::new(&E2E_POOL, Limits::REFERENCE);
    let mut rx = Reader::new(FromStd::new(sock), &mut buf, core);
    let (mut messages, mut bytes) = (0u64, 0u64);
    while let Some(item) = rx.recv().expect("read") {
        match item {
            Received::Message(m) => {
                assert_eq!(m.len(), msg_len, "message size");
                messages += 1;
                bytes += m.len() as u64;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    (messages, bytes, Instant::now())
}

/// Our sender type over the socket: mux-nostd's blocking [`Writer`] (Hybrid, threshold 4096)
/// over a [`TX_BUF`]-byte `BufWriter`.
pub type NostdWriter = Writer<FromStd<BufWriter<Duplex>>, Hybrid<4096>>;

/// mux-nostd end to end: `count` messages of `msg_len` bytes from `senders` threads sharing one
/// blocking [`Writer`] (behind a mutex, one whole message per lock) to one [`Reader`].
pub fn nostd(msg_len: usize, count: usize, senders: usize) -> Run {
    nostd_over(Transport::Unix, msg_len, count, senders)
}

/// [`nostd`] over `transport`.
pub fn nostd_over(transport: Transport, msg_len: usize, count: usize, senders: usize) -> Run {
    let (tx, rx) = transport.pair();
    let receiver = thread::spawn(move || nostd_receiver(rx, msg_len));
    let payload = Arc::new(crate::payload(msg_len));
    let writer: NostdWriter = Writer::new(
        FromStd::new(BufWriter::with_capacity(TX_BUF, tx)),
        Hybrid::<4096>,
    );
    let start = Instant::now();
    if senders <= 1 {
        let mut w = writer;
        for _ in 0..count {
            w.send(&payload).expect("send");
        }
        w.flush().expect("flush");
    } else {
        let w = Arc::new(Mutex::new(writer));
        let threads: Vec<_> = (0..senders)
            .map(|t| {
                let (w, payload) = (Arc::clone(&w), Arc::clone(&payload));
                let n = count / senders + usize::from(t < count % senders);
                thread::spawn(move || {
                    for _ in 0..n {
                        w.lock().expect("writer lock").send(&payload).expect("send");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("sender");
        }
        let mut w = w.lock().expect("writer lock");
        w.flush().expect("flush");
        // Closing the socket ends the receiver's stream.
        w.get_mut()
            .inner()
            .get_ref()
            .shutdown_write()
            .expect("shutdown");
    }
    let (messages, bytes, end) = receiver.join().expect("receiver");
    assert_eq!(messages, count as u64, "messages lost");
    Run {
        messages,
        bytes,
        secs: (end - start).as_secs_f64(),
    }
}

/// mux-std end to end: `count` messages of `msg_len` bytes from `senders` threads sharing one
/// thread-safe [`mux_std::Sender`] (default configuration: Hybrid, coalescing of small frames,
/// vectored writes of large ones) to a [`mux_std::Receiver`] (its reader thread, pooled heap
/// buffers) drained by one consumer thread.
pub fn std_node(msg_len: usize, count: usize, senders: usize) -> Run {
    std_node_with(msg_len, count, senders, &mux_std::Config::default())
}

/// [`std_node`] with another configuration (both ends).
pub fn std_node_with(msg_len: usize, count: usize, senders: usize, cfg: &mux_std::Config) -> Run {
    std_node_run(Transport::Unix, msg_len, count, senders, cfg, false)
}

/// [`std_node`] over `transport`.
pub fn std_node_over(transport: Transport, msg_len: usize, count: usize, senders: usize) -> Run {
    let cfg = mux_std::Config::default();
    std_node_run(transport, msg_len, count, senders, &cfg, false)
}

/// [`std_node`] with one sender that uses [`mux_std::Sender::send_buffered`] (small frames
/// gather in the sender's shared write buffer, written when it fills) and flushes once at the
/// end, before closing: a stream of small messages in few system calls.
pub fn std_node_buffered(msg_len: usize, count: usize) -> Run {
    std_node_run(
        Transport::Unix,
        msg_len,
        count,
        1,
        &mux_std::Config::default(),
        true,
    )
}

fn std_node_run(
    transport: Transport,
    msg_len: usize,
    count: usize,
    senders: usize,
    cfg: &mux_std::Config,
    buffered: bool,
) -> Run {
    let (a, b) = transport.pair();
    let cfg = cfg.clone();
    let rx = mux_std::Receiver::spawn(b, &cfg).expect("reader thread");
    let receiver = thread::spawn(move || {
        let (mut messages, mut bytes, mut end) = (0u64, 0u64, Instant::now());
        loop {
            match rx.recv() {
                Ok(mux_std::Received::Message(m)) => {
                    assert_eq!(m.body().len(), msg_len, "message size");
                    messages += 1;
                    bytes += msg_len as u64;
                    if messages == count as u64 {
                        end = Instant::now();
                    }
                }
                Ok(other) => panic!("unexpected {other:?}"),
                Err(mux_std::RecvError::Closed) => break,
                Err(e) => panic!("receive: {e}"),
            }
        }
        (messages, bytes, end)
    });
    let payload = crate::payload(msg_len);
    let closer: mux_std::Closer<Duplex> = Box::new(|s: &mut Duplex| s.shutdown_write());
    let tx = mux_std::Sender::with_closer(a, &cfg, Some(closer)).expect("valid config");
    // As a node's sender: plain sends autocork (`Config::autocork`).
    tx.autocork().expect("autocork thread");
    let start = Instant::now();
    if buffered {
        for _ in 0..count {
            tx.send_buffered(&payload).expect("send");
        }
        tx.flush().expect("flush");
    } else if senders <= 1 {
        for _ in 0..count {
            tx.send(&payload).expect("send");
        }
    } else {
        thread::scope(|s| {
            for t in 0..senders {
                let (tx, payload) = (&tx, &payload);
                let n = count / senders + usize::from(t < count % senders);
                s.spawn(move || {
                    for _ in 0..n {
                        tx.send(payload).expect("send");
                    }
                });
            }
        });
    }
    tx.close().expect("close");
    let (messages, bytes, end) = receiver.join().expect("receiver");
    assert_eq!(messages, count as u64, "messages lost");
    Run {
        messages,
        bytes,
        secs: (end - start).as_secs_f64(),
    }
}

/// A lone ping-pong: two [`mux_std::Node`]s over a Unix socket pair, `rounds` round trips of
/// a `len`-byte message (the echoing side sends back what it received), with
/// [`Config::autocork`](mux_std::Config::autocork) `autocork` on both. Returns the median
/// round trip in nanoseconds (from just before the send to the reply's arrival).
pub fn ping_pong(len: usize, rounds: usize, autocork: std::time::Duration) -> f64 {
    let (a, b) = UnixStream::pair().expect("socket pair");
    let cfg = mux_std::Config {
        autocork,
        ..mux_std::Config::default()
    };
    let client = mux_std::Node::unix(a, cfg.clone()).expect("node");
    let server = mux_std::Node::unix(b, cfg).expect("node");
    let echo = thread::spawn(move || {
        while let Ok(mux_std::Received::Message(m)) = server.recv() {
            server.send(m.body()).expect("echo");
        }
    });
    let payload = crate::payload(len);
    let mut rtt = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        client.send(&payload).expect("send");
        match client.recv() {
            Ok(mux_std::Received::Message(m)) => assert_eq!(m.body().len(), len),
            other => panic!("unexpected {other:?}"),
        }
        rtt.push(t.elapsed().as_nanos() as f64);
    }
    drop(client);
    echo.join().expect("echo thread");
    crate::timing::median(&mut rtt)
}

/// A current-thread tokio runtime for one side of an async run.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("tokio runtime")
}

/// `sock` registered with the current runtime.
pub(crate) fn to_tokio(sock: UnixStream) -> tokio::net::UnixStream {
    sock.set_nonblocking(true).expect("nonblocking");
    tokio::net::UnixStream::from_std(sock).expect("register socket")
}

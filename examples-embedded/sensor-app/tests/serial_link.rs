//! The superloop on a simulated serial link at 115 200 baud with a small receive FIFO that
//! loses bytes when it overflows, as a real board's UART does (32 bytes on the RP2040, 128 on
//! the ESP32-C3). Time is virtual: every byte the node writes takes one character time, and
//! the host's bytes arrive one character time apart, whatever the node is doing.
//!
//! The node runs as on the boards: silent until the host's first message. The host's script
//! then sends commands while the node is busy writing (a 1500-byte upload and a
//! ping during the 20 KiB log dump) and checks every reply, the log's bytes and the node's own
//! error count. Run on the host: `cargo test -p mux-sensor-app --target <host triple>` from
//! `examples-embedded/`.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::rc::Rc;

use embedded_io::ErrorKind;
use mux_nostd::{
    FrameType, Header, Limits, LinkDecoder, LinkEncoder, Original, Pool, Reassembler, Received,
    Writer,
};
use mux_sensor_app::{Board, Event, LINK_BUFFER, NODE_ID_BASE, Outcome, Superloop};
use mux_test_support::sensor::{config_blob, expected_log, fnv1a};

/// One character (start bit, 8 data bits, stop bit) at 115 200 baud, in nanoseconds.
const CHAR_NS: u64 = 10 * 1_000_000_000 / 115_200;

/// The wire and the UART's receive FIFO, shared by the node's two halves and its board.
struct Line {
    now_ns: u64,
    /// Host bytes not yet arrived: (arrival time, byte).
    incoming: VecDeque<(u64, u8)>,
    fifo: VecDeque<u8>,
    fifo_size: usize,
    /// Bytes lost since the last read (reported once as an overrun).
    overrun: bool,
    lost: usize,
    /// Everything the node wrote, and when it began to.
    out: Vec<u8>,
    first_out_ns: Option<u64>,
}

impl Line {
    /// Moves the bytes that have arrived by now into the FIFO, dropping what does not fit.
    fn arrive(&mut self) {
        while let Some(&(at, b)) = self.incoming.front() {
            if at > self.now_ns {
                break;
            }
            self.incoming.pop_front();
            if self.fifo.len() < self.fifo_size {
                self.fifo.push_back(b);
            } else {
                self.overrun = true;
                self.lost += 1;
            }
        }
    }
}

type Shared = Rc<RefCell<Line>>;

struct Rx(Shared);
struct Tx(Shared);

impl embedded_io::ErrorType for Rx {
    /// `Other`: an overrun.
    type Error = ErrorKind;
}

impl embedded_io::ErrorType for Tx {
    type Error = Infallible;
}

impl embedded_io::ReadReady for Rx {
    fn read_ready(&mut self) -> Result<bool, ErrorKind> {
        let mut l = self.0.borrow_mut();
        l.arrive();
        Ok(l.overrun || !l.fifo.is_empty())
    }
}

impl embedded_io::Read for Rx {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        let mut l = self.0.borrow_mut();
        l.arrive();
        if std::mem::take(&mut l.overrun) {
            return Err(ErrorKind::Other);
        }
        assert!(
            !l.fifo.is_empty(),
            "the loop only reads when read_ready said so"
        );
        let n = buf.len().min(l.fifo.len());
        for b in &mut buf[..n] {
            *b = l.fifo.pop_front().unwrap();
        }
        Ok(n)
    }
}

impl embedded_io::Write for Tx {
    /// Blocks for the time the bytes take on the wire (no transmit FIFO: the worst case).
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        let mut l = self.0.borrow_mut();
        let now = l.now_ns;
        l.first_out_ns.get_or_insert(now);
        l.now_ns += CHAR_NS * buf.len() as u64;
        l.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}

struct SimBoard {
    line: Shared,
    uart_errors: usize,
    protocol_errors: usize,
}

impl Board<Rx> for SimBoard {
    fn now_ms(&mut self) -> u32 {
        (self.line.borrow().now_ns / 1_000_000) as u32
    }

    /// Like `wfi` with a 1 ms tick and a receive interrupt: until the next millisecond or the
    /// next arriving byte.
    fn sleep(&mut self, _rx: &mut Rx) {
        let mut l = self.line.borrow_mut();
        let tick = (l.now_ns / 1_000_000 + 1) * 1_000_000;
        let next_byte = l.incoming.front().map_or(u64::MAX, |&(at, _)| at);
        l.now_ns = tick.min(next_byte).max(l.now_ns);
    }

    fn report(&mut self, event: Event) {
        match event {
            Event::Uart => self.uart_errors += 1,
            Event::Protocol(_) => self.protocol_errors += 1,
        }
    }
}

/// A sink for the host's frames.
struct Bytes(Vec<u8>);

impl embedded_io::ErrorType for Bytes {
    type Error = Infallible;
}

impl embedded_io::Write for Bytes {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}

/// The host's side: bursts of bytes, each starting at a given time (or when the previous one
/// has gone out), sent back to back at line rate.
struct Script {
    at_ns: u64,
    bytes: VecDeque<(u64, u8)>,
    /// With the serial link profile: each burst goes out in link frames.
    link: Option<LinkEncoder<Vec<u8>>>,
}

impl Script {
    fn send(&mut self, at_ms: u64, frames: &[u8]) {
        self.at_ns = self.at_ns.max(at_ms * 1_000_000);
        let mut encoded = Vec::new();
        let frames = match self.link.as_mut() {
            None => frames,
            Some(enc) => {
                let mut rest = frames;
                loop {
                    let n = enc.push(rest);
                    rest = &rest[n..];
                    if rest.is_empty() {
                        enc.end_frame();
                    }
                    encoded.extend_from_slice(enc.output());
                    let k = enc.output().len();
                    enc.consume(k);
                    if rest.is_empty() {
                        break;
                    }
                }
                &encoded[..]
            }
        };
        for &b in frames {
            self.at_ns += CHAR_NS;
            self.bytes.push_back((self.at_ns, b));
        }
    }

    fn message(&mut self, at_ms: u64, id: u32, payload: &[u8]) {
        let mut w = Writer::new(Bytes(Vec::new()), Original);
        let Ok(()) = w.send_with_id(id, payload) else {
            unreachable!()
        };
        self.send(at_ms, &w.into_inner().0);
    }
}

/// What the host made of the node's output.
struct Seen {
    replies: BTreeMap<u32, Vec<u8>>,
    aborted: Vec<u32>,
    readings: Vec<u32>,
    errors: usize,
    /// Bytes the node's UART lost (FIFO overflows).
    lost: usize,
    uart_errors: usize,
    protocol_reports: usize,
    node_errors: u32,
    outcome: Outcome,
    /// When the host's first message was in, and when the node began to write.
    first_message_in: u64,
    first_out_ns: Option<u64>,
    /// How long readings waited during the first dump (its frames' lengths decide it).
    waits: mux_sensor_app::ReadingWaits,
}

thread_local! {
    /// The line of the exchange running on this thread, for [`line_us`].
    static LINE: RefCell<Option<Shared>> = const { RefCell::new(None) };
}

/// The line's virtual clock in microseconds: the boards' hardware timer, for Adaptive.
fn line_us() -> u32 {
    LINE.with(|l| (l.borrow().as_ref().unwrap().borrow().now_ns / 1000) as u32)
}

/// Runs the exchange with a receive FIFO of `fifo` bytes and a ring of `RING` bytes, over the
/// serial link profile if `cobs`.
fn run<const RING: usize>(fifo: usize, cobs: bool) -> Seen {
    run_with::<RING>(fifo, cobs, false)
}

/// [`run`], the log dumps framed with Adaptive (as on the boards) if `adaptive`: the node's
/// writes timed against the line's clock.
fn run_with<const RING: usize>(fifo: usize, cobs: bool, adaptive: bool) -> Seen {
    let mut s = Script {
        at_ns: 0,
        bytes: VecDeque::new(),
        link: cobs.then(|| LinkEncoder::new(vec![0u8; LINK_BUFFER])),
    };
    // Line noise before the host starts: a whole frame header of an invalid type (the stream
    // stays in sync). Reported, but not counted: the exchange has not started.
    s.send(10, &[7, 0, 0, 0, 1, 0, 0, 0, 0]);
    // The node is silent until this first message has arrived.
    s.message(50, 1, b"ping");
    let first_message_in = s.at_ns;
    s.message(100, 2, b"get-log");
    // During the dump: an upload, a ping, and an upload the host aborts after one Data frame.
    let config = config_blob(1500);
    s.message(300, 3, &config);
    s.message(300, 4, b"ping");
    let partial = config_blob(2000);
    let mut frames = Header::new(FrameType::Start, 5, 2000).to_bytes().to_vec();
    frames.extend_from_slice(&Header::new(FrameType::Data, 5, 1024).to_bytes());
    frames.extend_from_slice(&partial[..1024]);
    frames.extend_from_slice(&Header::new(FrameType::Abort, 5, 0).to_bytes());
    s.send(400, &frames);
    s.message(500, 6, b"status");
    // A second dump, cancelled part way, then goodbye.
    s.message(3000, 7, b"get-log");
    s.message(3300, 8, b"cancel-log");
    s.message(3400, 9, b"bye");

    let line = Rc::new(RefCell::new(Line {
        now_ns: 0,
        incoming: s.bytes,
        fifo: VecDeque::new(),
        fifo_size: fifo,
        overrun: false,
        lost: 0,
        out: Vec::new(),
        first_out_ns: None,
    }));
    let node_pool: &'static Pool<40, 64> = Box::leak(Box::new(Pool::new()));
    let mut node: Superloop<'static, _, _, 4, 40, 64, RING> =
        Superloop::new(Rx(line.clone()), Tx(line.clone()), node_pool).wait_for_host();
    if adaptive {
        LINE.with(|l| *l.borrow_mut() = Some(line.clone()));
        let link: &'static mux_nostd::LinkEstimator =
            Box::leak(Box::new(mux_nostd::LinkEstimator::new()));
        let config = mux_nostd::AdaptiveConfig {
            link_rate: 11_520,
            ..mux_nostd::AdaptiveConfig::DEFAULT
        };
        node = node.adaptive(link, config, line_us);
    }
    #[cfg(feature = "cobs-link")]
    if cobs {
        node = node.cobs_link();
    }
    #[cfg(not(feature = "cobs-link"))]
    assert!(!cobs, "the serial link profile needs the feature cobs-link");
    let mut board = SimBoard {
        line: line.clone(),
        uart_errors: 0,
        protocol_errors: 0,
    };
    let outcome = node
        .run(&mut board)
        .expect("the simulated UART never fails a write");

    let host_pool: &'static Pool<512, 64> = Box::leak(Box::new(Pool::new()));
    let mut host: Reassembler<'static, 8, 512, 64> =
        Reassembler::new(host_pool, Limits::new(64 * 1024));
    let mut seen = Seen {
        replies: BTreeMap::new(),
        aborted: Vec::new(),
        readings: Vec::new(),
        errors: 0,
        lost: line.borrow().lost,
        uart_errors: board.uart_errors,
        protocol_reports: board.protocol_errors,
        node_errors: node.stats().errors,
        outcome,
        first_message_in,
        first_out_ns: line.borrow().first_out_ns,
        waits: node.reading_waits(),
    };
    let out = line.borrow().out.clone();
    let wire = if cobs { unframe(&out) } else { out };
    host.feed_all(&wire, |item| match item {
        Received::Message(m) => {
            let mut body = Vec::new();
            for c in m.body().chunks() {
                body.extend_from_slice(c);
            }
            if m.id() >= NODE_ID_BASE {
                assert!(body.starts_with(b"reading seq="));
                seen.readings.push(m.id() - NODE_ID_BASE);
            } else {
                seen.replies.insert(m.id(), body);
            }
        }
        Received::Aborted { id } => seen.aborted.push(id),
        Received::Error(_) => seen.errors += 1,
    });
    seen
}

/// The multiplexer bytes of the node's link frames (all intact: the simulated line loses
/// nothing when the ring is large enough).
fn unframe(wire: &[u8]) -> Vec<u8> {
    let mut dec = LinkDecoder::new();
    let mut buf = vec![0u8; 2 * LINK_BUFFER];
    let (mut filled, mut rest, mut out) = (0, wire, Vec::new());
    loop {
        while let Some(f) = dec.next(&mut buf, &mut filled) {
            assert_eq!(f.gap, None);
            out.extend_from_slice(&buf[f.body]);
        }
        if rest.is_empty() {
            assert_eq!(dec.metrics().damaged, 0);
            return out;
        }
        let n = rest.len().min(buf.len() - filled);
        buf[filled..filled + n].copy_from_slice(&rest[..n]);
        filled += n;
        rest = &rest[n..];
    }
}

fn check(seen: &Seen) {
    let text = |id: u32| String::from_utf8_lossy(&seen.replies[&id]).into_owned();
    assert_eq!(seen.lost, 0, "bytes lost in the receive FIFO");
    assert_eq!(seen.uart_errors, 0);
    assert_eq!(seen.node_errors, 0);
    assert_eq!(
        seen.protocol_reports, 1,
        "the noise before the start is reported"
    );
    assert_eq!(seen.errors, 0, "protocol errors at the host");
    assert_eq!(seen.outcome, Outcome::Bye);
    assert!(seen.first_out_ns.unwrap() >= seen.first_message_in);
    assert_eq!(text(1), "pong");
    assert_eq!(seen.replies[&2], expected_log());
    let config = config_blob(1500);
    assert_eq!(
        text(3),
        format!("ok config bytes=1500 fnv={:08x}", fnv1a(&config))
    );
    assert_eq!(text(4), "pong");
    assert_eq!(text(5), "aborted");
    assert!(text(6).starts_with("status interval=100 "), "{}", text(6));
    assert_eq!(seen.aborted, [7], "the cancelled dump ends with Abort");
    assert_eq!(text(8), "ok cancelled=7");
    assert!(text(9).starts_with("bye "), "{}", text(9));
    assert!(
        text(9).ends_with(" commands=8 aborted=1 errors=0"),
        "{}",
        text(9)
    );
    assert!(seen.readings.len() > 20);
    assert!(
        seen.readings
            .iter()
            .copied()
            .eq(0..seen.readings.len() as u32)
    );
}

#[test]
fn rp2040_sized_fifo_loses_nothing() {
    check(&run::<2048>(32, false));
}

/// As the boards run it: the log dumps framed with Adaptive over the line's clock. The
/// exchange is the same; a reading due during a dump waits for a frame of about 10 ms (106
/// bytes of payload at 115 200 baud), not for a 1 KiB one (89 ms).
#[test]
fn rp2040_sized_fifo_loses_nothing_with_adaptive_log_frames() {
    let fixed = run::<2048>(32, false);
    let adaptive = run_with::<2048>(32, false, true);
    check(&adaptive);
    assert!(adaptive.waits.count > 0 && fixed.waits.count > 0);
    assert!(
        adaptive.waits.max_ms <= 25 && fixed.waits.max_ms > 50,
        "adaptive {:?}, fixed {:?}",
        adaptive.waits,
        fixed.waits
    );
}

#[test]
fn esp32c3_sized_fifo_loses_nothing() {
    check(&run::<2048>(128, false));
}

/// The same exchange over the serial link profile: the loop's link encoder writes in pieces
/// and drains the FIFO between them, its decoder takes the host's link frames.
#[cfg(feature = "cobs-link")]
#[test]
fn rp2040_sized_fifo_loses_nothing_over_the_link_profile() {
    check(&run::<2048>(32, true));
}

/// The control: without the ring, the upload sent during a log frame overflows a 32-byte FIFO
/// (so the test above does detect loss).
#[test]
fn without_the_ring_bytes_are_lost() {
    let seen = run::<1>(32, false);
    assert!(seen.lost > 0);
    assert!(seen.uart_errors > 0);
    assert!(seen.node_errors > 0);
}

//! `plugin_node`: the firmware as a plugin of the plugin protocol (the Go `plugin.go` library's):
//! a host starts it (through `plugin-node.sh`, which runs it under QEMU with UART0 on the
//! script's stdin and stdout) and calls its services over the multiplexer.
//!
//! A superloop on one core, no heap:
//!
//! - host messages are reassembled into a static pool by the sans-IO `Reassembler`, fed with
//!   whatever UART0 holds; each complete message is copied into one contiguous buffer and
//!   handed to `mux_nostd::plugin::Dispatcher`, and what it returns is sent with the blocking
//!   `Writer` (Hybrid, threshold 4096, as the Go hosts write) with the ids it gives;
//! - a message the host aborts is dropped, never dispatched; a request the receive side has to
//!   drop (larger than [`MAX_REQUEST`], or no room left in the pool or stream table) is
//!   answered with an error under its id (empty name), so that the host's call ends;
//! - at boot it sends `ready`; after the `shutdown` or `force_shutdown` ack is on the wire it
//!   leaves QEMU with status 0;
//! - the sensor is sampled every [`SAMPLE_MS`] ms; between rounds the core sleeps (`wfi`).
//!
//! Services:
//!
//! | service | reply |
//! |---|---|
//! | `reading` | the latest reading as JSON: `{"seq":N,"t_ms":T,"temp_c":21.53,"humidity":40.7}` |
//! | `ping` | `pong` |
//! | `echo` | the request's payload |
//! | `get-log` | the first [`LOG_REPLY_LEN`] bytes of the node's log (the text `sensor_node` dumps) |
//!
//! Replies are written whole, one after the other. Everything the firmware says besides the
//! protocol goes to semihosting's stderr (`heprintln!`), never to the UART.

#![no_std]
#![no_main]

use core::fmt::Write as _;

use cortex_m_rt::entry;
use cortex_m_semihosting::heprintln;
use embedded_io::Read as _;
use mux_examples_embedded::app::{LOG_LINE, Reading, log_bytes};
use mux_examples_embedded::exit::{exit, stack_peak};
use mux_examples_embedded::{board, clock};
use mux_nostd::plugin::{Dispatcher, Header, Kind, Reply, Service, State, prefix_len};
use mux_nostd::{Hybrid, Limits, Pool, ProtocolError, Reassembler, Received, Writer};

/// Largest request accepted: the whole message, plugin header included. An `echo` payload
/// may thus be `MAX_REQUEST - 14` bytes (8178).
pub const MAX_REQUEST: usize = 8192;
/// Size of the reply buffer: the whole reply message, plugin header included. A reply that
/// does not fit becomes the error `reply too large`.
pub const MAX_REPLY: usize = 8192;
/// What `get-log` returns: as many whole log lines as the reply buffer holds after the
/// header of a `get-log` reply (255 lines, 8160 bytes).
pub const LOG_REPLY_LEN: usize = (MAX_REPLY - prefix_len(GET_LOG.len())) / LOG_LINE * LOG_LINE;
/// How often the sensor is sampled.
pub const SAMPLE_MS: u32 = 100;

const GET_LOG: &str = "get-log";

/// Receive blocks: 160 × 64 bytes (10 KiB), room for one request of [`MAX_REQUEST`] bytes and
/// a few small ones under way at the same time.
static POOL: Pool<160, 64> = Pool::new();
/// Host messages open at once.
const STREAMS: usize = 8;

/// The two message buffers, in `.bss` (through `cortex_m::singleton!`) so that the footprint
/// report counts them.
struct Buffers {
    /// The request being handled, in one piece (the dispatcher decodes a contiguous message).
    request: [u8; MAX_REQUEST],
    /// What the dispatcher encodes: the reply, or `ready` and an ack.
    reply: [u8; MAX_REPLY],
}

/// What the services see.
struct App {
    /// The latest sensor reading.
    latest: Reading,
}

fn reading(app: &mut App, _: &[u8], reply: &mut Reply<'_>) {
    let r = app.latest;
    // Fixed point: hundredths of a degree, tenths of a percent.
    let temp = r.temp_centi_c.unsigned_abs();
    let sign = if r.temp_centi_c < 0 { "-" } else { "" };
    // An overflow is reported by the dispatcher as `reply too large`; 8 KiB cannot overflow.
    let _ = write!(
        reply,
        "{{\"seq\":{},\"t_ms\":{},\"temp_c\":{sign}{}.{:02},\"humidity\":{}.{}}}",
        r.seq,
        r.t_ms,
        temp / 100,
        temp % 100,
        r.humidity_permille / 10,
        r.humidity_permille % 10
    );
}

fn ping(_: &mut App, _: &[u8], reply: &mut Reply<'_>) {
    reply.push(b"pong");
}

fn echo(_: &mut App, payload: &[u8], reply: &mut Reply<'_>) {
    reply.push(payload);
}

fn get_log(_: &mut App, _: &[u8], reply: &mut Reply<'_>) {
    let len = LOG_REPLY_LEN.min(reply.remaining());
    let _ = log_bytes(0, len, |piece| -> Result<(), ()> {
        reply.push(piece);
        Ok(())
    });
}

static SERVICES: [Service<App>; 4] = [
    Service::new("reading", reading),
    Service::new("ping", ping),
    Service::new("echo", echo),
    Service::new(GET_LOG, get_log),
];

/// The id of the request a receive error dropped, if it names one.
fn dropped_request(e: &ProtocolError) -> Option<u32> {
    match *e {
        ProtocolError::MessageTooLarge { id, .. }
        | ProtocolError::PoolExhausted { id }
        | ProtocolError::TooManyStreams { id } => Some(id),
        _ => None,
    }
}

/// Encodes the error reply to a request the receive side dropped: no name (it was never
/// decoded), the reason as text.
fn dropped_reply<'o>(e: &ProtocolError, out: &'o mut [u8]) -> Option<&'o [u8]> {
    let mut text: heapless::String<96> = heapless::String::new();
    let _ = match *e {
        ProtocolError::MessageTooLarge { .. } => {
            write!(text, "request too large: limit {MAX_REQUEST} bytes")
        }
        _ => text.write_str("request dropped: the plugin is busy"),
    };
    let n = Header::new(b"", Kind::Error, text.as_bytes())
        .encode_into(out)
        .ok()?;
    out.get(..n)
}

#[entry]
fn main() -> ! {
    let (tx, mut rx) = board::start();
    let bufs = cortex_m::singleton!(BUFFERS: Buffers = Buffers {
        request: [0; MAX_REQUEST],
        reply: [0; MAX_REPLY],
    })
    .expect("buffers taken once");
    let mut writer = Writer::new(tx, Hybrid::<4096>);
    let mut core: Reassembler<'static, STREAMS, 160, 64> =
        Reassembler::new(&POOL, Limits::new(MAX_REQUEST as u32));
    let mut plugin = Dispatcher::new(&SERVICES);
    let mut app = App {
        latest: Reading::sample(0, clock::now_ms()),
    };
    let mut next_sample = clock::now_ms().wrapping_add(SAMPLE_MS);
    let mut samples = 1u32;
    let mut aborted = 0u32;
    let mut rx_errors = 0u32;

    // The UART is configured: from here on nothing the host sends is lost. `ready` tells it so.
    if let Ok((id, ready)) = plugin.ready(&mut bufs.reply) {
        let _ = writer.send_with_id(id, ready);
    }
    heprintln!("plugin_node: up, ready sent");

    let mut input = [0u8; 64];
    loop {
        if clock::reached(next_sample) {
            let now = clock::now_ms();
            app.latest = Reading::sample(samples, now);
            samples = samples.wrapping_add(1);
            next_sample = now.wrapping_add(SAMPLE_MS);
        }
        if !rx.has_data() {
            board::wait_for_input(&mut rx);
            continue;
        }
        let Ok(n) = rx.read(&mut input);
        let mut rest = &input[..n];
        while !rest.is_empty() {
            let (used, item) = core.feed(rest);
            rest = &rest[used..];
            match item {
                None => {}
                Some(Received::Message(m)) => {
                    let id = m.id();
                    // Cannot exceed the buffer: the reassembler's limit is its size.
                    let len = m.body().copy_to(&mut bufs.request);
                    drop(m); // its blocks go back to the pool now
                    let Some(request) = bufs.request.get(..len) else {
                        continue;
                    };
                    match plugin.handle(&mut app, id, request, &mut bufs.reply) {
                        Ok(out) => {
                            for (id, message) in out.iter() {
                                let _ = writer.send_with_id(id, message);
                            }
                        }
                        Err(e) => heprintln!("plugin_node: {}", e),
                    }
                }
                Some(Received::Aborted { id }) => {
                    aborted = aborted.saturating_add(1);
                    heprintln!("plugin_node: message {} aborted by the host", id);
                }
                Some(Received::Error(e)) => {
                    rx_errors = rx_errors.saturating_add(1);
                    heprintln!("plugin_node: receive error: {}", e);
                    if let Some(id) = dropped_request(&e)
                        && let Some(reply) = dropped_reply(&e, &mut bufs.reply)
                    {
                        let _ = writer.send_with_id(id, reply);
                    }
                }
            }
            if plugin.state() != State::Serving {
                // The ack was the last message: make sure it has left the UART, then go.
                let _ = writer.flush();
                let c = plugin.counts();
                let pool = POOL.stats();
                heprintln!(
                    "plugin_node: {:?}: calls={} errors={} unknown={} aborted={} rx-errors={} tx-messages={} pool-high-water={}/{} stack-peak={}B",
                    plugin.state(),
                    c.calls,
                    c.errors,
                    c.unknown,
                    aborted,
                    rx_errors,
                    writer.metrics().messages,
                    pool.high_water,
                    pool.blocks,
                    stack_peak()
                );
                exit(true);
            }
        }
    }
}

mux_examples_embedded::board_interrupts!();

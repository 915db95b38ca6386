//! `async_node`: the sensor-node protocol over `embedded-io-async`, under `embassy-executor`.
//!
//! Three tasks:
//!
//! - `receiver` owns the UART's receive half and an `AsyncReader` with a `Reassembler` on a
//!   static pool; it sleeps on the UART0 interrupt and forwards each command (or host abort,
//!   or protocol error) to a channel;
//! - `main` waits for a request, the next reading's deadline (on the SysTick clock) or the end
//!   of a log dump, and answers and reports;
//! - `log_task` writes each log dump, one frame per turn.
//!
//! `main` and `log_task` share the UART's transmit half (an `AsyncWriter` in a mutex) frame by
//! frame through the core's `FrameTurns`, small messages (readings, replies) first: a reading
//! due during a dump waits for at most the log frame in flight. With `pace=RATE` on the
//! semihosting command line (the demo's `--pace`) the UART sends at RATE bytes per second and
//! the dumps are framed with Adaptive (10 ms frames at the measured rate; `strategy=original`
//! keeps 1 KiB frames), log frames follow each other without a pause, and the summary reports
//! how long readings waited during the dumps.
//!
//! The protocol and the node's state are those of `sensor_node` (`app.rs`); only the waiting
//! and the writing differ. No heap: the tasks' futures are statics made by the executor's
//! macros.
//!
//! Built with the feature `cobs-link`, it speaks the serial link profile: the writer writes
//! through a `LinkWriter` and the reader is `AsyncReader::with_link` (the core's drivers), with
//! link buffers of `LINK_BUFFER` bytes as `sensor_node`'s.

#![no_std]
#![no_main]

use core::convert::Infallible;
use core::sync::atomic::{AtomicBool, Ordering};

use cortex_m_semihosting::hprintln;
use embassy_executor::Spawner;
use embassy_futures::select::{Either3, select3};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::channel::Channel;
use embassy_sync::mutex::Mutex;
use mux_examples_embedded::app::{
    Body, Effect, FNV_INIT, LOG_FRAME_GAP_MS, LogDump, MAX_COMMAND, MAX_MESSAGE, Node,
    ReadingWaits, Strategy, Text, fnv1a,
};
use mux_examples_embedded::exit::{exit, stack_peak};
use mux_examples_embedded::pace::{self, Paced};
use mux_examples_embedded::{board, clock, uart};
use mux_nostd::{
    AdaptiveConfig, AnyStrategy, AsyncReader, AsyncWriter, Clock, FrameTurns, Limits,
    LinkEstimator, Pool, Reassembler, Received, SendError, Timed,
};

/// Blocks for host messages (as in `sensor_node`).
static POOL: Pool<40, 64> = Pool::new();
/// Host messages open at once.
const STREAMS: usize = 4;

/// What the receiver hands to the main task.
enum Request {
    /// A complete command: its first bytes, length and checksum.
    Command {
        id: u32,
        head: heapless::Vec<u8, MAX_COMMAND>,
        len: usize,
        fnv: u32,
    },
    /// The host aborted its message `id`.
    Aborted { id: u32 },
    /// A protocol error on receive.
    Error,
    /// The host closed the link.
    Closed,
}

static REQUESTS: Channel<CriticalSectionRawMutex, Request, 4> = Channel::new();

/// What the writer writes to: the (paced) UART, or a link writer in front of it (feature
/// `cobs-link`).
#[cfg(not(feature = "cobs-link"))]
type Sink = Paced<uart::Tx>;
#[cfg(feature = "cobs-link")]
type Sink = mux_nostd::LinkWriter<Paced<uart::Tx>, { mux_examples_embedded::app::LINK_BUFFER }>;

#[cfg(not(feature = "cobs-link"))]
fn sink(tx: Paced<uart::Tx>) -> Sink {
    tx
}

#[cfg(feature = "cobs-link")]
fn sink(tx: Paced<uart::Tx>) -> Sink {
    hprintln!("async_node: serial link profile (COBS, CRC-32C)");
    mux_nostd::LinkWriter::new(tx)
}

/// The SysTick clock in microseconds, for timing the UART's writes.
struct Micros;

impl Clock for Micros {
    fn now_us(&self) -> u32 {
        clock::now_us()
    }
}

/// The UART's transmit half as the tasks write to it: paced (or not), through the link
/// profile (or not), its writes timed.
type Uart = Timed<'static, Sink, Micros>;

/// The link's rate, learned from the UART's writes.
static LINK: LinkEstimator = LinkEstimator::new();
/// The transmit half, shared by `main` and `log_task` (the turns keep the lock uncontended).
static TX: Mutex<CriticalSectionRawMutex, Option<AsyncWriter<Uart, Strategy, Micros>>> =
    Mutex::new(None);
/// Who writes the next frame: readings and replies before log frames.
static TURNS: FrameTurns<4> = FrameTurns::new(true);
/// Log dumps for `log_task` to write.
static LOGS: Channel<CriticalSectionRawMutex, LogDump, 1> = Channel::new();
/// A dump ended: `true` written whole, `false` cancelled.
static DONE: Channel<CriticalSectionRawMutex, bool, 1> = Channel::new();
/// `main` asks `log_task` to end the dump with Abort.
static CANCEL: AtomicBool = AtomicBool::new(false);

#[embassy_executor::task]
async fn receiver(rx: uart::Rx) {
    let core: Reassembler<'static, STREAMS, 40, 64> =
        Reassembler::new(&POOL, Limits::new(MAX_MESSAGE));
    #[cfg(not(feature = "cobs-link"))]
    let mut buf = [0u8; 64];
    #[cfg(not(feature = "cobs-link"))]
    let mut reader = AsyncReader::new(rx, &mut buf, core).with_clock(Micros);
    // Room for a whole link frame of the host's.
    #[cfg(feature = "cobs-link")]
    let mut buf = [0u8; mux_examples_embedded::app::LINK_BUFFER + 32];
    #[cfg(feature = "cobs-link")]
    let mut reader = AsyncReader::with_link(rx, &mut buf, core).with_clock(Micros);
    loop {
        let Ok(item) = reader.recv().await;
        let request = match item {
            None => Request::Closed,
            Some(Received::Message(m)) => {
                let mut head = [0u8; MAX_COMMAND];
                let n = m.body().copy_to(&mut head);
                Request::Command {
                    id: m.id(),
                    // Cannot fail: `n` ≤ MAX_COMMAND.
                    head: heapless::Vec::from_slice(&head[..n]).unwrap_or_default(),
                    len: m.len(),
                    fnv: m.body().chunks().fold(FNV_INIT, fnv1a),
                }
                // `m` is dropped here: its blocks go back to the pool before we wait.
            }
            Some(Received::Aborted { id }) => Request::Aborted { id },
            Some(Received::Error(e)) => {
                hprintln!("async_node: protocol error: {}", e);
                Request::Error
            }
        };
        #[cfg(feature = "histograms")]
        {
            let m = reader.core().metrics();
            let times = (m.start_to_end_us, m.messages);
            critical_section::with(|cs| RX_TIMES.borrow(cs).set(times));
        }
        let closed = matches!(request, Request::Closed);
        REQUESTS.send(request).await;
        if closed {
            return;
        }
    }
}

fn sent<T>(r: Result<T, SendError<Infallible>>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("uart send failed: {e}"),
    }
}

/// Sends a small message (a reading, a reply) at its turn, before waiting log frames.
async fn send_small(id: u32, payload: &[u8]) {
    // Timed (feature `histograms`): how long small messages wait for the link.
    let _turn = TURNS.take_timed(true, &Micros).await;
    let mut tx = TX.lock().await;
    if let Some(tx) = tx.as_mut() {
        sent(tx.send_with_id(id, payload).await);
    }
}

/// Writes raw bytes (an Abort frame) to the UART; the caller holds the turn.
async fn write_raw(bytes: &[u8]) {
    let mut tx = TX.lock().await;
    if let Some(tx) = tx.as_mut() {
        let Ok(()) = embedded_io_async::Write::write_all(tx.get_mut(), bytes).await;
    }
}

/// Writes each log dump one frame per turn, `gap_ms` apart (0: back to back), or ends it with
/// Abort when `main` cancels it.
#[embassy_executor::task]
async fn log_task(gap_ms: u32) {
    loop {
        let mut dump = LOGS.receive().await;
        let mut turn = TURNS.take(false).await;
        let whole = loop {
            if CANCEL.load(Ordering::Relaxed) {
                CANCEL.store(false, Ordering::Relaxed);
                write_raw(&dump.abort_frame()).await;
                break false;
            }
            let done = {
                let mut tx = TX.lock().await;
                match tx.as_mut() {
                    Some(tx) => {
                        let Ok(done) = dump.write_next_async(tx.get_mut()).await;
                        done
                    }
                    None => true,
                }
            };
            if done {
                break true;
            }
            if gap_ms == 0 {
                turn.pass().await;
            } else {
                // Nothing to write during the pause: the turn goes back meanwhile.
                drop(turn);
                clock::wait_until_second(clock::now_ms().wrapping_add(gap_ms)).await;
                turn = TURNS.take(false).await;
            }
        };
        drop(turn);
        DONE.send(whole).await;
    }
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let (tx, rx) = board::start();
    let (rate, fixed) = pace::command_line();
    let uart = match rate {
        Some(rate) => {
            hprintln!(
                "async_node: up, UART paced at {} B/s, log dump framed with {}",
                rate,
                if fixed { "original" } else { "adaptive" }
            );
            Paced::new(tx, rate)
        }
        None => {
            hprintln!("async_node: up");
            Paced::unpaced(tx)
        }
    };
    let adaptive = rate.is_some() && !fixed;
    TX.lock().await.replace(
        AsyncWriter::new(Timed::new(sink(uart), Micros, &LINK), Strategy::default())
            .with_clock(Micros),
    );
    spawner.spawn(receiver(rx).expect("receiver task spawned once"));
    let gap = if rate.is_some() { 0 } else { LOG_FRAME_GAP_MS };
    spawner.spawn(log_task(gap).expect("log task spawned once"));

    let mut node = Node::new(clock::now_ms());
    let mut text = Text::new();
    let mut waits = ReadingWaits::default();
    loop {
        // Sleep until the end of a dump, a request or the next reading. The end of a dump comes
        // first: the host may answer its End frame with a command that needs to know it ended.
        let deadline = node.next_reading;
        let now = match select3(
            DONE.receive(),
            REQUESTS.receive(),
            clock::wait_until(deadline),
        )
        .await
        {
            Either3::First(whole) => {
                let now = clock::now_ms();
                if whole && node.log.is_some() {
                    node.log_frame_written(now, true);
                }
                now
            }
            Either3::Second(request) => {
                let now = clock::now_ms();
                match request {
                    Request::Command { id, head, len, fnv } => {
                        let body = Body {
                            head: &head,
                            len,
                            fnv,
                        };
                        if adaptive {
                            node.log_strategy =
                                AnyStrategy::Adaptive(LINK.config_now(&AdaptiveConfig::DEFAULT));
                        }
                        match node.on_command(id, body, now, &mut text) {
                            Effect::LogStarted => {
                                if let Some(dump) = node.log.clone() {
                                    // A cancel that came after the last dump had ended must
                                    // not end this one.
                                    CANCEL.store(false, Ordering::Relaxed);
                                    LOGS.send(dump).await;
                                }
                            }
                            Effect::Reply => send_small(id, text.as_bytes()).await,
                            Effect::CancelLog(_) => {
                                CANCEL.store(true, Ordering::Relaxed);
                                send_small(id, text.as_bytes()).await;
                            }
                            Effect::Bye => {
                                send_small(id, text.as_bytes()).await;
                                break;
                            }
                        }
                    }
                    Request::Aborted { id } => {
                        node.on_aborted(now, &mut text);
                        send_small(id, text.as_bytes()).await;
                    }
                    Request::Error => node.on_error(),
                    Request::Closed => {
                        hprintln!("async_node: the host closed the link before bye");
                        exit(false);
                    }
                }
                now
            }
            Either3::Third(()) => clock::now_ms(),
        };

        let due = node.next_reading;
        if let Some(id) = node.due_reading(now, &mut text) {
            let dumping = node.log.is_some();
            send_small(id, text.as_bytes()).await;
            if dumping {
                waits.record(clock::now_ms().wrapping_sub(due));
            }
        }
        if node.idle_too_long(now) {
            hprintln!("async_node: no command for too long, giving up");
            exit(false);
        }
    }

    if node.log.take().is_some() {
        CANCEL.store(true, Ordering::Relaxed);
        DONE.receive().await;
    }
    let mut tx = TX.lock().await;
    let Some(tx) = tx.as_mut() else {
        exit(false);
    };
    sent(tx.flush().await);
    if rate.is_some() {
        hprintln!(
            "async_node: readings during the log dumps: {}, wait from due to written: mean {} ms, max {} ms",
            waits.count,
            waits.mean_ms(),
            waits.max_ms
        );
        if adaptive {
            hprintln!("async_node: link rate estimated at {} B/s", LINK.rate());
        }
    }
    // Every message sent and received was timed (feature `histograms`).
    #[cfg(feature = "histograms")]
    let timed = {
        let m = tx.metrics();
        print_times("small messages waiting for their turn", &TURNS.waits());
        print_times("sends waiting for the link", &m.send_wait_us);
        let (rx, messages) = critical_section::with(|cs| RX_TIMES.borrow(cs).get());
        print_times("the host's messages from Start to End", &rx);
        m.send_wait_us.count() == u64::from(m.messages) && rx.count() == u64::from(messages)
    };
    #[cfg(not(feature = "histograms"))]
    let timed = true;
    let s = node.stats;
    let pool = POOL.stats();
    hprintln!(
        "async_node: done: readings={} commands={} host-aborts={} errors={} logs={} logs-cancelled={} tx-messages={} pool-high-water={}/{} in-use={} stack-peak={}B",
        s.readings,
        s.commands,
        s.aborted,
        s.errors,
        s.logs,
        s.logs_cancelled,
        tx.metrics().messages,
        pool.high_water,
        pool.blocks,
        pool.in_use,
        stack_peak()
    );
    exit(s.errors == 0 && pool.in_use == 0 && timed)
}

/// The receiver's Start-to-End times and the messages it completed (feature `histograms`).
#[cfg(feature = "histograms")]
static RX_TIMES: critical_section::Mutex<core::cell::Cell<(mux_nostd::Histogram, u32)>> =
    critical_section::Mutex::new(core::cell::Cell::new((mux_nostd::Histogram::new(), 0)));

/// Prints a distribution of microseconds: count and the upper bounds of its quantiles' buckets.
#[cfg(feature = "histograms")]
fn print_times(what: &str, h: &mux_nostd::Histogram) {
    hprintln!(
        "async_node: {}: n={} p50<={} us p99<={} us max<={} us",
        what,
        h.count(),
        h.quantile(500).unwrap_or(0),
        h.quantile(990).unwrap_or(0),
        h.quantile(1000).unwrap_or(0)
    );
}

mux_examples_embedded::board_interrupts!();

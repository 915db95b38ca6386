//! `async_node`: the sensor-node protocol over `embedded-io-async`, under `embassy-executor`.
//!
//! Two tasks share nothing but a channel:
//!
//! - `receiver` owns the UART's receive half and an `AsyncReader` with a `Reassembler` on a
//!   static pool; it sleeps on the UART0 interrupt and forwards each command (or host abort,
//!   or protocol error) to the channel;
//! - `main` owns the transmit half and an `AsyncWriter`; it waits for a request or for the next
//!   deadline (reading or log frame, on the SysTick clock), and answers, reports or streams.
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

use cortex_m_semihosting::hprintln;
use embassy_executor::Spawner;
use embassy_futures::select::{Either, select};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::channel::Channel;
use mux_examples_embedded::app::{
    Body, Effect, FNV_INIT, MAX_COMMAND, MAX_MESSAGE, Node, Strategy, Text, fnv1a,
};
use mux_examples_embedded::exit::{exit, stack_peak};
use mux_examples_embedded::{board, clock, uart};
use mux_nostd::{AsyncReader, AsyncWriter, Limits, Pool, Reassembler, Received, SendError};

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

/// What the writer writes to: the UART, or a link writer in front of it (feature `cobs-link`).
#[cfg(not(feature = "cobs-link"))]
type Sink = uart::Tx;
#[cfg(feature = "cobs-link")]
type Sink = mux_nostd::LinkWriter<uart::Tx, { mux_examples_embedded::app::LINK_BUFFER }>;

#[cfg(not(feature = "cobs-link"))]
fn sink(tx: uart::Tx) -> Sink {
    tx
}

#[cfg(feature = "cobs-link")]
fn sink(tx: uart::Tx) -> Sink {
    hprintln!("async_node: serial link profile (COBS, CRC-32C)");
    mux_nostd::LinkWriter::new(tx)
}

#[embassy_executor::task]
async fn receiver(rx: uart::Rx) {
    let core: Reassembler<'static, STREAMS, 40, 64> =
        Reassembler::new(&POOL, Limits::new(MAX_MESSAGE));
    #[cfg(not(feature = "cobs-link"))]
    let mut buf = [0u8; 64];
    #[cfg(not(feature = "cobs-link"))]
    let mut reader = AsyncReader::new(rx, &mut buf, core);
    // Room for a whole link frame of the host's.
    #[cfg(feature = "cobs-link")]
    let mut buf = [0u8; mux_examples_embedded::app::LINK_BUFFER + 32];
    #[cfg(feature = "cobs-link")]
    let mut reader = AsyncReader::with_link(rx, &mut buf, core);
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

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let (tx, rx) = board::start();
    hprintln!("async_node: up");
    spawner.spawn(receiver(rx).expect("receiver task spawned once"));

    let mut tx = AsyncWriter::new(sink(tx), Strategy::default());
    let mut node = Node::new(clock::now_ms());
    let mut text = Text::new();
    loop {
        // Sleep until a request or the next deadline.
        let deadline = match node.log {
            Some(_) if node.next_log_frame.wrapping_sub(node.next_reading) > u32::MAX / 2 => {
                node.next_log_frame
            }
            _ => node.next_reading,
        };
        let now = match select(REQUESTS.receive(), clock::wait_until(deadline)).await {
            Either::First(request) => {
                let now = clock::now_ms();
                match request {
                    Request::Command { id, head, len, fnv } => {
                        let body = Body {
                            head: &head,
                            len,
                            fnv,
                        };
                        match node.on_command(id, body, now, &mut text) {
                            Effect::LogStarted => {}
                            Effect::Reply => sent(tx.send_with_id(id, text.as_bytes()).await),
                            Effect::CancelLog(dump) => {
                                let Ok(()) = embedded_io_async::Write::write_all(
                                    tx.get_mut(),
                                    &dump.abort_frame(),
                                )
                                .await;
                                sent(tx.send_with_id(id, text.as_bytes()).await);
                            }
                            Effect::Bye => {
                                sent(tx.send_with_id(id, text.as_bytes()).await);
                                break;
                            }
                        }
                    }
                    Request::Aborted { id } => {
                        node.on_aborted(now, &mut text);
                        sent(tx.send_with_id(id, text.as_bytes()).await);
                    }
                    Request::Error => node.on_error(),
                    Request::Closed => {
                        hprintln!("async_node: the host closed the link before bye");
                        exit(false);
                    }
                }
                now
            }
            Either::Second(()) => clock::now_ms(),
        };

        if let Some(id) = node.due_reading(now, &mut text) {
            sent(tx.send_with_id(id, text.as_bytes()).await);
        }
        if node.log_frame_due(now)
            && let Some(dump) = node.log.as_mut()
        {
            let Ok(done) = dump.write_next_async(tx.get_mut()).await;
            node.log_frame_written(now, done);
        }
        if node.idle_too_long(now) {
            hprintln!("async_node: no command for too long, giving up");
            exit(false);
        }
    }

    if let Some(dump) = node.log.take() {
        let Ok(()) = embedded_io_async::Write::write_all(tx.get_mut(), &dump.abort_frame()).await;
    }
    sent(tx.flush().await);
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
    exit(s.errors == 0 && pool.in_use == 0)
}

mux_examples_embedded::board_interrupts!();

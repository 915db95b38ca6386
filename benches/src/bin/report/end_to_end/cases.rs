//! The end-to-end cases: every product (the raw connection, mux-std, mux-nostd, yamux) at 1 MiB
//! and at 1 KiB, with each way of sending it is measured with at that size, over the Unix socket
//! pair and (all but yamux) over TCP loopback, and how to run each.

use mux_benches::e2e::{self, Run, Transport};
use mux_benches::size_name;
use mux_benches::yamux_peer::{self, Mapping};

/// 1 KiB messages.
pub const K1: usize = 1 << 10;
/// 1 MiB messages.
pub const M1: usize = 1 << 20;
/// The `hold_budget` of mux-std's extra 1 MiB case.
pub const HOLD_BUDGET: usize = 256 << 10;

/// What carries the messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Product {
    /// The connection itself, no framing: the floor.
    Raw,
    /// mux-std's `Sender` and `Receiver`.
    Std,
    /// mux-nostd's `Writer` and `Reassembler` over the pair.
    Nostd,
    /// yamux, the multiplexer a Rust user would pick instead.
    Yamux,
}

/// How the messages are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sending {
    /// The raw connection: the messages' bytes in writes of the first length, read with reads
    /// of the second.
    Writes(usize, usize),
    /// This many concurrent senders (threads; for yamux, tasks with a stream each).
    Senders(usize),
    /// yamux: one sender opening a stream per message.
    StreamPerMessage,
    /// mux-std: one sender, `send_buffered` for every message and one `flush`.
    Buffered,
    /// mux-std: one sender, with this `hold_budget` at both ends.
    HoldBudget(usize),
}

use Product::{Nostd, Raw, Std, Yamux};
use Sending::{Buffered, HoldBudget, Senders, StreamPerMessage, Writes};

impl Product {
    /// The products in the table's order.
    const ALL: [Self; 4] = [Raw, Std, Nostd, Yamux];

    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Raw => "raw pair",
            Std => "mux-std",
            Nostd => "mux-nostd",
            Yamux => "yamux",
        }
    }

    /// Its name in JSON keys.
    pub fn key(self) -> &'static str {
        match self {
            Raw => "raw",
            Std => "std",
            Nostd => "nostd",
            Yamux => "yamux",
        }
    }

    /// The ways it is sent at `size` over `over`, in the table's order. The raw connection
    /// at 1 MiB is measured with several write and read sizes: the best of them is the floor.
    fn sendings(self, size: usize, over: Transport) -> &'static [Sending] {
        const K64: usize = 64 << 10;
        const K256: usize = 256 << 10;
        match (self, size, over) {
            (Raw, M1, Transport::Unix) => &[
                Writes(M1, K64),
                Writes(M1, K256),
                Writes(M1, M1),
                Writes(K256, K256),
                Writes(K64, K64),
                Writes(16 << 10, K64),
            ],
            (Raw, M1, Transport::Tcp) => &[
                Writes(M1, K64),
                Writes(M1, K256),
                Writes(K256, K256),
                Writes(K64, K64),
            ],
            (Raw, _, _) => &[Writes(K1, K64)],
            (Std, M1, Transport::Unix) => &[Senders(1), Senders(8), HoldBudget(HOLD_BUDGET)],
            (Std, _, Transport::Unix) => &[Senders(1), Buffered, Senders(8)],
            (Std | Nostd, _, _) => &[Senders(1), Senders(8)],
            (Yamux, _, Transport::Unix) => &[Senders(1), Senders(8), StreamPerMessage],
            (Yamux, _, Transport::Tcp) => &[],
        }
    }
}

/// One end-to-end case: a row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    /// What carries the messages.
    pub product: Product,
    /// The message size.
    pub size: usize,
    /// How they are sent.
    pub sending: Sending,
    /// What carries them.
    pub over: Transport,
}

/// Every case, in the table's order: the Unix socket pair then TCP loopback, product by
/// product, 1 MiB then 1 KiB, each way of sending.
pub fn all() -> Vec<Case> {
    let mut cases = Vec::new();
    for over in [Transport::Unix, Transport::Tcp] {
        for product in Product::ALL {
            for size in [M1, K1] {
                for &sending in product.sendings(size, over) {
                    cases.push(Case {
                        product,
                        size,
                        sending,
                        over,
                    });
                }
            }
        }
    }
    cases
}

impl Case {
    /// Its row label, e.g. `mux-std, 1 KiB, 8 senders` or `raw pair, 64 KiB writes, 64 KiB
    /// reads`; over TCP with `TCP: ` before it (and `raw TCP` for the raw connection).
    pub fn label(self) -> String {
        let tcp = self.over == Transport::Tcp;
        let label = self.label_on_its_own();
        match (tcp, self.product) {
            (false, _) => label,
            (true, Raw) => format!("TCP: {}", label.replacen("raw pair", "raw TCP", 1)),
            (true, _) => format!("TCP: {label}"),
        }
    }

    fn label_on_its_own(self) -> String {
        let (name, size) = (self.product.name(), size_name(self.size));
        match self.sending {
            Writes(w, r) => format!("{name}, {} writes, {} reads", size_name(w), size_name(r)),
            Senders(n) => {
                let each = if self.product == Yamux {
                    "stream"
                } else {
                    "sender"
                };
                let plural = if n == 1 { "" } else { "s" };
                format!("{name}, {size}, {n} {each}{plural}")
            }
            StreamPerMessage => format!("{name}, {size}, stream per message"),
            Buffered => format!("{name}, {size}, 1 sender, send_buffered + flush"),
            HoldBudget(b) => format!("{name} (hold_budget {}), {size}, 1 sender", size_name(b)),
        }
    }

    /// Messages per run in full mode: the raw pair carries the bytes of this many messages.
    fn full_count(self) -> usize {
        let (at_1mib, at_1kib) = match (self.product, self.sending) {
            (Raw, _) => (1000, 100_000),
            (Std | Nostd, _) => (1000, 500_000),
            (Yamux, StreamPerMessage) => (150, 20_000),
            (Yamux, _) => (300, 100_000),
        };
        if self.size == M1 { at_1mib } else { at_1kib }
    }

    /// One run, with the full-mode message count scaled by `scale` (at least 16 messages).
    pub fn run(self, scale: f64) -> Run {
        let count = ((self.full_count() as f64 * scale) as usize).max(16);
        let (size, over) = (self.size, self.over);
        match (self.product, self.sending) {
            (Raw, Writes(w, r)) => e2e::raw_over(over, count * size, w, r),
            (Std, Senders(n)) => e2e::std_node_over(over, size, count, n),
            (Std, Buffered) => e2e::std_node_buffered(size, count),
            (Std, HoldBudget(hold_budget)) => {
                let cfg = mux_std::Config {
                    hold_budget,
                    ..mux_std::Config::default()
                };
                e2e::std_node_with(size, count, 1, &cfg)
            }
            (Nostd, Senders(n)) => e2e::nostd_over(over, size, count, n),
            (Yamux, Senders(n)) => yamux_peer::run(size, count, n, Mapping::Shared),
            (Yamux, StreamPerMessage) => yamux_peer::run(size, count, 1, Mapping::PerMessage),
            (product, sending) => unreachable!("{product:?} is not sent as {sending:?}"),
        }
    }
}

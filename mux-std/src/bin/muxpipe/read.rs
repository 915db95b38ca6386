//! `muxpipe read`: one line per item read from stdin.
//!
//! A digest needs no message in memory, so this runs the core's streaming receiver
//! ([`Demux`]): each open message holds only its SHA-256 state. The work is split in two
//! stages on two threads, so that decoding and hashing overlap:
//!
//! - the decoding thread reads stdin, runs the demux (and the serial link decoder), applies
//!   the receive rules, and records per read a [`Batch`]: the payload chunks (copied), the
//!   rare lines already written out (aborts, errors, the totals), and steps saying which
//!   chunk goes into which message's digest and when a message's `ok` line is due;
//! - the output thread hashes the chunks in that order, writes the `ok ID LEN SHA256`
//!   lines and the others into a 64 KiB buffer, and writes it to stdout when full.
//!
//! Batches go back to the decoding thread for reuse, and at most [`IN_FLIGHT`] wait between
//! the two: memory stays bounded whatever the input.

use std::io::{self, Read, Write};
use std::ops::Range;
use std::sync::mpsc;

use mux_nostd::{Demux, Event, LinkDecoder, ProtocolError};
use mux_std::{Config, LinkProfile, RecvError, TABLE_CAPACITY};
use sha2::{Digest, Sha256};

use crate::progress::Progress;
use crate::{Fail, read_some, stdin, stdout};

/// Batches that may wait for the output thread.
const IN_FLIGHT: usize = 4;

/// Output leaves in writes of about this many bytes (stdout would be line-buffered).
const OUT_BUF: usize = 1 << 16;

/// The demux's value for an open message: the index of its digest state (on the output
/// thread) and of its length (here), `None` until its first payload byte. Four bytes, so
/// that the demux's table and its events move an index, not a hash state.
type Slot = Option<u16>;

/// The demux `read` runs.
type ReadDemux = Demux<Slot, TABLE_CAPACITY>;

/// A step for the output thread.
enum Step {
    /// Hash `bytes[range]` into digest `slot`.
    Update(u16, Range<u32>),
    /// Message `id` of `len` bytes is complete: its line, from digest `slot` (which is then
    /// fresh again), or the empty message's digest.
    Ok { id: u32, slot: Slot, len: u64 },
    /// The message in digest `slot` was dropped: the digest is fresh again.
    Reset(u16),
    /// Write `bytes[range]` as it is.
    Text(Range<u32>),
}

/// What one read produced, for the output thread.
#[derive(Default)]
struct Batch {
    /// Payload chunks and finished lines, referred to by `steps`.
    bytes: Vec<u8>,
    steps: Vec<Step>,
}

impl Batch {
    fn range(&mut self, data: &[u8]) -> Range<u32> {
        let start = self.bytes.len() as u32;
        self.bytes.extend_from_slice(data);
        start..self.bytes.len() as u32
    }
}

/// Text written to a batch becomes a [`Step::Text`] (consecutive writes share one).
impl Write for Batch {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let r = self.range(data);
        match self.steps.last_mut() {
            Some(Step::Text(last)) if last.end == r.start => last.end = r.end,
            _ => self.steps.push(Step::Text(r)),
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `read`. Limits and the cap on messages in flight are [`Config::default`]'s, the same
/// rules a [`Receiver`](mux_std::Receiver) applies.
pub fn read(link: LinkProfile, progress: bool) -> Result<(), Fail> {
    let out = stdout()?;
    let mut input = stdin()?;
    crate::widen_pipe(&input);
    let (tx, rx) = mpsc::sync_channel::<Batch>(IN_FLIGHT);
    let (back_tx, back) = mpsc::channel::<Batch>();
    let writer = std::thread::Builder::new()
        .name("muxpipe-out".into())
        .spawn(move || write_lines(rx, back_tx, out))
        .map_err(|e| Fail::Msg(format!("cannot start the output thread: {e}")))?;
    let decoded = decode(&mut input, link, progress, tx, back);
    // The output thread's own error (e.g. stdout closed) first: it is why decoding stopped.
    let written = writer
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the output thread panicked")));
    written?;
    decoded
}

/// The decoding thread's loop: reads stdin to its end and hands a batch per read to `tx`.
fn decode(
    input: &mut impl Read,
    link: LinkProfile,
    progress: bool,
    tx: mpsc::SyncSender<Batch>,
    back: mpsc::Receiver<Batch>,
) -> Result<(), Fail> {
    let progress = Progress::new(progress, "read");
    let mut bytes = 0u64;
    let config = Config::default();
    let mut demux: Box<ReadDemux> = Box::new(Demux::new(config.limits));
    demux.set_max_open(config.max_in_flight.clamp(1, TABLE_CAPACITY));
    let mut buf = vec![0u8; config.read_buffer.max(1 << 16)];
    // With the serial link profile: bytes read end at `buf[filled]`.
    let mut link = (link == LinkProfile::Cobs).then(LinkDecoder::new);
    let mut filled = 0;
    let mut lines = Lines::new(config.assembly_budget as u64);
    // The output thread is gone (its error is reported by `read`): stop quietly.
    let gone = || Fail::Msg(String::new());
    let mut batch = Batch::default();
    let mut failed = None;
    loop {
        let n = match read_some(input, &mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                failed = Some(RecvError::Io(e));
                break;
            }
        };
        bytes += n as u64;
        progress.set(lines.total, bytes);
        match link.as_mut() {
            None => lines.feed(&mut demux, &buf[..n], &mut batch)?,
            Some(link) => {
                filled += n;
                while let Some(frame) = link.next(&mut buf, &mut filled) {
                    if let Some(missing) = frame.gap {
                        demux.link_gap(missing);
                    }
                    lines.feed(&mut demux, &buf[frame.body], &mut batch)?;
                }
            }
        }
        let mut next = back.try_recv().unwrap_or_default();
        next.bytes.clear();
        next.steps.clear();
        tx.send(std::mem::replace(&mut batch, next))
            .map_err(|_| gone())?;
    }
    // What was decoded so far is printed, then a read error, as a `Receiver` reports.
    lines.finish(&mut demux, link.as_mut(), filled, &mut batch)?;
    if let Some(e) = &failed {
        writeln!(batch, "error {e}")?;
    }
    writeln!(batch, "total {}", lines.total)?;
    progress.finish(lines.total, bytes);
    tx.send(batch).map_err(|_| gone())?;
    match failed {
        Some(e) => Err(Fail::Msg(e.to_string())),
        None => Ok(()),
    }
}

/// The output thread: hashes and writes the batches' lines in order; returns the first
/// write error (then the decoding thread finds the channel closed and stops).
fn write_lines(
    rx: mpsc::Receiver<Batch>,
    back: mpsc::Sender<Batch>,
    mut out: impl Write,
) -> io::Result<()> {
    let mut digests: Vec<Sha256> = Vec::new();
    let mut text: Vec<u8> = Vec::with_capacity(OUT_BUF + 256);
    for batch in rx {
        for step in &batch.steps {
            match step {
                Step::Update(slot, r) => {
                    let slot = usize::from(*slot);
                    if slot >= digests.len() {
                        digests.resize_with(slot + 1, Sha256::new);
                    }
                    digests[slot].update(&batch.bytes[r.start as usize..r.end as usize]);
                }
                Step::Ok { id, slot, len } => {
                    let digest = match slot {
                        Some(s) => digests[usize::from(*s)].finalize_reset(),
                        None => Sha256::digest(b""),
                    };
                    ok_line(&mut text, *id, *len, &digest.into());
                }
                Step::Reset(slot) => {
                    if let Some(d) = digests.get_mut(usize::from(*slot)) {
                        d.reset();
                    }
                }
                Step::Text(r) => {
                    text.extend_from_slice(&batch.bytes[r.start as usize..r.end as usize])
                }
            }
            if text.len() >= OUT_BUF {
                out.write_all(&text)?;
                text.clear();
            }
        }
        // The decoding thread may be gone already: then the batch is just dropped.
        let _ = back.send(batch);
    }
    out.write_all(&text)?;
    out.flush()
}

/// Appends `ok ID LEN SHA256\n`, built without `fmt` (this is the per-message path).
fn ok_line(text: &mut Vec<u8>, id: u32, len: u64, digest: &[u8; 32]) {
    let (mut id_text, mut len_text) = (itoa::Buffer::new(), itoa::Buffer::new());
    let mut line = [0u8; 2 + 1 + 10 + 1 + 20 + 1 + 64 + 1];
    let mut at = 0;
    for part in [
        b"ok ".as_slice(),
        id_text.format(id).as_bytes(),
        b" ",
        len_text.format(len).as_bytes(),
        b" ",
    ] {
        line[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    for (pair, &b) in line[at..at + 64].chunks_exact_mut(2).zip(digest) {
        pair.copy_from_slice(&HEX_PAIRS[usize::from(b)]);
    }
    at += 64;
    line[at] = b'\n';
    text.extend_from_slice(&line[..=at]);
}

/// The two lower-case hex digits of every byte value.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut t = [[0u8; 2]; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = [DIGITS[b >> 4], DIGITS[b & 15]];
        b += 1;
    }
    t
};

/// The receive rules and the lines' order, on the decoding thread.
struct Lines {
    /// Complete messages so far.
    total: u64,
    /// Payload bytes received for the messages open now.
    partial: u64,
    /// [`Config::assembly_budget`]: the bytes of open messages a `Receiver` would hold at
    /// most. `read` holds only digests, but drops messages by the same rule, so that it
    /// reports what a receiver would.
    budget: u64,
    /// Payload bytes so far of each open message with a slot (at most one slot per open
    /// message: the demux's table holds at most [`TABLE_CAPACITY`]).
    lens: Vec<u64>,
    /// Slots not in use.
    free: Vec<u16>,
}

impl Lines {
    fn new(budget: u64) -> Self {
        Self {
            total: 0,
            partial: 0,
            budget,
            lens: Vec::new(),
            free: Vec::new(),
        }
    }

    /// A slot for a message's first payload bytes.
    fn open(&mut self) -> u16 {
        match self.free.pop() {
            Some(i) => i,
            None => {
                self.lens.push(0);
                // At most TABLE_CAPACITY (1024) open messages hold one: fits a u16.
                (self.lens.len() - 1) as u16
            }
        }
    }

    /// The length of a message that ended; its slot is free again.
    fn close(&mut self, slot: Slot) -> u64 {
        slot.map_or(0, |i| {
            self.free.push(i);
            std::mem::take(&mut self.lens[usize::from(i)])
        })
    }

    /// A dropped message: its slot is free again and its digest reset.
    fn drop_slot(&mut self, slot: Slot, out: &mut Batch) -> u64 {
        if let Some(i) = slot {
            out.steps.push(Step::Reset(i));
        }
        self.close(slot)
    }

    /// Payload bytes held by an open message.
    fn held(&self, slot: Slot) -> u64 {
        slot.map_or(0, |i| self.lens[usize::from(i)])
    }

    /// Feeds `input` to the receiver, recording the lines due.
    fn feed(&mut self, demux: &mut ReadDemux, mut rest: &[u8], out: &mut Batch) -> io::Result<()> {
        loop {
            let (used, ev) = demux.feed(rest);
            if let Some(Event::Data { id, chunk }) = ev {
                let n = chunk.len() as u64;
                if self.partial + n > self.budget && !self.make_room(demux, id, n, out)? {
                    rest = &rest[used..];
                    continue;
                }
                if let Some(slot) = demux.current_mut() {
                    let i = match *slot {
                        Some(i) => i,
                        None => *slot.insert(self.open()),
                    };
                    self.lens[usize::from(i)] += n;
                    self.partial += n;
                    let r = out.range(chunk);
                    out.steps.push(Step::Update(i, r));
                }
            } else if let Some(ev) = ev {
                self.event(ev, out)?;
            } else if rest.is_empty() {
                return Ok(());
            }
            rest = &rest[used..];
        }
    }

    /// Drops open messages, the largest first, until `n` more bytes of message `id` (the
    /// current one) fit the budget, as a `Receiver` does; whether `id` is still open.
    #[cold]
    fn make_room(
        &mut self,
        demux: &mut ReadDemux,
        id: u32,
        n: u64,
        out: &mut Batch,
    ) -> io::Result<bool> {
        while self.partial + n > self.budget {
            let largest = demux.open_messages().map(|(i, &s)| (self.held(s), i)).max();
            let victim = match largest {
                Some((len, i)) if len > 0 && i != id => i,
                _ => id,
            };
            let e = ProtocolError::OverBudget { id: victim };
            let dropped = match victim == id {
                false => demux.drop_message(victim, e),
                true => demux.drop_current(e),
            };
            let was_open = dropped.is_some();
            if let Some(slot) = dropped {
                self.partial -= self.drop_slot(slot, out);
            }
            writeln!(out, "error {e}")?;
            if victim == id || !was_open {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// At end of input: what the link and the receiver still report, and the link's line.
    fn finish(
        &mut self,
        demux: &mut ReadDemux,
        link: Option<&mut LinkDecoder>,
        filled: usize,
        out: &mut Batch,
    ) -> io::Result<()> {
        let link = link.map(|l| {
            if let Some(missing) = l.finish(filled) {
                demux.link_gap(missing);
            }
            *l.metrics()
        });
        while let Some(ev) = demux.finish() {
            self.event(ev, out)?;
        }
        if let Some(m) = link {
            writeln!(
                out,
                "link {} {} {} {}",
                m.good, m.damaged, m.missing, m.skipped
            )?;
        }
        Ok(())
    }

    /// The line of a message-level event (Data has none).
    fn event(&mut self, ev: Event<'_, Slot>, out: &mut Batch) -> io::Result<()> {
        match ev {
            Event::Completed { id, value } => {
                self.total += 1;
                let len = self.close(value);
                self.partial = self.partial.saturating_sub(len);
                out.steps.push(Step::Ok {
                    id,
                    slot: value,
                    len,
                });
                Ok(())
            }
            Event::Aborted { id, value } => {
                let len = self.drop_slot(value, out);
                self.partial = self.partial.saturating_sub(len);
                writeln!(out, "abort {id}")
            }
            Event::Error { error, dropped } => {
                let held = dropped.map_or(0, |slot| self.drop_slot(slot, out));
                self.partial = self.partial.saturating_sub(held);
                writeln!(out, "error {error}")
            }
            Event::Started { .. } | Event::Data { .. } => Ok(()),
        }
    }
}

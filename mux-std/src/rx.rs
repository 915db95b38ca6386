//! The receive side without I/O: the core's [`Demux`] with pooled heap buffers. The blocking
//! reader thread and the tokio reader task both pump this.

use std::fmt;
use std::ops::Deref;

use mux_nostd::{Demux, ErrorCounts, Event, ProtocolError};

use crate::config::{Config, TABLE_CAPACITY};
use crate::pool::{Buffer, BufferPool};

/// A complete message: its id and payload. The payload buffer goes back to the pool when the
/// message is dropped.
pub struct Message {
    id: u32,
    body: Buffer,
}

impl Message {
    /// The message id.
    pub const fn id(&self) -> u32 {
        self.id
    }

    /// The payload.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The payload buffer.
    pub fn into_body(self) -> Buffer {
        self.body
    }
}

impl Deref for Message {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.body
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("id", &self.id)
            .field("len", &self.body.len())
            .finish()
    }
}

/// What a receiver delivers. Data, aborts and protocol errors are distinct variants.
#[derive(Debug)]
pub enum Received {
    /// A complete message (whole-message mode, the default).
    Message(Message),
    /// The peer aborted this message; what had arrived of it was released.
    Aborted {
        /// The message id.
        id: u32,
    },
    /// The peer broke the protocol; the stream stays in sync and later messages are
    /// unaffected. [`ProtocolError::Unfinished`] reports a message still open at end of stream.
    Error(ProtocolError),
    /// Streaming mode: a message was opened.
    Started {
        /// The message id.
        id: u32,
        /// The Start frame's length field (0 from Optimized and Hybrid writers).
        len_hint: u32,
    },
    /// Streaming mode: payload bytes of an open message, in order.
    Chunk {
        /// The message id.
        id: u32,
        /// The bytes (a pooled buffer).
        data: Buffer,
    },
    /// Streaming mode: the message completed (all its chunks were delivered before).
    Ended {
        /// The message id.
        id: u32,
    },
}

impl Received {
    /// The message if this is a complete one.
    pub fn into_message(self) -> Option<Message> {
        match self {
            Self::Message(m) => Some(m),
            _ => None,
        }
    }
}

/// Receive counters (a part of [`Metrics`](crate::Metrics)). They saturate at their
/// maximum instead of wrapping around, whatever the peer sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RxCounts {
    /// Messages completed.
    pub messages: u64,
    /// Payload bytes received for open messages.
    pub bytes: u64,
    /// Messages aborted by the peer.
    pub aborted: u64,
    /// Protocol errors reported, by kind.
    pub errors: ErrorCounts,
}

/// Sans-IO receive state: bytes in, [`Received`] items out.
pub(crate) struct RxCore {
    demux: Box<Demux<Option<Buffer>, TABLE_CAPACITY>>,
    pool: BufferPool,
    streaming: bool,
    pub(crate) counts: RxCounts,
    /// Ids reported [`ProtocolError::Unfinished`].
    pub(crate) unfinished: Vec<u32>,
}

impl RxCore {
    pub(crate) fn new(config: &Config, pool: BufferPool) -> Self {
        Self {
            demux: {
                // The cap on messages in flight is the core's own rule (`TooManyStreams`).
                let mut demux = Box::new(Demux::new(config.limits));
                demux.set_max_open(config.max_in_flight.clamp(1, TABLE_CAPACITY));
                demux
            },
            pool,
            streaming: config.streaming,
            counts: RxCounts::default(),
            unfinished: Vec::new(),
        }
    }

    /// Decodes from the front of `input`: bytes consumed and an item, if one completed.
    /// `(0, None)` only for empty input: every call with input consumes some or delivers an
    /// item. (The demux may give an event for no input, e.g. the Start of a message
    /// restarted by a duplicate Start, which is no item in whole-message mode: then this
    /// goes on decoding.)
    #[inline]
    pub(crate) fn feed(&mut self, input: &[u8]) -> (usize, Option<Received>) {
        loop {
            let (n, ev) = self.demux.feed(input);
            let item = match ev {
                None => None,
                Some(ev) => self.on_event(ev),
            };
            if n > 0 || item.is_some() || input.is_empty() {
                return (n, item);
            }
        }
    }

    /// At end of stream, repeatedly until `None`: a truncation, then each message still open.
    pub(crate) fn finish(&mut self) -> Option<Received> {
        loop {
            let ev = self.demux.finish()?;
            if let Some(item) = self.on_event(ev) {
                return Some(item);
            }
        }
    }

    fn error(&mut self, e: ProtocolError) -> Option<Received> {
        self.counts.errors.record(&e);
        if let ProtocolError::Unfinished { id } = e {
            self.unfinished.push(id);
        }
        Some(Received::Error(e))
    }

    #[inline]
    fn on_event(&mut self, ev: Event<'_, Option<Buffer>>) -> Option<Received> {
        match ev {
            Event::Started { id, len_hint } => {
                self.streaming.then_some(Received::Started { id, len_hint })
            }
            Event::Data { id, chunk } => {
                self.counts.bytes = self.counts.bytes.saturating_add(chunk.len() as u64);
                if self.streaming {
                    let Some(mut data) = self.pool.take() else {
                        return self.exhausted(id);
                    };
                    data.extend_from_slice(chunk);
                    return Some(Received::Chunk { id, data });
                }
                let slot = self.demux.current_mut()?;
                if slot.is_none() {
                    *slot = self.pool.take();
                }
                match slot {
                    Some(buf) => {
                        buf.extend_from_slice(chunk);
                        None
                    }
                    None => self.exhausted(id),
                }
            }
            Event::Completed { id, value } => {
                self.counts.messages = self.counts.messages.saturating_add(1);
                if self.streaming {
                    return Some(Received::Ended { id });
                }
                let body = value.unwrap_or_else(Buffer::empty);
                Some(Received::Message(Message { id, body }))
            }
            Event::Aborted { id, .. } => {
                self.counts.aborted = self.counts.aborted.saturating_add(1);
                Some(Received::Aborted { id })
            }
            Event::Error { error, .. } => self.error(error),
        }
    }

    fn exhausted(&mut self, id: u32) -> Option<Received> {
        let e = ProtocolError::PoolExhausted { id };
        drop(self.demux.drop_current(e));
        self.error(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mux_nostd::{Header, Optimized, encode_into, frame::FrameType};

    fn run(core: &mut RxCore, wire: &[u8]) -> Vec<Received> {
        let mut out = Vec::new();
        let mut input = wire;
        while !input.is_empty() {
            let (n, item) = core.feed(input);
            input = &input[n..];
            out.extend(item);
        }
        while let Some(item) = core.finish() {
            out.push(item);
        }
        out
    }

    #[test]
    fn in_flight_cap_refuses_the_extra_message_only() {
        let cfg = Config {
            max_in_flight: 1,
            ..Config::default()
        };
        let pool = BufferPool::new(8, 1 << 20);
        let mut core = RxCore::new(&cfg, pool.clone());
        let mut wire = Vec::new();
        for (kind, id, len) in [(FrameType::Start, 1, 0), (FrameType::Start, 2, 0)] {
            wire.extend_from_slice(&Header::new(kind, id, len).to_bytes());
        }
        for id in [2, 1] {
            wire.extend_from_slice(&Header::new(FrameType::Data, id, 1).to_bytes());
            wire.push(b'x');
            wire.extend_from_slice(&Header::new(FrameType::End, id, 0).to_bytes());
        }
        let items = run(&mut core, &wire);
        assert_eq!(items.len(), 2, "{items:?}");
        assert!(matches!(
            items[0],
            Received::Error(ProtocolError::TooManyStreams { id: 2 })
        ));
        assert!(matches!(&items[1], Received::Message(m) if m.id() == 1 && m.body() == b"x"));
        drop(items);
        assert_eq!(pool.stats().in_use, 0);
    }

    #[test]
    fn exhausted_pool_drops_the_message_and_keeps_sync() {
        let pool = BufferPool::new(1, 1 << 20);
        let mut core = RxCore::new(&Config::default(), pool.clone());
        let held = pool.take().unwrap();
        let mut wire = [0u8; 128];
        let n = encode_into(&Optimized, 3, b"abc", &mut wire).unwrap();
        let items = run(&mut core, &wire[..n]);
        assert!(matches!(
            items[..],
            [Received::Error(ProtocolError::PoolExhausted { id: 3 })]
        ));
        drop(held);
        let items = run(&mut core, &wire[..n]);
        assert!(matches!(&items[..], [Received::Message(m)] if m.body() == b"abc"));
    }

    #[test]
    fn feed_consumes_or_delivers_on_every_call_with_input() {
        // A duplicate Start: the demux reports the error, then the restarted message's Start
        // with no byte consumed (not an item in whole-message mode).
        let mut wire = Vec::new();
        for (kind, id, len) in [
            (FrameType::Start, 1, 0),
            (FrameType::Data, 1, 1),
            (FrameType::Start, 1, 0),
            (FrameType::Data, 1, 1),
            (FrameType::End, 1, 0),
        ] {
            wire.extend_from_slice(&Header::new(kind, id, len).to_bytes());
            if kind == FrameType::Data {
                wire.push(b'x');
            }
        }
        for streaming in [false, true] {
            let cfg = Config {
                streaming,
                ..Config::default()
            };
            let mut core = RxCore::new(&cfg, BufferPool::new(8, 1 << 20));
            let mut input = &wire[..];
            let mut items = Vec::new();
            while !input.is_empty() {
                let (n, item) = core.feed(input);
                assert!(
                    n > 0 || item.is_some(),
                    "streaming {streaming}: (0, None) with {} bytes of input",
                    input.len()
                );
                input = &input[n..];
                items.extend(item);
            }
            assert!(
                matches!(
                    items[0],
                    Received::Error(ProtocolError::DuplicateStart { id: 1 })
                ) || streaming
            );
        }
    }

    #[test]
    fn counts_driven_by_the_wire_saturate() {
        let mut core = RxCore::new(&Config::default(), BufferPool::new(8, 1 << 20));
        core.counts.messages = u64::MAX;
        core.counts.aborted = u64::MAX;
        core.counts.bytes = u64::MAX - 1;
        let mut wire = [0u8; 128];
        let mut n = encode_into(&Optimized, 3, b"abc", &mut wire).unwrap();
        for (kind, id) in [(FrameType::Start, 4), (FrameType::Abort, 4)] {
            wire[n..n + 9].copy_from_slice(&Header::new(kind, id, 0).to_bytes());
            n += 9;
        }
        let items = run(&mut core, &wire[..n]);
        assert_eq!(items.len(), 2, "{items:?}");
        let c = core.counts;
        assert_eq!(
            (c.messages, c.aborted, c.bytes),
            (u64::MAX, u64::MAX, u64::MAX)
        );
    }
}

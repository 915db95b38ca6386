//! Shared pieces of the fuzz targets: an owned view of what a receiver delivered, a
//! reassembler driver, and a simple reference model of the receive rules of docs/PROTOCOL.md.

use mux_nostd::{FrameType, Limits, Pool, ProtocolError, Reassembler, Received};

/// What a receiver delivered, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A complete message.
    Msg(u32, Vec<u8>),
    /// An aborted message.
    Aborted(u32),
    /// A protocol error.
    Err(ProtocolError),
}

/// Decodes `wire` fed in pieces whose sizes cycle through `cuts`, then the end-of-stream
/// reports. Checks that every block went back to the pool.
pub fn reassemble<const N: usize, const B: usize, const S: usize>(
    pool: &Pool<B, S>,
    limits: Limits,
    wire: &[u8],
    cuts: &[usize],
) -> Vec<Outcome> {
    let mut out = Vec::new();
    {
        let mut r: Reassembler<'_, N, B, S> = Reassembler::new(pool, limits);
        let mut at = 0;
        let mut sizes = cuts.iter().cycle();
        while at < wire.len() {
            let n = sizes
                .next()
                .copied()
                .unwrap_or(wire.len())
                .clamp(1, wire.len() - at);
            r.feed_all(&wire[at..at + n], |x| out.push(own(x)));
            at += n;
        }
        while let Some(x) = r.finish() {
            out.push(own(x));
        }
        assert_eq!(r.open_count(), 0);
    }
    assert_eq!(pool.stats().in_use, 0, "a block leaked");
    out
}

fn own<const B: usize, const S: usize>(r: Received<'_, B, S>) -> Outcome {
    match r {
        Received::Message(m) => {
            let mut v = vec![0; m.len()];
            assert_eq!(m.body().copy_to(&mut v), m.len());
            Outcome::Msg(m.id(), v)
        }
        Received::Aborted { id } => Outcome::Aborted(id),
        Received::Error(e) => Outcome::Err(e),
    }
}

/// The receive rules written the plain way: whole input parsed at once, a list of open
/// messages with their bytes, a pool counted in blocks. Independent of the streaming code.
pub struct Model {
    /// Table capacity.
    pub capacity: usize,
    /// Pool blocks.
    pub blocks: usize,
    /// Bytes per block.
    pub block_size: usize,
    /// Limits.
    pub limits: Limits,
    /// How many rejected ids are remembered.
    pub memory: usize,
}

impl Model {
    /// What a receiver must deliver for `wire`.
    pub fn run(&self, wire: &[u8]) -> Vec<Outcome> {
        use Outcome::*;
        let mut out = Vec::new();
        let mut open: Vec<(u32, Vec<u8>)> = Vec::new();
        let mut rejected: Vec<u32> = Vec::new();
        let blocks_of = |n: usize| n.div_ceil(self.block_size);
        let used =
            |open: &Vec<(u32, Vec<u8>)>| open.iter().map(|m| blocks_of(m.1.len())).sum::<usize>();
        let reject = |rejected: &mut Vec<u32>, id: u32| {
            if !rejected.contains(&id) {
                if rejected.len() == self.memory {
                    rejected.remove(0);
                }
                rejected.push(id);
            }
        };
        let mut at = 0;
        while at < wire.len() {
            if wire.len() - at < 9 {
                out.push(Err(ProtocolError::Truncated {
                    missing: (9 - (wire.len() - at)) as u32,
                }));
                break;
            }
            let h = &wire[at..at + 9];
            at += 9;
            let ty = h[0];
            let id = u32::from_be_bytes([h[1], h[2], h[3], h[4]]);
            let len = u32::from_be_bytes([h[5], h[6], h[7], h[8]]);
            let pos = open.iter().position(|m| m.0 == id);
            match FrameType::from_byte(ty) {
                None => out.push(Err(ProtocolError::UnknownType { type_byte: ty, id })),
                Some(FrameType::Start) => {
                    rejected.retain(|&r| r != id);
                    if len > self.limits.max_message {
                        if let Some(i) = pos {
                            open.remove(i);
                        }
                        reject(&mut rejected, id);
                        out.push(Err(ProtocolError::MessageTooLarge {
                            id,
                            size: len,
                            max: self.limits.max_message,
                        }));
                    } else if let Some(i) = pos {
                        open[i].1.clear();
                        out.push(Err(ProtocolError::DuplicateStart { id }));
                    } else if open.len() == self.capacity {
                        reject(&mut rejected, id);
                        out.push(Err(ProtocolError::TooManyStreams { id }));
                    } else {
                        open.push((id, Vec::new()));
                    }
                }
                Some(kind @ (FrameType::End | FrameType::Abort)) => match pos {
                    Some(i) => {
                        let (id, body) = open.remove(i);
                        out.push(if kind == FrameType::End {
                            Msg(id, body)
                        } else {
                            Aborted(id)
                        });
                    }
                    None if rejected.contains(&id) => rejected.retain(|&r| r != id),
                    None => out.push(Err(ProtocolError::UnknownId { id, kind })),
                },
                Some(FrameType::Data) => {
                    let avail = wire.len() - at;
                    let take = (len as usize).min(avail);
                    let body = &wire[at..at + take];
                    at += take;
                    if len > self.limits.max_frame {
                        let e = ProtocolError::FrameTooLarge {
                            id,
                            len,
                            max: self.limits.max_frame,
                        };
                        if let Some(i) = pos {
                            open.remove(i);
                            reject(&mut rejected, id);
                            out.push(Err(e));
                        } else if !rejected.contains(&id) {
                            out.push(Err(e));
                        }
                    } else if let Some(i) = pos {
                        let size = open[i].1.len() as u64 + u64::from(len);
                        if size > u64::from(self.limits.max_message) {
                            open.remove(i);
                            reject(&mut rejected, id);
                            let size = size.min(u64::from(u32::MAX)) as u32;
                            out.push(Err(ProtocolError::MessageTooLarge {
                                id,
                                size,
                                max: self.limits.max_message,
                            }));
                        } else {
                            let before = blocks_of(open[i].1.len());
                            let after = blocks_of(open[i].1.len() + body.len());
                            if used(&open) + (after - before) > self.blocks {
                                open.remove(i);
                                reject(&mut rejected, id);
                                out.push(Err(ProtocolError::PoolExhausted { id }));
                            } else {
                                open[i].1.extend_from_slice(body);
                            }
                        }
                    } else if !rejected.contains(&id) {
                        out.push(Err(ProtocolError::UnknownId {
                            id,
                            kind: FrameType::Data,
                        }));
                    }
                    if take < len as usize {
                        out.push(Err(ProtocolError::Truncated {
                            missing: len - take as u32,
                        }));
                    }
                }
            }
        }
        // Messages still open are reported, last opened... in table order (see below).
        out.extend(
            unfinished_order(open)
                .into_iter()
                .map(|id| Err(ProtocolError::Unfinished { id })),
        );
        out
    }
}

/// The order in which the reassembler reports unfinished messages depends on its table's
/// internal order; the model sorts both sides' unfinished reports before comparing.
fn unfinished_order(open: Vec<(u32, Vec<u8>)>) -> Vec<u32> {
    open.into_iter().map(|m| m.0).collect()
}

/// Sorts the trailing run of `Unfinished` reports (their order is not specified).
pub fn normalise(mut v: Vec<Outcome>) -> Vec<Outcome> {
    let tail = v
        .iter()
        .rev()
        .take_while(|o| matches!(o, Outcome::Err(ProtocolError::Unfinished { .. })))
        .count();
    let n = v.len();
    v[n - tail..].sort_by_key(|o| match o {
        Outcome::Err(ProtocolError::Unfinished { id }) => *id,
        _ => 0,
    });
    v
}

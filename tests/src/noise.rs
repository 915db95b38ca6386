//! A noisy line for tests of the serial link profile: [`Noise`] flips, drops and inserts bytes
//! at a seeded rate (the `injector` tool and `demo_host --noise`), and [`FrameMap`] follows
//! the clean stream's link frames to tell which messages a change touched.

use std::collections::{HashMap, HashSet, VecDeque};

use mux_nostd::{Demux, Event, Limits, LinkDecoder};

/// What [`Noise`] does to a byte it hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Flips one bit of it.
    Flip,
    /// Drops it.
    Drop,
    /// Inserts a random byte before it.
    Insert,
}

/// One change, by the offset of the byte hit in the clean stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The byte at `at` was XORed with `mask`.
    Flip {
        /// Offset in the clean stream.
        at: u64,
        /// The bit flipped.
        mask: u8,
    },
    /// The byte at `at` was dropped.
    Drop {
        /// Offset in the clean stream.
        at: u64,
    },
    /// `byte` was inserted before the byte at `at`.
    Insert {
        /// Offset in the clean stream.
        at: u64,
        /// The byte inserted.
        byte: u8,
    },
}

impl Change {
    /// The offset of the byte hit.
    pub fn at(&self) -> u64 {
        match *self {
            Self::Flip { at, .. } | Self::Drop { at } | Self::Insert { at, .. } => at,
        }
    }

    /// Whether it changes the bytes `start..end` of the clean stream: a flip or drop of one
    /// of them, or an insertion between two of them (one before `start` lands outside).
    pub fn touches(&self, start: u64, end: u64) -> bool {
        match *self {
            Self::Insert { at, .. } => at > start && at < end,
            _ => (start..end).contains(&self.at()),
        }
    }

    /// The line the injector logs for it.
    pub fn log_line(&self) -> String {
        match *self {
            Self::Flip { at, mask } => format!("flip {at} {mask}"),
            Self::Drop { at } => format!("drop {at}"),
            Self::Insert { at, byte } => format!("insert {at} {byte}"),
        }
    }

    /// Parses a [`log_line`](Self::log_line).
    pub fn parse(line: &str) -> Option<Self> {
        let w: Vec<&str> = line.split(' ').collect();
        let at = w.get(1)?.parse().ok()?;
        match w[0] {
            "flip" => Some(Self::Flip {
                at,
                mask: w.get(2)?.parse().ok()?,
            }),
            "drop" => Some(Self::Drop { at }),
            "insert" => Some(Self::Insert {
                at,
                byte: w.get(2)?.parse().ok()?,
            }),
            _ => None,
        }
    }
}

/// Hits each byte of a stream with probability `rate`, independently, from a seeded
/// generator (the same seed gives the same changes).
#[derive(Debug)]
pub struct Noise {
    rng: fastrand::Rng,
    rate: f64,
    kinds: Vec<Kind>,
    /// Clean bytes before the next hit.
    next: u64,
    /// Offset of the next input byte in the clean stream.
    offset: u64,
}

impl Noise {
    /// Noise at `rate` (in [0, 1)) of the given kinds, picked evenly.
    pub fn new(seed: u64, rate: f64, kinds: &[Kind]) -> Self {
        let mut n = Self {
            rng: fastrand::Rng::with_seed(seed),
            rate,
            kinds: kinds.to_vec(),
            next: 0,
            offset: 0,
        };
        n.next = n.gap();
        n
    }

    /// Clean bytes until the next hit: a geometric draw, so that each byte is hit with
    /// probability `rate` without a draw per byte.
    fn gap(&mut self) -> u64 {
        if self.rate <= 0.0 || self.kinds.is_empty() {
            return u64::MAX;
        }
        let u = 1.0 - self.rng.f64(); // in (0, 1]
        (u.ln() / (1.0 - self.rate).ln())
            .floor()
            .min(u64::MAX as f64 / 2.0) as u64
    }

    /// Appends `input`, with its changes, to `out`; calls `on` for each change.
    pub fn apply(&mut self, input: &[u8], out: &mut Vec<u8>, mut on: impl FnMut(Change)) {
        let mut at = 0;
        while at < input.len() {
            let clean = self.next.min((input.len() - at) as u64) as usize;
            out.extend_from_slice(&input[at..at + clean]);
            at += clean;
            self.next -= clean as u64;
            if at == input.len() {
                break;
            }
            let pos = self.offset + at as u64;
            let byte = input[at];
            let change = match self.kinds[self.rng.usize(..self.kinds.len())] {
                Kind::Flip => {
                    let mask = 1u8 << self.rng.u8(..8);
                    out.push(byte ^ mask);
                    Change::Flip { at: pos, mask }
                }
                Kind::Drop => Change::Drop { at: pos },
                Kind::Insert => {
                    let extra = self.rng.u8(..);
                    out.push(extra);
                    out.push(byte);
                    Change::Insert {
                        at: pos,
                        byte: extra,
                    }
                }
            };
            on(change);
            at += 1;
            self.next = self.gap();
        }
        self.offset += input.len() as u64;
    }
}

/// Follows a clean stream of the serial link profile, link frame by link frame (delimiters
/// included), and tells which messages the changes made to it touched: those with bytes in a
/// link frame a change touches. Optionally keeps each complete message's body, to compare
/// with what a receiver of the noisy stream delivered.
pub struct FrameMap {
    link: LinkDecoder,
    demux: Box<Demux<Vec<u8>, 256>>,
    keep_bodies: bool,
    frame: Vec<u8>,
    /// Offset of the current frame's leading delimiter, and whether it has a byte that is
    /// not a delimiter yet.
    start: u64,
    inside: bool,
    offset: u64,
    changes: VecDeque<Change>,
    /// Messages touched, and every message seen.
    touched: HashSet<u32>,
    seen: HashSet<u32>,
    bodies: HashMap<u32, Vec<u8>>,
    /// Per message: the indices of its first and last link frames (kept with the bodies).
    span: HashMap<u32, (u64, u64)>,
    /// Indices of the touched link frames (kept with the bodies).
    touched_at: Vec<u64>,
    frames: u64,
    touched_frames: u64,
}

impl FrameMap {
    /// A map of a stream starting now; `keep_bodies`: keep complete messages' bodies.
    pub fn new(keep_bodies: bool) -> Self {
        Self {
            link: LinkDecoder::new(),
            demux: Box::new(Demux::new(Limits::new(1 << 24))),
            keep_bodies,
            frame: Vec::new(),
            start: 0,
            inside: false,
            offset: 0,
            changes: VecDeque::new(),
            touched: HashSet::new(),
            seen: HashSet::new(),
            bodies: HashMap::new(),
            span: HashMap::new(),
            touched_at: Vec::new(),
            frames: 0,
            touched_frames: 0,
        }
    }

    /// A change made to the stream (in offset order, before the bytes it hit are given to
    /// [`clean`](Self::clean)).
    pub fn change(&mut self, c: Change) {
        self.changes.push_back(c);
    }

    /// The next bytes of the clean stream.
    pub fn clean(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.frame.push(b);
            if b != 0 {
                self.inside = true;
            } else if !self.inside {
                self.start = self.offset; // a leading delimiter
                self.frame.clear();
                self.frame.push(0);
            } else {
                self.close_frame(self.offset + 1);
            }
            self.offset += 1;
        }
    }

    /// The frame `self.start..end` (its bytes in `self.frame`) is complete.
    fn close_frame(&mut self, end: u64) {
        let mut ids = HashSet::new();
        let mut filled = self.frame.len();
        while let Some(f) = self.link.next(&mut self.frame, &mut filled) {
            assert_eq!(f.gap, None, "the clean stream has no gap");
            let mut input = &self.frame[f.body];
            loop {
                let (used, ev) = self.demux.feed(input);
                input = &input[used..];
                match ev {
                    Some(Event::Started { id, .. }) => {
                        ids.insert(id);
                    }
                    Some(Event::Data { id, chunk }) => {
                        ids.insert(id);
                        if self.keep_bodies
                            && let Some(body) = self.demux.current_mut()
                        {
                            body.extend_from_slice(chunk);
                        }
                    }
                    Some(Event::Completed { id, value }) => {
                        ids.insert(id);
                        if self.keep_bodies {
                            self.bodies.insert(id, value);
                        }
                    }
                    Some(Event::Aborted { id, .. }) => {
                        ids.insert(id);
                    }
                    Some(Event::Error { error, .. }) => panic!("clean stream: {error}"),
                    None if input.is_empty() => break,
                    None => {}
                }
            }
        }
        self.frame.clear();
        self.inside = false;
        self.frames += 1;
        // Changes before this frame touched nothing that is left to map.
        while self.changes.front().is_some_and(|c| c.at() < self.start) {
            self.changes.pop_front();
        }
        let hit = self
            .changes
            .iter()
            .take_while(|c| c.at() < end)
            .any(|c| c.touches(self.start, end));
        while self.changes.front().is_some_and(|c| c.at() < end) {
            self.changes.pop_front();
        }
        if hit {
            self.touched_frames += 1;
            self.touched.extend(ids.iter().copied());
        }
        if self.keep_bodies {
            let index = self.frames - 1;
            if hit {
                self.touched_at.push(index);
            }
            for &id in &ids {
                self.span.entry(id).or_insert((index, index)).1 = index;
            }
        }
        self.seen.extend(ids);
    }

    /// Messages (with bodies kept) that were open across a touched link frame without having
    /// a byte in it: a receiver that sees a link frame missing drops every message open at
    /// that moment, since any of them may have lost a frame.
    pub fn open_across_touched(&self) -> HashSet<u32> {
        self.span
            .iter()
            .filter(|(id, (first, last))| {
                let i = self.touched_at.partition_point(|t| t <= first);
                !self.touched.contains(id) && self.touched_at.get(i).is_some_and(|t| t < last)
            })
            .map(|(id, _)| *id)
            .collect()
    }

    /// Messages with bytes in a touched link frame.
    pub fn touched(&self) -> &HashSet<u32> {
        &self.touched
    }

    /// Every message seen.
    pub fn seen(&self) -> &HashSet<u32> {
        &self.seen
    }

    /// The body of complete message `id`, if bodies are kept.
    pub fn body(&self, id: u32) -> Option<&[u8]> {
        self.bodies.get(&id).map(Vec::as_slice)
    }

    /// Link frames seen, and those touched.
    pub fn frames(&self) -> (u64, u64) {
        (self.frames, self.touched_frames)
    }

    /// Bytes of the clean stream seen.
    pub fn len(&self) -> u64 {
        self.offset
    }

    /// Whether no byte was seen.
    pub fn is_empty(&self) -> bool {
        self.offset == 0
    }
}

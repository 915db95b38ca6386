//! The sensor-node protocol spoken with the host demo (`mux-tests`' `demo_host`).
//!
//! Every message is text. Ids are split by direction and origin so that they can never
//! collide on the host: the host numbers its commands from 1 (below [`NODE_ID_BASE`]); the
//! node answers each command *with the command's id*, and numbers its own messages (readings)
//! from [`NODE_ID_BASE`] up.
//!
//! | host → node | node → host, same id |
//! |---|---|
//! | `ping` | `pong` |
//! | `set-interval MS` | `ok interval=MS` (10 ≤ MS ≤ 10000) |
//! | `get-log` | the log dump: [`LOG_LEN`] bytes, sent one frame every [`LOG_FRAME_GAP_MS`] between readings; `err busy` if one is running |
//! | `cancel-log` | `ok cancelled=ID` after an Abort frame for the dump `ID`, or `err no-log` |
//! | `config BYTES…` (up to [`MAX_MESSAGE`] bytes) | `ok config bytes=N fnv=HHHHHHHH` (FNV-1a of the whole message) |
//! | `status` | `status interval=.. readings=.. commands=.. aborted=.. errors=..` |
//! | `bye` | `bye readings=.. commands=.. aborted=.. errors=..`, then the node exits |
//! | anything else | `err unknown-command` |
//! | a message the host aborts | `aborted` |
//!
//! Readings: `reading seq=N t=MS temp=21.53 hum=40.7`, id `NODE_ID_BASE + N`, every
//! `interval` ms. The log dump is [`LOG_LEN`] bytes of 32-byte lines, line `i` being
//! `L{i:04} ` followed by 25 letters `a + (i + k) % 26` (k = 0..25) and `\n`; the host checks
//! it byte for byte. It is never held in RAM: each frame's body is generated as it is written,
//! as a firmware would stream a log from flash.

use core::fmt::Write as _;

use mux_nostd::{AnyStrategy, FramePlan, FrameType, HEADER_LEN, Header, Original, PlannedFrame};

/// The writer strategy of every firmware. Original puts the total length in the Start frame,
/// which lets the host show the log's progress; its 1 KiB chunks suit a slow link.
pub type Strategy = Original;

/// First id of the messages the node originates (readings).
pub const NODE_ID_BASE: u32 = 0x8000_0000;
/// Size of the log dump.
pub const LOG_LEN: usize = 20 * 1024;
/// Length of one log line.
pub const LOG_LINE: usize = 32;
/// Pause between two frames of the log dump (a readings frame may go in between).
pub const LOG_FRAME_GAP_MS: u32 = 20;
/// Readings interval at boot.
pub const DEFAULT_INTERVAL_MS: u32 = 100;
/// The node gives up (and fails) after this long without a command.
pub const IDLE_TIMEOUT_MS: u32 = 20_000;
/// Largest message accepted from the host (a `config` upload); longer ones are rejected at
/// their first Data frame.
pub const MAX_MESSAGE: u32 = 2048;
/// Bytes of a command kept for parsing (commands other than `config` are shorter).
pub const MAX_COMMAND: usize = 64;

/// FNV-1a, 32 bits: the checksum a `config` reply carries.
pub fn fnv1a(mut h: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h
}

/// FNV-1a's initial value.
pub const FNV_INIT: u32 = 0x811C_9DC5;

/// A received command: its first bytes (for parsing) and a digest of the whole message.
#[derive(Debug, Clone, Copy)]
pub struct Body<'a> {
    /// Up to [`MAX_COMMAND`] first bytes.
    pub head: &'a [u8],
    /// Whole message length.
    pub len: usize,
    /// FNV-1a of the whole message.
    pub fnv: u32,
}

/// A reply or reading text.
pub type Text = heapless::String<96>;

/// A command from the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// `ping`.
    Ping,
    /// `set-interval MS`.
    SetInterval(u32),
    /// `get-log`.
    GetLog,
    /// `cancel-log`.
    CancelLog,
    /// `config …`: a configuration upload (acknowledged with its size and checksum).
    Config,
    /// `status`.
    Status,
    /// `bye`.
    Bye,
    /// Anything else.
    Unknown,
}

impl Command {
    /// Parses a command message.
    pub fn parse(body: &[u8]) -> Self {
        if body.starts_with(b"config ") {
            return Self::Config;
        }
        let Ok(text) = core::str::from_utf8(body) else {
            return Self::Unknown;
        };
        let mut words = text.split_ascii_whitespace();
        let cmd = match (words.next(), words.next()) {
            (Some("ping"), None) => Self::Ping,
            (Some("get-log"), None) => Self::GetLog,
            (Some("cancel-log"), None) => Self::CancelLog,
            (Some("status"), None) => Self::Status,
            (Some("bye"), None) => Self::Bye,
            (Some("set-interval"), Some(ms)) => match ms.parse() {
                Ok(ms) if (10..=10_000).contains(&ms) => Self::SetInterval(ms),
                _ => Self::Unknown,
            },
            _ => Self::Unknown,
        };
        if words.next().is_some() {
            Self::Unknown
        } else {
            cmd
        }
    }
}

/// Writes `len` bytes of the log starting at `offset` through `sink`, one line piece at a time.
pub fn log_bytes<E>(
    offset: usize,
    len: usize,
    mut sink: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), E> {
    let mut at = offset;
    let end = offset + len;
    let mut line = [0u8; LOG_LINE];
    while at < end {
        let i = at / LOG_LINE;
        fill_line(i, &mut line);
        let from = at % LOG_LINE;
        let to = LOG_LINE.min(from + (end - at));
        sink(&line[from..to])?;
        at += to - from;
    }
    Ok(())
}

fn fill_line(i: usize, line: &mut [u8; LOG_LINE]) {
    let mut head: heapless::String<8> = heapless::String::new();
    // Cannot fail: "L" + 4 digits + " " is 6 bytes (i < 10000 for a 20 KiB log).
    let _ = write!(head, "L{:04} ", i % 10_000);
    line[..6].copy_from_slice(head.as_bytes());
    for (k, b) in line[6..31].iter_mut().enumerate() {
        *b = b'a' + ((i + k) % 26) as u8;
    }
    line[31] = b'\n';
}

/// The log dump in progress: its frames are planned from its size alone and written one at a
/// time, so readings and replies go out between them.
#[derive(Debug, Clone)]
pub struct LogDump {
    plan: FramePlan,
    frames_sent: u32,
}

impl LogDump {
    /// A dump answering command `id`.
    pub fn new(id: u32) -> Self {
        Self::with_strategy(id, &AnyStrategy::from(Strategy::default()))
    }

    /// A dump answering command `id`, framed with `strategy` (its frames are what a reading
    /// queued during the dump waits for).
    pub fn with_strategy(id: u32, strategy: &AnyStrategy) -> Self {
        // Cannot fail: LOG_LEN fits the u32 length field.
        let plan = FramePlan::new(strategy, id, LOG_LEN).expect("log fits u32");
        Self {
            plan,
            frames_sent: 0,
        }
    }

    /// The message id (the `get-log` command's).
    pub fn id(&self) -> u32 {
        self.plan.id()
    }

    /// Cuts the frames not written yet at `chunk` bytes (under Adaptive: the chunk of the
    /// rate measured now; see `FramePlan::set_chunk`).
    pub fn set_chunk(&mut self, chunk: u32) {
        self.plan.set_chunk(chunk);
    }

    /// Frames written so far.
    pub fn frames_sent(&self) -> u32 {
        self.frames_sent
    }

    /// The next frame to write, if any.
    fn next_frame(&mut self) -> Option<PlannedFrame> {
        let f = self.plan.next()?;
        self.frames_sent += 1;
        Some(f)
    }

    /// Writes the next frame (header and generated body). Returns `Ok(true)` once the End
    /// frame has been written.
    pub fn write_next<W: embedded_io::Write>(&mut self, io: &mut W) -> Result<bool, W::Error> {
        let Some(f) = self.next_frame() else {
            return Ok(true);
        };
        io.write_all(&f.header.to_bytes())?;
        log_bytes(f.offset as usize, f.body_len() as usize, |b| {
            io.write_all(b)
        })?;
        Ok(self.plan.is_done())
    }

    /// The async form of [`write_next`](Self::write_next).
    pub async fn write_next_async<W: embedded_io_async::Write>(
        &mut self,
        io: &mut W,
    ) -> Result<bool, W::Error> {
        let Some(f) = self.next_frame() else {
            return Ok(true);
        };
        io.write_all(&f.header.to_bytes()).await?;
        let mut at = f.offset as usize;
        let end = at + f.body_len() as usize;
        let mut piece = [0u8; LOG_LINE];
        while at < end {
            // One line (or the part of it this frame holds) at a time.
            let n = (LOG_LINE - at % LOG_LINE).min(end - at);
            let mut w = 0;
            let _ = log_bytes(at, n, |b: &[u8]| -> Result<(), ()> {
                piece[w..w + b.len()].copy_from_slice(b);
                w += b.len();
                Ok(())
            });
            io.write_all(&piece[..n]).await?;
            at += n;
        }
        Ok(self.plan.is_done())
    }

    /// The Abort frame that cancels the dump (written between two frames, so the stream stays
    /// in sync).
    pub fn abort_frame(&self) -> [u8; HEADER_LEN] {
        Header::new(FrameType::Abort, self.id(), 0).to_bytes()
    }
}

/// One reading of the node's (made-up but plausible) sensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// Sequence number, from 0.
    pub seq: u32,
    /// When it was taken (the board's millisecond clock).
    pub t_ms: u32,
    /// Temperature in hundredths of a degree Celsius (20.50 to 22.49 °C).
    pub temp_centi_c: i32,
    /// Relative humidity in tenths of a percent (40.0 to 49.9 %).
    pub humidity_permille: u32,
}

impl Reading {
    /// Reading number `seq`, taken at `t_ms`: a slow sine-ish drift from the sequence number.
    pub const fn sample(seq: u32, t_ms: u32) -> Self {
        Self {
            seq,
            t_ms,
            temp_centi_c: 2150 + (seq.wrapping_mul(37) % 200) as i32 - 100,
            humidity_permille: 400 + seq.wrapping_mul(13) % 100,
        }
    }
}

/// What the firmware must do after [`Node::on_command`].
#[derive(Debug)]
pub enum Effect {
    /// Send the reply text with the command's id.
    Reply,
    /// A log dump was started with the command's id: nothing to send now.
    LogStarted,
    /// Write the dump's Abort frame ([`Node::log`] taken), then send the reply.
    CancelLog(LogDump),
    /// Send the reply, then end the run.
    Bye,
}

/// Counters the node reports in `status` and `bye`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Readings sent.
    pub readings: u32,
    /// Commands answered.
    pub commands: u32,
    /// Host messages aborted by the host.
    pub aborted: u32,
    /// Protocol errors seen on receive.
    pub errors: u32,
    /// Log dumps completed.
    pub logs: u32,
    /// Log dumps cancelled.
    pub logs_cancelled: u32,
}

/// The node's state, shared by the blocking superloop ([`crate::Superloop`]) and the async
/// firmware (which differ only in how they wait and write).
#[derive(Debug)]
pub struct Node {
    /// Readings interval.
    pub interval_ms: u32,
    /// When the next reading is due (a value of the board's millisecond clock).
    pub next_reading: u32,
    /// The log dump in progress.
    pub log: Option<LogDump>,
    /// When the next log frame is due.
    pub next_log_frame: u32,
    /// When the last command arrived.
    pub last_command: u32,
    /// Counters.
    pub stats: Stats,
    /// How the next log dump is framed (default: [`Strategy`], Original).
    pub log_strategy: AnyStrategy,
    /// Pause between two log frames (default [`LOG_FRAME_GAP_MS`]; 0 on a paced link, where
    /// the link is what spaces them).
    pub log_gap_ms: u32,
}

impl Node {
    /// A node at time `now`.
    pub fn new(now: u32) -> Self {
        Self {
            interval_ms: DEFAULT_INTERVAL_MS,
            next_reading: now,
            log: None,
            next_log_frame: now,
            last_command: now,
            stats: Stats::default(),
            log_strategy: AnyStrategy::from(Strategy::default()),
            log_gap_ms: LOG_FRAME_GAP_MS,
        }
    }

    /// Handles command message `id`, writing the reply into `reply`.
    pub fn on_command(&mut self, id: u32, body: Body<'_>, now: u32, reply: &mut Text) -> Effect {
        reply.clear();
        self.last_command = now;
        self.stats.commands += 1;
        let s = self.stats;
        // Writes below cannot fail: every reply fits the 96-byte text.
        match Command::parse(body.head) {
            Command::Ping => {
                let _ = reply.push_str("pong");
                Effect::Reply
            }
            Command::SetInterval(ms) => {
                self.interval_ms = ms;
                self.next_reading = now.wrapping_add(ms);
                let _ = write!(reply, "ok interval={ms}");
                Effect::Reply
            }
            Command::GetLog if self.log.is_some() => {
                let _ = reply.push_str("err busy");
                Effect::Reply
            }
            Command::GetLog => {
                self.log = Some(LogDump::with_strategy(id, &self.log_strategy));
                self.next_log_frame = now;
                Effect::LogStarted
            }
            Command::CancelLog => match self.log.take() {
                Some(dump) => {
                    self.stats.logs_cancelled += 1;
                    let _ = write!(reply, "ok cancelled={}", dump.id());
                    Effect::CancelLog(dump)
                }
                None => {
                    let _ = reply.push_str("err no-log");
                    Effect::Reply
                }
            },
            Command::Config => {
                let _ = write!(reply, "ok config bytes={} fnv={:08x}", body.len, body.fnv);
                Effect::Reply
            }
            Command::Status => {
                let _ = write!(
                    reply,
                    "status interval={} readings={} commands={} aborted={} errors={}",
                    self.interval_ms, s.readings, s.commands, s.aborted, s.errors
                );
                Effect::Reply
            }
            Command::Bye => {
                let _ = write!(
                    reply,
                    "bye readings={} commands={} aborted={} errors={}",
                    s.readings, s.commands, s.aborted, s.errors
                );
                Effect::Bye
            }
            Command::Unknown => {
                let _ = reply.push_str("err unknown-command");
                Effect::Reply
            }
        }
    }

    /// Records that the host aborted its message `id`; the reply is `aborted`.
    pub fn on_aborted(&mut self, now: u32, reply: &mut Text) {
        self.last_command = now;
        self.stats.aborted += 1;
        reply.clear();
        let _ = reply.push_str("aborted");
    }

    /// Records a protocol error seen on receive.
    pub fn on_error(&mut self) {
        self.stats.errors += 1;
    }

    /// If a reading is due at `now`, writes it into `text` and returns its id.
    pub fn due_reading(&mut self, now: u32, text: &mut Text) -> Option<u32> {
        if now.wrapping_sub(self.next_reading) >= u32::MAX / 2 {
            return None;
        }
        let seq = self.stats.readings;
        self.stats.readings += 1;
        self.next_reading = self.next_reading.wrapping_add(self.interval_ms);
        if now.wrapping_sub(self.next_reading) < u32::MAX / 2 {
            self.next_reading = now.wrapping_add(self.interval_ms); // fell behind: skip ahead
        }
        let r = Reading::sample(seq, now);
        text.clear();
        let _ = write!(
            text,
            "reading seq={seq} t={now} temp={}.{:02} hum={}.{}",
            r.temp_centi_c / 100,
            r.temp_centi_c % 100,
            r.humidity_permille / 10,
            r.humidity_permille % 10
        );
        Some(NODE_ID_BASE.wrapping_add(seq))
    }

    /// Whether the log dump has a frame due at `now`.
    pub fn log_frame_due(&self, now: u32) -> bool {
        self.log.is_some() && now.wrapping_sub(self.next_log_frame) < u32::MAX / 2
    }

    /// Records that a log frame was written at `now`; `done` if it was the End frame.
    pub fn log_frame_written(&mut self, now: u32, done: bool) {
        self.next_log_frame = now.wrapping_add(self.log_gap_ms);
        if done {
            self.log = None;
            self.stats.logs += 1;
        }
    }

    /// Whether the host has been silent for too long.
    pub fn idle_too_long(&self, now: u32) -> bool {
        now.wrapping_sub(self.last_command) > IDLE_TIMEOUT_MS
    }
}

//! `muxpipe`: the multiplexer in a shell pipe.
//!
//! ```text
//! muxpipe write [--link L] STRATEGY N SIZE  messages 1..N of SIZE bytes (payload rule R)
//!                                          to stdout
//! muxpipe read [--link L]                  one line per item read from stdin: ok ID LEN
//!                                          SHA256, abort ID or error TEXT; then total N
//!                                          (count of ok)
//! muxpipe echo [--link L] STRATEGY         every complete message read from stdin back to
//!                                          stdout
//! muxpipe frames                           the frames of a capture on stdin, one message
//!                                          per line
//! muxpipe advise [--pass] [--link-rate BYTES_PER_S --latency-ms MS]
//!                                          the strategy that suits the messages of a
//!                                          capture on stdin
//! ```
//! `--progress` (anywhere) shows a progress line on stderr (messages, bytes, rate), as
//! happens anyway when stderr is a terminal. `advise` is described in its module.
//! STRATEGY is `original`, `optimized`, `hybrid` (threshold 4096), `hybrid8k` or `adaptive`
//! (chunks sized to the link's measured rate so that one frame takes at most 10 ms). L is
//! `plain` (the default: the Go library's format) or `cobs` (the serial link profile, see
//! `docs/PROTOCOL.md`); both ends of a pipe must use the same. With `cobs`, `read` ends with
//! a line `link GOOD DAMAGED MISSING SKIPPED` (the link frames' counters) before `total`.
//!
//! `frames` prints `ID: S0 D1024×4 E0` per message (the notation of the golden vectors'
//! MANIFEST.md), in the order messages end; frames outside any message get a line of their
//! own with a note. End and Abort are header-only, their length fields are ignored by the
//! decoder and shown as 0; an invalid type byte t is shown as `Tt`.
//!
//! Exit status: 0, or 1 after an error (a usage error, a SIZE over the wire format's 4 GiB
//! limit, a failed read or write; `read` prints the items it got first). When the output is
//! closed early (`muxpipe write … | head -c 100`), it ends quietly with status 141 (128 +
//! SIGPIPE), as a tool killed by SIGPIPE appears to the shell.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::process::ExitCode;

use mux_nostd::{Decoder, FrameEvent, Limits, ProtocolError};
use mux_std::{AnyStrategy, Config, LinkProfile, Node, Received, RecvError, SendError, Sender};

const USAGE: &str = "usage: muxpipe [--progress] write [--link L] STRATEGY N SIZE | \
read [--link L] | echo [--link L] STRATEGY | frames
       | advise [--pass] [--link-rate BYTES_PER_S --latency-ms MS]
STRATEGY: original, optimized, hybrid (threshold 4096), hybrid8k or adaptive;
L: plain (default) or cobs";

#[path = "muxpipe/advise.rs"]
mod advise;
#[path = "muxpipe/progress.rs"]
mod progress;
#[path = "muxpipe/read.rs"]
mod read;

use progress::Progress;

/// The exit status when the output was closed early: what the shell shows for a tool killed
/// by SIGPIPE (128 + 13).
const BROKEN_PIPE_STATUS: u8 = 141;

/// Why a command stopped.
enum Fail {
    /// An error, for stderr.
    Msg(String),
    /// Our output was closed (EPIPE): end quietly.
    BrokenPipe,
}

impl From<String> for Fail {
    fn from(s: String) -> Self {
        Self::Msg(s)
    }
}

impl From<io::Error> for Fail {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Self::BrokenPipe
        } else {
            Self::Msg(e.to_string())
        }
    }
}

impl From<SendError> for Fail {
    fn from(e: SendError) -> Self {
        match e {
            SendError::Io(e) => e.into(),
            e => Self::Msg(e.to_string()),
        }
    }
}

/// A line on stderr; never panics (stderr may be closed too).
fn note(msg: &str) {
    let _ = writeln!(io::stderr(), "{msg}");
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let progress = args.iter().any(|a| a == "--progress");
    let mut args: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| *a != "--progress")
        .collect();
    // `--link L` right after the command.
    let link = match args.get(1..3) {
        Some(["--link", l]) if args[0] != "frames" && args[0] != "advise" => {
            let l = l.parse::<LinkProfile>();
            args.drain(1..3);
            l.map_err(|e| Fail::Msg(format!("{e}\n{USAGE}")))
        }
        _ => Ok(LinkProfile::Plain),
    };
    let r = link.and_then(|link| match args.as_slice() {
        ["advise", rest @ ..] => advise::Args::parse(rest, progress)
            .map_err(|e| Fail::Msg(format!("{e}\n{USAGE}")))
            .and_then(|a| advise::advise(&a)),
        ["write", strategy, n, size] => (|| {
            let s = strategy_arg(strategy)?;
            write(s, number(n)?, number(size)?, link, progress)
        })(),
        ["read"] => read::read(link, progress),
        ["echo", strategy] => strategy_arg(strategy).and_then(|s| echo(s, link, progress)),
        ["frames"] => frames(),
        _ => Err(USAGE.to_string().into()),
    });
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail::BrokenPipe) => ExitCode::from(BROKEN_PIPE_STATUS),
        Err(Fail::Msg(e)) => {
            note(&format!("muxpipe: {e}"));
            ExitCode::FAILURE
        }
    }
}

fn strategy_arg(s: &str) -> Result<AnyStrategy, Fail> {
    s.parse().map_err(|e| Fail::Msg(format!("{e}\n{USAGE}")))
}

fn number(s: &str) -> Result<usize, Fail> {
    s.parse()
        .map_err(|_| Fail::Msg(format!("not a number: {s:?}\n{USAGE}")))
}

/// Stdout as a plain file (no line buffering, vectored writes reach the OS).
#[cfg(unix)]
fn stdout() -> io::Result<std::fs::File> {
    use std::os::fd::AsFd;
    Ok(std::fs::File::from(
        io::stdout().as_fd().try_clone_to_owned()?,
    ))
}

#[cfg(not(unix))]
fn stdout() -> io::Result<io::Stdout> {
    Ok(io::stdout())
}

/// Bytes a pipe holds after [`widen_pipe`]: a writer and a reader of many small messages
/// then meet a full or an empty pipe (and switch) less often.
#[cfg(target_os = "linux")]
const PIPE_LEN: usize = 1 << 20;

/// If `f` is a pipe, asks the kernel to let it hold [`PIPE_LEN`] bytes (a pipe holds 64 KiB
/// by default). Best effort: the call fails on anything but a pipe, and an unprivileged
/// process is refused past the system's `/proc/sys/fs/pipe-max-size`; then the file stays
/// as it was.
#[cfg(target_os = "linux")]
fn widen_pipe(f: &impl std::os::fd::AsFd) {
    let _ = rustix::pipe::fcntl_setpipe_size(f, PIPE_LEN);
}

#[cfg(not(target_os = "linux"))]
fn widen_pipe<T>(_: &T) {}

/// Stdin as a plain file (reads go straight to the reader's buffer).
#[cfg(unix)]
fn stdin() -> io::Result<std::fs::File> {
    use std::os::fd::AsFd;
    Ok(std::fs::File::from(
        io::stdin().as_fd().try_clone_to_owned()?,
    ))
}

#[cfg(not(unix))]
fn stdin() -> io::Result<io::Stdin> {
    Ok(io::stdin())
}

/// A read of `input` into `buf`, tried again when interrupted by a signal.
fn read_some(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match input.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            r => return r,
        }
    }
}

/// Payload rule R: byte i = (i·31 + 7) mod 251. `size` is checked against the wire format's
/// limit first, and the allocation may fail with an error (never an abort).
fn rule_r(size: usize) -> Result<Vec<u8>, Fail> {
    if u32::try_from(size).is_err() {
        return Err(Fail::Msg(format!(
            "SIZE {size} is over the wire format's 4 GiB limit (at most {} bytes per message)",
            u32::MAX
        )));
    }
    let mut payload = Vec::new();
    payload
        .try_reserve_exact(size)
        .map_err(|e| Fail::Msg(format!("cannot allocate a payload of {size} bytes: {e}")))?;
    payload.extend((0..size).map(|i| ((i * 31 + 7) % 251) as u8));
    Ok(payload)
}

fn write(
    strategy: AnyStrategy,
    n: usize,
    size: usize,
    link: LinkProfile,
    progress: bool,
) -> Result<(), Fail> {
    let progress = Progress::new(progress, "write");
    let payload = rule_r(size)?;
    let config = Config {
        link,
        ..Config::with_strategy(strategy)
    };
    let out = stdout()?;
    widen_pipe(&out);
    let tx = Sender::new(out, &config).map_err(|e| Fail::Msg(e.to_string()))?;
    // A bulk producer: small messages gather in the shared write buffer and leave together
    // (large ones are written straight from the payload); `close` flushes the rest.
    for i in 1..=n as u64 {
        tx.send_buffered(&payload)?;
        progress.set(i, i * size as u64);
    }
    tx.close()?;
    progress.finish(n as u64, (n * size) as u64);
    Ok(())
}

fn echo(strategy: AnyStrategy, link: LinkProfile, progress: bool) -> Result<(), Fail> {
    let progress = Progress::new(progress, "echo");
    let config = Config {
        link,
        ..Config::with_strategy(strategy)
    };
    let node = Node::new(stdin()?, stdout()?, config)?;
    let (mut messages, mut bytes) = (0u64, 0u64);
    loop {
        match node.recv() {
            Ok(Received::Message(m)) => {
                node.send_with_id(m.id(), m.body())?;
                node.flush()?;
                messages += 1;
                bytes += m.len() as u64;
                progress.set(messages, bytes);
            }
            Ok(Received::Aborted { id }) => note(&format!("muxpipe echo: message {id} aborted")),
            Ok(other) => note(&format!("muxpipe echo: {other:?}")),
            Err(RecvError::Closed) => break,
            Err(e) => note(&format!("muxpipe echo: {e}")),
        }
    }
    progress.finish(messages, bytes);
    node.close()?;
    Ok(())
}

/// Appends a token, merging runs of equal tokens as `×k`.
fn push_token(line: &mut Vec<(String, u32)>, token: String) {
    match line.last_mut() {
        Some((last, k)) if *last == token => *k += 1,
        _ => line.push((token, 1)),
    }
}

fn render(id: u32, line: &[(String, u32)], note: &str) -> String {
    let mut s = format!("{id}:");
    for (t, k) in line {
        if *k == 1 {
            let _ = write!(s, " {t}");
        } else {
            let _ = write!(s, " {t}×{k}");
        }
    }
    s.push_str(note);
    s
}

/// A message open in `frames`: when it started (for the order of the unfinished ones at the
/// end) and its tokens so far.
struct Open {
    seq: u64,
    line: Vec<(String, u32)>,
}

fn frames() -> Result<(), Fail> {
    let mut input = stdin()?;
    // Lines leave in 64 KiB writes, not one write per line (stdout is line-buffered).
    let mut out = io::BufWriter::with_capacity(1 << 16, stdout()?);
    let mut decoder = Decoder::new(Limits::REFERENCE.max_frame);
    // Every frame costs O(1): open messages by id, in start order by `seq`.
    let mut open: HashMap<u32, Open> = HashMap::new();
    let mut seq = 0u64;
    // The Data frame being read: (id, length, bytes seen).
    let mut data: Option<(u32, u32, u32)> = None;
    let mut buf = vec![0u8; 64 << 10];
    let mut lines: Vec<String> = Vec::new();
    loop {
        let n = match read_some(&mut input, &mut buf)? {
            0 => break,
            n => n,
        };
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            let (used, ev) = decoder.decode(rest);
            rest = &rest[used..];
            let Some(ev) = ev else { continue };
            match ev {
                FrameEvent::Start { id, len_hint } => {
                    if let Some(old) = open.remove(&id) {
                        lines.push(render(id, &old.line, " (restarted)"));
                    }
                    let line = vec![(format!("S{len_hint}"), 1)];
                    open.insert(id, Open { seq, line });
                    seq += 1;
                }
                FrameEvent::Data {
                    id,
                    chunk,
                    offset,
                    frame_len,
                    ..
                } => {
                    // A frame may come in several events; a new one starts when none is
                    // under way.
                    let new_frame = data.is_none();
                    let got = offset + chunk.len() as u32;
                    data = (got < frame_len).then_some((id, frame_len, got));
                    if new_frame {
                        let token = format!("D{frame_len}");
                        match open.get_mut(&id) {
                            Some(o) => push_token(&mut o.line, token),
                            None => lines.push(format!("{id}: {token} (unknown id)")),
                        }
                    }
                }
                FrameEvent::End { id } | FrameEvent::Abort { id } => {
                    let end = matches!(ev, FrameEvent::End { .. });
                    let token = if end { "E0" } else { "A0" };
                    match open.remove(&id) {
                        Some(mut o) => {
                            push_token(&mut o.line, token.to_string());
                            lines.push(render(id, &o.line, ""));
                        }
                        None => lines.push(format!("{id}: {token} (unknown id)")),
                    }
                }
                FrameEvent::Error(ProtocolError::UnknownType { type_byte, id }) => {
                    lines.push(format!("{id}: T{type_byte} (invalid type)"));
                }
                FrameEvent::Error(ProtocolError::FrameTooLarge { id, len, .. }) => {
                    lines.push(format!("{id}: D{len} (over the 10 MiB limit, skipped)"));
                }
                FrameEvent::Error(e) => lines.push(format!("error {e}")),
            }
        }
        for l in lines.drain(..) {
            writeln!(out, "{l}")?;
        }
    }
    let mut cut = None;
    if let Err(ProtocolError::Truncated { missing }) = decoder.finish() {
        match data {
            Some((id, len, got)) => match open.get_mut(&id).map(|o| &mut o.line) {
                // The message's last frame is the cut one: show it in the notation of
                // MANIFEST.md.
                Some(line) => {
                    if let Some((token, k)) = line.pop()
                        && k > 1
                    {
                        line.push((token, k - 1));
                    }
                    line.push((format!("D{len}[+{got}B]"), 1));
                }
                None => lines.push(format!("{id}: D{len}[+{got}B] (truncated)")),
            },
            None => cut = Some(format!("truncated ({missing} bytes missing)")),
        }
    }
    let mut unfinished: Vec<(u32, Open)> = open.into_iter().collect();
    unfinished.sort_unstable_by_key(|(_, o)| o.seq);
    for (id, o) in unfinished {
        lines.push(render(id, &o.line, " (unfinished)"));
    }
    lines.extend(cut);
    for l in lines {
        writeln!(out, "{l}")?;
    }
    out.flush()?;
    Ok(())
}

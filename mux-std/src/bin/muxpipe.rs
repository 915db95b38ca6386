//! `muxpipe`: the multiplexer in a shell pipe.
//!
//! ```text
//! muxpipe write STRATEGY N SIZE   messages 1..N of SIZE bytes (payload rule R) to stdout
//! muxpipe read                    one line per item read from stdin: ok ID LEN SHA256,
//!                                 abort ID or error TEXT; then total N (count of ok)
//! muxpipe echo STRATEGY           every complete message read from stdin back to stdout
//! muxpipe frames                  the frames of a capture on stdin, one message per line
//! ```
//! STRATEGY is `original`, `optimized`, `hybrid` (threshold 4096) or `hybrid8k`.
//!
//! `frames` prints `ID: S0 D1024×4 E0` per message (the notation of the golden vectors'
//! MANIFEST.md), in the order messages end; frames outside any message get a line of their
//! own with a note. End and Abort are header-only, their length fields are ignored by the
//! decoder and shown as 0; an invalid type byte t is shown as `Tt`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::process::ExitCode;

use mux_nostd::{Decoder, FrameEvent, Limits, ProtocolError};
use mux_std::{AnyStrategy, Config, Node, Received, Receiver, RecvError, Sender};
use sha2::{Digest, Sha256};

const USAGE: &str = "usage: muxpipe write STRATEGY N SIZE | read | echo STRATEGY | frames
STRATEGY: original, optimized, hybrid (threshold 4096) or hybrid8k";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = match args.as_slice() {
        ["write", strategy, n, size] => strategy_arg(strategy).and_then(|s| {
            let n = number(n)?;
            let size = number(size)?;
            write(s, n, size)
        }),
        ["read"] => read(),
        ["echo", strategy] => strategy_arg(strategy).and_then(echo),
        ["frames"] => frames(),
        _ => Err(USAGE.to_string()),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("muxpipe: {e}");
            ExitCode::FAILURE
        }
    }
}

fn strategy_arg(s: &str) -> Result<AnyStrategy, String> {
    s.parse().map_err(|e| format!("{e}\n{USAGE}"))
}

fn number(s: &str) -> Result<usize, String> {
    s.parse()
        .map_err(|_| format!("not a number: {s:?}\n{USAGE}"))
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

fn io_err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Payload rule R: byte i = (i·31 + 7) mod 251.
fn rule_r(size: usize) -> Vec<u8> {
    (0..size).map(|i| ((i * 31 + 7) % 251) as u8).collect()
}

fn write(strategy: AnyStrategy, n: usize, size: usize) -> Result<(), String> {
    let tx = Sender::new(stdout().map_err(io_err)?, &Config::with_strategy(strategy));
    let payload = rule_r(size);
    for _ in 0..n {
        tx.send(&payload).map_err(io_err)?;
    }
    tx.close().map_err(io_err)?;
    Ok(())
}

fn read() -> Result<(), String> {
    let rx = Receiver::spawn(stdin().map_err(io_err)?, &Config::default()).map_err(io_err)?;
    let out = io::stdout();
    let mut out = out.lock();
    let mut total = 0u64;
    let mut line = String::new();
    for item in &rx {
        line.clear();
        match item {
            Ok(Received::Message(m)) => {
                total += 1;
                let _ = write!(line, "ok {} {} ", m.id(), m.len());
                for b in Sha256::digest(m.body()) {
                    let _ = write!(line, "{b:02x}");
                }
            }
            Ok(Received::Aborted { id }) => {
                let _ = write!(line, "abort {id}");
            }
            Ok(Received::Error(e)) => {
                let _ = write!(line, "error {e}");
            }
            Ok(other) => {
                let _ = write!(line, "error unexpected item {other:?}");
            }
            Err(e) => {
                let _ = write!(line, "error {e}");
            }
        }
        writeln!(out, "{line}").map_err(io_err)?;
    }
    writeln!(out, "total {total}").map_err(io_err)?;
    out.flush().map_err(io_err)
}

fn echo(strategy: AnyStrategy) -> Result<(), String> {
    let node = Node::new(
        stdin().map_err(io_err)?,
        stdout().map_err(io_err)?,
        Config::with_strategy(strategy),
    )
    .map_err(io_err)?;
    loop {
        match node.recv() {
            Ok(Received::Message(m)) => {
                node.send_with_id(m.id(), m.body()).map_err(io_err)?;
                node.flush().map_err(io_err)?;
            }
            Ok(Received::Aborted { id }) => eprintln!("muxpipe echo: message {id} aborted"),
            Ok(other) => eprintln!("muxpipe echo: {other:?}"),
            Err(RecvError::Closed) => break,
            Err(e) => eprintln!("muxpipe echo: {e}"),
        }
    }
    node.close().map_err(io_err)?;
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

fn frames() -> Result<(), String> {
    let mut input = stdin().map_err(io_err)?;
    let out = io::stdout();
    let mut out = out.lock();
    let mut decoder = Decoder::new(Limits::REFERENCE.max_frame);
    let mut open: HashMap<u32, Vec<(String, u32)>> = HashMap::new();
    let mut order: Vec<u32> = Vec::new();
    // The Data frame being read: (id, length, bytes seen).
    let mut data: Option<(u32, u32, u32)> = None;
    let mut buf = vec![0u8; 64 << 10];
    let mut lines: Vec<String> = Vec::new();
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(e)),
        };
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            let (used, ev) = decoder.decode(rest);
            rest = &rest[used..];
            let Some(ev) = ev else { continue };
            match ev {
                FrameEvent::Start { id, len_hint } => {
                    if let Some(old) = open.remove(&id) {
                        lines.push(render(id, &old, " (restarted)"));
                        order.retain(|&x| x != id);
                    }
                    open.insert(id, vec![(format!("S{len_hint}"), 1)]);
                    order.push(id);
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
                            Some(line) => push_token(line, token),
                            None => lines.push(format!("{id}: {token} (unknown id)")),
                        }
                    }
                }
                FrameEvent::End { id } | FrameEvent::Abort { id } => {
                    let end = matches!(ev, FrameEvent::End { .. });
                    let token = if end { "E0" } else { "A0" };
                    match open.remove(&id) {
                        Some(mut line) => {
                            push_token(&mut line, token.to_string());
                            order.retain(|&x| x != id);
                            lines.push(render(id, &line, ""));
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
            writeln!(out, "{l}").map_err(io_err)?;
        }
    }
    let mut cut = None;
    if let Err(ProtocolError::Truncated { missing }) = decoder.finish() {
        match data {
            Some((id, len, got)) => match open.get_mut(&id) {
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
    for id in order {
        if let Some(line) = open.remove(&id) {
            lines.push(render(id, &line, " (unfinished)"));
        }
    }
    lines.extend(cut);
    for l in lines {
        writeln!(out, "{l}").map_err(io_err)?;
    }
    out.flush().map_err(io_err)
}

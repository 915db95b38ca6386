//! `muxplug`: a plugin host on the command line.
//!
//! ```text
//! muxplug call PLUGIN SERVICE PAYLOAD [--timeout MS]
//! muxplug bench PLUGIN N SIZE CONC
//! muxplug replay CAPTURE [--record FILE]
//! ```
//!
//! `call` starts PLUGIN, calls SERVICE with PAYLOAD, prints the reply and a newline, and shuts
//! the plugin down. An error reply prints `error: TEXT` and exits 1; a plugin that cannot be
//! started, crashes or times out prints `error: TEXT` and exits 2.
//!
//! `bench` makes N `echo` calls of SIZE bytes (each payload different, each reply checked)
//! from CONC threads and prints one line:
//! `n=N size=SIZE conc=CONC total_ms=T rps=R p50_us=A p99_us=B max_us=C` (round trip per
//! call).
//!
//! `replay` is a stand-in plugin for testing hosts: it serves on stdin and stdout the replies
//! recorded in CAPTURE (a plugin's output, such as `tests/vectors/plugin/script-plugin-to-host.bin`).
//! It sends the capture's `ready` first; each request is answered with the capture's first
//! unused reply of the same name (or `NAME_ack`), frame for frame as recorded but with the
//! request's id, preceded by the notifications recorded before that reply. With `--record`,
//! everything the host sends is also written to FILE.

use std::io::Write;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mux_std::plugin::{CallError, CallOptions, Host, names};

const USAGE: &str = "usage: muxplug call PLUGIN SERVICE PAYLOAD [--timeout MS]\n       muxplug bench PLUGIN N SIZE CONC\n       muxplug replay CAPTURE [--record FILE]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["call", plugin, service, payload] => call(plugin, service, payload, None),
        ["call", plugin, service, payload, "--timeout", ms] => match ms.parse() {
            Ok(ms) => call(plugin, service, payload, Some(Duration::from_millis(ms))),
            Err(_) => usage(),
        },
        ["bench", plugin, n, size, conc] => match (n.parse(), size.parse(), conc.parse()) {
            (Ok(n), Ok(size), Ok(conc)) if conc > 0 => bench(plugin, n, size, conc),
            _ => usage(),
        },
        ["replay", capture] => replay::run(capture, None),
        ["replay", capture, "--record", file] => replay::run(capture, Some(file)),
        _ => usage(),
    }
}

fn usage() -> ExitCode {
    eprintln!("{USAGE}");
    ExitCode::from(2)
}

fn fail(text: impl std::fmt::Display) -> ExitCode {
    println!("error: {text}");
    ExitCode::from(2)
}

fn call(plugin: &str, service: &str, payload: &str, timeout: Option<Duration>) -> ExitCode {
    let mut builder = Host::builder(Command::new(plugin));
    for name in names::LOG_NAMES {
        builder = builder.on_notify(name, move |payload| {
            eprintln!("plugin {name}: {}", String::from_utf8_lossy(payload));
        });
    }
    let host = match builder.spawn() {
        Ok(h) => h,
        Err(e) => return fail(e),
    };
    let opts = CallOptions {
        timeout,
        ..CallOptions::default()
    };
    let code = match host.call_with(service, payload.as_bytes(), &opts) {
        Ok(reply) => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&reply).and_then(|()| out.write_all(b"\n"));
            let _ = out.flush();
            ExitCode::SUCCESS
        }
        Err(CallError::Remote(text)) => {
            println!("error: {text}");
            ExitCode::from(1)
        }
        Err(e) => fail(e),
    };
    host.shutdown();
    code
}

/// Payload of call `k`: rule R shifted by `k`, with `k` in its first bytes, so that every
/// payload differs and a reply to the wrong call is caught.
fn payload(k: usize, size: usize) -> Vec<u8> {
    let mut p: Vec<u8> = (0..size)
        .map(|i| ((i * 31 + 7 + k * 13) % 251) as u8)
        .collect();
    let tag = (k as u64).to_le_bytes();
    let n = size.min(tag.len());
    p[..n].copy_from_slice(&tag[..n]);
    p
}

fn bench(plugin: &str, n: usize, size: usize, conc: usize) -> ExitCode {
    let host = match Host::spawn(Command::new(plugin)) {
        Ok(h) => h,
        Err(e) => return fail(e),
    };
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    let results: Vec<Result<Vec<u32>, String>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..conc)
            .map(|_| {
                s.spawn(|| {
                    let mut times = Vec::with_capacity(n / conc + 1);
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        if k >= n {
                            return Ok(times);
                        }
                        let p = payload(k, size);
                        let t0 = Instant::now();
                        let reply = host.call("echo", &p).map_err(|e| e.to_string())?;
                        let us = t0.elapsed().as_micros();
                        if *reply != *p {
                            return Err(format!("reply to call {k} differs from its payload"));
                        }
                        times.push(u32::try_from(us).unwrap_or(u32::MAX));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|_| Err("caller panicked".into())))
            .collect()
    });
    let total = start.elapsed();
    host.shutdown();
    let mut times = Vec::with_capacity(n);
    for r in results {
        match r {
            Ok(t) => times.extend(t),
            Err(e) => return fail(e),
        }
    }
    times.sort_unstable();
    let pct = |q: f64| -> u32 {
        if times.is_empty() {
            return 0;
        }
        let i = ((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1;
        times[i]
    };
    let secs = total.as_secs_f64();
    println!(
        "n={n} size={size} conc={conc} total_ms={:.1} rps={:.0} p50_us={} p99_us={} max_us={}",
        secs * 1e3,
        n as f64 / secs,
        pct(0.50),
        pct(0.99),
        times.last().copied().unwrap_or(0)
    );
    ExitCode::SUCCESS
}

mod replay {
    //! A stand-in plugin serving recorded replies.

    use std::fs::File;
    use std::io::{self, Read, Write};
    use std::process::ExitCode;

    use mux_nostd::{Decoder, FrameEvent, Limits};
    use mux_std::plugin::{Header, Kind, names};
    use mux_std::{Config, Received, Receiver};

    /// One recorded message: its frames (whole, as recorded) and its body.
    struct Recorded {
        frames: Vec<Vec<u8>>,
        body: Vec<u8>,
        complete: bool,
        sent: bool,
    }

    impl Recorded {
        fn header(&self) -> Option<Header<'_>> {
            Header::decode(&self.body).ok()
        }

        fn is_reply(&self) -> bool {
            self.header().is_some_and(|h| {
                matches!(h.kind, Kind::Response | Kind::Error | Kind::Ack)
                    && h.name != names::READY.as_bytes()
            })
        }
    }

    /// The capture's messages in the order they started.
    fn parse(wire: &[u8]) -> Vec<Recorded> {
        let mut d = Decoder::new(Limits::REFERENCE.max_frame);
        let mut order: Vec<(u32, Recorded)> = Vec::new();
        let mut at = 0;
        while at < wire.len() {
            let (n, ev) = d.decode(&wire[at..]);
            let frame = wire[at..at + n].to_vec();
            at += n;
            let id = match ev {
                Some(FrameEvent::Start { id, .. }) => {
                    order.push((
                        id,
                        Recorded {
                            frames: Vec::new(),
                            body: Vec::new(),
                            complete: false,
                            sent: false,
                        },
                    ));
                    id
                }
                Some(FrameEvent::Data { id, chunk, .. }) => {
                    if let Some((_, m)) = order
                        .iter_mut()
                        .rev()
                        .find(|(i, m)| *i == id && !m.complete)
                    {
                        m.body.extend_from_slice(chunk);
                    }
                    id
                }
                Some(FrameEvent::End { id } | FrameEvent::Abort { id }) => id,
                Some(FrameEvent::Error(_)) | None => continue,
            };
            if let Some((_, m)) = order
                .iter_mut()
                .rev()
                .find(|(i, m)| *i == id && !m.complete)
            {
                m.frames.push(frame);
                if matches!(ev, Some(FrameEvent::End { .. } | FrameEvent::Abort { .. })) {
                    m.complete = true;
                }
            }
        }
        order
            .into_iter()
            .map(|(_, m)| m)
            .filter(|m| m.complete)
            .collect()
    }

    /// Writes a recorded message's frames, with the id changed to `id` if given.
    fn emit(out: &mut impl Write, m: &Recorded, id: Option<u32>) -> io::Result<()> {
        for f in &m.frames {
            let mut f = f.clone();
            if let Some(id) = id {
                f[1..5].copy_from_slice(&id.to_be_bytes());
            }
            out.write_all(&f)?;
        }
        Ok(())
    }

    /// Copies what it reads to a file.
    struct Tee<R> {
        inner: R,
        record: Option<File>,
    }

    impl<R: Read> Read for Tee<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.inner.read(buf)?;
            if let Some(f) = &mut self.record {
                f.write_all(&buf[..n])?;
            }
            Ok(n)
        }
    }

    pub(crate) fn run(capture: &str, record: Option<&str>) -> ExitCode {
        match serve(capture, record) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("muxplug replay: {e}");
                ExitCode::from(2)
            }
        }
    }

    fn serve(capture: &str, record: Option<&str>) -> io::Result<()> {
        let mut recorded = parse(&std::fs::read(capture)?);
        let record = record.map(File::create).transpose()?;
        let input = Tee {
            inner: io::stdin(),
            record,
        };
        let rx = Receiver::spawn(input, &Config::default())?;
        let mut out = io::stdout().lock();
        for m in recorded.iter_mut().filter(|m| !m.is_reply()) {
            if m.header()
                .is_some_and(|h| h.name == names::READY.as_bytes())
            {
                emit(&mut out, m, None)?;
                m.sent = true;
                break;
            }
        }
        out.flush()?;
        for item in &rx {
            let Ok(Received::Message(msg)) = item else {
                continue;
            };
            let Ok(req) = Header::decode(msg.body()) else {
                continue;
            };
            let mut ack = req.name.to_vec();
            ack.extend_from_slice(b"_ack");
            let Some(j) = recorded.iter().position(|m| {
                !m.sent
                    && m.is_reply()
                    && m.header()
                        .is_some_and(|h| h.name == req.name || h.name == ack.as_slice())
            }) else {
                continue;
            };
            for m in &mut recorded[..j] {
                if !m.sent && !m.is_reply() {
                    emit(&mut out, m, None)?;
                    m.sent = true;
                }
            }
            emit(&mut out, &recorded[j], Some(msg.id()))?;
            recorded[j].sent = true;
            out.flush()?;
        }
        Ok(())
    }
}

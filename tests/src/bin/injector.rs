//! `injector`: a noisy line between two processes. Copies stdin to stdout, and at a given rate
//! per input byte flips a bit of it, drops it, or inserts a random byte before it (each a
//! third of the time, unless told otherwise), from a seeded generator, so a run can be
//! repeated exactly.
//!
//! ```text
//! injector --seed S --rate R [--kinds flip,drop,insert] [--log FILE]
//! ```
//!
//! With `--log`, each change is written to FILE as one line, in stream order, by its offset
//! in the input: `flip OFFSET MASK`, `drop OFFSET` or `insert OFFSET BYTE` (inserted before
//! the input byte at OFFSET). The last line is `end LENGTH`, the input's length.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::process::ExitCode;

use mux_tests::noise::{Kind, Noise};

const USAGE: &str = "usage: injector --seed S --rate R [--kinds flip,drop,insert] [--log FILE]";

struct Options {
    seed: u64,
    rate: f64,
    kinds: Vec<Kind>,
    log: Option<String>,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        seed: 0,
        rate: 0.0,
        kinds: vec![Kind::Flip, Kind::Drop, Kind::Insert],
        log: None,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = it.next().ok_or(USAGE)?;
        match a.as_str() {
            "--seed" => o.seed = v.parse().map_err(|_| format!("bad seed {v:?}"))?,
            "--rate" => o.rate = v.parse().map_err(|_| format!("bad rate {v:?}"))?,
            "--kinds" => {
                o.kinds = v
                    .split(',')
                    .map(|k| match k {
                        "flip" => Ok(Kind::Flip),
                        "drop" => Ok(Kind::Drop),
                        "insert" => Ok(Kind::Insert),
                        _ => Err(format!("bad kind {k:?}")),
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--log" => o.log = Some(v.clone()),
            _ => return Err(USAGE.to_string()),
        }
    }
    if !(0.0..1.0).contains(&o.rate) || o.kinds.is_empty() {
        return Err(format!(
            "rate must be in [0, 1) and kinds not empty\n{USAGE}"
        ));
    }
    Ok(o)
}

fn run(o: &Options) -> io::Result<()> {
    let mut noise = Noise::new(o.seed, o.rate, &o.kinds);
    let mut log = match &o.log {
        Some(path) => Some(BufWriter::new(File::create(path)?)),
        None => None,
    };
    let mut input = io::stdin().lock();
    let mut output = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let mut buf = vec![0u8; 1 << 16];
    let mut out = Vec::with_capacity(1 << 17);
    let mut offset = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        out.clear();
        let mut logged = Ok(());
        noise.apply(&buf[..n], &mut out, |c| {
            if let Some(l) = log.as_mut()
                && logged.is_ok()
            {
                logged = writeln!(l, "{}", c.log_line());
            }
        });
        logged?;
        offset += n as u64;
        output.write_all(&out)?;
    }
    output.flush()?;
    if let Some(l) = log.as_mut() {
        writeln!(l, "end {offset}")?;
        l.flush()?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("injector: {e}");
            return ExitCode::FAILURE;
        }
    };
    match run(&o) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::from(141),
        Err(e) => {
            eprintln!("injector: {e}");
            ExitCode::FAILURE
        }
    }
}

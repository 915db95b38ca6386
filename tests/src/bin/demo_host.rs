//! The host side of the embedded demo: a `mux-std` node on a loopback TCP port, wired to UART0
//! of a Cortex-M firmware running under QEMU (`lm3s6965evb`).
//!
//! ```text
//! demo_host --firmware examples-embedded/target/thumbv7m-none-eabi/release/sensor_node \
//!           [--cpu cortex-m3|cortex-m0] [--qemu PROG] [--timeout SECONDS] [--check]
//!           [--pace BYTES_PER_S [--strategy adaptive|original]]
//! demo_host --device /dev/ttyUSB0 [--baud 115200] [--timeout SECONDS]
//! ```
//!
//! `--device` talks to a real board instead (the firmware in `examples-embedded/boards/`) over
//! a serial port, which it sets to raw mode at `--baud` with `stty`. The board stays silent
//! until the host's first message, so the host never starts reading in the middle of a frame;
//! reset the board before each run. There is no firmware exit status to check on a board: its
//! counters in the `bye` reply are checked instead.
//!
//! `--cpu cortex-m0` runs a `thumbv6m-none-eabi` build on the same board with a Cortex-M0
//! core (QEMU accepts the override; a `thumbv7m` build faults there).
//!
//! It listens on `127.0.0.1:0`, starts QEMU with `-serial tcp:127.0.0.1:PORT`, and runs a fixed
//! exchange while printing it: readings as they arrive, each command's round trip and latency,
//! the log dump's progress (with the readings that arrive between its frames), a cancelled log
//! dump, a message the host aborts, then `bye`. It then checks that nothing was lost or
//! corrupted (every reading's sequence number, every reply's id and text, the log's bytes, the
//! firmware's own counters and exit status) and exits 1 if anything failed. `--check` (for
//! the test scripts) only shortens the opening watch of readings from ten to three.
//!
//! `--link cobs` speaks the serial link profile (the firmware must be built with the feature
//! `cobs-link`: `bash scripts/demo.sh --link cobs`). `--noise RATE [--seed S]` (QEMU only, with
//! `--link cobs`) puts a noisy line between QEMU and the host: every byte from the firmware is
//! hit with probability RATE (a bit flipped, the byte dropped, or a byte inserted before it).
//! The exchange is then a different one, meant for that line: faster readings and three log
//! dumps, then `bye`; the host follows the clean stream's link frames to know which messages the
//! noise touched, and checks that no message was delivered damaged (each is compared with its
//! clean bytes), that every untouched one was delivered, and that every other one was reported
//! lost.
//! `--pace` has the firmware (`sensor_node` or `async_node`) send at that many bytes per second,
//! as a UART at a real baud rate does (11520 for 115,200 baud), and frame its log dump with
//! Adaptive (`--strategy original`: Original's 1 KiB frames, for contrast); the summary then
//! shows how long the firmware's readings waited during the log dumps.
//!
//! The protocol is described in `examples-embedded/sensor-app/src/protocol.rs`.

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mux_std::{
    AnyStrategy, Config, LinkProfile, Node, ProtocolError, Received, RecvError, SendError,
    TryRecvError,
};
use mux_test_support::sensor::{LOG_LEN, config_blob, expected_log, fnv1a};
use mux_tests::noise::{FrameMap, Kind, Noise};

/// First id of the messages the firmware originates (its readings).
const NODE_ID_BASE: u32 = 0x8000_0000;
/// Longest wait for any one expected item.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

struct Options {
    firmware: String,
    device: Option<String>,
    baud: u32,
    qemu: String,
    cpu: String,
    check: bool,
    timeout: Duration,
    link: LinkProfile,
    /// `--noise RATE` and `--seed S`.
    noise: Option<(f64, u64)>,
    /// `--pace`: the firmware's UART rate, bytes per second.
    pace: Option<u32>,
    /// `--strategy original`: the paced firmware keeps Original's frames.
    fixed: bool,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        firmware: String::new(),
        device: None,
        baud: 115_200,
        qemu: "qemu-system-arm".into(),
        cpu: "cortex-m3".into(),
        check: false,
        timeout: Duration::from_secs(60),
        link: LinkProfile::Plain,
        noise: None,
        pace: None,
        fixed: false,
    };
    let mut seed = 1;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--firmware" => o.firmware = args.next().ok_or("--firmware needs a path")?,
            "--device" => o.device = Some(args.next().ok_or("--device needs a path")?),
            "--baud" => {
                let s = args.next().ok_or("--baud needs a rate")?;
                o.baud = s.parse().map_err(|_| "bad --baud")?;
            }
            "--qemu" => o.qemu = args.next().ok_or("--qemu needs a program")?,
            "--cpu" => o.cpu = args.next().ok_or("--cpu needs a core name")?,
            "--check" => o.check = true,
            "--link" => {
                let s = args.next().ok_or("--link needs plain or cobs")?;
                o.link = s.parse()?;
            }
            "--noise" => {
                let s = args.next().ok_or("--noise needs a rate")?;
                let rate: f64 = s.parse().map_err(|_| "bad --noise")?;
                o.noise = Some((rate, 0));
            }
            "--seed" => {
                let s = args.next().ok_or("--seed needs a number")?;
                seed = s.parse().map_err(|_| "bad --seed")?;
            }
            "--pace" => {
                let s = args.next().ok_or("--pace needs bytes per second")?;
                o.pace = Some(s.parse().map_err(|_| "bad --pace")?);
            }
            "--strategy" => match args.next().as_deref() {
                Some("original") => o.fixed = true,
                Some("adaptive") => o.fixed = false,
                _ => return Err("--strategy takes adaptive or original".into()),
            },
            "--timeout" => {
                let s = args.next().ok_or("--timeout needs seconds")?;
                o.timeout = Duration::from_secs(s.parse().map_err(|_| "bad --timeout")?);
            }
            "-h" | "--help" => {
                return Err(
                    "usage: demo_host --firmware ELF [--cpu CORE] [--qemu PROG] [--check] [--timeout S] [--link plain|cobs] [--noise RATE [--seed S]] [--pace BYTES_PER_S [--strategy adaptive|original]]\n       demo_host --device TTY [--baud RATE] [--timeout S] [--link plain|cobs]".into(),
                );
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if o.firmware.is_empty() == o.device.is_none() {
        return Err("give either --firmware ELF or --device TTY".into());
    }
    if let Some((rate, _)) = o.noise {
        if o.link != LinkProfile::Cobs || o.device.is_some() || !(0.0..1.0).contains(&rate) {
            return Err("--noise RATE (in [0, 1)) needs --link cobs and --firmware".into());
        }
        o.noise = Some((rate, seed));
    }
    Ok(o)
}

/// What the firmware printed over semihosting, and its exit status.
#[derive(Default)]
struct NodeOutput {
    lines: Vec<String>,
}

/// A reply to one command.
struct Reply {
    text: String,
    at: Instant,
}

/// The log dump being received.
struct LogRx {
    id: u32,
    announced: u32,
    body: Vec<u8>,
    started: Instant,
    readings_during: u32,
    done: Option<Instant>,
    aborted: bool,
}

impl LogRx {
    /// A log dump requested now as message `id`, nothing received yet.
    fn new(id: u32) -> Self {
        Self {
            id,
            announced: 0,
            body: Vec::new(),
            started: Instant::now(),
            readings_during: 0,
            done: None,
            aborted: false,
        }
    }
}

/// The host's end of the link: a TCP stream to QEMU's UART, or a serial device.
type Link = Box<dyn Write + Send>;

struct Demo {
    node: Node<Link>,
    t0: Instant,
    next_id: u32,
    /// Readings to watch before the first command (more when a person is watching).
    warmup: usize,
    /// Messages open (streaming mode): id → bytes so far.
    open: HashMap<u32, Vec<u8>>,
    readings: BTreeSet<u32>,
    reading_faults: Vec<String>,
    last_reading: Option<Instant>,
    replies: HashMap<u32, Reply>,
    logs: Vec<LogRx>,
    aborted: Vec<u32>,
    errors: Vec<String>,
    closed: bool,
    failures: Vec<String>,
    rtts: Vec<Duration>,
    /// `--noise`: protocol errors are expected (link loss); what is delivered and what is
    /// reported lost is kept for the final check.
    noisy: bool,
    delivered: HashMap<u32, Vec<u8>>,
    lost: BTreeSet<u32>,
    missing: u64,
    /// The firmware's UART rate under `--pace`.
    pace: Option<u32>,
    /// `--strategy original`.
    fixed: bool,
}

impl Demo {
    /// Takes what arrives until the link has been quiet for `quiet`.
    fn drain(&mut self, quiet: Duration) {
        while let Ok(item) = self.node.recv_timeout(quiet) {
            self.on_item(item);
        }
    }

    /// Takes what arrives for at most `limit`, or until `done` holds (never a failure).
    fn watch(&mut self, limit: Duration, mut done: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + limit;
        while !done(self) && !self.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            match self.node.recv_timeout(left) {
                Ok(item) => self.on_item(item),
                Err(TryRecvError::Empty) => {}
                Err(_) => self.closed = true,
            }
        }
    }

    fn stamp(&self) -> String {
        format!("[{:7.3}s]", self.t0.elapsed().as_secs_f64())
    }

    fn fail(&mut self, what: impl Into<String>) {
        let what = what.into();
        println!("{} FAIL {what}", self.stamp());
        self.failures.push(what);
    }

    fn log_mut(&mut self, id: u32) -> Option<&mut LogRx> {
        self.logs.iter_mut().find(|l| l.id == id)
    }

    /// Handles one received item.
    fn on_item(&mut self, item: Received) {
        match item {
            Received::Started { id, len_hint } => {
                if self.open.insert(id, Vec::new()).is_some() {
                    self.fail(format!("message {id} started twice"));
                }
                let stamp = self.stamp();
                if let Some(log) = self.log_mut(id) {
                    log.announced = len_hint;
                    log.started = Instant::now();
                    println!("{stamp} log {id}: started, {len_hint} bytes announced");
                }
            }
            Received::Chunk { id, data } => {
                let Some(buf) = self.open.get_mut(&id) else {
                    self.fail(format!("chunk for message {id} that is not open"));
                    return;
                };
                let before = buf.len();
                buf.extend_from_slice(&data);
                let got = buf.len();
                let stamp = self.stamp();
                // One progress line per KiB (chunks arrive as the socket delivers them).
                if got / 1024 == before / 1024 && got != LOG_LEN {
                    return;
                }
                if let Some(log) = self.log_mut(id) {
                    // Adaptive's Start announces 0: the log's known size then.
                    let total = if log.announced == 0 {
                        LOG_LEN
                    } else {
                        log.announced as usize
                    };
                    let pct = got * 100 / total;
                    let bar: String = (0..20)
                        .map(|i| if i * 5 < pct { '#' } else { '.' })
                        .collect();
                    println!("{stamp} log {id}: [{bar}] {got:>5}/{total} bytes ({pct:>3}%)");
                }
            }
            Received::Ended { id } => {
                let body = self.open.remove(&id).unwrap_or_default();
                if self.noisy {
                    self.delivered.insert(id, body.clone());
                }
                self.on_message(id, body);
            }
            Received::Message(m) => {
                let id = m.id();
                if self.noisy {
                    self.delivered.insert(id, m.body().to_vec());
                }
                self.on_message(id, m.body().to_vec());
            }
            Received::Aborted { id } => {
                let partial = self.open.remove(&id).unwrap_or_default();
                let stamp = self.stamp();
                match self.log_mut(id) {
                    Some(log) => {
                        log.aborted = true;
                        log.body = partial;
                        println!(
                            "{stamp} log {id}: ABORTED by the node after {} bytes",
                            log.body.len()
                        );
                    }
                    None => self.fail(format!("unexpected Abort for message {id}")),
                }
                self.aborted.push(id);
            }
            Received::Error(e) if self.noisy => {
                // Link loss: what was received of a lost message is discarded.
                match e {
                    ProtocolError::Lost { id } => {
                        self.open.remove(&id);
                        self.lost.insert(id);
                    }
                    ProtocolError::LinkGap { missing } => self.missing += u64::from(missing),
                    e => self.fail(format!("protocol error: {e}")),
                }
                self.errors.push(e.to_string());
            }
            Received::Error(e) => {
                self.errors.push(e.to_string());
                self.fail(format!("protocol error: {e}"));
            }
        }
    }

    fn on_message(&mut self, id: u32, body: Vec<u8>) {
        let now = Instant::now();
        let stamp = self.stamp();
        if id >= NODE_ID_BASE {
            let text = String::from_utf8_lossy(&body).into_owned();
            let seq = id - NODE_ID_BASE;
            let ok = text
                .strip_prefix("reading seq=")
                .and_then(|r| r.split(' ').next())
                .and_then(|s| s.parse::<u32>().ok())
                == Some(seq);
            if !ok {
                self.reading_faults.push(format!("id {id:#x}: {text:?}"));
                self.fail(format!("reading {id:#x} is malformed: {text:?}"));
            }
            if !self.readings.insert(seq) {
                self.fail(format!("reading {seq} received twice"));
            }
            let since = self
                .last_reading
                .map(|t| format!("  (+{:.0} ms)", (now - t).as_secs_f64() * 1000.0))
                .unwrap_or_default();
            self.last_reading = Some(now);
            let mut during = String::new();
            for log in &mut self.logs {
                if log.done.is_none()
                    && !log.aborted
                    && !self.open.get(&log.id).is_none_or(Vec::is_empty)
                {
                    log.readings_during += 1;
                    during = format!("  [between frames of log {}]", log.id);
                }
            }
            println!("{stamp} <- {text}{since}{during}");
            return;
        }
        if let Some(log) = self.log_mut(id) {
            log.body = body;
            log.done = Some(now);
            let (n, secs) = (log.body.len(), (now - log.started).as_secs_f64());
            println!(
                "{stamp} log {id}: complete, {n} bytes in {:.0} ms",
                secs * 1000.0
            );
            return;
        }
        let text = String::from_utf8_lossy(&body).into_owned();
        if self.replies.insert(id, Reply { text, at: now }).is_some() {
            self.fail(format!("second reply for command {id}"));
        }
    }

    /// Receives until `done` holds, failing after `STEP_TIMEOUT`.
    fn pump_until(&mut self, what: &str, mut done: impl FnMut(&Self) -> bool) -> bool {
        let deadline = Instant::now() + STEP_TIMEOUT;
        while !done(self) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.fail(format!("timed out waiting for {what}"));
                return false;
            }
            match self.node.recv_timeout(left) {
                Ok(item) => self.on_item(item),
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Recv(RecvError::Closed)) => {
                    self.closed = true;
                    if !done(self) {
                        self.fail(format!("stream closed while waiting for {what}"));
                        return false;
                    }
                }
                Err(e) => {
                    self.fail(format!("receive failed while waiting for {what}: {e}"));
                    return false;
                }
            }
        }
        true
    }

    fn send(&mut self, text: &str) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        if let Err(e) = self.node.send_with_id(id, text.as_bytes()) {
            self.fail(format!("send {text:?} failed: {e}"));
        }
        id
    }

    /// Sends a command and waits for its reply; returns the reply text and the round trip.
    fn command(&mut self, text: &str) -> Option<(String, Duration)> {
        let t = Instant::now();
        let id = self.send(text);
        println!("{} -> {text}  (id {id})", self.stamp());
        if !self.pump_until(&format!("the reply to {text:?} (id {id})"), |d| {
            d.replies.contains_key(&id)
        }) {
            return None;
        }
        let r = &self.replies[&id];
        let rtt = r.at - t;
        let reply = r.text.clone();
        println!(
            "{} <- {reply}  (id {id}, round trip {:.2} ms)",
            self.stamp(),
            rtt.as_secs_f64() * 1000.0
        );
        Some((reply, rtt))
    }

    /// A command whose reply must be exactly `want` (or start with it, for `prefix`).
    fn expect(&mut self, text: &str, want: &str, prefix: bool) -> Option<String> {
        let (reply, rtt) = self.command(text)?;
        let ok = if prefix {
            reply.starts_with(want)
        } else {
            reply == want
        };
        if !ok {
            self.fail(format!("{text:?} answered {reply:?}, expected {want:?}"));
        }
        if text == "ping" {
            self.rtts.push(rtt);
        }
        Some(reply)
    }
}

fn spawn_qemu(
    t0: Instant,
    o: &Options,
    port: u16,
    out: Arc<Mutex<NodeOutput>>,
) -> std::io::Result<Child> {
    // The firmware's command line (semihosting): its pacing and strategy.
    let mut semihosting = "enable=on,target=native".to_string();
    if let Some(rate) = o.pace {
        semihosting += &format!(",arg=sensor_node,arg=pace={rate}");
        if o.fixed {
            semihosting += ",arg=strategy=original";
        }
    }
    let mut child = Command::new(&o.qemu)
        .args(["-cpu", &o.cpu, "-machine", "lm3s6965evb", "-nographic"])
        .args(["-monitor", "none", "-semihosting-config", &semihosting])
        // nodelay: QEMU writes the UART's bytes one by one; without it Nagle's algorithm and
        // delayed ACKs add ~40 ms to every reply.
        .args(["-serial", &format!("tcp:127.0.0.1:{port},nodelay=on")])
        .args(["-kernel", &o.firmware])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let out = out.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if line.contains("Timer with period zero") {
                    continue; // QEMU's harmless start-up notice
                }
                println!("[{:7.3}s] [node] {line}", t0.elapsed().as_secs_f64());
                out.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .lines
                    .push(line);
            }
        });
    }
    Ok(child)
}

fn accept(listener: &TcpListener, child: &mut Child) -> Result<std::net::TcpStream, String> {
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).map_err(|e| e.to_string())?;
                return Ok(s);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(format!("accept: {e}")),
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("QEMU exited before connecting: {status}"));
        }
        if Instant::now() > deadline {
            return Err("QEMU did not connect within 15 s".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits for QEMU to exit (the firmware exits through semihosting), killing it at `deadline`.
fn wait_exit(child: &mut Child, deadline: Instant) -> Option<i32> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.code(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// The link buffer of the serial link profile at both ends: the firmware's
/// (`mux_sensor_app::LINK_BUFFER`) takes link frames of at most this many bytes.
const FIRMWARE_LINK_BUFFER: usize = 256;

/// The node's configuration: streaming receive (the log dump's progress is shown), Hybrid,
/// framing `link`.
fn node_config(link: LinkProfile) -> Config {
    Config {
        limits: mux_std::Limits::new(1 << 20),
        link,
        link_buffer: FIRMWARE_LINK_BUFFER,
        ..Config::with_strategy(mux_std::Hybrid::<4096>)
    }
    .streaming()
}

fn new_demo(node: Node<Link>, t0: Instant, o: &Options) -> Demo {
    Demo {
        node,
        t0,
        next_id: 1,
        warmup: if o.check { 3 } else { 10 },
        open: HashMap::new(),
        readings: BTreeSet::new(),
        reading_faults: Vec::new(),
        last_reading: None,
        replies: HashMap::new(),
        logs: Vec::new(),
        aborted: Vec::new(),
        errors: Vec::new(),
        closed: false,
        failures: Vec::new(),
        rtts: Vec::new(),
        noisy: o.noise.is_some(),
        delivered: HashMap::new(),
        lost: BTreeSet::new(),
        missing: 0,
        pace: o.pace,
        fixed: o.fixed,
    }
}

fn run(o: &Options) -> Result<bool, String> {
    match &o.device {
        Some(device) => run_device(o, device),
        None => run_qemu(o),
    }
}

fn run_qemu(o: &Options) -> Result<bool, String> {
    // One clock for everything the demo prints: the node's lines and the host's.
    let t0 = Instant::now();
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let fw_name = o
        .firmware
        .rsplit('/')
        .next()
        .unwrap_or(&o.firmware)
        .to_string();
    println!(
        "demo: {fw_name} on QEMU lm3s6965evb ({}), UART0 <-> mux-std node on 127.0.0.1:{port}{}",
        o.cpu,
        if o.check { " (check mode)" } else { "" }
    );
    let out = Arc::new(Mutex::new(NodeOutput::default()));
    let mut child =
        spawn_qemu(t0, o, port, out.clone()).map_err(|e| format!("start {}: {e}", o.qemu))?;
    let hard_deadline = Instant::now() + o.timeout;
    let stream = match accept(&listener, &mut child) {
        Ok(s) => s,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    };
    let (read, write) = tcp_halves(stream).map_err(|e| format!("socket: {e}"))?;
    let map = Arc::new(Mutex::new(FrameMap::new(true)));
    let read: Box<dyn Read + Send> = match o.noise {
        Some((rate, seed)) => Box::new(NoisyRead {
            inner: read,
            noise: Noise::new(seed, rate, &[Kind::Flip, Kind::Drop, Kind::Insert]),
            map: map.clone(),
            buf: vec![0; 4096],
            out: Vec::new(),
            at: 0,
        }),
        None => Box::new(read),
    };
    let node = Node::new(read, write, node_config(o.link)).map_err(|e| format!("node: {e}"))?;
    let mut d = new_demo(node, t0, o);
    println!(
        "{} connected; the node sends a reading every 100 ms",
        d.stamp()
    );

    let bye = if d.noisy {
        noisy_script(&mut d)
    } else {
        script(&mut d)
    };

    // The node exits after `bye`: its stream ends, then QEMU exits with its status.
    d.pump_until("the end of the node's stream", |d| d.closed);
    let code = wait_exit(
        &mut child,
        hard_deadline.max(Instant::now() + Duration::from_secs(5)),
    );
    std::thread::sleep(Duration::from_millis(50)); // let the output threads print the last lines
    let lines = out.lock().unwrap_or_else(|e| e.into_inner()).lines.clone();
    if d.noisy {
        let map = map.lock().unwrap_or_else(|e| e.into_inner());
        return Ok(noisy_summary(&mut d, &map, code, o));
    }
    Ok(summary(&mut d, bye.as_deref(), Ending::Qemu(code), &lines))
}

/// The firmware's side of the link as the host reads it, through a noisy line: the clean
/// bytes go to `map` (with the changes made to them), the changed bytes to the reader.
struct NoisyRead {
    inner: std::net::TcpStream,
    noise: Noise,
    map: Arc<Mutex<FrameMap>>,
    buf: Vec<u8>,
    /// Changed bytes not yet read, from `at`.
    out: Vec<u8>,
    at: usize,
}

impl Read for NoisyRead {
    fn read(&mut self, dst: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.at < self.out.len() {
                let n = dst.len().min(self.out.len() - self.at);
                dst[..n].copy_from_slice(&self.out[self.at..self.at + n]);
                self.at += n;
                return Ok(n);
            }
            let n = self.inner.read(&mut self.buf)?;
            if n == 0 {
                return Ok(0);
            }
            self.out.clear();
            self.at = 0;
            let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
            self.noise
                .apply(&self.buf[..n], &mut self.out, |c| map.change(c));
            map.clean(&self.buf[..n]);
        }
    }
}

/// The exchange over a noisy line (`--noise`): faster readings, three log dumps, `bye`.
/// Replies may be lost, so nothing waits for one longer than a few seconds.
fn noisy_script(d: &mut Demo) -> Option<String> {
    d.watch(Duration::from_millis(500), |_| false);
    let id = d.send("set-interval 20");
    println!("{} -> set-interval 20  (id {id})", d.stamp());
    d.watch(Duration::from_millis(500), |_| false);
    for _ in 0..3 {
        let log = d.send("get-log");
        println!("{} -> get-log  (id {log})", d.stamp());
        d.logs.push(LogRx::new(log));
        d.watch(Duration::from_secs(8), |d| {
            d.delivered.contains_key(&log) || d.lost.contains(&log)
        });
        d.watch(Duration::from_millis(300), |_| false);
    }
    let id = d.send("bye");
    println!("{} -> bye  (id {id})", d.stamp());
    d.pump_until("the end of the node's stream", |d| d.closed);
    d.replies.get(&id).map(|r| r.text.clone())
}

/// The checks of a run over a noisy line: nothing delivered damaged, every message the noise
/// did not touch delivered, every touched one not delivered reported lost; the firmware
/// exited 0 (the line to it is clean).
fn noisy_summary(d: &mut Demo, map: &FrameMap, code: Option<i32>, o: &Options) -> bool {
    let (rate, seed) = o.noise.unwrap_or_default();
    let mut damaged = Vec::new();
    for (id, body) in &d.delivered {
        if map.body(*id) != Some(body.as_slice()) {
            damaged.push(*id);
        }
    }
    let complete: Vec<u32> = map
        .seen()
        .iter()
        .copied()
        .filter(|id| map.body(*id).is_some())
        .collect();
    let touched = map.touched();
    // Messages open across a touched link frame are dropped by the receiver's gap rule even
    // without a byte in it (the log dump, while readings go out between its frames).
    let across = map.open_across_touched();
    let missed: Vec<u32> = complete
        .iter()
        .copied()
        .filter(|id| !touched.contains(id) && !across.contains(id) && !d.delivered.contains_key(id))
        .collect();
    let silent = complete
        .iter()
        .filter(|id| {
            (touched.contains(id) || across.contains(id))
                && !d.delivered.contains_key(id)
                && !d.lost.contains(id)
        })
        .count() as u64;
    let (frames, hit) = map.frames();
    let link = d.node.metrics().rx.link;
    println!();
    println!(
        "noisy line: rate {rate}, seed {seed}: {} bytes from the node, {frames} link frames, \
         {hit} touched; {} complete messages, {} touched, {} more open across a touched frame; \
         delivered {} ({} damaged); reported \
         lost {} by id, {} link frames missing; the receiver counted {} good, {} damaged, {} \
         skipped link frames",
        map.len(),
        complete.len(),
        complete.iter().filter(|id| touched.contains(id)).count(),
        complete.iter().filter(|id| across.contains(id)).count(),
        d.delivered.len(),
        damaged.len(),
        d.lost.len(),
        d.missing,
        link.good,
        link.damaged,
        link.skipped,
    );
    if !damaged.is_empty() {
        d.fail(format!("delivered damaged: {damaged:x?}"));
    }
    if !missed.is_empty() {
        d.fail(format!("untouched messages not delivered: {missed:x?}"));
    }
    if silent > d.missing {
        d.fail(format!(
            "{silent} touched messages neither delivered nor reported lost by id, {} frames \
             reported missing",
            d.missing
        ));
    }
    if hit == 0 {
        d.fail("the noise touched no link frame: raise --noise");
    }
    if code != Some(0) {
        d.fail(format!("the firmware exited with {code:?}"));
    }
    let ok = d.failures.is_empty();
    println!(
        "{}",
        if ok {
            "noisy line: PASS"
        } else {
            "noisy line: FAIL"
        }
    );
    ok
}

fn tcp_halves(stream: std::net::TcpStream) -> std::io::Result<(std::net::TcpStream, Link)> {
    // nodelay: replies are small and each is one write.
    stream.set_nodelay(true)?;
    Ok((stream.try_clone()?, Box::new(stream)))
}

fn run_device(o: &Options, device: &str) -> Result<bool, String> {
    let t0 = Instant::now();
    // Raw mode: no echo, no line editing, no CR/LF translation, 8N1 at the given rate.
    let stty = Command::new("stty")
        .args([
            "-F",
            device,
            &o.baud.to_string(),
            "raw",
            "-echo",
            "cs8",
            "-cstopb",
            "-parenb",
        ])
        .status()
        .map_err(|e| format!("stty: {e}"))?;
    if !stty.success() {
        return Err(format!("stty could not set up {device} ({stty})"));
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(device)
        .map_err(|e| format!("open {device}: {e}"))?;
    // Opening the port may reset the board, and a board's boot ROM may print text (an
    // ESP32-C3's does, at 115200 baud): read and drop everything until the line has been quiet
    // for half a second, then turn the timeout off again for the node's reader.
    let dropped = drain_port(&mut file, device, o.baud)?;
    if dropped > 0 {
        println!("demo: dropped {dropped} bytes the board sent before the exchange (boot text)");
    }
    let read = file.try_clone().map_err(|e| format!("{device}: {e}"))?;
    let node = Node::new(read, Box::new(file) as Link, node_config(o.link))
        .map_err(|e| format!("node: {e}"))?;
    println!("demo: the board on {device} at {} baud", o.baud);
    let mut d = new_demo(node, t0, o);
    // The board waits for a first message before it starts sending.
    d.expect("ping", "pong", false);
    let bye = script(&mut d);
    // The board stops after `bye`: a last reading may still be on its way.
    d.drain(Duration::from_millis(300));
    Ok(summary(&mut d, bye.as_deref(), Ending::Board, &[]))
}

/// Reads and drops what `port` has until it is quiet for 0.5 s (a read timeout set with
/// `stty`, then cleared: the node's reader must block, since a read of 0 bytes is an end of
/// stream). Returns how many bytes were dropped.
fn drain_port(port: &mut std::fs::File, device: &str, baud: u32) -> Result<usize, String> {
    let stty = |timing: &[&str]| -> Result<(), String> {
        let baud = baud.to_string();
        let mut args = vec!["-F", device, &baud];
        args.extend_from_slice(timing);
        match Command::new("stty").args(&args).status() {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(format!("stty {}: {s}", args.join(" "))),
            Err(e) => Err(format!("stty: {e}")),
        }
    };
    stty(&["min", "0", "time", "5"])?;
    let mut dropped = 0;
    let mut buf = [0u8; 256];
    let give_up = Instant::now() + Duration::from_secs(5);
    loop {
        if Instant::now() > give_up {
            return Err(format!(
                "{device} never went quiet: the board must wait for the host's first message (reset it, then start the host)"
            ));
        }
        match port.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => dropped += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("read {device}: {e}")),
        }
    }
    stty(&["min", "1", "time", "0"])?;
    Ok(dropped)
}

/// How the firmware's run ended, as far as the host can tell.
enum Ending {
    /// QEMU's exit status: the firmware's verdict through semihosting; `None` if QEMU had to
    /// be killed at the deadline.
    Qemu(Option<i32>),
    /// A real board: no exit status to read.
    Board,
}

/// A count the node reported, in words.
fn reported(v: Option<u32>) -> String {
    v.map_or_else(|| "nothing (no bye reply)".to_string(), |n| n.to_string())
}

/// The fixed exchange. Returns the `bye` reply.
fn script(d: &mut Demo) -> Option<String> {
    let warmup = d.warmup;
    d.pump_until("the first readings", |d| d.readings.len() >= warmup);
    for _ in 0..5 {
        d.expect("ping", "pong", false);
    }
    d.expect("set-interval 40", "ok interval=40", false);

    // A configuration upload (1500 bytes, two Data frames), acknowledged with its checksum.
    let config = config_blob(1500);
    let want = format!("ok config bytes=1500 fnv={:08x}", fnv1a(&config));
    let t = Instant::now();
    let id = d.next_id;
    d.next_id += 1;
    println!(
        "{} -> config upload, {} bytes  (id {id})",
        d.stamp(),
        config.len()
    );
    if let Err(e) = d.node.send_with_id(id, &config) {
        d.fail(format!("config upload failed: {e}"));
    }
    if d.pump_until("the config acknowledgement", |d| {
        d.replies.contains_key(&id)
    }) {
        let reply = d.replies[&id].text.clone();
        let ms = (d.replies[&id].at - t).as_secs_f64() * 1000.0;
        println!("{} <- {reply}  (id {id}, round trip {ms:.2} ms)", d.stamp());
        if reply != want {
            d.fail(format!(
                "config upload answered {reply:?}, expected {want:?}"
            ));
        }
    }

    // A second upload that the host aborts after its first Data frame: the node must drop
    // the partial message (its pool blocks go back) and answer `aborted` on its id.
    let config = config_blob(2000);
    let id = d.next_id;
    d.next_id += 1;
    let mut holds = 0;
    let r = d.node.send_cancellable(
        id,
        &config,
        Some(AnyStrategy::Hybrid { threshold: 4096 }),
        || {
            holds += 1;
            (holds > 1).then_some(SendError::Cancelled)
        },
    );
    println!(
        "{} -> config upload, 2000 bytes  (id {id}), aborted by the host after its first frame",
        d.stamp()
    );
    match r {
        Err(SendError::Cancelled) => {}
        Ok(_) => d.fail("the host abort did not happen: the message was sent whole"),
        Err(e) => d.fail(format!("the host abort did not happen: {e}")),
    }
    let t = Instant::now();
    if d.pump_until("the node's answer to the aborted message", |d| {
        d.replies.contains_key(&id)
    }) {
        let reply = d.replies[&id].text.clone();
        let ms = (d.replies[&id].at - t).as_secs_f64() * 1000.0;
        println!("{} <- {reply}  (id {id}, {ms:.2} ms)", d.stamp());
        if reply != "aborted" {
            d.fail(format!("aborted message {id} answered {reply:?}"));
        }
    }
    d.expect("status", "status interval=40 ", true);

    // The log dump, with readings (and a ping) going out between its frames.
    let log_id = d.send("get-log");
    println!("{} -> get-log  (id {log_id})", d.stamp());
    d.logs.push(LogRx::new(log_id));
    d.pump_until("the log's first bytes", |d| {
        d.open.get(&log_id).is_some_and(|b| b.len() >= 4096)
    });
    d.expect("ping", "pong", false);
    d.pump_until("the end of the log", |d| {
        d.logs[0].done.is_some() || d.logs[0].aborted
    });

    // A second dump, cancelled part way: the node ends it with Abort.
    let log2 = d.send("get-log");
    println!("{} -> get-log  (id {log2}), to be cancelled", d.stamp());
    d.logs.push(LogRx::new(log2));
    d.pump_until("the second log's first bytes", |d| {
        d.open.get(&log2).is_some_and(|b| b.len() >= 2048)
    });
    d.expect("cancel-log", &format!("ok cancelled={log2}"), false);
    d.pump_until("the Abort of the second log", |d| d.logs[1].aborted);
    d.expect("dance", "err unknown-command", false);
    d.expect("ping", "pong", false);
    d.expect("bye", "bye ", true)
}

fn field(text: &str, key: &str) -> Option<u32> {
    text.split(' ')
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

fn summary(d: &mut Demo, bye: Option<&str>, ending: Ending, node_lines: &[String]) -> bool {
    println!();
    println!("summary");
    let row = |ok: bool, what: &str, detail: String| {
        println!(
            "  {:<4} {what:<16} {detail}",
            if ok { "ok" } else { "FAIL" }
        );
        ok
    };
    let mut all = true;

    let n = d.readings.len() as u32;
    let contiguous = d.readings.iter().copied().eq(0..n);
    let node_sent = bye.and_then(|b| field(b, "readings"));
    // The node may send a reading after its `bye` reply: it must still have arrived.
    let ok = contiguous
        && n > 0
        && node_sent.is_some_and(|s| s <= n && n <= s + 1)
        && d.reading_faults.is_empty();
    all &= row(
        ok,
        "readings",
        format!(
            "{n} received, sequence 0..{} without a gap, node counted {} at bye",
            n.saturating_sub(1),
            reported(node_sent)
        ),
    );

    let sent = d.next_id - 1;
    let answered = (1..d.next_id)
        .filter(|id| d.replies.contains_key(id) || d.logs.iter().any(|l| l.id == *id))
        .count();
    all &= row(
        answered as u32 == sent,
        "commands",
        format!("{sent} sent, {answered} answered with their own id"),
    );

    let mut rtts = d.rtts.clone();
    rtts.sort();
    if !rtts.is_empty() {
        let ms = |x: Duration| x.as_secs_f64() * 1000.0;
        let med = rtts[rtts.len() / 2];
        let avg = rtts.iter().sum::<Duration>() / rtts.len() as u32;
        row(
            true,
            "ping latency",
            format!(
                "n={} min {:.2} ms, median {:.2} ms, mean {:.2} ms, max {:.2} ms (one during the log dump)",
                rtts.len(),
                ms(rtts[0]),
                ms(med),
                ms(avg),
                ms(rtts[rtts.len() - 1])
            ),
        );
    }

    let want = expected_log();
    match d.logs.first() {
        Some(l) => {
            // Original announces the total in Start; Adaptive, as Hybrid, announces 0.
            let adaptive = d.pace.is_some() && !d.fixed;
            let ok = l.done.is_some()
                && l.body == want
                && (l.announced as usize == LOG_LEN || (adaptive && l.announced == 0))
                && l.readings_during > 0;
            let secs = l.done.map(|t| (t - l.started).as_secs_f64()).unwrap_or(0.0);
            all &= row(
                ok,
                "log dump",
                format!(
                    "{} of {} bytes, content {}, {:.0} ms, {} readings arrived between its frames",
                    l.body.len(),
                    LOG_LEN,
                    if l.body == want {
                        "identical"
                    } else {
                        "DIFFERENT"
                    },
                    secs * 1000.0,
                    l.readings_during
                ),
            );
        }
        None => all &= row(false, "log dump", "not received".into()),
    }
    match d.logs.get(1) {
        Some(l) => {
            all &= row(
                l.aborted && l.done.is_none(),
                "cancelled log",
                format!(
                    "Abort received for id {} after {} of {} bytes",
                    l.id,
                    l.body.len(),
                    LOG_LEN
                ),
            )
        }
        None => all &= row(false, "cancelled log", "not run".into()),
    }
    let host_aborts = bye.and_then(|b| field(b, "aborted"));
    all &= row(
        host_aborts == Some(1),
        "host abort",
        format!(
            "node saw {} aborted message(s), expected 1",
            reported(host_aborts)
        ),
    );
    let node_errors = bye.and_then(|b| field(b, "errors"));
    all &= row(
        d.errors.is_empty() && node_errors == Some(0),
        "protocol errors",
        format!(
            "{} at the host, {} at the node",
            d.errors.len(),
            reported(node_errors)
        ),
    );
    all &= row(
        d.open.is_empty()
            || d.open
                .keys()
                .all(|id| d.logs.iter().any(|l| l.id == *id && l.aborted)),
        "open at the end",
        format!("{} message(s) left open", d.open.len()),
    );
    if let Some(rate) = d.pace {
        let waits = node_lines
            .iter()
            .find(|l| l.contains("readings during the log dumps"))
            .map(|l| l.split_once(": ").map_or(l.as_str(), |(_, rest)| rest))
            .unwrap_or("not reported");
        row(true, "paced link", format!("{rate} B/s: {waits}"));
    }
    let done_line = node_lines
        .iter()
        .find(|l| l.contains(": done:"))
        .cloned()
        .unwrap_or_default();
    match ending {
        Ending::Qemu(code) => {
            let status = match code {
                Some(c) => format!("QEMU exited with status {c}"),
                None => "QEMU was killed at the deadline".to_string(),
            };
            all &= row(
                code == Some(0),
                "firmware exit",
                format!("{status}; {done_line}"),
            );
        }
        Ending::Board => {
            all &= row(
                bye.is_some(),
                "board",
                format!("bye reply: {}", bye.unwrap_or("none")),
            );
        }
    }
    if !d.failures.is_empty() {
        all = false;
        println!("  failures:");
        for f in &d.failures {
            println!("    - {f}");
        }
    }
    println!();
    println!("{}", if all { "RESULT: PASS" } else { "RESULT: FAIL" });
    all
}

fn main() -> ExitCode {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(&o) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::FAILURE
        }
    }
}

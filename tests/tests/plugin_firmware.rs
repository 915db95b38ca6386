//! The QEMU firmware as a plugin, driven like a plugin host drives one: a real child process
//! (`examples-embedded/plugin-node.sh`, which runs the `plugin_node` firmware under
//! qemu-system-arm with its UART on the script's stdin and stdout), spoken to through a
//! `mux_std::Node` with plugin headers.
//!
//! It waits for `ready`, calls `ping`, `echo` (sizes up to the firmware's request limit, some
//! spanning several frames, and one past it), `reading`, `get-log` and an unknown service,
//! aborts a request (which must get no reply), then shuts the plugin down and checks that the
//! process exits with status 0.
//!
//! Skipped (with a message) when qemu-system-arm is not installed, unless `MUX_REQUIRE_QEMU`
//! is set (the test scripts set it). The script builds the firmware if it is missing; point
//! `PLUGIN_NODE_ELF` at a prebuilt one to skip that.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mux_nostd::plugin::{Header, Kind};
use mux_std::{Config, Node, Received, SendError, TryRecvError};
use mux_test_support::{rule_r, sensor::expected_log};

/// The firmware's request limit (whole message, plugin header included): `MAX_REQUEST` in
/// `plugin_node.rs`.
const MAX_REQUEST: usize = 8192;
/// What `get-log` returns: `LOG_REPLY_LEN` in `plugin_node.rs`.
const LOG_REPLY_LEN: usize = 8160;
/// Plugin header bytes of a message named `echo` (10 fixed + the name).
const ECHO_OVERHEAD: usize = 14;
/// Wait for `ready`: long enough for the script to build the firmware if it has to.
const READY_WAIT: Duration = Duration::from_secs(180);
/// Wait for any one reply.
const REPLY_WAIT: Duration = Duration::from_secs(10);

/// A decoded plugin message, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Msg {
    id: u32,
    name: String,
    kind: Kind,
    is_error: bool,
    payload: Vec<u8>,
}

impl Msg {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
}

struct Plugin {
    node: Node<ChildStdin>,
    child: Child,
    stderr: JoinHandle<String>,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples-embedded/plugin-node.sh")
}

fn have_qemu() -> bool {
    Command::new("qemu-system-arm")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn request(name: &str, payload: &[u8]) -> Vec<u8> {
    let h = Header::new(name.as_bytes(), Kind::Request, payload);
    let mut out = vec![0; h.encoded_len()];
    let n = h.encode_into(&mut out).expect("request encodes");
    out.truncate(n);
    out
}

impl Plugin {
    fn start() -> Self {
        // Started from another directory: the script must find its firmware by itself.
        let mut cmd = Command::new(script());
        cmd.current_dir(std::env::temp_dir()).stderr(Stdio::piped());
        let (node, mut child) = Node::spawn(&mut cmd, Config::default()).expect("spawn plugin");
        let mut err = child.stderr.take().expect("piped stderr");
        // The firmware's and QEMU's messages: collected, and shown when the test fails.
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Self {
            node,
            child,
            stderr,
        }
    }

    /// The next message, decoded; fails after `wait`.
    fn next(&self, wait: Duration) -> Msg {
        match self.node.recv_timeout(wait) {
            Ok(Received::Message(m)) => {
                let h = Header::decode(m.body()).expect("plugin header decodes");
                Msg {
                    id: m.id(),
                    name: String::from_utf8_lossy(h.name).into_owned(),
                    kind: h.kind,
                    is_error: h.is_error,
                    payload: h.payload.to_vec(),
                }
            }
            Ok(other) => panic!("unexpected item from the plugin: {other:?}"),
            Err(TryRecvError::Empty) => panic!("no message from the plugin within {wait:?}"),
            Err(e) => panic!("plugin link: {e}"),
        }
    }

    /// Calls `service` as message `id` and returns the reply, which must carry `id`.
    fn call(&self, id: u32, service: &str, payload: &[u8]) -> Msg {
        self.node
            .send_with_id(id, &request(service, payload))
            .expect("request sent");
        let reply = self.next(REPLY_WAIT);
        assert_eq!(
            reply.id, id,
            "reply to {service} under another id: {reply:?}"
        );
        reply
    }

    fn ok(&self, id: u32, service: &str, payload: &[u8]) -> Vec<u8> {
        let reply = self.call(id, service, payload);
        assert_eq!(
            (reply.name.as_str(), reply.kind, reply.is_error),
            (service, Kind::Response, false),
            "{service}: {}",
            reply.text()
        );
        reply.payload
    }
}

/// The value of `"key":` in a flat JSON object, as text.
fn json_field<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let start = json.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &json[start..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(rest[..end].trim())
}

fn reading(p: &Plugin, id: u32) -> (u64, u64) {
    let json = String::from_utf8(p.ok(id, "reading", b"")).expect("reading is UTF-8");
    assert!(json.starts_with('{') && json.ends_with('}'), "{json}");
    let num = |k: &str| {
        json_field(&json, k)
            .unwrap_or_else(|| panic!("no {k} in {json}"))
            .to_owned()
    };
    let temp: f64 = num("temp_c").parse().expect("temp_c is a number");
    let hum: f64 = num("humidity").parse().expect("humidity is a number");
    assert!((-40.0..=85.0).contains(&temp), "{json}");
    assert!((0.0..=100.0).contains(&hum), "{json}");
    let seq = num("seq").parse().expect("seq is an integer");
    let t_ms = num("t_ms").parse().expect("t_ms is an integer");
    (seq, t_ms)
}

#[test]
fn the_firmware_serves_calls_as_a_plugin_and_exits_on_shutdown() {
    if !have_qemu() {
        assert!(
            std::env::var_os("MUX_REQUIRE_QEMU").is_none(),
            "MUX_REQUIRE_QEMU is set but qemu-system-arm is not installed"
        );
        println!(
            "skipped: qemu-system-arm is not installed (set MUX_REQUIRE_QEMU to fail instead)"
        );
        return;
    }
    let p = Plugin::start();
    let started = Instant::now();

    // The plugin speaks first: `ready`, an Ack, with its first id.
    let ready = p.next(READY_WAIT);
    assert_eq!(
        (
            ready.id,
            ready.name.as_str(),
            ready.kind,
            ready.payload.as_slice()
        ),
        (1, "ready", Kind::Ack, &b"ready"[..])
    );
    let t0 = Instant::now();

    assert_eq!(p.ok(10, "ping", b""), b"pong");

    // Echo: empty, small, several 1 KiB frames, above 4096 (4 KiB frames) and the largest
    // request the firmware takes.
    let largest = MAX_REQUEST - ECHO_OVERHEAD;
    for (k, len) in [0, 1, 1000, 3000, 4096, 5000, largest]
        .into_iter()
        .enumerate()
    {
        let payload = rule_r(len);
        let got = p.ok(20 + k as u32, "echo", &payload);
        assert!(
            got == payload,
            "echo of {len} bytes came back as {} bytes",
            got.len()
        );
    }
    // One byte more is refused by the receive side, answered under its id.
    let refused = p.call(30, "echo", &rule_r(largest + 1));
    assert!(
        refused.is_error && refused.kind == Kind::Error,
        "{refused:?}"
    );
    assert_eq!(
        refused.text(),
        format!("request too large: limit {MAX_REQUEST} bytes")
    );

    // Readings: sampled every 100 ms, so a later call sees a later one.
    let (seq1, t1) = reading(&p, 31);
    std::thread::sleep(Duration::from_millis(350));
    let (seq2, t2) = reading(&p, 32);
    assert!(seq2 > seq1 && t2 > t1, "({seq1}, {t1}) then ({seq2}, {t2})");

    let log = p.ok(33, "get-log", b"");
    assert_eq!(log.len(), LOG_REPLY_LEN);
    assert!(
        log == expected_log()[..LOG_REPLY_LEN],
        "get-log text differs"
    );

    let unknown = p.call(34, "no-such-service", b"x");
    assert_eq!(
        (unknown.name.as_str(), unknown.kind, unknown.is_error),
        ("no-such-service", Kind::Error, true)
    );
    assert_eq!(
        unknown.text(),
        "no handler registered for service: no-such-service"
    );

    // A request aborted after its first write (Start and a 4 KiB Data frame): never
    // dispatched, so never answered.
    let big = request("echo", &rule_r(7000));
    let writes = p.node.metrics().tx.writes;
    let cancelled = p.node.send_cancellable(40, &big, None, || {
        (p.node.metrics().tx.writes > writes).then_some(SendError::Cancelled)
    });
    assert!(
        matches!(cancelled, Err(SendError::Cancelled)),
        "{cancelled:?}"
    );
    assert_eq!(
        p.node.metrics().tx.aborted,
        1,
        "the request ended with Abort"
    );
    // Replies come in request order: a reply to 40 would come before the ping's.
    assert_eq!(p.ok(41, "ping", b""), b"pong");
    match p.node.recv_timeout(Duration::from_millis(300)) {
        Err(TryRecvError::Empty) => {}
        other => panic!("unexpected after the aborted request: {other:?}"),
    }

    let ack = p.call(50, "shutdown", b"graceful shutdown");
    assert_eq!(
        (ack.name.as_str(), ack.kind, ack.is_error),
        ("shutdown_ack", Kind::Ack, false)
    );
    let calls = t0.elapsed();

    let Plugin {
        node,
        mut child,
        stderr,
    } = p;
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for the plugin") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the plugin did not exit within 10 s of shutdown_ack");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let report = node
        .close_timeout(Duration::from_secs(5))
        .expect("node closes");
    let log = stderr.join().expect("stderr reader");
    eprintln!("{log}");
    assert!(status.success(), "plugin exit status {status}");
    assert!(
        !report.forced,
        "the plugin's stdout did not end: {report:?}"
    );
    assert!(
        log.contains("aborted=1"),
        "the firmware did not see the abort"
    );
    println!(
        "plugin_firmware: ready after {:?}, calls and shutdown {:?}",
        t0 - started,
        calls
    );
}

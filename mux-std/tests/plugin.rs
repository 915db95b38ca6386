//! The plugin host and plugin side with real child processes: our host with our example
//! plugin, the Go captures replayed both ways, crashes, shutdowns, many callers, a hostile
//! plugin.

#![cfg(unix)]

// One module, so that a run can leave these tests out by name (`--skip processes::`): under
// QEMU user mode a child process forked by a test process that runs many threads can hang
// before its `exec` (scripts/checks/80-aarch64.sh).
mod processes {

    use std::fs::File;
    use std::io::Read;
    use std::path::PathBuf;
    use std::process::{Command, Stdio};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use mux_nostd::{Decoder, FrameEvent, FrameType, Header as FrameHeader, Limits};
    use mux_std::CancelToken;
    use mux_std::plugin::{
        CallError, CallOptions, Exit, Header, Host, HostConfig, Kind, StderrMode,
    };
    use mux_test_support::{rule_r, vectors_dir};

    fn muxplug() -> PathBuf {
        PathBuf::from(env!("CARGO_BIN_EXE_muxplug"))
    }

    /// The example plugin (cargo builds a package's examples for its tests).
    fn echo_plugin() -> Command {
        let path = muxplug()
            .parent()
            .expect("target directory")
            .join("examples/echo_plugin");
        assert!(path.exists(), "{} is missing", path.display());
        Command::new(path)
    }

    fn quiet() -> HostConfig {
        HostConfig {
            stderr: StderrMode::Null,
            ..HostConfig::default()
        }
    }

    fn capture(name: &str) -> Vec<u8> {
        std::fs::read(vectors_dir().join("plugin").join(name)).expect("capture")
    }

    /// A message as decoded from a stream: its id, its frames (whole) and its body.
    #[derive(Debug, Clone)]
    struct Msg {
        id: u32,
        frames: Vec<Vec<u8>>,
        body: Vec<u8>,
    }

    impl Msg {
        fn header(&self) -> Header<'_> {
            Header::decode(&self.body).expect("plugin header")
        }

        /// The frames with the id field cleared.
        fn frames_without_id(&self) -> Vec<Vec<u8>> {
            self.frames
                .iter()
                .map(|f| {
                    let mut f = f.clone();
                    f[1..5].fill(0);
                    f
                })
                .collect()
        }
    }

    /// Every complete message of a stream, in the order they ended.
    fn messages(wire: &[u8]) -> Vec<Msg> {
        let mut d = Decoder::new(Limits::REFERENCE.max_frame);
        let mut open: Vec<Msg> = Vec::new();
        let mut done = Vec::new();
        let mut at = 0;
        while at < wire.len() {
            let (n, ev) = d.decode(&wire[at..]);
            let frame = wire[at..at + n].to_vec();
            at += n;
            match ev {
                Some(FrameEvent::Start { id, .. }) => open.push(Msg {
                    id,
                    frames: vec![frame],
                    body: Vec::new(),
                }),
                Some(FrameEvent::Data { id, chunk, .. }) => {
                    let m = open.iter_mut().find(|m| m.id == id).expect("open id");
                    assert_eq!(n, frame.len());
                    m.frames.push(frame);
                    m.body.extend_from_slice(chunk);
                }
                Some(FrameEvent::End { id }) => {
                    let i = open.iter().position(|m| m.id == id).expect("open id");
                    let mut m = open.remove(i);
                    m.frames.push(frame);
                    done.push(m);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(open.is_empty(), "unfinished messages");
        done
    }

    /// Starts `plugin` and makes the calls of the Go host's capture, checking each reply; returns
    /// the host and the `info` notifications received.
    fn the_go_hosts_calls(plugin: Command) -> (Host, Vec<Vec<u8>>) {
        let notes = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&notes);
        let host = Host::builder(plugin)
            .config(quiet())
            .on_notify("info", move |p| seen.lock().unwrap().push(p.to_vec()))
            .spawn()
            .unwrap();
        assert_eq!(&*host.call("echo", b"hi").unwrap(), b"hi");
        assert_eq!(&*host.call("upper", b"abc").unwrap(), b"ABC");
        match host.call("fail", b"") {
            Err(CallError::Remote(text)) => assert_eq!(text, "boom"),
            other => panic!("{other:?}"),
        }
        assert_eq!(*host.call("size", b"100000").unwrap(), rule_r(100_000)[..]);
        assert_eq!(&*host.call("notify-me", b"").unwrap(), b"ok");
        let notes = notes.lock().unwrap().clone();
        (host, notes)
    }

    #[test]
    fn our_host_calls_every_service_of_our_plugin() {
        let (host, notes) = the_go_hosts_calls(echo_plugin());
        assert_eq!(notes, [b"hello from rust".to_vec()]);
        match host.call("nope", b"x") {
            Err(CallError::Remote(text)) => {
                assert_eq!(text, "no handler registered for service: nope");
            }
            other => panic!("{other:?}"),
        }
        // A handler printing to stdout does not corrupt the stream: the print goes to stderr.
        assert_eq!(&*host.call("print", b"stray text").unwrap(), b"printed");
        assert_eq!(
            &*host.call("echo", b"still in sync").unwrap(),
            b"still in sync"
        );
        let big = rule_r(3 << 20);
        assert_eq!(*host.call("echo", &big).unwrap(), big[..]);
        assert_eq!(host.counts().malformed, 0);
        let report = host.shutdown();
        assert!(report.acked);
        assert!(!report.killed);
        match report.exit {
            Exit::Status(s) => assert!(s.success(), "{s}"),
            Exit::Unknown => panic!("exit unknown"),
        }
    }

    #[test]
    fn a_plugin_asks_its_host_and_gets_the_name_response_reply() {
        let host = Host::builder(echo_plugin())
            .config(quiet())
            .on_request("time", |p| {
                if p == b"now" {
                    Ok(b"12:00".to_vec())
                } else {
                    Err("no such time".to_owned())
                }
            })
            .spawn()
            .unwrap();
        assert_eq!(
            &*host.call("ask-host", b"now").unwrap(),
            b"host said: 12:00"
        );
        match host.call("ask-host", b"later") {
            Err(CallError::Remote(t)) => assert_eq!(t, "no such time"),
            other => panic!("{other:?}"),
        }
        assert_eq!(host.counts().plugin_requests, 2);
        assert!(host.shutdown().acked);
    }

    #[test]
    fn the_plugins_stderr_reaches_a_callback_line_by_line() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&lines);
        let host = Host::builder(echo_plugin())
            .config(HostConfig {
                stderr: StderrMode::Callback(Arc::new(move |l: &str| {
                    seen.lock().unwrap().push(l.to_owned())
                })),
                ..HostConfig::default()
            })
            .spawn()
            .unwrap();
        // `print` prints with `println!`, which the plugin's stdout redirect sends to stderr.
        assert_eq!(&*host.call("print", b"first line").unwrap(), b"printed");
        assert_eq!(&*host.call("print", b"second").unwrap(), b"printed");
        assert!(host.shutdown().acked);
        let lines = lines.lock().unwrap();
        let printed: Vec<&str> = lines
            .iter()
            .map(String::as_str)
            .filter(|l| !l.starts_with("echo_plugin:"))
            .collect();
        assert_eq!(printed, ["first line", "second"], "{lines:?}");
    }

    #[test]
    fn our_plugin_answers_the_go_hosts_capture_like_the_go_plugin() {
        let input = File::open(vectors_dir().join("plugin/script-host-to-plugin.bin")).unwrap();
        let mut child = echo_plugin()
            .stdin(Stdio::from(input))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut ours = Vec::new();
        child.stdout.take().unwrap().read_to_end(&mut ours).unwrap();
        assert!(child.wait().unwrap().success());
        let ours = messages(&ours);
        let go = messages(&capture("script-plugin-to-host.bin"));
        assert_eq!(ours.len(), go.len(), "{ours:#?}");
        // Replies may come in any order (requests run concurrently): match them by id and name.
        for g in &go {
            let gh = g.header();
            let o = ours
                .iter()
                .find(|o| o.id == g.id && o.header().name == gh.name)
                .unwrap_or_else(|| panic!("no reply like {gh:?} with id {}", g.id));
            let oh = o.header();
            assert_eq!((oh.kind, oh.is_error), (gh.kind, gh.is_error), "{gh:?}");
            if gh.name == b"info" {
                // The notification's text is the plugin's own.
                assert_eq!(oh.payload, b"hello from rust");
                continue;
            }
            // Byte for byte, frames included (the 100,014-byte reply as 6 × 16,384 + 1,710).
            assert_eq!(o.frames, g.frames, "message {} {:?}", g.id, gh.name);
        }
        // The notification comes before the reply of the call that sent it.
        let pos = |name: &[u8]| ours.iter().position(|m| m.header().name == name).unwrap();
        assert!(pos(b"info") < pos(b"notify-me"));
        assert_eq!(pos(b"ready"), 0);
    }

    #[test]
    fn our_host_drives_the_replayed_go_plugin_and_writes_what_the_go_host_wrote() {
        let dir = std::env::temp_dir().join(format!("muxplug-replay-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let record = dir.join("host-to-plugin.bin");
        let mut cmd = Command::new(muxplug());
        cmd.arg("replay")
            .arg(vectors_dir().join("plugin/script-plugin-to-host.bin"))
            .arg("--record")
            .arg(&record);
        let (host, notes) = the_go_hosts_calls(cmd);
        assert_eq!(notes, [b"hello from go".to_vec()]);
        let report = host.shutdown();
        assert!(report.acked, "{report:?}");
        let ours = messages(&std::fs::read(&record).unwrap());
        let go = messages(&capture("script-host-to-plugin.bin"));
        assert_eq!(ours.len(), go.len());
        for (o, g) in ours.iter().zip(&go) {
            assert_eq!(o.header(), g.header());
            assert_eq!(o.frames_without_id(), g.frames_without_id());
        }
        // The same ids for the calls; the shutdown gets an id of its own where Go reused 1.
        let ids: Vec<u32> = ours.iter().map(|m| m.id).collect();
        assert_eq!(ids[..5], [1, 2, 3, 4, 5]);
        assert_eq!(go.last().unwrap().id, 1);
        assert!(!ids[..5].contains(&ids[5]));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_crash_fails_every_pending_call_at_once_with_its_status() {
        let host = Arc::new(
            Host::builder(echo_plugin())
                .config(quiet())
                .spawn()
                .unwrap(),
        );
        let waiting: Vec<_> = (0..4)
            .map(|_| {
                let host = Arc::clone(&host);
                std::thread::spawn(move || {
                    let r = host.call("sleep", b"20000");
                    (r, Instant::now())
                })
            })
            .collect();
        while host.pending() < 4 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let crash = host.call("crash", b"");
        let crashed_at = Instant::now();
        let exit = match crash {
            Err(CallError::Exited(Exit::Status(s))) => s,
            other => panic!("{other:?}"),
        };
        assert_eq!(exit.code(), Some(3));
        for w in waiting {
            let (r, at) = w.join().unwrap();
            match r {
                Err(CallError::Exited(Exit::Status(s))) => assert_eq!(s.code(), Some(3)),
                other => panic!("{other:?}"),
            }
            let late = at.saturating_duration_since(crashed_at);
            println!("pending call failed {late:?} after the crashing call returned");
            assert!(late < Duration::from_secs(2), "{late:?}");
        }
        // Nothing blocks on the dead child: a new call fails at once.
        let t0 = Instant::now();
        assert!(matches!(host.call("echo", b"x"), Err(CallError::Exited(_))));
        assert!(t0.elapsed() < Duration::from_secs(1));
        assert!(matches!(host.exit(), Some(Exit::Status(s)) if s.code() == Some(3)));
    }

    #[test]
    fn shutdown_lets_calls_in_flight_finish() {
        let host = Host::builder(echo_plugin())
            .config(quiet())
            .spawn()
            .unwrap();
        std::thread::scope(|s| {
            let calls: Vec<_> = (0..3)
                .map(|_| s.spawn(|| host.call("sleep", b"300").map(|r| r.to_vec())))
                .collect();
            while host.pending() < 3 {
                std::thread::sleep(Duration::from_millis(1));
            }
            let report = host.shutdown();
            assert!(report.acked && !report.killed, "{report:?}");
            assert_eq!(report.abandoned, 0);
            assert!(matches!(report.exit, Exit::Status(s) if s.success()));
            for c in calls {
                assert_eq!(c.join().unwrap().unwrap(), b"slept");
            }
            // New calls are refused once shutdown began.
            assert!(matches!(
                host.call("echo", b"x"),
                Err(CallError::Exited(_) | CallError::Closed)
            ));
        });
    }

    #[test]
    fn a_plugin_that_never_says_ready_is_asked_then_killed() {
        let dir = std::env::temp_dir().join(format!("muxplug-silent-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let heard = dir.join("heard.bin");
        let mut silent = Command::new("sh");
        silent.args(["-c", &format!("cat > '{}'; sleep 30", heard.display())]);
        let t0 = Instant::now();
        let host = Host::builder(silent)
            .config(HostConfig {
                ready_timeout: Duration::from_millis(400),
                request_ready_after: Duration::from_millis(100),
                ..quiet()
            })
            .spawn();
        assert!(
            matches!(host, Err(mux_std::plugin::HostError::NotReady)),
            "{host:?}"
        );
        assert!(t0.elapsed() < Duration::from_secs(5));
        // It was asked with `request_ready` before it was given up.
        let heard = messages(&std::fs::read(&heard).unwrap());
        assert_eq!(heard.len(), 1);
        let h = heard[0].header();
        assert_eq!((h.name, h.kind), (&b"request_ready"[..], Kind::Request));
        assert_eq!(h.payload, b"please send ready signal");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sixteen_threads_call_at_once() {
        let host = Host::builder(echo_plugin())
            .config(quiet())
            .spawn()
            .unwrap();
        std::thread::scope(|s| {
            for t in 0..16u32 {
                let host = &host;
                s.spawn(move || {
                    for k in 0..300u32 {
                        let p: Vec<u8> = (0..(k as usize % 97) + 8)
                            .map(|i| (i as u32 * 7 + t * 31 + k) as u8)
                            .collect();
                        assert_eq!(*host.call("echo", &p).unwrap(), p[..]);
                    }
                });
            }
        });
        assert_eq!(host.counts().replies, 16 * 300);
        assert_eq!(host.counts().stray_replies, 0);
        assert!(host.shutdown().acked);
    }

    #[test]
    fn timeouts_and_cancellation_end_calls_and_late_replies_are_dropped() {
        let host = Host::builder(echo_plugin())
            .config(quiet())
            .spawn()
            .unwrap();
        let opts = CallOptions {
            timeout: Some(Duration::from_millis(50)),
            ..CallOptions::default()
        };
        let t0 = Instant::now();
        assert!(matches!(
            host.call_with("sleep", b"300", &opts),
            Err(CallError::TimedOut)
        ));
        assert!(t0.elapsed() < Duration::from_millis(290));
        let cancel = CancelToken::new();
        let opts = CallOptions {
            cancel: Some(cancel.clone()),
            ..CallOptions::default()
        };
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(30));
                cancel.cancel();
            });
            assert!(matches!(
                host.call_with("sleep", b"300", &opts),
                Err(CallError::Cancelled)
            ));
        });
        // Both late replies arrive and are dropped; calls go on.
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(&*host.call("echo", b"after").unwrap(), b"after");
        assert_eq!(host.counts().stray_replies, 2);
        host.shutdown();
    }

    #[test]
    fn a_hostile_plugin_gets_typed_errors_and_bounded_memory() {
        use mux_std::plugin::names;
        // What the hostile plugin writes: ready; text that is not frames; a message over the
        // 10 MiB limit; replies to ids nobody asked; a flood of notifications; an endless
        // message (Data without End).
        let mut wire = Vec::new();
        // Frames from the core's header type; the message is cut in 16 KiB Data frames.
        let frame = |wire: &mut Vec<u8>, t: FrameType, id: u32, payload: &[u8]| {
            wire.extend_from_slice(&FrameHeader::new(t, id, payload.len() as u32).to_bytes());
            wire.extend_from_slice(payload);
        };
        let message = |wire: &mut Vec<u8>, id: u32, body: &[u8]| {
            frame(wire, FrameType::Start, id, &[]);
            for c in body.chunks(16 << 10) {
                frame(wire, FrameType::Data, id, c);
            }
            frame(wire, FrameType::End, id, &[]);
        };
        let header = |name: &[u8], kind: Kind, payload: &[u8]| {
            let h = Header {
                name,
                is_error: false,
                kind,
                payload,
            };
            let mut b = vec![0; h.encoded_len()];
            h.encode_into(&mut b).unwrap();
            b
        };
        message(
            &mut wire,
            1,
            &header(names::READY.as_bytes(), Kind::Ack, b"ready"),
        );
        wire.extend_from_slice(b"this is not a frame, but 45 bytes of text!!!\n");
        message(&mut wire, 2, &vec![7u8; (10 << 20) + 100]);
        message(&mut wire, 999, &header(b"echo", Kind::Response, b"unasked"));
        for k in 0..10_000u32 {
            message(
                &mut wire,
                3 + k % 50,
                &header(b"spam", Kind::Notify, b"flood"),
            );
        }
        frame(&mut wire, FrameType::Start, 77, &[]);
        for _ in 0..200 {
            frame(&mut wire, FrameType::Data, 77, &[1u8; 16 << 10]);
        }
        let dir = std::env::temp_dir().join(format!("muxplug-hostile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("hostile.bin");
        std::fs::write(&file, &wire).unwrap();
        let script = format!("cat '{}'; exec sleep 30", file.display());
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &script]);
        let hostile = Host::builder(cmd)
            .config(HostConfig {
                ack_timeout: Duration::from_millis(200),
                grace: Duration::from_millis(200),
                ..quiet()
            })
            .spawn()
            .unwrap();
        // Another plugin stays usable meanwhile.
        let good = Host::builder(echo_plugin())
            .config(quiet())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while hostile.counts().notifications < 10_000 && Instant::now() < deadline {
            assert_eq!(&*good.call("echo", b"fine").unwrap(), b"fine");
            std::thread::sleep(Duration::from_millis(5));
        }
        let c = hostile.counts();
        assert_eq!(c.notifications, 10_000, "{c:?}");
        assert_eq!(c.unhandled, 10_000);
        assert_eq!(c.stray_replies, 1);
        assert!(c.malformed >= 2, "{c:?}");
        let opts = CallOptions {
            timeout: Some(Duration::from_millis(100)),
            ..CallOptions::default()
        };
        assert!(matches!(
            hostile.call_with("echo", b"x", &opts),
            Err(CallError::TimedOut)
        ));
        let report = hostile.shutdown();
        assert!(report.killed, "{report:?}");
        assert!(good.shutdown().acked);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(feature = "json")]
    #[test]
    fn json_calls_and_services() {
        #[derive(serde::Serialize)]
        struct Add {
            a: i64,
            b: i64,
        }
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct Sum {
            sum: i64,
        }
        let host = Host::builder(echo_plugin())
            .config(quiet())
            .spawn()
            .unwrap();
        let sum: Sum = host.call_json("add", &Add { a: 40, b: 2 }).unwrap();
        assert_eq!(sum, Sum { sum: 42 });
        match host.call_json::<_, Sum>("add", &Add { a: i64::MAX, b: 1 }) {
            Err(CallError::Remote(t)) => assert_eq!(t, "overflow"),
            other => panic!("{other:?}"),
        }
        match host.call("add", b"not json") {
            Err(CallError::Remote(t)) => assert!(t.starts_with("bad request: "), "{t}"),
            other => panic!("{other:?}"),
        }
        // A reply that is not the JSON asked for is a typed error on the host's side.
        assert!(matches!(
            host.call_json::<_, Sum>("echo", &Add { a: 1, b: 2 }),
            Err(CallError::Json(_))
        ));
        host.shutdown();
    }

    #[cfg(feature = "tokio")]
    #[test]
    fn async_calls_run_concurrently_and_dropping_one_cancels_it() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let host = Arc::new(
            Host::builder(echo_plugin())
                .config(quiet())
                .spawn()
                .unwrap(),
        );
        rt.block_on(async {
            let t0 = Instant::now();
            let calls: Vec<_> = (0..8)
                .map(|_| {
                    let host = Arc::clone(&host);
                    tokio::spawn(async move {
                        host.call_async("sleep", b"200").await.map(|r| r.to_vec())
                    })
                })
                .collect();
            for c in calls {
                assert_eq!(c.await.unwrap().unwrap(), b"slept");
            }
            // Eight 200 ms calls at once, not one after another.
            assert!(
                t0.elapsed() < Duration::from_millis(1500),
                "{:?}",
                t0.elapsed()
            );
            let r =
                tokio::time::timeout(Duration::from_millis(30), host.call_async("sleep", b"200"))
                    .await;
            assert!(r.is_err());
            assert_eq!(host.pending(), 0);
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(&*host.call_async("echo", b"after").await.unwrap(), b"after");
        });
        assert_eq!(host.counts().stray_replies, 1);
        host.shutdown();
    }

    #[cfg(feature = "tokio")]
    #[test]
    fn async_services_serve_many_requests_without_a_thread_each() {
        let host = Host::builder(echo_plugin())
            .config(quiet())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..64 {
                s.spawn(|| assert_eq!(&*host.call("async-sleep", b"200").unwrap(), b"slept"));
            }
        });
        // 64 sleeps of 200 ms on one runtime thread (the blocking pool would take 2 rounds of 32).
        let took = t0.elapsed();
        assert!(took < Duration::from_millis(390), "{took:?}");
        assert!(host.shutdown().acked);
    }
}

//! `echo_plugin`: a plugin of the Go library's plugin protocol, served on stdin and stdout.
//!
//! Services:
//!
//! | service | payload | reply |
//! |---|---|---|
//! | `echo` | anything | the payload |
//! | `upper` | text | the payload in ASCII upper case |
//! | `fail` | anything | the error `boom` |
//! | `sleep` | milliseconds, in decimal | `slept`, after that long |
//! | `size` | N, in decimal | N bytes of payload rule R (`(i·31 + 7) mod 251`) |
//! | `notify-me` | anything | sends the host the Notify `info` `hello from rust`, then `ok` |
//! | `ask-host` | anything | sends the host the request `time` with the payload and replies `host said: ` and its `time_response` |
//! | `print` | anything | prints the payload with `println!` (to stderr: stdout is the protocol's), then `printed` |
//! | `crash` | anything | exits with status 3 without replying |
//! | `add` (with the `json` feature) | JSON `{"a": A, "b": B}` | JSON `{"sum": A+B}` |
//! | `async-sleep` (with the `tokio` feature) | milliseconds, in decimal | `slept`, from a tokio task |
//!
//! Run it from a host: `cargo build --release -p mux-std --examples`, then
//! `muxplug call target/release/examples/echo_plugin upper abc`.

use std::time::Duration;

use mux_std::plugin::Plugin;

fn decimal(payload: &[u8]) -> Result<u64, String> {
    std::str::from_utf8(payload)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| {
            format!(
                "not a decimal number: {:?}",
                String::from_utf8_lossy(payload)
            )
        })
}

#[cfg(feature = "json")]
fn with_json(plugin: Plugin) -> Plugin {
    #[derive(serde::Deserialize)]
    struct Add {
        a: i64,
        b: i64,
    }
    #[derive(serde::Serialize)]
    struct Sum {
        sum: i64,
    }
    plugin.service_json("add", |req: Add, _| {
        req.a
            .checked_add(req.b)
            .map(|sum| Sum { sum })
            .ok_or("overflow")
    })
}

#[cfg(not(feature = "json"))]
fn with_json(plugin: Plugin) -> Plugin {
    plugin
}

#[cfg(feature = "tokio")]
fn with_tokio(plugin: Plugin, runtime: &tokio::runtime::Runtime) -> Plugin {
    plugin.service_async(
        "async-sleep",
        runtime.handle().clone(),
        1024,
        |call| async move {
            let ms = decimal(call.payload())?;
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(b"slept".to_vec())
        },
    )
}

fn main() -> std::io::Result<()> {
    #[cfg(feature = "tokio")]
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_time()
        .build()?;
    let plugin = with_json(Plugin::new());
    #[cfg(feature = "tokio")]
    let plugin = with_tokio(plugin, &runtime);
    let report = plugin
        // Handlers that never block run on the reader thread: one thread hand-over less.
        .service_inline("echo", |call| Ok(call.payload().to_vec()))
        .service_inline("upper", |call| Ok(call.payload().to_ascii_uppercase()))
        .service("fail", |_| Err("boom".to_owned()))
        .service("sleep", |call| {
            std::thread::sleep(Duration::from_millis(decimal(call.payload())?));
            Ok(b"slept".to_vec())
        })
        .service("size", |call| {
            let n = usize::try_from(decimal(call.payload())?).map_err(|e| e.to_string())?;
            Ok((0..n)
                .map(|i| ((i * 31 + 7) % 251) as u8)
                .collect::<Vec<u8>>())
        })
        .service("notify-me", |call| {
            call.notify("info", b"hello from rust")
                .map_err(|e| e.to_string())?;
            Ok(b"ok".to_vec())
        })
        .service("ask-host", |call| {
            let reply = call
                .request("time", call.payload(), Duration::from_secs(5))
                .map_err(|e| e.to_string())?;
            Ok([&b"host said: "[..], &reply].concat())
        })
        .service("print", |call| {
            println!("{}", String::from_utf8_lossy(call.payload()));
            Ok(b"printed".to_vec())
        })
        .service("crash", |_| -> Result<Vec<u8>, String> {
            std::process::exit(3)
        })
        .serve_stdio()?;
    eprintln!(
        "echo_plugin: served {} calls ({} errors), {}",
        report.calls,
        report.errors,
        if report.forced {
            "forced shutdown"
        } else if report.shutdown {
            "shut down"
        } else {
            "end of input"
        }
    );
    Ok(())
}

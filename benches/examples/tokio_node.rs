//! One run of the report's tokio workload (`AsyncNode` over a Unix socket pair, two
//! current-thread runtimes), for profiling: `tokio_node [SIZE] [COUNT] [TASKS] [BATCH]`
//! (defaults 1024, 50000, 1, 0). With BATCH > 0 every task sends with `send_buffered` and
//! flushes after every BATCH messages of its own (the report sends with plain `send`). For
//! instruction counts per message:
//! `valgrind --tool=callgrind --separate-threads=yes target/release/examples/tokio_node`.

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().expect("a number"));
    let size = args.next().unwrap_or(1024);
    let count = args.next().unwrap_or(50_000);
    let tasks = args.next().unwrap_or(1);
    let batch = args.next().unwrap_or(0);
    let run = mux_benches::tokio_node::run_batched(size, count, tasks, batch);
    println!(
        "{} messages of {size} B from {tasks} task(s), flush every {batch}: {:.0} messages/s",
        run.messages,
        run.msgs_per_sec()
    );
}

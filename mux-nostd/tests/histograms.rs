//! The `histograms` feature: the writers and receivers fill their distributions from what
//! really goes over the wire.
#![cfg(feature = "histograms")]

use embassy_futures::block_on;
use mux_nostd::{
    AsyncWriter, Demux, Limits, Optimized, Original, Pool, Reassembler, Received, Writer,
};

#[test]
fn writer_and_reassembler_record_sizes_frames_and_pool_use() {
    let mut wire = vec![0u8; 1 << 20];
    let mut tx = Writer::new(&mut wire[..], Original);
    let sizes = [0usize, 64, 64, 1000, 5000];
    for &n in &sizes {
        tx.send(&vec![7u8; n]).unwrap();
    }
    let m = *tx.metrics();
    // Sizes: 0 in bucket 0, 64 in bucket 7 (64..=127), 1000 in 10, 5000 in 13.
    let c = m.sizes.counts();
    assert_eq!((c[0], c[7], c[10], c[13]), (1, 2, 1, 1));
    assert_eq!(m.sizes.count(), 5);
    // Frames (1 KiB chunks): 2, 3, 3, 3, 2 + 5 = 7.
    let f = m.frames.counts();
    assert_eq!(
        (f[2], f[3]),
        (4, 1),
        "2 and 3 frames in bucket 2, 7 in bucket 3"
    );
    let used = (1 << 20) - tx.into_inner().len();

    static POOL: Pool<16, 1024> = Pool::new();
    let mut rx: Reassembler<'_, 4, 16, 1024> = Reassembler::new(&POOL, Limits::default());
    let mut got = 0;
    rx.feed_all(&wire[..used], |r| {
        assert!(matches!(r, Received::Message(_)));
        got += 1;
    });
    assert_eq!(got, 5);
    assert_eq!(
        rx.metrics().sizes,
        m.sizes,
        "the receiver sees the sender's sizes"
    );
    // Blocks in use at each completion, the message's own: 0, 1, 1, 1, 5 (1 KiB blocks).
    let p = rx.pool_use().counts();
    assert_eq!((p[0], p[1], p[3]), (1, 3, 1));
}

#[test]
fn async_writer_and_streaming_demux_record_too() {
    let mut wire = [0u8; 40_000];
    let mut tx = AsyncWriter::new(&mut wire[..], Optimized);
    block_on(tx.send(&[1u8; 20_000])).unwrap();
    let m = *tx.metrics();
    assert_eq!(m.sizes.counts()[15], 1, "20000 is in 16384..=32767");
    // Optimized: 4 KiB chunks at 20000 bytes, 5 Data frames + Start + End.
    assert_eq!(m.frames.quantile(1000), Some(7));
    let used = 40_000 - tx.into_inner().len();

    let mut d: Demux<(), 2> = Demux::new(Limits::default());
    let mut input = &wire[..used];
    while !input.is_empty() {
        let (n, _) = d.feed(input);
        input = &input[n..];
    }
    assert_eq!(d.metrics().sizes, m.sizes);
    assert_eq!(d.metrics().messages, 1);
}

#[test]
fn aborted_messages_are_not_in_the_sizes() {
    use mux_nostd::{FrameType, Header};
    let mut wire = Vec::new();
    wire.extend_from_slice(&Header::new(FrameType::Start, 1, 0).to_bytes());
    wire.extend_from_slice(&Header::new(FrameType::Data, 1, 3).to_bytes());
    wire.extend_from_slice(b"abc");
    wire.extend_from_slice(&Header::new(FrameType::Abort, 1, 0).to_bytes());
    let mut d: Demux<(), 2> = Demux::new(Limits::default());
    let mut input = &wire[..];
    while !input.is_empty() {
        let (n, _) = d.feed(input);
        input = &input[n..];
    }
    assert_eq!(d.metrics().aborted, 1);
    assert_eq!(d.metrics().sizes.count(), 0);
}

/// A simulated microsecond clock shared by a test's sink or source.
#[derive(Clone, Copy)]
struct Sim<'c>(&'c std::cell::Cell<u32>);

impl mux_nostd::Clock for Sim<'_> {
    fn now_us(&self) -> u32 {
        self.0.get()
    }
}

/// A sink that takes `per_write` bytes at most per write, each byte costing `us` of the
/// simulated clock: a slow link.
struct SlowSink<'c> {
    wire: Vec<u8>,
    now: &'c std::cell::Cell<u32>,
    per_write: usize,
    us: u32,
}

impl embedded_io::ErrorType for SlowSink<'_> {
    type Error = core::convert::Infallible;
}

impl embedded_io::Write for SlowSink<'_> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        let n = buf.len().min(self.per_write);
        self.wire.extend_from_slice(&buf[..n]);
        self.now
            .set(self.now.get().wrapping_add(self.us * n as u32));
        Ok(n)
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

#[test]
fn a_clocked_writer_records_how_long_each_send_waited_for_the_link() {
    // Near the clock's wrap-around, to show that durations survive it.
    let now = std::cell::Cell::new(u32::MAX - 50);
    let sink = SlowSink {
        wire: Vec::new(),
        now: &now,
        per_write: 100,
        us: 1,
    };
    let mut tx = Writer::new(sink, Original).with_clock(Sim(&now));
    // 64 B: Start + Data + End = 91 bytes on the wire: 91 µs.
    tx.send(&[1u8; 64]).unwrap();
    // 1000 B: 1027 bytes: 1027 µs.
    tx.send(&[2u8; 1000]).unwrap();
    let m = *tx.metrics();
    assert_eq!(m.send_wait_us.count(), 2);
    assert_eq!(m.send_wait_us.counts()[7], 1, "91 µs is in 64..=127");
    assert_eq!(m.send_wait_us.counts()[11], 1, "1027 µs is in 1024..=2047");

    // Without a clock nothing is timed.
    let mut plain = Writer::new(
        SlowSink {
            wire: Vec::new(),
            now: &now,
            per_write: 100,
            us: 40,
        },
        Original,
    );
    plain.send(&[1u8; 64]).unwrap();
    assert_eq!(plain.metrics().send_wait_us.count(), 0);
}

#[test]
fn a_clocked_async_writer_records_send_waits_too() {
    let now = std::cell::Cell::new(0);
    let mut wire = [0u8; 4096];
    struct Ticking<'a, 'c>(&'a mut [u8], &'c std::cell::Cell<u32>);
    impl embedded_io_async::ErrorType for Ticking<'_, '_> {
        type Error = core::convert::Infallible;
    }
    impl embedded_io_async::Write for Ticking<'_, '_> {
        async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
            let n = buf.len().min(self.0.len());
            self.0[..n].copy_from_slice(&buf[..n]);
            let rest = core::mem::take(&mut self.0);
            self.0 = &mut rest[n..];
            self.1.set(self.1.get() + 100 * n as u32);
            Ok(n)
        }
        async fn flush(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
    }
    let mut tx = AsyncWriter::new(Ticking(&mut wire[..], &now), Original).with_clock(Sim(&now));
    block_on(tx.send(&[3u8; 10])).unwrap();
    let m = *tx.metrics();
    assert_eq!(m.send_wait_us.count(), 1);
    // 37 bytes on the wire at 100 µs each: 3700 µs, in 2048..=4095.
    assert_eq!(m.send_wait_us.counts()[12], 1);
}

/// A source handing out `frames` one read at a time, each read advancing the clock by `us`.
struct Trickle<'c> {
    reads: std::collections::VecDeque<Vec<u8>>,
    now: &'c std::cell::Cell<u32>,
    us: u32,
}

impl embedded_io::ErrorType for Trickle<'_> {
    type Error = core::convert::Infallible;
}

impl embedded_io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let Some(mut next) = self.reads.pop_front() else {
            return Ok(0);
        };
        self.now.set(self.now.get().wrapping_add(self.us));
        let n = next.len().min(buf.len());
        buf[..n].copy_from_slice(&next[..n]);
        if n < next.len() {
            self.reads.push_front(next.split_off(n));
        }
        Ok(n)
    }
}

#[test]
fn a_clocked_reader_times_each_message_from_its_start_to_its_end() {
    use mux_nostd::{FrameType, Header, Reader};
    let frame = |t, id, body: &[u8]| {
        let mut f = Header::new(t, id, body.len() as u32).to_bytes().to_vec();
        f.extend_from_slice(body);
        f
    };
    // Message 1's Start, then message 2 whole in one read, then message 1's Data and End:
    // every read takes 300 µs of the simulated clock.
    let reads = vec![
        frame(FrameType::Start, 1, &[]),
        [
            frame(FrameType::Start, 2, &[]),
            frame(FrameType::Data, 2, b"xy"),
            frame(FrameType::End, 2, &[]),
        ]
        .concat(),
        frame(FrameType::Data, 1, b"abc"),
        frame(FrameType::End, 1, &[]),
    ];
    let now = std::cell::Cell::new(u32::MAX - 500);
    let source = Trickle {
        reads: reads.into(),
        now: &now,
        us: 300,
    };
    static POOL: Pool<8, 64> = Pool::new();
    let core: Reassembler<'_, 4, 8, 64> = Reassembler::new(&POOL, Limits::default());
    let mut rx_buf = [0u8; 64];
    let mut rx = Reader::new(source, &mut rx_buf, core).with_clock(Sim(&now));
    let mut ids = Vec::new();
    while let Some(item) = rx.recv().unwrap() {
        if let Received::Message(m) = item {
            ids.push(m.id());
        }
    }
    assert_eq!(ids, [2, 1]);
    let h = rx.core().metrics().start_to_end_us;
    assert_eq!(h.count(), 2);
    assert_eq!(h.counts()[0], 1, "message 2 came whole in one read: 0 µs");
    assert_eq!(
        h.counts()[10],
        1,
        "message 1: 900 µs (three reads later), in 512..=1023"
    );

    // The sans-IO Demux, told the time by its caller.
    let mut d: Demux<(), 2> = Demux::new(Limits::default());
    d.set_now_us(7);
    let start = frame(FrameType::Start, 9, &[]);
    let (n, _) = d.feed(&start);
    assert_eq!(n, start.len());
    d.set_now_us(7 + 5000);
    let end = frame(FrameType::End, 9, &[]);
    let mut input = &end[..];
    while !input.is_empty() {
        let (n, _) = d.feed(input);
        input = &input[n..];
    }
    assert_eq!(d.metrics().start_to_end_us.counts()[13], 1, "5000 µs");
}

#[test]
fn timed_turns_record_how_long_a_message_waited_for_the_link() {
    use embassy_futures::join::join;
    use mux_nostd::FrameTurns;
    let now = std::cell::Cell::new(0u32);
    let turns: FrameTurns<2> = FrameTurns::new(true);
    block_on(join(
        async {
            // A bulk sender holds the link for three frames of 2 ms each.
            let mut turn = turns.take_timed(false, &Sim(&now)).await;
            for k in 0..3 {
                if k > 0 {
                    turn.pass().await;
                }
                embassy_futures::yield_now().await; // the frame's write…
                now.set(now.get() + 2000); // …takes 2 ms
            }
        },
        async {
            // A small message asks while the first frame is in flight: it waits for that one.
            let _turn = turns.take_timed(true, &Sim(&now)).await;
            now.set(now.get() + 100);
        },
    ));
    let w = turns.waits();
    assert_eq!(w.count(), 2);
    assert_eq!(w.counts()[0], 1, "the bulk sender had the link at once");
    assert_eq!(w.counts()[11], 1, "the small one waited one frame, 2000 µs");
}

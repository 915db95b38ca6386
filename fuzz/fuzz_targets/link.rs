//! (d) The serial link profile's receiver fed arbitrary bytes, cut anywhere: the link decoder
//! with a small buffer in front of the reassembler (through `Reader::with_link`) and in front
//! of the streaming `Demux`: no panic, no leak, bounded output. Half of the inputs are first
//! made into valid link frames (each 0x00 ends a frame), so that the CRC passes and the
//! multiplexer rules behind it are reached.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mux_nostd::{Demux, LinkDecoder, LinkEncoder, Limits, Pool, Reader, Reassembler};

/// A reader over `wire` that gives at most `cut` bytes per read.
struct Cut<'a>(&'a [u8], usize);

impl embedded_io::ErrorType for Cut<'_> {
    type Error = core::convert::Infallible;
}

impl embedded_io::Read for Cut<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let n = self.0.len().min(buf.len()).min(self.1);
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, input)) = data.split_first() else {
        return;
    };
    let cut = usize::from(ctl % 64) + 1;
    // Valid link frames around arbitrary multiplexer bytes, or the bytes as they are.
    let mut framed = Vec::new();
    let wire = if ctl & 0x80 != 0 {
        let mut enc = LinkEncoder::new([0u8; 64]);
        for chunk in input.split(|&b| b == 0xA5) {
            let mut rest = chunk;
            while !rest.is_empty() {
                let n = enc.push(rest);
                rest = &rest[n..];
                framed.extend_from_slice(enc.output());
                let k = enc.output().len();
                enc.consume(k);
            }
            enc.end_frame();
            framed.extend_from_slice(enc.output());
            let k = enc.output().len();
            enc.consume(k);
        }
        &framed[..]
    } else {
        input
    };

    let pool: Pool<8, 32> = Pool::new();
    let mut rx = [0u8; 64];
    let core: Reassembler<'_, 4, 8, 32> = Reassembler::new(&pool, Limits::new(200));
    let mut reader = Reader::with_link(Cut(wire, cut), &mut rx, core);
    let mut items = 0;
    while let Ok(Some(item)) = reader.recv() {
        drop(item);
        items += 1;
        assert!(items <= wire.len() + 8, "bounded output");
    }
    assert_eq!(pool.stats().in_use, 0, "no leak");

    let mut d: Demux<(), 4> = Demux::new(Limits::new(200));
    let mut link = LinkDecoder::new();
    let mut buf = [0u8; 64];
    let mut filled = 0;
    let mut rest = wire;
    loop {
        while let Some(f) = link.next(&mut buf, &mut filled) {
            if let Some(missing) = f.gap {
                d.link_gap(missing);
            }
            let mut body = &buf[f.body];
            loop {
                let (n, ev) = d.feed(body);
                body = &body[n..];
                if ev.is_none() && body.is_empty() {
                    break;
                }
            }
        }
        if rest.is_empty() {
            break;
        }
        let n = rest.len().min(buf.len() - filled).min(cut);
        buf[filled..filled + n].copy_from_slice(&rest[..n]);
        filled += n;
        rest = &rest[n..];
    }
    if let Some(missing) = link.finish(filled) {
        d.link_gap(missing);
    }
    while d.finish().is_some() {}
    assert!(d.is_idle());
});

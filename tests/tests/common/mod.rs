//! Helpers shared by the reliability tests: a seeded RNG, payloads that can be checked byte
//! for byte from their id and length, and bounded waits (no test may hang CI).
#![allow(dead_code)]

use std::sync::mpsc;
use std::time::Duration;

/// SplitMix64: small, seeded, good enough to pick sizes, faults and timings.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

/// Writes the payload of message `id` with `len` bytes into `out` (cleared first). The bytes
/// are a pseudo-random stream seeded by the id, so the receiver can check every byte.
pub fn fill_payload(id: u32, len: usize, out: &mut Vec<u8>) {
    out.clear();
    out.reserve(len);
    let mut rng = Rng::new(u64::from(id).wrapping_mul(0xA076_1D64_78BD_642F) ^ len as u64);
    while out.len() + 8 <= len {
        out.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    let rest = len - out.len();
    out.extend_from_slice(&rng.next_u64().to_le_bytes()[..rest]);
}

/// The payload of message `id` with `len` bytes.
pub fn payload(id: u32, len: usize) -> Vec<u8> {
    let mut v = Vec::new();
    fill_payload(id, len, &mut v);
    v
}

/// Whether `body` is exactly the payload of message `id` of `want_len` bytes.
pub fn is_payload(id: u32, want_len: usize, body: &[u8], scratch: &mut Vec<u8>) -> bool {
    if body.len() != want_len {
        return false;
    }
    fill_payload(id, want_len, scratch);
    scratch.as_slice() == body
}

/// Runs `f` on its own thread and returns its result, or panics if it takes longer than
/// `secs` seconds (the thread is then left behind; the test fails instead of hanging).
pub fn within<T: Send + 'static>(
    secs: u64,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let h = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(v) => {
            let _ = h.join();
            v
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match h.join() {
            Err(p) => std::panic::resume_unwind(p),
            Ok(()) => unreachable!("the thread sends its result before it ends"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: no result within {secs} s"),
    }
}

//! "Layout sensitivity": the write path with payload and buffer at the same offset within their
//! pages (as glibc places large blocks) against the neutral layout of the other tables.

use mux_benches::write::WriteBench;
use mux_benches::{DST_PAGE_OFFSET, SRC_PAGE_OFFSET, size_name};
use mux_nostd::{Hybrid, Original};

use crate::config::Config;
use crate::fmt::{cell, fmt_ns, key};
use crate::json::Ratios;
use crate::rounds::interleaved;

/// The layouts compared: name in the table, JSON key part, payload and buffer page offsets.
const LAYOUTS: [(&str, &str, usize, usize); 2] = [
    (
        "half a page apart",
        "neutral",
        SRC_PAGE_OFFSET,
        DST_PAGE_OFFSET,
    ),
    ("same page offset", "aliased", 16, 16),
];

/// The variants besides the floor: Rounds name, JSON key part.
const VARIANTS: [(&str, &str); 3] = [
    ("ff", "framing_floor"),
    ("h", "writer_hybrid"),
    ("o", "writer_original"),
];

/// Prints the "Layout sensitivity" subsection (the end of the write path) and records its
/// ratios.
pub fn section(cfg: &Config, ratios: &mut Ratios) {
    println!("### Layout sensitivity");
    println!();
    println!(
        "The tables above place the payload and the buffer half a page apart (`SRC_PAGE_OFFSET` 0, `DST_PAGE_OFFSET` 2048), the same in every run. glibc hands out large blocks at the same offset within a page, so the framed copies' destinations then sit 18, 27, 36 … bytes after their sources modulo 4096 (4K aliasing). The same measurements in that layout (offset 16 for both), ratios to the plain copy in the same layout:"
    );
    println!();
    println!(
        "| size | layout | floor | framing floor, Hybrid frames | `Writer`, Hybrid | `Writer`, Original |"
    );
    println!("|---|---|---|---|---|---|");
    for len in [1usize << 16, 1 << 20] {
        for (name, short, src, dst) in LAYOUTS {
            let mut b = WriteBench::with_layout(len, src, dst);
            let r = interleaved!(cfg, {
                "floor" => b.floor();
                "ff" => b.framed_floor(Hybrid::<4096>);
                "h" => b.nostd(Hybrid::<4096>);
                "o" => b.nostd(Original);
            });
            let cells = VARIANTS.map(|(v, _)| cell(r.median(v), r.ratio(v, "floor")));
            println!(
                "| {} | {name} | {} | {} |",
                size_name(len),
                fmt_ns(r.median("floor")),
                cells.join(" | ")
            );
            let k = key(len);
            for (v, what) in VARIANTS {
                ratios.put(
                    format!("layout_{short}_{k}_{what}_vs_floor"),
                    r.ratio(v, "floor"),
                );
            }
        }
    }
    println!();
}

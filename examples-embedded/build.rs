//! Puts `memory.x` where the linker (cortex-m-rt's `link.x`) finds it, and links the firmware
//! with `link.x` (here rather than in `.cargo/config.toml`, whose rustflags would also reach the
//! workspaces in `boards/`), and generates the selftest's table of single-message golden
//! vectors from `tests/vectors/MANIFEST.md` (the one source of their checksums).
use std::{env, fs, path::PathBuf};

/// `(strategy, payload size, sha256)` of every single-message vector in the manifest's table:
/// rows `| `STRATEGY-SIZE.bin` | … | 7 | SIZE | R | … | `SHA256` | …`.
fn single_message_vectors(manifest: &str) -> Vec<(String, u32, String)> {
    let mut out = Vec::new();
    for line in manifest.lines() {
        let cells: Vec<&str> = line
            .split('|')
            .map(|c| c.trim().trim_matches('`'))
            .collect();
        // ["", file, strategy, id, size, payload, frames, list, sha256, …]; the strategy is
        // named by the file (`hybrid8k-…` rows say "hybrid, threshold 8192").
        let [_, file, _, id, size, payload, _, _, sha, ..] = cells[..] else {
            continue;
        };
        let Some(strategy) = ["original", "optimized", "hybrid", "hybrid8k"]
            .into_iter()
            .find(|s| file == format!("{s}-{size}.bin"))
        else {
            continue;
        };
        if id != "7" || payload != "R" {
            continue;
        }
        let size = size.parse().expect("manifest: payload size is a number");
        assert!(
            sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()),
            "manifest: bad sha256 for {file}"
        );
        out.push((strategy.to_string(), size, sha.to_string()));
    }
    out
}

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"));
    fs::write(out.join("memory.x"), include_bytes!("memory.x")).expect("write memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    // The target the firmware was built for, for their start-up line.
    let target = env::var("TARGET").unwrap_or_default();
    println!("cargo:rustc-env=TARGET_DESC={target}");
    let manifest_path = "../tests/vectors/MANIFEST.md";
    let manifest = fs::read_to_string(manifest_path).expect("read tests/vectors/MANIFEST.md");
    let vectors = single_message_vectors(&manifest);
    assert!(
        vectors.len() >= 40,
        "MANIFEST.md: only {} single-message vectors found",
        vectors.len()
    );
    let mut table = String::from("&[\n");
    for (strategy, size, sha) in &vectors {
        table.push_str(&format!("    ({strategy:?}, {size}, {sha:?}),\n"));
    }
    table.push(']');
    fs::write(out.join("encode_vectors.rs"), table).expect("write encode_vectors.rs");
    println!("cargo:rerun-if-changed={manifest_path}");
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=build.rs");
}

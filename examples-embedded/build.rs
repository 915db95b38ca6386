//! Puts `memory.x` where the linker (cortex-m-rt's `link.x`) finds it, and links the firmware
//! with `link.x` (here rather than in `.cargo/config.toml`, whose rustflags would also reach the
//! workspaces in `boards/`).
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"));
    fs::write(out.join("memory.x"), include_bytes!("memory.x")).expect("write memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    // The target the firmware was built for, for their start-up line.
    let target = env::var("TARGET").unwrap_or_default();
    println!("cargo:rustc-env=TARGET_DESC={target}");
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=build.rs");
}

#!/usr/bin/env python3
"""Footprint report of the firmware: flash and static RAM per ELF section, and the core's share.

Usage: python3 footprint.py [--no-build] [--markdown]
       python3 footprint.py --boards [--no-build]

Builds (release profile: opt-level "s", LTO, one codegen unit) every firmware for
thumbv7m-none-eabi and thumbv6m-none-eabi, reads the section sizes straight from the ELF files
(a small ELF32 parser below: no binutils needed), runs `fp_sizes` under QEMU for the sizes of
the core's types as the target sees them, and prints:

- per firmware: .text, .rodata, .data, .bss; flash = .text + .rodata; RAM = .data + .bss;
- the core's share: `fp_core` (UART driver + multiplexer: Original strategy, blocking Reader
  with a 4-entry Reassembler on an 8 x 64 B pool, blocking Writer) minus `fp_baseline` (the
  same firmware without the multiplexer), both built without the formatting panic handler;
- the goals: core flash < 8 KiB; core RAM = pool + table + receive buffer + under 512 bytes.

Exits 1 if a goal is missed on thumbv7m-none-eabi.

With --boards it reports the firmware for real boards instead (boards/rp2040, boards/esp32c3,
each built in release with --locked in its own workspace and target dir): per board, the
allocated sections of the ELF file sorted by their flags, so that the same rule fits both
linker scripts:

- text = code (executable sections; on the ESP32-C3 this includes .trap and .rwtext, which the
  bootloader copies to SRAM and which run from there);
- rodata = read-only data (.rodata, the vector table, the RP2040's second-stage bootloader
  .boot2, the ESP32-C3's application descriptor);
- data = initialised statics (their initial values are in flash too), bss = zeroed statics;
- flash = text + rodata, RAM = data + bss; the flash image adds .data's initial values.

Placeholders (the ESP32-C3's .stack, .rwdata_dummy, .rotext_dummy: allocated, not writable, no
contents) are not counted; nor is the stack, which takes the rest of RAM.
"""

import os
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TARGETS = ["thumbv7m-none-eabi", "thumbv6m-none-eabi"]
FIRMWARE = ["sensor_node", "async_node", "plugin_node", "selftest"]
FOOTPRINT = ["fp_baseline", "fp_core"]
# (folder under boards/, target, binary, what it is)
BOARDS = [
    ("rp2040", "thumbv6m-none-eabi", "mux-board-rp2040", "Raspberry Pi Pico (RP2040)"),
    ("esp32c3", "riscv32imc-unknown-none-elf", "mux-board-esp32c3", "ESP32-C3"),
]
SHT_PROGBITS, SHT_NOBITS = 1, 8
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 0x1, 0x2, 0x4
QEMU = ["qemu-system-arm", "-cpu", "cortex-m3", "-machine", "lm3s6965evb", "-nographic",
        "-monitor", "none", "-semihosting-config", "enable=on,target=native", "-kernel"]


def elf_sections(path):
    """Section name -> (size, type, flags, address) of a 32-bit little-endian ELF file, and its
    symbols (name -> size) of the objects."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 1 or data[5] != 1:
        raise SystemExit(f"{path}: not a 32-bit little-endian ELF file")
    e_shoff, = struct.unpack_from("<I", data, 0x20)
    e_shentsize, e_shnum, e_shstrndx = struct.unpack_from("<HHH", data, 0x2E)
    headers = []
    for i in range(e_shnum):
        off = e_shoff + i * e_shentsize
        name, typ, flags, addr, offset, size, link, info, align, entsize = struct.unpack_from(
            "<IIIIIIIIII", data, off)
        headers.append((name, typ, flags, addr, offset, size, link, entsize))
    shstr = headers[e_shstrndx]

    def cstr(table_off, i):
        end = data.index(b"\0", table_off + i)
        return data[table_off + i:end].decode("utf-8", "replace")

    sections, symbols = {}, {}
    for name, typ, flags, addr, offset, size, link, entsize in headers:
        sections[cstr(shstr[4], name)] = (size, typ, flags, addr)
        if typ == 2:  # SHT_SYMTAB
            strtab = headers[link]
            for k in range(size // entsize):
                st_name, st_value, st_size, st_info, st_other, st_shndx = struct.unpack_from(
                    "<IIIBBH", data, offset + k * entsize)
                if st_info & 0xF == 1 and st_size:  # STT_OBJECT
                    symbols[cstr(strtab[4], st_name)] = st_size
    return sections, symbols


def sizes(path):
    sec, syms = elf_sections(path)
    get = lambda n: sec.get(n, (0,))[0]
    row = {n: get(n) for n in [".vector_table", ".text", ".rodata", ".data", ".bss", ".uninit"]}
    row["flash"] = row[".text"] + row[".rodata"]
    # What is really written to flash: the vector table, code, constants, and the initial
    # values of `.data` (copied to RAM at start-up).
    row["image"] = row[".vector_table"] + row["flash"] + row[".data"]
    row["ram"] = row[".data"] + row[".bss"] + row[".uninit"]
    return row, syms


def cargo(*args):
    cmd = ["cargo", *args]
    print("$ " + " ".join(cmd), file=sys.stderr)
    # The firmware's own target directory, whatever the caller's CARGO_TARGET_DIR says.
    env = dict(os.environ, CARGO_TARGET_DIR=os.path.join(HERE, "target"))
    subprocess.run(cmd, cwd=HERE, check=True, env=env)


def build():
    for t in TARGETS:
        # The footprint pair first, with the silent panic handler, then the firmware (whose lib
        # build with default features does not touch the fp_* binaries).
        cargo("build", "--release", "--locked", "--target", t, "--no-default-features",
              *sum([["--bin", b] for b in FOOTPRINT], []))
        cargo("build", "--release", "--locked", "--target", t,
              *sum([["--bin", b] for b in FIRMWARE + ["fp_sizes"]], []))


def type_sizes():
    elf = os.path.join(HERE, "target", "thumbv7m-none-eabi", "release", "fp_sizes")
    out = subprocess.run(["timeout", "30", *QEMU, elf], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"fp_sizes failed: {out.returncode} {out.stdout} {out.stderr}")
    res = {}
    for line in out.stdout.splitlines():
        if line.startswith("size "):
            _, name, n = line.split(" ")
            res[name] = int(n)
    return res


def board_sizes(path):
    """text, rodata, data, bss of a board's ELF file by section flags, and which sections went
    where."""
    sec, _ = elf_sections(path)
    row = {"text": 0, "rodata": 0, "data": 0, "bss": 0}
    names = {k: [] for k in row}
    for name, (size, typ, flags, _addr) in sorted(sec.items(), key=lambda kv: kv[1][3]):
        if not flags & SHF_ALLOC or size == 0:
            continue
        if typ == SHT_PROGBITS and flags & SHF_EXECINSTR:
            kind = "text"
        elif typ == SHT_PROGBITS and flags & SHF_WRITE:
            kind = "data"
        elif typ == SHT_PROGBITS:
            kind = "rodata"
        elif typ == SHT_NOBITS and flags & SHF_WRITE:
            kind = "bss"
        else:
            continue  # a placeholder: allocated, not writable, no contents
        row[kind] += size
        names[kind].append(f"{name} {size}")
    row["flash"] = row["text"] + row["rodata"]
    row["ram"] = row["data"] + row["bss"]
    row["image"] = row["flash"] + row["data"]
    return row, names


def boards(build_first):
    """The --boards report."""
    for folder, target, binary, _ in BOARDS:
        d = os.path.join(HERE, "boards", folder)
        if build_first:
            cmd = ["cargo", "build", "--release", "--locked"]
            print(f"$ (cd boards/{folder} && {' '.join(cmd)})", file=sys.stderr)
            env = dict(os.environ, CARGO_TARGET_DIR=os.path.join(d, "target"))
            subprocess.run(cmd, cwd=d, check=True, env=env)
    print("| board | target | text | rodata | data | bss | flash (text+rodata) "
          "| RAM (data+bss) | flash image (+.data init) |")
    print("|---|---|" + "---:|" * 7)
    notes = []
    for folder, target, binary, what in BOARDS:
        elf = os.path.join(HERE, "boards", folder, "target", target, "release", binary)
        row, names = board_sizes(elf)
        cols = ["text", "rodata", "data", "bss", "flash", "ram", "image"]
        print(f"| {what} | {target} | " + " | ".join(str(row[c]) for c in cols) + " |")
        notes.append(f"{folder}: " + "; ".join(
            f"{k} = {' + '.join(v) if v else '0'}" for k, v in names.items()))
    print()
    for n in notes:
        print(n)
    return 0


def main():
    if "--boards" in sys.argv:
        return boards("--no-build" not in sys.argv)
    if "--no-build" not in sys.argv:
        build()
    ok = True
    cols = [".text", ".rodata", ".data", ".bss", "flash", "ram", "image"]
    print("| target | firmware | " + " | ".join(cols[:4])
          + " | flash (.text+.rodata) | static RAM (.data+.bss) | flash image (+vectors, .data init) |")
    print("|---|---|" + "---:|" * 7)
    results = {}
    for t in TARGETS:
        for fw in FIRMWARE + FOOTPRINT:
            row, syms = sizes(os.path.join(HERE, "target", t, "release", fw))
            results[(t, fw)] = (row, syms)
            print(f"| {t} | {fw} | " + " | ".join(str(row[c]) for c in cols) + " |")
    print()
    ts = type_sizes()
    for t in TARGETS:
        base, _ = results[(t, "fp_baseline")]
        core, syms = results[(t, "fp_core")]
        flash = core["flash"] - base["flash"]
        ram = core["ram"] - base["ram"]
        image = core["image"] - base["image"]
        pool_data = 8 * 64
        table = ts["Reassembler<N=4,8,64>"] - ts["Reassembler<N=0,8,64>"]
        rx_buf = 64  # the receive buffer both firmware have (fp_baseline's echo buffer too)
        # fp_baseline has the same 64-byte receive buffer, so `ram` is pool + reader + writer.
        overhead = ram - pool_data - table
        named = {k: v for k, v in syms.items() if any(s in k for s in ("MUX_POOL", "MUX_READER", "MUX_WRITER", "RX_BUF"))}
        print(f"core's share on {t}: flash {flash} B (goal < 8192; flash image {image} B, of which "
              f"{core['.data'] - base['.data']} B are .data initial values), static RAM {ram} B = pool blocks "
              f"{pool_data} B + stream table {table} B (4 x {table // 4} B) + {overhead} B of state "
              f"(goal < 512); receive buffer of {rx_buf} B in both")
        for k, v in sorted(named.items()):
            print(f"    static {k}: {v} B")
        if t == TARGETS[0]:
            if flash >= 8192:
                print(f"GOAL MISSED: core flash {flash} B >= 8192 B")
                ok = False
            if overhead >= 512:
                print(f"GOAL MISSED: core RAM overhead {overhead} B >= 512 B")
                ok = False
    print()
    print("type sizes on thumbv7m-none-eabi (from fp_sizes under QEMU):")
    for k, v in ts.items():
        print(f"    {k}: {v} B")
    print("footprint goals: " + ("met" if ok else "MISSED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

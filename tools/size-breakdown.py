#!/usr/bin/env python3
"""Where a binary's bytes are: symbol sizes (`nm -S -C`) of an unstripped
build, summed per crate and module path (`postern::config`, `core::fmt`,
musl's C functions as one line), and the largest symbols.

    tools/size-breakdown.py BINARY [DEPTH] [ROWS]

DEPTH: path segments to group by (1: crates, 2: modules; default 2).
scripts/cross.sh TARGET breakdown builds the unstripped router binary and
runs this on it (docs/performance.md, "Binary size").
"""
import collections
import re
import subprocess
import sys


def symbols(binary):
    out = subprocess.run(["nm", "-S", "--size-sort", "-C", binary],
                         capture_output=True, text=True, check=True).stdout
    seen = set()
    for line in out.splitlines():
        parts = line.split(" ", 3)
        if len(parts) < 4 or parts[2] not in "tTrRdDbB":
            continue
        addr, size, name = parts[0], int(parts[1], 16), parts[3]
        if addr in seen:  # musl's weak aliases share an address
            continue
        seen.add(addr)
        yield size, name


def group(name, depth):
    # `<a::B as c::D>::f` and `<a::B>::f` belong to a::B's module.
    m = re.match(r"^<(?:&(?:mut )?)?([^<> ]+)", name)
    path = m.group(1) if m else re.sub(r"<.*", "", name)
    segs = path.split("::")
    if len(segs) < 2:
        return "(C: musl, compiler-rt)"
    return "::".join(segs[:depth])


def main():
    binary = sys.argv[1]
    depth = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    rows = int(sys.argv[3]) if len(sys.argv) > 3 else 25
    syms = list(symbols(binary))
    total = sum(s for s, _ in syms)
    sums = collections.Counter()
    for size, name in syms:
        sums[group(name, depth)] += size
    print(f"{total} bytes in symbols; by {'crate' if depth == 1 else 'module'}:")
    for key, size in sums.most_common(rows):
        print(f"{size:9d}  {key}")
    print("largest symbols:")
    for size, name in sorted(syms, reverse=True)[:rows]:
        print(f"{size:9d}  {name[:110]}")


if __name__ == "__main__":
    main()

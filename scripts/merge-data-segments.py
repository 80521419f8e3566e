#!/usr/bin/env python3
"""Merges the active data segments of a wasm module that lie within GAP bytes of each
other into one, the gaps filled with zeros:
    scripts/merge-data-segments.py MODULE.wasm [GAP]

Why: scripts/build-site.sh links the wasm with --no-merge-data-segments, one data segment
per static, so that wasm-split-cli can hand each page's data to that page's module. (With
the linker's one big read-only segment, the splitter gives up on it whenever moving the
data apart needs a few more bytes of alignment than the segment had, and the whole 120 KB
then stays in the main module: a change anywhere flipped the first load by 12 KB.) The
price is a header per segment, thousands in the main module; merging them back saves
about 6 KB of brotli.

Only for the main module: zeros in its gaps are harmless, because a page module that owns
data there writes it when it loads, and the main module always loads first. A page
module's gaps may hold data of modules already loaded, which its zeros would overwrite.
"""
import sys


def uleb(n):
    out = bytearray()
    while True:
        x, n = n & 0x7F, n >> 7
        if not n:
            out.append(x)
            return bytes(out)
        out.append(x | 0x80)


def sleb(n):
    out = bytearray()
    while True:
        x, n = n & 0x7F, n >> 7
        if (n == 0 and not x & 0x40) or (n == -1 and x & 0x40):
            out.append(x)
            return bytes(out)
        out.append(x | 0x80)


def read_leb(b, i, signed=False):
    r = s = 0
    while True:
        x = b[i]
        i += 1
        r |= (x & 0x7F) << s
        s += 7
        if x < 0x80:
            if signed and x & 0x40:
                r -= 1 << s
            return r, i


def sections(b):
    i = 8
    while i < len(b):
        size, j = read_leb(b, i + 1)
        yield b[i], b[j : j + size]
        i = j + size


def merged_data(body, gap):
    """The data section with close segments merged, or None if it holds anything but
    active segments at constant offsets (passive ones are named by index: left alone)."""
    count, k = read_leb(body, 0)
    segments = []
    for _ in range(count):
        flag, k = read_leb(body, k)
        if flag != 0 or body[k] != 0x41:  # active, memory 0, i32.const
            return None
        offset, k = read_leb(body, k + 1, signed=True)
        if body[k] != 0x0B:
            return None
        n, k = read_leb(body, k + 1)
        segments.append([offset, bytearray(body[k : k + n])])
        k += n
    segments.sort(key=lambda s: s[0])
    merged = segments[:1]
    for offset, data in segments[1:]:
        last = merged[-1]
        between = offset - (last[0] + len(last[1]))
        if 0 <= between <= gap:
            last[1] += bytes(between) + data
        else:
            merged.append([offset, data])
    out = bytearray(uleb(len(merged)))
    for offset, data in merged:
        out += b"\x00\x41" + sleb(offset) + b"\x0b" + uleb(len(data)) + data
    return bytes(out), count, len(merged)


def main(path, gap):
    b = open(path, "rb").read()
    data = next((merged_data(body, gap) for sid, body in sections(b) if sid == 11), None)
    if data is None:
        return
    body, before, after = data
    out = bytearray(b[:8])
    for sid, old in sections(b):
        new = {11: body, 12: uleb(after)}.get(sid, old)  # 12: the data count
        out += bytes([sid]) + uleb(len(new)) + new
    open(path, "wb").write(out)
    print(f"{path}: {before} data segments merged into {after}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 128)

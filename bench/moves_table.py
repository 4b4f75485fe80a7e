#!/usr/bin/env python3
"""Copies and allocations per request, from uprobes on glibc's memmove and malloc.

    python3 bench/moves_table.py DIR NAME...

For each NAME, DIR holds NAME.trace (`perf script -F event,trace` of the probes
`memmove len=%dx ret=+0(%sp)` and `malloc size=%di ret=+0(%sp)`) and NAME.requests (the
requests the backend saw while the probes recorded). A NAME with NAME.bin (the path of its binary) and
NAME.maps (its /proc/PID/maps) also gets its call sites: each probe's return address, named
with addr2line (inlined frames included), ranked by the bytes it copies or allocates.

glibc's memcpy is an alias of memmove in its x86-64 variants, so the memmove figures are both.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

PROBE = re.compile(r"probe_libc:(\w+): \(\w+\) (?:len|size)=(\d+) ret=(\d+)")
# Frames that say nothing about who asked (the standard library's wrappers).
PLUMBING = re.compile(r"^(alloc::|core::|<alloc::|<core::|<T as alloc::)")


def read_trace(path: Path) -> tuple[Counter, Counter]:
    """(calls, bytes) keyed by (kind, return address), kind 'memmove' or 'malloc'."""
    calls: Counter = Counter()
    size: Counter = Counter()
    for line in path.open(errors="replace"):
        m = PROBE.search(line)
        if not m:
            continue
        kind = "malloc" if m.group(1) == "malloc" else "memmove"
        key = (kind, int(m.group(3)))
        calls[key] += 1
        size[key] += int(m.group(2))
    return calls, size


def image_range(maps: Path, binary: str) -> tuple[int, int] | None:
    """Where the binary is mapped: (start of its offset-0 mapping, end of its last). A return
    address minus that start is the address addr2line knows (the binary is
    position-independent)."""
    base, end = None, 0
    for line in maps.open():
        parts = line.split()
        if len(parts) >= 6 and parts[5] == binary:
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            if int(parts[2], 16) == 0 and base is None:
                base = lo
            end = max(end, hi)
    return None if base is None else (base, end)


def name_sites(binary: str, addresses: list[int]) -> dict[int, str]:
    """Each address as its first three frames that are not standard-library plumbing."""
    if not addresses:
        return {}
    out = subprocess.run(["addr2line", "-a", "-f", "-C", "-i", "-e", binary],
                         input="\n".join(f"{a:#x}" for a in addresses),
                         capture_output=True, text=True, check=True).stdout.splitlines()
    frames: dict[int, list[str]] = {}
    current, i = None, 0
    while i < len(out):
        if out[i].startswith("0x"):
            current = int(out[i], 16)
            frames[current] = []
            i += 1
            continue
        if i + 1 < len(out) and current is not None:
            where = "/".join(out[i + 1].split(" ")[0].split("/")[-2:])
            frames[current].append(f"{out[i][:70]} ({where})")
        i += 2
    names = {}
    for address, stack in frames.items():
        kept = [f for f in stack if not PLUMBING.match(f)] or stack
        names[address] = " <- ".join(kept[:3])
    return names


def main() -> None:
    out_dir, names = Path(sys.argv[1]), sys.argv[2:]
    rows = []
    for name in names:
        calls, size = read_trace(out_dir / f"{name}.trace")
        requests = int((out_dir / f"{name}.requests").read_text().strip() or 0)
        if requests <= 0:
            sys.exit(f"moves: {name}: no requests reached the backend while probed")
        per = {}
        for kind in ("memmove", "malloc"):
            per[kind] = (sum(c for (k, _), c in calls.items() if k == kind) / requests,
                         sum(s for (k, _), s in size.items() if k == kind) / requests)
        rows.append((name, requests, per, calls, size))

    print(f"{'per request':<28}" + "".join(f"{n:>14}" for n, *_ in rows))
    for label, kind, idx in (("memmove/memcpy calls", "memmove", 0), ("bytes copied", "memmove", 1),
                             ("malloc calls", "malloc", 0), ("bytes allocated", "malloc", 1)):
        print(f"{label:<28}" + "".join(f"{per[kind][idx]:>14.1f}" for _, _, per, _, _ in rows))
    print(f"{'(requests counted)':<28}" + "".join(f"{r:>14}" for _, r, *_ in rows))

    for name, requests, _, calls, size in rows:
        bin_file, maps = out_dir / f"{name}.bin", out_dir / f"{name}.maps"
        if not (bin_file.exists() and maps.exists()):
            continue
        binary = bin_file.read_text().strip()
        mapped = image_range(maps, binary)
        if mapped is None:
            continue
        base, end = mapped
        for kind, what in (("memmove", "copied"), ("malloc", "allocated")):
            sites = sorted(((s, k[1]) for k, s in size.items() if k[0] == kind), reverse=True)[:15]
            named = name_sites(binary, [ret - base for _, ret in sites if base <= ret < end])
            print(f"\n{name}: bytes {what} per request by call site (calls per request, bytes per call)")
            for total, ret in sites:
                n = calls[(kind, ret)]
                where = named.get(ret - base, "outside the binary")
                print(f"  {total / requests:8.0f} B  {n / requests:5.2f} x {total / n:6.0f} B  {where}")


if __name__ == "__main__":
    main()

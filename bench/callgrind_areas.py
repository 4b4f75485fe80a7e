#!/usr/bin/env python3
"""Instructions per request by area, from a callgrind dump taken with --separate-callers=K.

    python3 bench/callgrind_areas.py CALLGRIND_OUT REQUESTS [--folded OUT] [--json OUT] [--top N]

With --separate-callers=K every cost context is named `leaf'caller1'caller2...` (up to K
callers), so each context is a (truncated) call stack with its own self cost. From that:

- **exclusive**: each context's self cost goes to the area of the nearest frame, walking from
  the leaf up, that belongs to an area (malloc called from the h1 decoder counts as malloc;
  hashbrown called from the header map counts as header map). The areas add up to the total.
- **charged**: like exclusive, but malloc/free and memcpy/memset are charged to the area
  that called them (the nearest frame of any other area), so it says who causes them.
- **inclusive**: each context's self cost goes to every area that has a frame anywhere in
  its stack (malloc inside the h1 decoder counts for both), so the areas overlap; a frame
  more than K callers above the leaf is not seen.

It also lists the functions that call malloc/free and memcpy/memset most (by the
instructions spent in them on their behalf).

It also prints the top functions by self and inclusive cost, and can write the stacks in the
folded format that flamegraph.pl and inferno-flamegraph read (`--folded`).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict

# (area, pattern on one demangled frame name). The first matching area names a frame, so the
# specific areas come before the general ones (h1 encoder before "actix-http, other").
AREAS = [
    ("malloc/free/realloc",
     r"^(malloc|free|realloc|calloc|cfree|_int_malloc|_int_free|_int_realloc|malloc_consolidate"
     r"|unlink_chunk|tcache_\w+|__libc_(malloc|free|realloc|calloc)|__rust_(alloc|dealloc|realloc"
     r"|alloc_zeroed)|__rdl_\w+|__rg_\w+)$|^alloc::raw_vec::|^alloc::alloc::"),
    ("memcpy/memmove/memset",
     r"^_*(mem(cpy|move|set|pcpy)|__mem(cpy|move|set)\w*)|^__(memcpy|memmove|memset)"),
    ("date (Date header)", r"actix_http::date|httpdate|DateService|HttpDate"),
    ("header map", r"^<?(actix_http::header::map|http::header::(map|name|value))"
                   r"|^<?actix_http::header::map::HeaderMap"),
    ("actix-http h1 decode", r"^<?actix_http::h1::(decoder|codec::Codec as actix_codec::Decoder)"
                             r"|^<actix_http::h1::codec::Codec as tokio_util::codec::decoder"),
    ("actix-http h1 encode/write", r"^<?actix_http::h1::(encoder|codec::Codec as actix_codec::Encoder)"
                                   r"|^<actix_http::h1::codec::Codec as tokio_util::codec::encoder"
                                   r"|^<?actix_http::h1::dispatcher::.*(poll_flush|send_response"
                                   r"|write_\w+)"),
    ("actix-http, other (h1 dispatcher, payload, service glue)", r"^<?actix_http::|^<?actix_codec::"),
    ("director: upstream client (head writing, response parsing, pool)",
     r"^<?director::(proxy::upstream|transport)::"),
    ("director: proxy handler and the rest of director", r"^<?director::"),
    ("actix-web, actix-service, actix-router", r"^<?(actix_web|actix_service|actix_router)::"),
    ("tokio, actix-rt, actix-server, mio (runtime)",
     r"^<?(tokio|actix_rt|actix_server|actix|mio|futures_util|futures_task|futures_core"
     r"|local_waker|tokio_util)::"),
    ("libc: syscall wrappers, clock", r"^(epoll_wait|read|write|writev|readv|recv|recvfrom|send|sendto"
                                      r"|sendmsg|recvmsg|syscall|clock_gettime|__clock_gettime\w*"
                                      r"|__vdso_\w+|__GI___\w+|__libc_(read|write|recv|send)\w*)$"),
]
OTHER = "other"
# leaf areas: charged to their caller's area in the "charged" column
LEAF_AREAS = {"malloc/free/realloc", "memcpy/memmove/memset"}
COMPILED = [(name, re.compile(p)) for name, p in AREAS]
ORDER = [name for name, _ in AREAS] + [OTHER]


def area_of(frame: str, cache: dict) -> str | None:
    hit = cache.get(frame, 0)
    if hit != 0:
        return hit
    found = None
    for name, pat in COMPILED:
        if pat.search(frame):
            found = name
            break
    cache[frame] = found
    return found


def parse(path: str) -> tuple[dict, int]:
    """{context name: self Ir} and the file's total (summary/totals line)."""
    names: dict[str, str] = {}   # compressed "(id)" -> name
    costs: dict[str, int] = defaultdict(int)
    current = None
    skip_next = False
    total = 0
    events = None
    ref = re.compile(r"^\((\d+)\)(?: (.*))?$")

    def resolve(value: str) -> str:
        m = ref.match(value)
        if not m:
            return value
        if m.group(2) is not None:
            names[m.group(1)] = m.group(2)
            return m.group(2)
        return names[m.group(1)]

    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            c = line[0]
            if c.isdigit() or c in "+-*":
                if skip_next:          # the inclusive cost line after calls=
                    skip_next = False
                    continue
                fields = line.split()
                if current is not None and len(fields) >= 2:
                    costs[current] += int(fields[1])
                continue
            if line.startswith("fn="):
                current = resolve(line[3:])
            elif line.startswith("cfn="):
                resolve(line[4:])      # may define a compressed name used later
            elif line.startswith("calls="):
                skip_next = True
            elif line.startswith("events:"):
                events = line.split()[1:]
            elif line.startswith(("summary:", "totals:")):
                total = int(line.split()[1])
    if events and events[0] != "Ir":
        sys.exit(f"callgrind_areas: expected Ir as the first event, got {events}")
    return costs, total


def short(name: str, width: int = 110) -> str:
    return name if len(name) <= width else name[: width - 3] + "..."


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("callgrind_out")
    ap.add_argument("requests", type=int)
    ap.add_argument("--folded", default=None, help="write folded stacks (root;...;leaf COUNT)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    costs, total = parse(args.callgrind_out)
    counted = sum(costs.values())
    total = total or counted
    n = args.requests
    cache: dict = {}
    exclusive: dict[str, int] = defaultdict(int)
    inclusive: dict[str, int] = defaultdict(int)
    charged: dict[str, int] = defaultdict(int)
    leaf_callers: dict[str, dict[str, int]] = {a: defaultdict(int) for a in LEAF_AREAS}
    self_fn: dict[str, int] = defaultdict(int)
    incl_fn: dict[str, int] = defaultdict(int)
    folded = []
    for ctx, ir in costs.items():
        if ir == 0:
            continue
        # "'2" after a name is callgrind's recursion level, not a caller
        frames = [fr for fr in ctx.split("'") if not fr.isdigit()]
        self_fn[frames[0]] += ir
        for fr in set(frames):
            incl_fn[fr] += ir
        nearest = None
        payer = None
        seen = set()
        for fr in frames:
            a = area_of(fr, cache)
            if a is not None:
                if nearest is None:
                    nearest = a
                if payer is None and a not in LEAF_AREAS:
                    payer = a
                seen.add(a)
        exclusive[nearest or OTHER] += ir
        charged[payer or OTHER] += ir
        if nearest in LEAF_AREAS:
            # the first frame above the allocator / copy routines is the one that asked
            caller = next((fr for fr in frames if area_of(fr, cache) not in LEAF_AREAS), "?")
            leaf_callers[nearest][caller] += ir
        for a in seen or {OTHER}:
            inclusive[a] += ir
        if args.folded:
            folded.append(";".join(reversed(frames)).replace(" ", "_") + f" {ir}")

    print(f"total: {total} Ir over {n} requests = {total / n:.0f} Ir/request"
          f" (contexts add up to {counted / n:.0f})")
    print()
    print(f"{'area':<66} {'excl Ir/req':>11} {'excl %':>7} {'charged':>8} {'incl Ir/req':>11} {'incl %':>7}")
    for a in ORDER:
        e, i, c = exclusive.get(a, 0), inclusive.get(a, 0), charged.get(a, 0)
        if e == 0 and i == 0:
            continue
        print(f"{a:<66} {e / n:>11.0f} {100 * e / counted:>6.1f}% {c / n:>8.0f}"
              f" {i / n:>11.0f} {100 * i / counted:>6.1f}%")
    print("(excl: each instruction counted once, in the nearest area up its stack; charged: the"
          " same with malloc/free\n and memcpy/memset charged to the area that called them;"
          " incl: in every area on its stack)")

    for a in sorted(LEAF_AREAS):
        print()
        print(f"top callers of {a} (Ir/request spent in it on their behalf):")
        for fn, ir in sorted(leaf_callers[a].items(), key=lambda kv: -kv[1])[:12]:
            print(f"  {ir / n:>9.0f}  {short(fn)}")
    print()
    print(f"top {args.top} functions by self Ir/request:")
    for fn, ir in sorted(self_fn.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"  {ir / n:>9.0f} {100 * ir / counted:>5.1f}%  {short(fn)}")
    print()
    print(f"top {args.top} functions by inclusive Ir/request (within the recorded stack depth):")
    for fn, ir in sorted(incl_fn.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"  {ir / n:>9.0f} {100 * ir / counted:>5.1f}%  {short(fn)}")

    if args.folded:
        with open(args.folded, "w") as f:
            f.write("\n".join(folded) + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({
                "requests": n, "total_ir": total, "ir_per_request": round(total / n),
                "areas": [{"area": a, "exclusive_ir_per_request": round(exclusive.get(a, 0) / n),
                           "charged_ir_per_request": round(charged.get(a, 0) / n),
                           "inclusive_ir_per_request": round(inclusive.get(a, 0) / n)}
                          for a in ORDER],
                "top_self": [{"function": fn, "ir_per_request": round(ir / n)} for fn, ir in
                             sorted(self_fn.items(), key=lambda kv: -kv[1])[: args.top]],
                "top_inclusive": [{"function": fn, "ir_per_request": round(ir / n)} for fn, ir in
                                  sorted(incl_fn.items(), key=lambda kv: -kv[1])[: args.top]],
            }, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

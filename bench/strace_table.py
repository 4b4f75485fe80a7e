#!/usr/bin/env python3
"""Syscalls per request, side by side, from `strace -c -f` summaries and wrk outputs.

    python3 bench/strace_table.py NAME=STRACE_FILE:WRK_FILE [NAME=...] [--json OUT]

Each STRACE_FILE is what `strace -c -f -o FILE -p PID...` wrote while one wrk run (WRK_FILE,
its output) loaded that proxy; the requests are wrk's "N requests in" count. Prints, per
syscall name, calls per request for each proxy, largest first, and the totals.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path


def parse_strace(text: str) -> dict[str, int]:
    """{syscall: calls} from strace -c's table (the total row is left out)."""
    calls: dict[str, int] = {}
    dashes = 0
    for line in text.splitlines():
        if line.startswith("------"):
            dashes += 1
            continue
        if dashes != 1:
            continue
        tokens = line.split()
        if len(tokens) < 5 or not re.fullmatch(r"[0-9.]+", tokens[0]):
            continue
        # % time, seconds, usecs/call, calls, [errors], syscall
        calls[tokens[-1]] = calls.get(tokens[-1], 0) + int(tokens[3])
    return calls


def parse_requests(text: str) -> int:
    m = re.search(r"^\s+(\d+) requests in", text, re.M)
    if not m:
        raise SystemExit("strace_table: no 'requests in' line in the wrk output")
    return int(m.group(1))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", help="NAME=STRACE_FILE:WRK_FILE")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    names, per_req, requests = [], {}, {}
    for spec in args.runs:
        name, _, files = spec.partition("=")
        strace_file, _, wrk_file = files.partition(":")
        calls = parse_strace(Path(strace_file).read_text())
        n = parse_requests(Path(wrk_file).read_text())
        names.append(name)
        requests[name] = n
        per_req[name] = {k: v / n for k, v in calls.items()}
    syscalls = sorted({k for d in per_req.values() for k in d},
                      key=lambda k: -max(d.get(k, 0) for d in per_req.values()))
    width = max(12, *(len(n) for n in names))
    print(f"{'syscall':<18}" + "".join(f" {n:>{width}}" for n in names))
    print(f"{'(requests)':<18}" + "".join(f" {requests[n]:>{width}}" for n in names))
    for k in syscalls:
        row = [per_req[n].get(k) for n in names]
        if all(v is None or v < 0.0005 for v in row):
            continue
        print(f"{k:<18}" + "".join(f" {'-' if v is None else f'{v:.3f}':>{width}}" for v in row))
    print(f"{'total':<18}" + "".join(f" {sum(per_req[n].values()):>{width}.3f}" for n in names))
    print("(syscalls per request; strace -c -f on the serving process(es), all threads)")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"requests": requests, "per_request": per_req}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

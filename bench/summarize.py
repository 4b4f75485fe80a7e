#!/usr/bin/env python3
"""Summarize a bench/run.sh run: parse wrk output, take medians, print, write JSON.

Legs: director (root bucket only), director-2b (two HTB buckets), haproxy, nginx (HTTP,
same nginx backend); director-fcgi, nginx-fcgi (FastCGI, same php-fpm pool);
director-sendfile, nginx-sendfile (X-Sendfile / X-Accel-Redirect of one file named by the
same nginx backend); director-cache, nginx-cache, varnish-cache (cache hits on one small
cacheable file of the same backend); director-misscache, director-missoff (the miss path on
an uncacheable URL, director's cache on vs off); director-w2, haproxy-w2, nginx-w2 (two
workers each, same nginx backend, more wrk connections). Any subset may be present (run.sh
ONLY=...).

    python3 bench/summarize.py RAW_DIR [--json OUT]

RAW_DIR holds NAME.rROUND.wrk (wrk --latency output), NAME.rROUND.meta (CPU
accounting written by run.sh), optionally NAME.cachecheck (the hit check of a cache leg),
config.json and idle.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
from pathlib import Path

# director: root bucket only; director-2b: same binary, two HTB buckets (see run.sh)
HTTP = ("director", "director-2b", "haproxy", "nginx")
FCGI = ("director-fcgi", "nginx-fcgi")
SENDFILE = ("director-sendfile", "nginx-sendfile")
# cache hits on one cacheable object, and the miss path with director's cache on vs off
CACHE = ("director-cache", "nginx-cache", "varnish-cache")
MISS = ("director-misscache", "director-missoff")
# two workers each: director `workers: 2`, HAProxy `nbthread 2`, nginx `worker_processes 2`
W2 = ("director-w2", "haproxy-w2", "nginx-w2")
PROXIES = HTTP + FCGI + SENDFILE + CACHE + MISS + W2
# director-base: the `director` leg's config on an earlier binary (BASE_BIN in run.sh)
BASE = "director-base"
# director-2b must not be more than 3% worse than director (rps and p99)
HTB_TOLERANCE = 0.03
# director-cache must serve at least 1.2x nginx-cache's rps
CACHE_TARGET = 1.2
# director-misscache must not be more than 3% worse than director-missoff (rps and p99)
MISS_TOLERANCE = 0.03
# a cache leg whose backend saw more than this share of its requests was not serving hits
HIT_BACKEND_SHARE = 0.01
UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}
# wrk prints Transfer/sec with binary prefixes
UNIT_BYTES = {"B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3, "TB": 1024 ** 4}


def to_ms(text: str) -> float:
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text.strip())
    if not m:
        raise ValueError(f"unparsable wrk latency {text!r}")
    return float(m.group(1)) * UNIT_MS[m.group(2)]


def parse_wrk(text: str) -> dict:
    """rps, p50/p99 (ms), request count and error counts from `wrk --latency` output."""
    out: dict = {}
    m = re.search(r"^Requests/sec:\s+([0-9.]+)", text, re.M)
    if not m:
        raise ValueError("no 'Requests/sec' line in wrk output")
    out["rps"] = float(m.group(1))
    m = re.search(r"^Transfer/sec:\s+([0-9.]+)(B|KB|MB|GB|TB)", text, re.M)
    out["bytes_per_s"] = round(float(m.group(1)) * UNIT_BYTES[m.group(2)]) if m else None
    for pct, key in (("50", "p50_ms"), ("75", "p75_ms"), ("90", "p90_ms"), ("99", "p99_ms")):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", text, re.M)
        out[key] = to_ms(m.group(1)) if m else None
    m = re.search(r"^\s+(\d+) requests in ([0-9.]+\w+)", text, re.M)
    out["requests"] = int(m.group(1)) if m else None
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    out["non_2xx"] = int(m.group(1)) if m else 0
    return out


# Steal time (share of the machine's CPU) from which a run is flagged as disturbed.
STEAL_WARN_PCT = 5.0


def parse_meta(text: str) -> dict:
    kv = dict(item.split("=", 1) for item in text.split())
    ticks, elapsed, hz = int(kv["proxy_ticks"]), float(kv["elapsed"]), int(kv["clk_tck"])
    return {
        "proxy_cpu_pct": round(100.0 * ticks / hz / elapsed, 1) if elapsed > 0 else None,
        "backend_cpu_pct": (round(100.0 * int(kv["backend_ticks"]) / hz / elapsed, 1)
                            if elapsed > 0 else None),
        "threads": int(kv["threads"]),
        # share of the machine's CPU time (all cores) the hypervisor gave other guests
        "steal_pct": (round(100.0 * int(kv["steal_ticks"]) / hz / elapsed / (os.cpu_count() or 1), 1)
                      if "steal_ticks" in kv and elapsed > 0 else None),
        "connections": int(kv["conns"]) if "conns" in kv else None,
        # requests that reached the nginx backend during the run (absent: FastCGI legs)
        "backend_reqs": int(kv["backend_reqs"]) if "backend_reqs" in kv else None,
    }


def median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def per_round(a: dict | None, b: dict | None) -> list:
    """a / b within each round both ran in (back to back there): rps, p99, rps_per_core."""
    if not a or not b:
        return []
    by_round = {r["round"]: r for r in b["runs"]}
    return [{"round": ra["round"],
             "rps": ratio(ra["rps"], by_round[ra["round"]]["rps"]),
             "p99": ratio(ra["p99_ms"], by_round[ra["round"]]["p99_ms"]),
             "rps_per_core": ratio(ra.get("rps_per_core"), by_round[ra["round"]].get("rps_per_core"))}
            for ra in a["runs"] if ra["round"] in by_round]


def fmt_rounds(rounds: list) -> str:
    return ", ".join(f"r{x['round']} {fmt(x['rps'], '.3f')}/{fmt(x['p99'], '.3f')}" for x in rounds)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("raw_dir", type=Path)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    raw: Path = args.raw_dir

    config = {}
    if (raw / "config.json").exists():
        config = json.loads((raw / "config.json").read_text())

    results: dict = {}
    for name in PROXIES + (BASE,):
        runs = []
        for wrk_file in sorted(raw.glob(f"{name}.r*.wrk"),
                               key=lambda p: int(p.name.split(".r")[1].split(".")[0])):
            rnd = int(wrk_file.name.split(".r")[1].split(".")[0])
            run = {"round": rnd, **parse_wrk(wrk_file.read_text())}
            meta = wrk_file.with_suffix(".meta")
            if meta.exists():
                run.update(parse_meta(meta.read_text()))
                cpu = run.get("proxy_cpu_pct")
                # requests per second of proxy CPU time: less sensitive than rps to CPU
                # taken by other processes, since it divides out how much CPU the proxy got
                run["rps_per_core"] = round(run["rps"] / (cpu / 100.0)) if cpu else None
                # backend requests per client request: ~1 through a proxy, ~0 for cache hits
                br, n_req = run.get("backend_reqs"), run.get("requests")
                run["backend_share"] = round(br / n_req, 4) if br is not None and n_req else None
            runs.append(run)
        if not runs:
            continue
        check = raw / f"{name}.cachecheck"
        hit_check = None
        if check.exists():
            # "hit|miss backend_requests=N header=LINE": the 2nd GET before the load
            verdict, _, rest = check.read_text().strip().partition(" ")
            m = re.match(r"backend_requests=(-?\d+) header=(.*)", rest)
            hit_check = {"verdict": verdict,
                         "backend_requests": int(m.group(1)) if m else None,
                         "header": (m.group(2) if m and m.group(2) != "none" else None)}
        results[name] = {
            "rps": round(median([r["rps"] for r in runs]), 2),
            # (max - min) / median of rps over the rounds: how noisy this proxy's runs were
            "rps_spread_pct": round(100.0 * (max(r["rps"] for r in runs)
                                             - min(r["rps"] for r in runs))
                                    / median([r["rps"] for r in runs]), 1),
            "bytes_per_s": median([r.get("bytes_per_s") for r in runs]),
            "p50_ms": median([r["p50_ms"] for r in runs]),
            "p99_ms": median([r["p99_ms"] for r in runs]),
            "proxy_cpu_pct": median([r.get("proxy_cpu_pct") for r in runs]),
            "rps_per_core": median([r.get("rps_per_core") for r in runs]),
            "backend_cpu_pct": median([r.get("backend_cpu_pct") for r in runs]),
            "threads": max((r.get("threads") or 0) for r in runs) or None,
            "errors": sum(r["socket_errors"] + r["non_2xx"] for r in runs),
            "backend_share": median([r.get("backend_share") for r in runs]),
            "hit_check": hit_check,
            "runs": runs,
        }

    d, d2, h, n = (results.get(k) for k in HTTP)
    df, nf = (results.get(k) for k in FCGI)
    ds, ns = (results.get(k) for k in SENDFILE)
    dc, nc, vc = (results.get(k) for k in CACHE)
    dmc, dmo = (results.get(k) for k in MISS)
    dw, hw, nw = (results.get(k) for k in W2)
    base = results.get(BASE)
    ratios = {
        # HTB cost: two buckets vs the root bucket alone (same binary, same capacity)
        "director_2b_over_director_rps": ratio(d2 and d2["rps"], d and d["rps"]),
        "director_2b_over_director_p50": ratio(d2 and d2["p50_ms"], d and d["p50_ms"]),
        "director_2b_over_director_p99": ratio(d2 and d2["p99_ms"], d and d["p99_ms"]),
        "director_2b_over_director_rps_per_core": ratio(d2 and d2["rps_per_core"],
                                                        d and d["rps_per_core"]),
        "director_over_haproxy_rps": ratio(d and d["rps"], h and h["rps"]),
        "director_over_nginx_rps": ratio(d and d["rps"], n and n["rps"]),
        "director_over_haproxy_p99": ratio(d and d["p99_ms"], h and h["p99_ms"]),
        # secondary: throughput per core-second of proxy CPU
        "director_over_haproxy_rps_per_core": ratio(d and d["rps_per_core"],
                                                    h and h["rps_per_core"]),
        "director_over_nginx_rps_per_core": ratio(d and d["rps_per_core"],
                                                  n and n["rps_per_core"]),
        # FastCGI: director vs nginx fastcgi_pass, same php-fpm pool
        "director_fcgi_over_nginx_fcgi_rps": ratio(df and df["rps"], nf and nf["rps"]),
        "director_fcgi_over_nginx_fcgi_p99": ratio(df and df["p99_ms"], nf and nf["p99_ms"]),
        "director_fcgi_over_nginx_fcgi_rps_per_core": ratio(df and df["rps_per_core"],
                                                            nf and nf["rps_per_core"]),
        # X-Sendfile: director x_sendfile vs nginx X-Accel-Redirect, same file and backend
        "director_sendfile_over_nginx_sendfile_bytes_per_s": ratio(ds and ds["bytes_per_s"],
                                                                   ns and ns["bytes_per_s"]),
        "director_sendfile_over_nginx_sendfile_rps": ratio(ds and ds["rps"], ns and ns["rps"]),
        "director_sendfile_over_nginx_sendfile_rps_per_core": ratio(ds and ds["rps_per_core"],
                                                                    ns and ns["rps_per_core"]),
        # cache hits on one object: director's cache vs nginx proxy_cache and Varnish
        "director_cache_over_nginx_cache_rps": ratio(dc and dc["rps"], nc and nc["rps"]),
        "director_cache_over_nginx_cache_p99": ratio(dc and dc["p99_ms"], nc and nc["p99_ms"]),
        "director_cache_over_nginx_cache_rps_per_core": ratio(dc and dc["rps_per_core"],
                                                              nc and nc["rps_per_core"]),
        "director_cache_over_varnish_cache_rps": ratio(dc and dc["rps"], vc and vc["rps"]),
        "director_cache_over_varnish_cache_p99": ratio(dc and dc["p99_ms"], vc and vc["p99_ms"]),
        "director_cache_over_varnish_cache_rps_per_core": ratio(dc and dc["rps_per_core"],
                                                                vc and vc["rps_per_core"]),
        # the miss path: the same uncacheable URL through director with the cache on vs off
        "director_misscache_over_director_missoff_rps": ratio(dmc and dmc["rps"], dmo and dmo["rps"]),
        "director_misscache_over_director_missoff_p50": ratio(dmc and dmc["p50_ms"],
                                                              dmo and dmo["p50_ms"]),
        "director_misscache_over_director_missoff_p99": ratio(dmc and dmc["p99_ms"],
                                                              dmo and dmo["p99_ms"]),
        "director_misscache_over_director_missoff_rps_per_core": ratio(
            dmc and dmc["rps_per_core"], dmo and dmo["rps_per_core"]),
        # two workers each, same backend
        "director_w2_over_haproxy_w2_rps": ratio(dw and dw["rps"], hw and hw["rps"]),
        "director_w2_over_nginx_w2_rps": ratio(dw and dw["rps"], nw and nw["rps"]),
        "director_w2_over_haproxy_w2_p99": ratio(dw and dw["p99_ms"], hw and hw["p99_ms"]),
        "director_w2_over_nginx_w2_p99": ratio(dw and dw["p99_ms"], nw and nw["p99_ms"]),
        "director_w2_over_haproxy_w2_rps_per_core": ratio(dw and dw["rps_per_core"],
                                                          hw and hw["rps_per_core"]),
        "director_w2_over_nginx_w2_rps_per_core": ratio(dw and dw["rps_per_core"],
                                                        nw and nw["rps_per_core"]),
        # two workers against one (rps): how much the second worker adds on this machine
        "director_w2_over_director_rps": ratio(dw and dw["rps"], d and d["rps"]),
        "haproxy_w2_over_haproxy_rps": ratio(hw and hw["rps"], h and h["rps"]),
        "nginx_w2_over_nginx_rps": ratio(nw and nw["rps"], n and n["rps"]),
        # whether director-cache served hits (from its hit check and backend request counts)
        "director_cache_served_hits": (None if not dc else
                                       bool(dc.get("hit_check")
                                            and dc["hit_check"]["verdict"] == "hit"
                                            and dc.get("backend_share") is not None
                                            and dc["backend_share"] <= HIT_BACKEND_SHARE)),
    }

    # The same ratios within each round (the two legs ran back to back there): shows how
    # much of the median ratio is round-to-round noise.
    ratios["director_2b_over_director_per_round"] = htb_rounds = per_round(d2, d)
    ratios["director_cache_over_nginx_cache_per_round"] = per_round_cache_n = per_round(dc, nc)
    ratios["director_cache_over_varnish_cache_per_round"] = per_round_cache_v = per_round(dc, vc)
    ratios["director_misscache_over_director_missoff_per_round"] = per_round_miss = per_round(dmc, dmo)
    ratios["director_w2_over_haproxy_w2_per_round"] = per_round_w2_h = per_round(dw, hw)
    ratios["director_w2_over_nginx_w2_per_round"] = per_round_w2_n = per_round(dw, nw)
    # This build against an earlier one, and each against HAProxy, round by round.
    if d and base:
        ratios["director_over_base_rps"] = ratio(d["rps"], base["rps"])
        ratios["director_over_base_p99"] = ratio(d["p99_ms"], base["p99_ms"])
        ratios["director_over_base_rps_per_core"] = ratio(d["rps_per_core"], base["rps_per_core"])
        ratios["base_over_haproxy_rps"] = ratio(base["rps"], h and h["rps"])
        ratios["base_over_nginx_rps"] = ratio(base["rps"], n and n["rps"])
        by_round = {r["round"]: r for r in base["runs"]}
        ratios["director_over_base_per_round"] = [
            {"round": r["round"], "rps": ratio(r["rps"], by_round[r["round"]]["rps"])}
            for r in d["runs"] if r["round"] in by_round
        ]

    idle = None
    if (raw / "idle.json").exists():
        idle = json.loads((raw / "idle.json").read_text())

    # ---- print
    c = config
    print()
    fcgi_conns = c.get("fcgi_connections")
    print(f"Throughput: wrk -t{c.get('wrk_threads', '?')} -c{c.get('connections', '?')}"
          + (f" (FastCGI legs -c{fcgi_conns})" if fcgi_conns is not None else "")
          + f", {c.get('duration_s', '?')}s x {c.get('rounds', '?')} rounds "
          f"(median per proxy), one worker each"
          + (f"\n (-w2 legs: two workers each, wrk -t{c.get('w2_wrk_threads', '?')}"
             f" -c{c.get('w2_connections', '?')})" if any(results.get(k) for k in W2) else ""))
    hdr = f"{'proxy':<18} {'rps':>11} {'MiB/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'proxy cpu':>10} {'req/core-s':>11} {'backend cpu':>12} {'threads':>8} {'errors':>7} {'spread':>7}"
    print(hdr)
    print("-" * len(hdr))
    groups = {"http": HTTP + (BASE,), "fcgi": FCGI, "sendfile": SENDFILE, "cache": CACHE,
              "miss": MISS, "w2": W2}
    ran = {g: any(results.get(k) for k in legs) for g, legs in groups.items()}
    for name in PROXIES + ((BASE,) if results.get(BASE) else ()):
        group = next(g for g, legs in groups.items() if name in legs)
        r = results.get(name)
        if r is None:
            if ran[group] or name in HTTP:
                print(f"{name:<18} {'(not run)':>11}")
            continue
        mib = None if r.get("bytes_per_s") is None else r["bytes_per_s"] / 1024 ** 2
        print(f"{name:<18} {r['rps']:>11.0f} {fmt(mib, '.1f'):>8} {fmt(r['p50_ms'], '.3f'):>8} "
              f"{fmt(r['p99_ms'], '.3f'):>8} {fmt(r['proxy_cpu_pct'], '.0f') + '%':>10} "
              f"{fmt(r['rps_per_core'], '.0f'):>11} "
              f"{fmt(r['backend_cpu_pct'], '.0f') + '%':>12} {fmt(r['threads'], 'd'):>8} "
              f"{r['errors']:>7} {fmt(r['rps_spread_pct'], '.0f') + '%':>7}")
    print("(cpu: % of one core used by the proxy's worker(s) / the backend's worker(s) during the"
          " measured run;\n req/core-s: rps per core-second of proxy CPU;"
          " spread: (max-min)/median rps over the rounds;\n backend: the nginx backend, or"
          " php-fpm's workers for the -fcgi legs"
          + (";\n threads: varnish-cache counts its child's thread pool, nginx-cache its cache"
             " manager and loader processes" if ran["cache"] else "") + ")")
    if d or d2:
        cap = c.get("director_backend_capacity")
        print("(director: root bucket only; director-2b: same binary, two buckets, every"
              " request classified\n into 'main'"
              + (f"; both with backend capacity {cap})" if cap is not None else ")"))
    if d and d2:
        def verdict(v, higher_is_better):
            if v is None:
                return ""
            ok = v >= 1 - HTB_TOLERANCE if higher_is_better else v <= 1 + HTB_TOLERANCE
            return "  ok" if ok else "  OUTSIDE the 3% budget"
        rr = ratios["director_2b_over_director_rps"]
        rp = ratios["director_2b_over_director_p99"]
        print()
        print(f"director-2b / director rps : {fmt(rr, '.3f')}"
              f"   (target >= {1 - HTB_TOLERANCE:.2f}){verdict(rr, True)}")
        print(f"director-2b / director p99 : {fmt(rp, '.3f')}"
              f"   (target <= {1 + HTB_TOLERANCE:.2f}; lower is better){verdict(rp, False)}")
        print(f"(p50 {fmt(ratios['director_2b_over_director_p50'], '.3f')}, per core-second of"
              f" proxy CPU {fmt(ratios['director_2b_over_director_rps_per_core'], '.3f')};"
              "\n same ratios within each round, rps/p99: "
              + fmt_rounds(htb_rounds) + ")")
    if d and (h or n):
        print()
        print(f"director / HAProxy rps : {fmt(ratios['director_over_haproxy_rps'], '.3f')}")
        print(f"director / nginx rps   : {fmt(ratios['director_over_nginx_rps'], '.3f')}")
        print(f"director / HAProxy p99 : {fmt(ratios['director_over_haproxy_p99'], '.3f')}")
        print(f"(per core-second of proxy CPU: director / HAProxy "
              f"{fmt(ratios['director_over_haproxy_rps_per_core'], '.3f')}, director / nginx "
              f"{fmt(ratios['director_over_nginx_rps_per_core'], '.3f')})")
    if d and base:
        print()
        print(f"director / director-base rps : {fmt(ratios['director_over_base_rps'], '.3f')}"
              f"   (p99 {fmt(ratios['director_over_base_p99'], '.3f')}, per core-second "
              f"{fmt(ratios['director_over_base_rps_per_core'], '.3f')})")
        print(f"director-base / HAProxy rps  : {fmt(ratios['base_over_haproxy_rps'], '.3f')}"
              f", / nginx {fmt(ratios['base_over_nginx_rps'], '.3f')}")
        print(" per round, director / director-base rps: "
              + ", ".join(f"r{x['round']} {fmt(x['rps'], '.3f')}"
                          for x in ratios["director_over_base_per_round"]))
    if df and nf:
        print()
        print(f"FastCGI (a php-fpm pool per leg, {c.get('fcgi_children', '?')} static workers, hello.php;"
              f" wrk -c{fcgi_conns if fcgi_conns is not None else '?'}):")
        print(f"director-fcgi / nginx-fcgi rps : "
              f"{fmt(ratios['director_fcgi_over_nginx_fcgi_rps'], '.3f')}")
        print(f"(p99 {fmt(ratios['director_fcgi_over_nginx_fcgi_p99'], '.3f')}, lower is better;"
              f" per core-second of proxy CPU "
              f"{fmt(ratios['director_fcgi_over_nginx_fcgi_rps_per_core'], '.3f')};\n"
              " php-fpm's workers are usually the bottleneck here, so read rps together with"
              " req/core-s)")
    if ds and ns:
        size = c.get("sendfile_bytes")
        print()
        print("X-Sendfile (" + (f"{size}-byte file" if size is not None else "one file")
              + "; director x_sendfile vs nginx X-Accel-Redirect, same backend):")
        print(f"director-sendfile / nginx-sendfile bytes/s : "
              f"{fmt(ratios['director_sendfile_over_nginx_sendfile_bytes_per_s'], '.3f')}")
        print(f"(rps {fmt(ratios['director_sendfile_over_nginx_sendfile_rps'], '.3f')};"
              f" per core-second of proxy CPU "
              f"{fmt(ratios['director_sendfile_over_nginx_sendfile_rps_per_core'], '.3f')})")
    if ran["cache"]:
        size = c.get("cache_bytes")
        print()
        print("Cache hits (" + (f"one {size}-byte object" if size is not None else "one object")
              + " with Cache-Control: max-age=3600 from the same backend;\n director's cache vs"
              " nginx proxy_cache vs Varnish):")
        print(f"  {'leg':<16} {'hit check before the load':<44} {'backend req / client req':>24}")
        for name in CACHE:
            r = results.get(name)
            if r is None:
                continue
            hc = r.get("hit_check") or {}
            check = ("-" if not hc else
                     f"{hc.get('verdict')} (backend saw {hc.get('backend_requests')}), "
                     + (hc.get("header") or "no hit header"))
            print(f"  {name:<16} {check:<44} {fmt(r.get('backend_share'), '.4f'):>24}")
        if dc and (nc or vc):
            served = ratios["director_cache_served_hits"]
            rn = ratios["director_cache_over_nginx_cache_rps"]
            print(f"director-cache / nginx-cache rps   : {fmt(rn, '.3f')}"
                  f"   (target >= {CACHE_TARGET:.2f})"
                  + ("" if rn is None else "  ok" if rn >= CACHE_TARGET else "  BELOW target"))
            print(f"director-cache / varnish-cache rps : "
                  f"{fmt(ratios['director_cache_over_varnish_cache_rps'], '.3f')}")
            print(f"(p99, lower is better: / nginx-cache "
                  f"{fmt(ratios['director_cache_over_nginx_cache_p99'], '.3f')}, / varnish-cache "
                  f"{fmt(ratios['director_cache_over_varnish_cache_p99'], '.3f')};"
                  f"\n per core-second of proxy CPU: / nginx-cache "
                  f"{fmt(ratios['director_cache_over_nginx_cache_rps_per_core'], '.3f')},"
                  f" / varnish-cache "
                  f"{fmt(ratios['director_cache_over_varnish_cache_rps_per_core'], '.3f')};"
                  "\n same rps/p99 ratios within each round: / nginx-cache "
                  + (fmt_rounds(per_round_cache_n) or "-") + "; / varnish-cache "
                  + (fmt_rounds(per_round_cache_v) or "-") + ")")
            if not served:
                print("NOTE: director-cache served no cache hits (its backend saw its requests):"
                      " these ratios compare\n director's PASS-THROUGH with the others' cache hits.")
        if vc:
            print("(varnish-cache: one thread pool (-p thread_pools=1), but its threads can use"
                  " more than one core;\n compare req/core-s as well)")
    if dmc or dmo:
        print()
        print("Cache miss path (one URL the backend answers with Cache-Control: no-store;\n"
              " director with its cache on vs off, same backend):")
    if dmc and dmo:
        rr = ratios["director_misscache_over_director_missoff_rps"]
        rp = ratios["director_misscache_over_director_missoff_p99"]
        print(f"director-misscache / director-missoff rps : {fmt(rr, '.3f')}"
              f"   (target >= {1 - MISS_TOLERANCE:.2f})"
              + ("" if rr is None else "  ok" if rr >= 1 - MISS_TOLERANCE
                 else "  OUTSIDE the 3% budget"))
        print(f"director-misscache / director-missoff p99 : {fmt(rp, '.3f')}"
              f"   (target <= {1 + MISS_TOLERANCE:.2f}; lower is better)"
              + ("" if rp is None else "  ok" if rp <= 1 + MISS_TOLERANCE
                 else "  OUTSIDE the 3% budget"))
        print(f"(p50 {fmt(ratios['director_misscache_over_director_missoff_p50'], '.3f')},"
              f" per core-second of proxy CPU "
              f"{fmt(ratios['director_misscache_over_director_missoff_rps_per_core'], '.3f')};"
              "\n same ratios within each round, rps/p99: " + (fmt_rounds(per_round_miss) or "-")
              + ")")
    if dw and (hw or nw):
        print()
        print(f"Two workers each (wrk -t{c.get('w2_wrk_threads', '?')}"
              f" -c{c.get('w2_connections', '?')}; wrk, the backend and the proxy share the"
              f" machine's {c.get('nproc', '?')} cores):")
        print(f"director-w2 / haproxy-w2 rps : {fmt(ratios['director_w2_over_haproxy_w2_rps'], '.3f')}")
        print(f"director-w2 / nginx-w2 rps   : {fmt(ratios['director_w2_over_nginx_w2_rps'], '.3f')}")
        print(f"director-w2 / haproxy-w2 p99 : {fmt(ratios['director_w2_over_haproxy_w2_p99'], '.3f')}"
              "   (lower is better)")
        print(f"(per core-second of proxy CPU: director-w2 / haproxy-w2 "
              f"{fmt(ratios['director_w2_over_haproxy_w2_rps_per_core'], '.3f')}, director-w2 /"
              f" nginx-w2 {fmt(ratios['director_w2_over_nginx_w2_rps_per_core'], '.3f')};"
              "\n same rps/p99 ratios within each round: / haproxy-w2 "
              + (fmt_rounds(per_round_w2_h) or "-") + "; / nginx-w2 "
              + (fmt_rounds(per_round_w2_n) or "-") + ")")
        print(f"(two workers / one, rps: director {fmt(ratios['director_w2_over_director_rps'], '.3f')},"
              f" HAProxy {fmt(ratios['haproxy_w2_over_haproxy_rps'], '.3f')},"
              f" nginx {fmt(ratios['nginx_w2_over_nginx_rps'], '.3f')}; '-' where a leg did not run)")
    for name, r in results.items():
        if name.endswith(("-fcgi", "-sendfile")):
            # php-fpm's workers, or moving a MiB per request through loopback to wrk, rather
            # than the proxy's request handling, are expected to be the bottleneck there
            starved = []
        else:
            starved = [run["round"] for run in r["runs"]
                       if run.get("proxy_cpu_pct") is not None and run["proxy_cpu_pct"] < 80]
        if starved:
            print(f"WARNING: {name} used < 80% of a core in round(s) {starved}: the proxy "
                  "was not the bottleneck there (other load on the machine?); "
                  "consider more ROUNDS on a quiet machine", file=sys.stderr)
        stolen = [(run["round"], run["steal_pct"]) for run in r["runs"]
                  if (run.get("steal_pct") or 0) >= STEAL_WARN_PCT]
        if stolen:
            rounds = ", ".join(f"r{n} {pct:.0f}%" for n, pct in stolen)
            print(f"WARNING: {name}: the hypervisor took CPU from this VM during the run "
                  f"(steal time {rounds} of the machine's CPU): its numbers are not "
                  "comparable; run again when steal is near 0", file=sys.stderr)
        if r["errors"]:
            print(f"WARNING: {name} had {r['errors']} socket errors / non-2xx responses",
                  file=sys.stderr)
        if name in CACHE:
            missed = [run["round"] for run in r["runs"]
                      if run.get("backend_share") is not None
                      and run["backend_share"] > HIT_BACKEND_SHARE]
            if missed:
                print(f"WARNING: {name}'s backend saw more than {HIT_BACKEND_SHARE:.0%} of its"
                      f" requests in round(s) {missed}: it did not serve them from its cache"
                      + (" (director's cache is not serving hits yet? the leg measured"
                         " pass-through)" if name == "director-cache" else ""), file=sys.stderr)

    if idle:
        def mib(k):
            return "n/a" if k is None else f"{k / 1024:.1f}"
        print()
        print(f"Idle connections ({idle.get('label')}): {idle['ok']}/{idle['attempted']} "
              f"opened, {idle['still_open_after_hold']} still open after {idle['hold_s']:g}s")
        if "rss_held_kib" in idle:
            print(f"  RSS MiB: before {mib(idle['rss_before_kib'])}, "
                  f"holding {mib(idle['rss_held_kib'])}, "
                  f"peak VmHWM {mib(idle['peak_rss_kib'])}, "
                  f"after close {mib(idle['rss_after_close_kib'])}"
                  + (f"  (~{idle['per_conn_kib']:.1f} KiB/conn)"
                     if idle.get("per_conn_kib") is not None else ""))

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        doc = {"config": config, "results": results, "ratios": ratios, "idle": idle}
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

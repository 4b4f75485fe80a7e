"""The soak test's summary block and its invariants (see bench/README.md, "Soak").

`render` turns what soak.py gathered into the printed block and says whether every
invariant held.
"""

from collections import Counter

from soak_probe import capacity_line, peaks_line

# Backends that nothing but the clients' own behaviour touches: they must never go offline.
STEADY = {("main", "h1"), ("main", "h2"), ("main", "h3"), ("tight", "t1")}
# Groups whose errors must all be explained by an injected fault.
CHECKED_GROUPS = ("normal", "slow-read", "upload-trickle", "upload-stall", "fcgi")
# Faults that explain an error in those groups (a stalled upload's 408 is checked on its own).
EXPLAINING = {"flap"}

# RSS flatness: the end sample may exceed the start sample by 25% plus 8 MiB (see README).
RSS_FACTOR, RSS_SLACK_KIB = 1.25, 8 * 1024
# Share of the normal group's requests that must be answered 2xx (the run really served).
MIN_NORMAL_OK = 0.95


def mib(kib: int) -> float:
    return kib / 1024.0


def _status_totals(by_group: dict) -> Counter:
    total = Counter()
    for c in by_group.values():
        total.update(c)
    return total


def _group_table(by_group: dict) -> list[str]:
    cols = ["2xx", "408", "502", "503", "504", "other", "conn"]
    out = [f"  {'group':<22}{'total':>8}" + "".join(f"{c:>7}" for c in cols)]
    for group in sorted(by_group):
        c = by_group[group]
        row = Counter()
        for outcome, n in c.items():
            if outcome.startswith("conn:"):
                row["conn"] += n
            elif outcome.startswith("2"):
                row["2xx"] += n
            elif outcome in cols:
                row[outcome] += n
            else:
                row["other"] += n
        out.append(f"  {group:<22}{sum(c.values()):>8}" + "".join(f"{row[k]:>7}" for k in cols))
    return out


def _unexplained(tally) -> tuple[int, list[str]]:
    n, where = 0, []
    for group in CHECKED_GROUPS:
        for key, count in tally.causes.get(group, {}).items():
            fault = key.split(" <- ", 1)[1]
            if fault in EXPLAINING or (group == "upload-stall" and key == "408 <- client stalled its body"):
                continue
            n += count
            where.append(f"{group}: {key} x{count}")
    stalled_ok = sum(v for k, v in tally.by_group.get("upload-stall", {}).items() if k.startswith("2"))
    if stalled_ok:
        n += stalled_ok
        where.append(f"upload-stall answered 2xx x{stalled_ok} (a stalled body can't complete)")
    return n, where


def render(r: dict, log_problems: list[str], expected_errors: int, args) -> tuple[list[str], bool]:
    tally, flap, mon = r["tally"], r["flapper"], r["monitor"]
    checks: list[tuple[str, bool, str]] = []
    answered = sum(sum(c.values()) for c in tally.by_group.values())
    aborts = sum(tally.intended_aborts.values())
    totals = _status_totals(tally.by_group)
    status_line = "  ".join(f"{k}: {v}" for k, v in sorted(totals.items()))

    L = ["=" * 30 + " director soak: summary " + "=" * 30]
    L.append(
        f"run          {r['seconds']:.0f} s of traffic (RSS start after {r['warm']:.0f} s warm-up), "
        f"{args.workers} workers, director pid {r['pid']}, FastCGI leg {'on' if r['fcgi'] else 'off'}"
    )
    L.append(
        f"requests     {answered} answered ({r['answered_at_stop'] / r['seconds']:.0f}/s), "
        f"plus {aborts} intended client aborts ({', '.join(f'{k} {v}' for k, v in sorted(tally.intended_aborts.items()))})"
    )
    L.append(f"by outcome   {status_line}")
    L += _group_table(tally.by_group)
    L.append("errors by cause (group: outcome <- fault: count)")
    for group in sorted(tally.causes):
        items = ", ".join(f"{k}: {v}" for k, v in sorted(tally.causes[group].items(), key=lambda kv: -kv[1]))
        L.append(f"  {group}: {items}")
    flap_down = "?"
    for c in r["clusters"]:
        for b in c.get("backends", []):
            if c["name"] == "main" and b["name"] == "flap":
                flap_down = b["times_down"]
    main_stats = next((c["stats"] for c in r["clusters"] if c["name"] == "main"), None)
    L.append(
        f"faults       flap backend killed {sum(flap.kills.values())}x "
        f"({', '.join(f'{k} {v}' for k, v in sorted(flap.kills.items()))}), restart failures "
        f"{flap.restart_failures}, main.flap times_down {flap_down}"
        + (f"; main: retries {main_stats['retries']}, backend failures {main_stats['failures']}" if main_stats else "")
    )

    cpu = r["cpu"]
    L.append(
        "cpu          share of one core while traffic ran: "
        + ", ".join(f"{k} {v / r['seconds']:.0%}" for k, v in cpu.items())
        + f" (2 cores shared; the driver's share includes the flap backend)"
    )
    if r["clusters"]:
        L.append(f"peaks        {peaks_line(r['clusters'])}")
    L.append("-" * 28 + " invariants " + "-" * 28)
    late = (
        f" ({tally.wrong_late} of them a response a faulty backend sent 5 ms late, unasked, on a "
        "connection director had already reused: see README, Soak)"
        if tally.wrong_late
        else ""
    )
    checks.append(("wrong client", tally.wrong == 0, f"{tally.wrong} responses carried another request's token{late}"))
    checks.append(("corrupt", tally.corrupt == 0, f"{tally.corrupt} complete 2xx answers with a wrong body/echo"))
    n_unexpl, where = _unexplained(tally)
    checks.append(
        ("unexplained errors", n_unexpl == 0, f"{n_unexpl} in {'/'.join(CHECKED_GROUPS)} not caused by a fault")
    )
    normal = tally.by_group.get("normal", Counter())
    n_ok = sum(v for k, v in normal.items() if k.startswith("2"))
    share = n_ok / max(1, sum(normal.values()))
    checks.append(("served", share >= MIN_NORMAL_OK, f"normal group {share:.2%} 2xx (>= {MIN_NORMAL_OK:.0%})"))

    downs = {}
    for c in r["clusters"]:
        for b in c.get("backends", []):
            if (c["name"], b["name"]) in STEADY:
                downs[f"{c['name']}.{b['name']}"] = b["times_down"]
    steady_ok = bool(downs) and not any(downs.values()) and not mon.offline_seen
    checks.append(
        (
            "steady backends",
            steady_ok,
            "times_down " + " ".join(f"{k}={v}" for k, v in sorted(downs.items()))
            + f"; seen offline in polls: {dict(mon.offline_seen) or 0}",
        )
    )

    start, mid, end, settled, peak = r["rss"]
    limit = start * RSS_FACTOR + RSS_SLACK_KIB
    checks.append(
        (
            "RSS flat",
            0 < end <= limit,
            f"MiB start {mib(start):.1f} mid {mib(mid):.1f} end {mib(end):.1f} "
            f"(peak {mib(peak):.1f}, after settle {mib(settled):.1f}); end <= start*1.25+8 = {mib(limit):.1f}",
        )
    )
    checks.append(
        (
            "capacity settled",
            not r["problems"],
            (capacity_line(r["clusters"]) if not r["problems"] else "; ".join(r["problems"][:8]))
            + f" ({r['settle_secs']:.1f} s after traffic stopped, {r['wind_down']:.1f} s of it"
            " for the last exchanges to end)",
        )
    )
    s, s0 = r["socks"], r["socks_start"]
    checks.append(
        (
            "sockets settled",
            s.get("to_backends", 1) == 0 and s.get("close_wait", 1) == 0 and s.get("clients", 1) == 0,
            f"to backends {s.get('to_backends')}, client conns {s.get('clients')}, CLOSE_WAIT "
            f"{s.get('close_wait')}; fds {s.get('fds')} (after warm-up {s0.get('fds')}, "
            f"{s0.get('to_backends')} to backends)",
        )
    )
    alive_ok = mon.died_at is None and end > 0 and settled > 0
    checks.append(
        (
            "director healthy",
            alive_ok and not log_problems,
            ("alive" if alive_ok else "DIED")
            + f", {len(log_problems)} panics or unexpected ERROR lines in its log ({expected_errors} "
            "expected: a backend's body failed mid-stream)",
        )
    )

    ok = True
    for name, passed, detail in checks:
        ok &= passed
        L.append(f"{name:<19}{'PASS' if passed else 'FAIL'}  {detail}")
    for line in where[:10]:
        L.append(f"  unexplained: {line}")
    for line in tally.examples:
        L.append(f"  example: {line}")
    for line in log_problems[:5]:
        L.append(f"  director log: {line[:200]}")
    L.append(f"RESULT: {'PASS' if ok else 'FAIL'}")
    return L, ok


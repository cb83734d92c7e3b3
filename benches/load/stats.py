#!/usr/bin/env python3
"""Summarise results.tsv (metric, config, round, value) written by load.sh:
per-config medians with their spread, and the ratios Gatekeeper / nginx and
Gatekeeper / direct (median of the per-round ratios, so machine drift that
hits a whole round cancels), checked against issue 6's targets."""
import statistics
import sys
from collections import defaultdict

NAMES = {"a": "direct", "b": "nginx+geoip2", "c": "gatekeeper"}
# metric -> (label, unit, higher_is_better)
METRICS = [
    ("rps", "4 KiB GET closed loop, req/s", "req/s", True),
    ("p50_us", "4 KiB GET closed loop, p50", "µs", False),
    ("p99_us", "4 KiB GET closed loop, p99", "µs", False),
    ("cpu_us_per_req", "server CPU time per 4 KiB GET", "µs", False),
    ("server_cpu_pct", "server process CPU use during closed loop", "% of a core", False),
    ("proxy_core_busy_pct", "proxy core busy, all processes (closed loop)", "%", False),
    ("loadgen_core_busy_pct", "load generator + backend core busy (closed loop)", "%", False),
    ("errors", "socket errors + non-2xx in closed loop", "", False),
    ("oha_sat_rps", "saturation rate seen by oha (open-loop base)", "req/s", True),
    ("ol25_rps", "open loop @25%: achieved rate", "req/s", True),
    ("ol25_p50_us", "open loop @25% of nginx sat., p50", "µs", False),
    ("ol25_p99_us", "open loop @25% of nginx sat., p99", "µs", False),
    ("ol25_behind", "open loop @25%: runs below 97% of the rate", "", False),
    ("ol50_rps", "open loop @50%: achieved rate", "req/s", True),
    ("ol50_p50_us", "open loop @50% of nginx sat., p50", "µs", False),
    ("ol50_p99_us", "open loop @50% of nginx sat., p99", "µs", False),
    ("ol50_behind", "open loop @50%: runs below 97% of the rate", "", False),
    ("ol80_rps", "open loop @80%: achieved rate", "req/s", True),
    ("ol80_p50_us", "open loop @80% of nginx sat., p50", "µs", False),
    ("ol80_p99_us", "open loop @80% of nginx sat., p99", "µs", False),
    ("ol80_behind", "open loop @80%: runs below 97% of the rate", "", False),
    ("big_mibps", "1 GiB GET throughput", "MiB/s", True),
    ("big_hwm_growth_kib", "peak RSS growth during 1 GiB GET", "KiB", False),
    ("idle_kib_per_conn", "memory per idle keep-alive conn", "KiB", False),
    ("idle_alive", "idle conns still open at the end", "", True),
    ("idle_tls_kib_per_conn", "memory per idle TLS keep-alive conn", "KiB", False),
    ("idle_tls_alive", "idle TLS conns still open at the end", "", True),
]
# (metric, numerator, denominator, op, bound, label)
TARGETS = [
    ("rps", "c", "b", ">=", 1.0, "4 KiB req/s, gate/nginx ≥ 1.0 (aim 1.3)"),
    ("ol25_p99_us", "c", "b", "<=", 1.0, "p99 @25% load (extra), gate/nginx ≤ 1.0"),
    ("ol50_p99_us", "c", "b", "<=", 1.0, "p99 @50% load, gate/nginx ≤ 1.0"),
    ("ol80_p99_us", "c", "b", "<=", 1.0, "p99 @80% load, gate/nginx ≤ 1.0"),
    ("big_mibps", "c", "b", ">=", 1.0, "1 GiB throughput, gate/nginx ≥ 1.0"),
    ("big_mibps", "c", "a", ">=", 0.6, "1 GiB throughput, gate/direct ≥ 0.6"),
]
ABS_TARGETS = [
    ("big_hwm_growth_kib", "<=", 64 * 1024, "gate peak RSS growth, 1 GiB ≤ 64 MiB (65536 KiB)"),
    ("idle_kib_per_conn", "<=", 32, "gate memory per idle conn (plain) ≤ 32 KiB"),
    ("idle_tls_kib_per_conn", "<=", 64, "gate memory per idle conn (TLS) ≤ 64 KiB"),
]


def fmt(v):
    if v is None:
        return "–"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def main(path):
    data = defaultdict(dict)  # (metric, cfg) -> {round: value}
    for line in open(path):
        parts = line.split()
        if len(parts) != 4:
            continue
        m, c, r, v = parts
        try:
            data[(m, c)][int(r)] = float(v)
        except ValueError:
            pass

    def med(m, c):
        vals = list(data.get((m, c), {}).values())
        if not vals:
            return None, None, None, 0
        return statistics.median(vals), min(vals), max(vals), len(vals)

    def ratio(m, num, den):
        a, b = data.get((m, num), {}), data.get((m, den), {})
        rs = [a[r] / b[r] for r in sorted(set(a) & set(b)) if b[r]]
        if not rs:
            return None, None, None
        return statistics.median(rs), min(rs), max(rs)

    print("| measure | direct (a) | nginx+geoip2 (b) | gatekeeper (c) | gate/nginx | gate/direct |")
    print("|---|---|---|---|---|---|")
    for m, label, unit, _ in METRICS:
        if not any((m, c) in data for c in "abc"):
            continue
        cells = []
        for c in "abc":
            md, lo, hi, n = med(m, c)
            cells.append("–" if md is None else f"{fmt(md)} [{fmt(lo)}–{fmt(hi)}]")
        rb = ratio(m, "c", "b")
        ra = ratio(m, "c", "a")
        rcell = lambda r: "–" if r[0] is None else f"{r[0]:.2f} [{r[1]:.2f}–{r[2]:.2f}]"
        print(f"| {label}{' (' + unit + ')' if unit else ''} | {' | '.join(cells)} | {rcell(rb)} | {rcell(ra)} |")
    n = max((len(v) for v in data.values()), default=0)
    print(f"\nmedian [min–max] over up to {n} interleaved rounds; ratios are medians of per-round ratios.\n")
    print("| target (issue 6) | measured | verdict |")
    print("|---|---|---|")
    for m, num, den, op, bound, label in TARGETS:
        r = ratio(m, num, den)
        if r[0] is None:
            continue
        ok = r[0] >= bound if op == ">=" else r[0] <= bound
        print(f"| {label} | {r[0]:.2f} [{r[1]:.2f}–{r[2]:.2f}] | {'met' if ok else 'NOT met'} |")
    for m, op, bound, label in ABS_TARGETS:
        md, lo, hi, _ = med(m, "c")
        if md is None:
            continue
        ok = md <= bound
        print(f"| {label} | {fmt(md)} [{fmt(lo)}–{fmt(hi)}] | {'met' if ok else 'NOT met'} |")


if __name__ == "__main__":
    main(sys.argv[1])

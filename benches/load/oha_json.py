#!/usr/bin/env python3
"""Read oha's --output-format json: print p50 and p99 in microseconds, the
achieved request rate and the share of 2xx answers."""
import json
import sys

d = json.load(open(sys.argv[1]))
p = d.get("latencyPercentiles") or {}
us = lambda v: "nan" if v is None else f"{v * 1e6:.0f}"
codes = d.get("statusCodeDistribution") or {}
total = sum(codes.values())
ok = sum(v for k, v in codes.items() if str(k).startswith("2"))
print(us(p.get("p50")), us(p.get("p99")), f"{d['summary'].get('requestsPerSec', 0):.1f}",
      f"{ok / total if total else 0:.4f}")

#!/usr/bin/env bash
# What segment rotation costs the requests: load.sh's closed loop (4 KiB
# GETs, wrk -c64, the gate on core 1 with one worker) with 4 MiB audit
# segments, so that a segment is closed and sealed every ~0.1 s instead of
# every ~1.3 s at 40k requests/s; with DD=1, while dd writes 1.5 GB to the audit log's disk,
# as a backup or a log shipper would.
#   OUT=/tmp/gk-load.XXXX bash benches/load/seals.sh BIN...   # OUT from a load.sh run with KEEP=1
# Runs the binaries alternately, ROUNDS (3) times, and prints for each run
# requests/s, p99 and the slowest request, and how many seals were written.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=${OUT:?set OUT to a load.sh work dir (run it with KEEP=1)}
PORT_BASE=${PORT_BASE:-18080}
ROUNDS=${ROUNDS:-3}
DD=${DD:-0}
(($#)) || set -- "$ROOT/target/release/gatekeeper"
URL="http://127.0.0.1:$((PORT_BASE + 3))/bench/small.bin"
sed 's/^\[audit\]$/[audit]\nsegment_bytes = 4194304/' "$OUT/gatekeeper.toml" >"$OUT/gatekeeper-seals.toml"
grep -q '^segment_bytes = 4194304$' "$OUT/gatekeeper-seals.toml"
AUDIT=$(sed -n 's/^dir = "\(.*\)"$/\1/p' "$OUT/gatekeeper-seals.toml" | head -1)
[[ -d $AUDIT ]] || { echo "no audit dir in $OUT/gatekeeper-seals.toml" >&2; exit 1; }
taskset -c 0 nginx -p "$OUT" -e "$OUT/backend.error.log" -c "$OUT/backend.conf" &
BACK=$!
GATE=
DDPID=
trap 'kill $GATE $BACK $DDPID 2>/dev/null; wait 2>/dev/null; rm -f "$AUDIT/../seals-dd.bin"' EXIT
for round in $(seq 1 "$ROUNDS"); do
    for bin in "$@"; do
        rm -rf "${AUDIT:?}"/*
        sync
        TOKIO_WORKER_THREADS=1 taskset -c 1 "$bin" serve -c "$OUT/gatekeeper-seals.toml" \
            >>"$OUT/gatekeeper.log" 2>&1 &
        GATE=$!
        for _ in $(seq 1 60); do
            curl -fsS -o /dev/null "$URL" 2>/dev/null && break
            sleep 0.5
        done
        taskset -c 0 wrk -t1 -c64 -d2s "$URL" >/dev/null
        if ((DD)); then
            (taskset -c 0 dd if=/dev/zero of="$AUDIT/../seals-dd.bin" bs=1M count=1500 2>/dev/null; sync) &
            DDPID=$!
        fi
        out=$(taskset -c 0 wrk -t1 -c64 -d10s --latency "$URL")
        if ((DD)); then
            wait "$DDPID"
            DDPID=
            rm -f "$AUDIT/../seals-dd.bin"
        fi
        seals=$(find "$AUDIT" -name '*.seal.json' | wc -l)
        kill "$GATE"
        wait "$GATE" 2>/dev/null || true
        GATE=
        echo "round $round $(basename "$bin"): $(echo "$out" | awk '/Requests\/sec/ { r = $2 } /^ +Latency +[0-9]/ { m = $4 } / 99%/ { p = $2 } END { print "req/s", r, "p99", p, "max", m }') seals $seals"
    done
done

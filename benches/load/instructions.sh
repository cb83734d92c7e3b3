#!/usr/bin/env bash
# Instructions per 4 KiB GET, counted by callgrind: the one measure of the
# gate's own work that the machine's drift does not move, for comparing
# two builds on a shared 2-core VM where wall-clock A/B runs differ by
# 10-20 % from one run to the next. Same backend, config and request as
# load.sh's closed loop.
#   OUT=/tmp/gk-load.XXXX bash benches/load/instructions.sh BIN...   # OUT from a load.sh run with KEEP=1
# For each binary: starts it under valgrind with instrumentation off,
# warms it, counts user-space instructions (all threads) over SECS seconds
# of wrk -c$CONNS (16), and prints instructions per request. How many
# records share an audit write depends on timing, so at 16 connections on
# a busy machine the count moves by up to 15 % between runs of one build;
# CONNS=1 repeats to 0.1 % (each request then writes alone).
# Caveats: valgrind hides SHA-NI, so sha2 takes its portable path, about
# 70k of the count per request where the real build spends a few thousand
# cycles; the count says nothing of cache misses or of kernel time.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=${OUT:?set OUT to a load.sh work dir (run it with KEEP=1)}
PORT_BASE=${PORT_BASE:-18080}
SECS=${SECS:-8}
CONNS=${CONNS:-16}
(($#)) || set -- "$ROOT/target/release/gatekeeper"
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
URL="http://127.0.0.1:$((PORT_BASE + 3))/bench/small.bin"
taskset -c 0 nginx -p "$OUT" -e "$OUT/backend.error.log" -c "$OUT/backend.conf" &
BACK=$!
GATE=
trap 'kill $GATE $BACK 2>/dev/null; wait 2>/dev/null' EXIT
for bin in "$@"; do
    counts=$(mktemp -d /tmp/gk-callgrind.XXXXXX)
    rm -rf "$OUT"/audit/*
    TOKIO_WORKER_THREADS=1 valgrind --tool=callgrind --instr-atstart=no \
        --callgrind-out-file="$counts/out" "$bin" serve -c "$OUT/gatekeeper.toml" \
        >>"$OUT/gatekeeper.log" 2>&1 &
    GATE=$!
    for _ in $(seq 1 120); do
        curl -fsS -o /dev/null "$URL" 2>/dev/null && break
        sleep 0.5
    done
    taskset -c 0 wrk -t1 -c"$CONNS" -d3s "$URL" >/dev/null
    callgrind_control -i on "$GATE" >/dev/null 2>&1
    requests=$(taskset -c 0 wrk -t1 -c"$CONNS" -d"${SECS}s" "$URL" | awk '/requests in/ { print $1 }')
    callgrind_control -i off "$GATE" >/dev/null 2>&1
    callgrind_control -d "$GATE" >/dev/null 2>&1
    kill "$GATE"
    wait "$GATE" 2>/dev/null || true
    GATE=
    instructions=$(cat "$counts"/out* | awk '/^totals:/ { s += $2 } END { print s + 0 }')
    echo "$bin: $requests requests, $((instructions / requests)) instructions per request (callgrind data: $counts)"
done

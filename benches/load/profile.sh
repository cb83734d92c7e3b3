#!/usr/bin/env bash
# Profile Gatekeeper under the 4 KiB closed-loop load of load.sh (same
# backend, config, pinning): perf record with the cpu-clock software event
# (hardware counters are not available on this VM) and DWARF call graphs.
#   OUT=/tmp/gk-load.XXXX bash benches/load/profile.sh   # OUT from a load.sh run with KEEP=1
# Prints the top self-time symbols and writes $OUT/perf.data.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=${OUT:?set OUT to a load.sh work dir (run it with KEEP=1)}
GK_BIN=${GK_BIN:-$ROOT/target/release/gatekeeper}
PORT_BASE=${PORT_BASE:-18080}
SECS=${SECS:-10}
if [[ -z "${_GK_PROF_INNER:-}" && -w /proc/self/autogroup ]]; then
    export _GK_PROF_INNER=1
    exec setsid -w bash "${BASH_SOURCE[0]}" "$@"
fi
echo -20 >/proc/self/autogroup 2>/dev/null || true
taskset -c 0 nginx -p "$OUT" -e "$OUT/backend.error.log" -c "$OUT/backend.conf" &
BACK=$!
TOKIO_WORKER_THREADS=1 taskset -c 1 "$GK_BIN" serve -c "$OUT/gatekeeper.toml" >>"$OUT/gatekeeper.log" 2>&1 &
GATE=$!
trap 'kill $GATE $BACK 2>/dev/null; wait 2>/dev/null' EXIT
sleep 1
URL="http://127.0.0.1:$((PORT_BASE + 3))/bench/small.bin"
taskset -c 0 wrk -t1 -c64 -d$((SECS + 4))s "$URL" >"$OUT/profile-wrk.txt" &
WRK=$!
sleep 2
perf record -e cpu-clock -F 1999 --call-graph dwarf,16384 -p "$GATE" -o "$OUT/perf.data" -- sleep "$SECS" 2>/dev/null
wait $WRK
grep -E 'Requests/sec' "$OUT/profile-wrk.txt"
perf report -i "$OUT/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null | grep -v '^#' | grep '%' | head -40

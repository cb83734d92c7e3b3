#!/usr/bin/env bash
# Side-by-side load harness (issue 6, item 2): one static nginx backend with
# a path-style S3 layout (/bucket/key), measured
#   (a) directly,
#   (b) behind nginx + ngx_http_geoip2_module + a country map deny +
#       proxy_pass with upstream keepalive and a (buffered) access log,
#   (c) behind Gatekeeper, policy and audit on (fsync = "batch"),
# with the same load generators, in interleaved rounds (a,b,c,a,b,c,...).
#
#   bash benches/load.sh                 # full run (~9 min on 2 cores)
#   QUICK=1 bash benches/load.sh         # smoke check (~1 min)
#   ROUNDS=7 DURATION=15 bash benches/load.sh
#
# Environment (defaults in brackets):
#   ROUNDS [5]  DURATION [10] s per closed-loop run  OL_DURATION [6] s per
#   open-loop run  OL_PCTS ["25 50 80"] open-loop rates, % of nginx (b)'s
#   saturation rate as oha measures it  CONNS [64]  BIG_MIB [1024]  IDLE_CONNS [1000]
#   LOADGEN_CPU [0] (load generator + backend)  PROXY_CPU [1] (proxy under test)
#   PORT_BASE [18080]  GK_BIN [target/release/gatekeeper]  SKIP_BUILD [0]
#   OUT [mktemp -d /tmp/gk-load.XXXXXX]  KEEP [0] keep OUT (1 GiB file!)
#   PHASES ["closed open big idle idle_tls"]  NGINX_BUFFERING [off]
#   NGINX_BUFFER_SIZE [64k] (nginx's proxy_buffer_size; its default is 4k|8k)
#   NICE [-20] nice level of the harness's own session (autogroup) and of
#   its processes, so that other work on the machine (builds) disturbs the
#   measurements less; NICE=0 leaves priorities alone
#
# Tools: nginx, libnginx-mod-http-geoip2, wrk, curl (apt-get if missing) and
# oha (cargo install oha --locked) for the open-loop fixed-rate runs.
# Everything listens on 127.0.0.1 only. Results: $OUT/results.tsv and a
# markdown summary printed at the end (also $OUT/summary.md).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HERE=$ROOT/benches/load

if [[ "${QUICK:-0}" == 1 ]]; then
    ROUNDS=${ROUNDS:-1}
    DURATION=${DURATION:-3}
    OL_DURATION=${OL_DURATION:-3}
    BIG_MIB=${BIG_MIB:-256}
    IDLE_CONNS=${IDLE_CONNS:-200}
fi
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}
OL_DURATION=${OL_DURATION:-6}
OL_PCTS=${OL_PCTS:-25 50 80}
CONNS=${CONNS:-64}
BIG_MIB=${BIG_MIB:-1024}
IDLE_CONNS=${IDLE_CONNS:-1000}
LOADGEN_CPU=${LOADGEN_CPU:-0}
PROXY_CPU=${PROXY_CPU:-1}
PORT_BASE=${PORT_BASE:-18080}
GK_BIN=${GK_BIN:-$ROOT/target/release/gatekeeper}
GEOIP=${GEOIP:-$ROOT/geoip/GeoLite2-City-Test.mmdb}
PHASES=${PHASES:-closed open big idle idle_tls}
NGINX_BUFFERING=${NGINX_BUFFERING:-off}
NGINX_BUFFER_SIZE=${NGINX_BUFFER_SIZE:-64k}
NICE=${NICE:--20}
CONFIGS=(a b c)

BACKEND_PORT=$((PORT_BASE + 1))
NGINX_PORT=$((PORT_BASE + 2))
GATE_PORT=$((PORT_BASE + 3))
GATE_ADMIN_PORT=$((PORT_BASE + 13))
NGINX_TLS_PORT=$((PORT_BASE + 22))
GATE_TLS_PORT=$((PORT_BASE + 23))

# Other sessions' processes (say, a concurrent cargo build) compete for the
# same two cores. With autogroup scheduling a per-process nice does not count
# across sessions, so the harness runs in a session of its own and raises
# that session's autogroup priority (NICE) for the duration of the run.
if [[ -z "${_GK_LOAD_INNER:-}" && "$NICE" != 0 && -w /proc/self/autogroup ]]; then
    export _GK_LOAD_INNER=1
    setsid bash "${BASH_SOURCE[0]}" "$@" &
    inner=$!
    trap 'kill -TERM -- -"$inner" 2>/dev/null' INT TERM
    wait "$inner"
    exit $?
fi
if [[ -n "${_GK_LOAD_INNER:-}" ]]; then
    echo "$NICE" >/proc/self/autogroup 2>/dev/null || true
fi
trap 'exit 130' INT TERM

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- tools ---
need_apt=()
command -v nginx >/dev/null || need_apt+=(nginx)
[[ -f /usr/lib/nginx/modules/ngx_http_geoip2_module.so ]] || need_apt+=(libnginx-mod-http-geoip2)
command -v wrk >/dev/null || need_apt+=(wrk)
command -v curl >/dev/null || need_apt+=(curl)
command -v taskset >/dev/null || need_apt+=(util-linux)
if ((${#need_apt[@]})); then
    log "installing ${need_apt[*]} with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
OHA=${OHA:-$(command -v oha || echo "$HOME/.cargo/bin/oha")}
if [[ ! -x "$OHA" && " $PHASES " == *" open "* ]]; then
    log "installing oha (cargo install oha --locked) for the open-loop runs"
    cargo install oha --locked >&2 || log "oha did not install: open-loop phase skipped"
fi
[[ -x "$OHA" ]] || PHASES=${PHASES/open/}

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    log "cargo build --release --bin gatekeeper"
    if ! (cd "$ROOT" && cargo build --release --bin gatekeeper >&2); then
        [[ -x "$GK_BIN" ]] || die "build failed and no $GK_BIN"
        log "warning: build failed; measuring the existing $GK_BIN"
    fi
fi
[[ -x "$GK_BIN" ]] || die "no gatekeeper binary at $GK_BIN"
(($(nproc) > PROXY_CPU && $(nproc) > LOADGEN_CPU)) || die "need CPUs $LOADGEN_CPU and $PROXY_CPU"

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ---------------------------------------------------------------- setup ---
OUT=${OUT:-$(mktemp -d /tmp/gk-load.XXXXXX)}
# nginx workers drop root: they must be able to reach the files served.
chmod 755 "$OUT"
mkdir -p "$OUT"/{www/bench,tmp,audit,rules}
RESULTS=$OUT/results.tsv
: >"$RESULTS"
cp "$HERE"/rules/*.toml "$OUT/rules/"
head -c 4096 /dev/urandom >"$OUT/www/bench/small.bin"
if [[ ! -s "$OUT/www/bench/big.bin" || $(stat -c %s "$OUT/www/bench/big.bin") != $((BIG_MIB << 20)) ]]; then
    log "writing a ${BIG_MIB} MiB object"
    head -c $((BIG_MIB << 20)) /dev/urandom >"$OUT/www/bench/big.bin"
fi
cat "$OUT/www/bench/big.bin" >/dev/null # into the page cache

render() { # template -> file
    sed -e "s|@WORK@|$OUT|g" -e "s|@BACKEND_PORT@|$BACKEND_PORT|g" \
        -e "s|@NGINX_PORT@|$NGINX_PORT|g" -e "s|@GATE_PORT@|$GATE_PORT|g" \
        -e "s|@GATE_ADMIN_PORT@|$GATE_ADMIN_PORT|g" -e "s|@GEOIP@|$GEOIP|g" \
        -e "s|@NGINX_TLS_PORT@|$NGINX_TLS_PORT|g" -e "s|@GATE_TLS_PORT@|$GATE_TLS_PORT|g" \
        -e "s|@RULES@|$OUT/rules|g" -e "s|@NGINX_BUFFERING@|$NGINX_BUFFERING|g" \
        -e "s|@NGINX_BUFFER_SIZE@|$NGINX_BUFFER_SIZE|g" "$1" >"$2"
}
# A development CA and server certificate for the TLS listeners (nginx's and
# the gate's): the idle TLS connections verify against it.
"$GK_BIN" certs dev --out "$OUT/certs" --name 127.0.0.1 --force >/dev/null
chmod 644 "$OUT"/certs/*
render "$HERE/backend.conf.in" "$OUT/backend.conf"
render "$HERE/nginx-geoip2.conf.in" "$OUT/nginx.conf"
render "$HERE/gatekeeper.toml.in" "$OUT/gatekeeper.toml"
"$GK_BIN" check -c "$OUT/gatekeeper.toml" >&2 || die "gatekeeper check failed"

declare -A PID # server name -> pid (the process started here)
cleanup() {
    for name in "${!PID[@]}"; do
        kill "${PID[$name]}" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    if [[ "${KEEP:-0}" != 1 ]]; then rm -f "$OUT/www/bench/big.bin"; fi
}
trap cleanup EXIT

on_lg() { nice -n "$NICE" taskset -c "$LOADGEN_CPU" "$@"; } # load generator + backend core
on_px() { nice -n "$NICE" taskset -c "$PROXY_CPU" "$@"; }   # proxy core

wait_http() { # url
    for _ in $(seq 1 100); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    die "nothing answers at $1"
}

start_server() { # a|b|c
    case $1 in
    a)
        nice -n "$NICE" taskset -c "$LOADGEN_CPU" nginx -p "$OUT" -e "$OUT/backend.error.log" -c "$OUT/backend.conf" &
        PID[a]=$!
        wait_http "http://127.0.0.1:$BACKEND_PORT/bench/small.bin"
        ;;
    b)
        nice -n "$NICE" taskset -c "$PROXY_CPU" nginx -p "$OUT" -e "$OUT/nginx.error.log" -c "$OUT/nginx.conf" &
        PID[b]=$!
        wait_http "http://127.0.0.1:$NGINX_PORT/bench/small.bin"
        ;;
    c)
        # One tokio worker thread, as nginx has one worker process; the
        # whole process (blocking pool and audit writer included) on PROXY_CPU.
        TOKIO_WORKER_THREADS=1 RUST_LOG=${GK_LOG:-gatekeeper=info} nice -n "$NICE" taskset -c "$PROXY_CPU" \
            "$GK_BIN" serve -c "$OUT/gatekeeper.toml" >>"$OUT/gatekeeper.log" 2>&1 &
        PID[c]=$!
        wait_http "http://127.0.0.1:$GATE_PORT/bench/small.bin"
        ;;
    esac
}

stop_server() { # a|b|c
    local p=${PID[$1]:-}
    [[ -n "$p" ]] || return 0
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    unset "PID[$1]"
}

port_of() {
    case $1 in a) echo "$BACKEND_PORT" ;; b) echo "$NGINX_PORT" ;; c) echo "$GATE_PORT" ;; esac
}

tls_port_of() { # b|c: the backend (a) has no TLS listener
    case $1 in b) echo "$NGINX_TLS_PORT" ;; c) echo "$GATE_TLS_PORT" ;; esac
}

# The process that does the work: nginx's (single) worker, or the gate.
work_pid() {
    case $1 in
    a | b) pgrep -P "${PID[$1]}" | head -n1 ;;
    c) echo "${PID[c]}" ;;
    esac
}

status_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; } # utime + stime of the main thread group
proc_ticks() { # all threads of a process
    local t=0 f
    for f in /proc/"$1"/task/*/stat; do
        t=$((t + $(awk '{ print $14 + $15 }' "$f")))
    done
    echo "$t"
}
core_busy() { awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 }' /proc/stat; }
CLK_TCK=$(getconf CLK_TCK)

record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RESULTS"; }

# ---------------------------------------------------------------- phases ---
closed_loop() { # cfg round
    local cfg=$1 r=$2 url pid t0 t1 b0 b1 c0 c1 l0 l1 m0 m1 out line
    url="http://127.0.0.1:$(port_of "$cfg")/bench/small.bin"
    pid=$(work_pid "$cfg")
    t0=$(proc_ticks "$pid")
    read -r b0 b1 < <(core_busy "$PROXY_CPU")
    read -r l0 l1 < <(core_busy "$LOADGEN_CPU")
    out=$(on_lg wrk -t1 -c"$CONNS" -d"${DURATION}s" -s "$HERE/report.lua" "$url")
    t1=$(proc_ticks "$pid")
    read -r c0 c1 < <(core_busy "$PROXY_CPU")
    read -r m0 m1 < <(core_busy "$LOADGEN_CPU")
    line=$(grep '^RESULT' <<<"$out") || die "wrk printed no result: $out"
    local rps p50 p99 req err non2xx
    rps=$(sed -E 's/.*rps=([0-9.]+).*/\1/' <<<"$line")
    p50=$(sed -E 's/.*p50_us=([0-9]+).*/\1/' <<<"$line")
    p99=$(sed -E 's/.*p99_us=([0-9]+).*/\1/' <<<"$line")
    req=$(sed -E 's/.* requests=([0-9]+).*/\1/' <<<"$line")
    err=$(sed -E 's/.*sock_errors=([0-9]+).*/\1/' <<<"$line")
    non2xx=$(sed -E 's/.*non2xx=([0-9]+).*/\1/' <<<"$line")
    ((err + non2xx == 0)) || log "warning: $cfg: $err socket errors, $non2xx non-2xx answers"
    record rps "$cfg" "$r" "$rps"
    record p50_us "$cfg" "$r" "$p50"
    record p99_us "$cfg" "$r" "$p99"
    record errors "$cfg" "$r" "$((err + non2xx))"
    # CPU time the server process spent per request, and how busy the proxy
    # core was (for (a) the server is the backend, on the load generator's core).
    record cpu_us_per_req "$cfg" "$r" "$(awk -v d=$((t1 - t0)) -v n="$req" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", d / hz * 1e6 / n }')"
    record server_cpu_pct "$cfg" "$r" "$(awk -v d=$((t1 - t0)) -v s="$DURATION" -v hz="$CLK_TCK" 'BEGIN { printf "%.1f", 100 * d / hz / s }')"
    record proxy_core_busy_pct "$cfg" "$r" "$(awk -v b=$((c0 - b0)) -v t=$((c1 - b1)) 'BEGIN { printf "%.1f", t ? 100 * b / t : 0 }')"
    # The other core holds wrk and the backend: when both are near 100 %,
    # either may be what sets the rate.
    record loadgen_core_busy_pct "$cfg" "$r" "$(awk -v b=$((m0 - l0)) -v t=$((m1 - l1)) 'BEGIN { printf "%.1f", t ? 100 * b / t : 0 }')"
    log "closed $cfg r$r: $rps req/s p50 ${p50}us p99 ${p99}us"
}

open_loop() { # cfg round pct rate
    local cfg=$1 r=$2 pct=$3 rate=$4 url json
    url="http://127.0.0.1:$(port_of "$cfg")/bench/small.bin"
    json=$OUT/oha-$cfg-$r-$pct.json
    on_lg "$OHA" --no-tui --output-format json -z "${OL_DURATION}s" \
        -q "$rate" -c "$CONNS" --latency-correction "$url" >"$json" 2>"$json.err" ||
        die "oha failed: $(cat "$json.err")"
    local p50 p99 got ok
    read -r p50 p99 got ok < <(python3 "$HERE/oha_json.py" "$json")
    record "ol${pct}_p50_us" "$cfg" "$r" "$p50"
    record "ol${pct}_p99_us" "$cfg" "$r" "$p99"
    record "ol${pct}_rps" "$cfg" "$r" "$got"
    # Behind schedule: the server (or the generator's core) is saturated, and
    # the latency is the queue's.
    record "ol${pct}_behind" "$cfg" "$r" "$(awk -v g="$got" -v t="$rate" 'BEGIN { print (g < 0.97 * t) ? 1 : 0 }')"
    log "open  $cfg r$r @${pct}% ($rate/s): got $got/s (2xx share $ok) p50 ${p50}us p99 ${p99}us"
}

big_get() { # cfg round
    local cfg=$1 r=$2 pid rss0 hwm out code size speed
    pid=$(work_pid "$cfg")
    echo 5 >"/proc/$pid/clear_refs" # reset VmHWM to the current RSS
    rss0=$(status_kib "$pid" VmRSS)
    out=$(on_lg curl -sS -o /dev/null -w '%{http_code} %{size_download} %{speed_download}' \
        "http://127.0.0.1:$(port_of "$cfg")/bench/big.bin")
    hwm=$(status_kib "$pid" VmHWM)
    read -r code size speed <<<"$out"
    [[ "$code" == 200 && "$size" == $((BIG_MIB << 20)) ]] || die "big GET via $cfg: $out"
    record big_mibps "$cfg" "$r" "$(awk -v s="$speed" 'BEGIN { printf "%.1f", s / 1048576 }')"
    record big_hwm_growth_kib "$cfg" "$r" "$((hwm - rss0))"
    log "big   $cfg r$r: $(awk -v s="$speed" 'BEGIN { printf "%.0f", s / 1048576 }') MiB/s, VmHWM growth $((hwm - rss0)) KiB"
}

idle_conns() { # cfg round [tls]
    local cfg=$1 r=$2 tls=${3:-} pid rss0 rss1 ready alive port client metric=idle
    # A fresh server each time, warmed by a few requests, so earlier phases
    # leave nothing in its heap that the idle connections could reuse.
    stop_server "$cfg"
    start_server "$cfg"
    for _ in $(seq 1 20); do curl -fsS -o /dev/null "http://127.0.0.1:$(port_of "$cfg")/bench/small.bin"; done
    sleep 0.5
    pid=$(work_pid "$cfg")
    rss0=$(status_kib "$pid" VmRSS)
    port=$(port_of "$cfg")
    client=("$HERE/idle.py" 127.0.0.1)
    if [[ -n "$tls" ]]; then
        port=$(tls_port_of "$cfg")
        client+=("$port" /bench/small.bin "$IDLE_CONNS" "$OUT/certs/ca.pem")
        metric=idle_tls
    else
        client+=("$port" /bench/small.bin "$IDLE_CONNS")
    fi
    coproc IDLE { on_lg python3 "${client[@]}"; }
    read -r _ ready <&"${IDLE[0]}"
    sleep 2
    rss1=$(status_kib "$pid" VmRSS)
    echo >&"${IDLE[1]}"
    read -r _ alive <&"${IDLE[0]}"
    wait "$IDLE_PID" 2>/dev/null || true
    [[ "$ready" == "$IDLE_CONNS" ]] || log "warning: $cfg: only $ready of $IDLE_CONNS idle-conn requests answered 200"
    record "${metric}_kib_per_conn" "$cfg" "$r" "$(awk -v d=$((rss1 - rss0)) -v n="$IDLE_CONNS" 'BEGIN { printf "%.2f", d / n }')"
    record "${metric}_alive" "$cfg" "$r" "$alive"
    log "$metric  $cfg r$r: RSS $rss0 -> $rss1 KiB for $IDLE_CONNS conns ($alive still open)"
}

median_of() { # metric cfg
    awk -v m="$1" -v c="$2" '$1 == m && $2 == c { print $4 }' "$RESULTS" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}

warm() { # cfg
    on_lg wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:$(port_of "$1")/bench/small.bin" >/dev/null
}

# ------------------------------------------------------------------ run ---
log "OUT=$OUT ROUNDS=$ROUNDS DURATION=${DURATION}s OL_DURATION=${OL_DURATION}s CONNS=$CONNS BIG_MIB=$BIG_MIB IDLE_CONNS=$IDLE_CONNS"
log "load generator + backend on CPU $LOADGEN_CPU, proxy under test on CPU $PROXY_CPU ($(nproc) CPUs: $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo))"
for cfg in "${CONFIGS[@]}"; do start_server "$cfg"; done
log "gatekeeper: $(curl -sS -D - -o /dev/null "http://127.0.0.1:$GATE_PORT/bench/small.bin" | tr -d '\r' | grep -i '^x-gatekeeper' | tr '\n' ' ')"
START=$SECONDS
# A binary given in GK_BIN need not be this tree's build: name it by path
# and digest, not by the tree's commit.
if [[ "$GK_BIN" == "$ROOT/target/release/gatekeeper" ]]; then
    GK_DESC="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo '+dirty')"
else
    GK_DESC="$GK_BIN (sha256 $(sha256sum "$GK_BIN" | cut -c1-12))"
fi
GK_DESC="$GK_DESC, binary built $(date -u -r "$GK_BIN" +%FT%TZ)"

if [[ " $PHASES " == *" closed "* ]]; then
    for cfg in "${CONFIGS[@]}"; do warm "$cfg"; done
    for r in $(seq 1 "$ROUNDS"); do
        for cfg in "${CONFIGS[@]}"; do closed_loop "$cfg" "$r"; done
    done
fi

if [[ " $PHASES " == *" open "* ]]; then
    # nginx's saturation rate as the open-loop generator itself reaches it
    # (oha unthrottled, 3 runs, median): oha costs about twice wrk's CPU per
    # request and shares its core with the backend, so wrk's closed-loop
    # rate would overload the generator, not the proxy, at 80%.
    if [[ -z "${SAT:-}" ]]; then
        for i in 1 2 3; do
            on_lg "$OHA" --no-tui --output-format json -z 5s -c "$CONNS" \
                "http://127.0.0.1:$NGINX_PORT/bench/small.bin" >"$OUT/oha-sat-$i.json"
            record oha_sat_rps b "$i" "$(python3 "$HERE/oha_json.py" "$OUT/oha-sat-$i.json" | awk '{ print $3 }')"
        done
        SAT=$(median_of oha_sat_rps b)
    fi
    log "nginx+geoip2 saturation rate (oha, unthrottled, median req/s): $SAT"
    for r in $(seq 1 "$ROUNDS"); do
        for pct in $OL_PCTS; do
            rate=$(awk -v s="$SAT" -v p="$pct" 'BEGIN { printf "%d", s * p / 100 }')
            for cfg in "${CONFIGS[@]}"; do open_loop "$cfg" "$r" "$pct" "$rate"; done
        done
    done
fi

if [[ " $PHASES " == *" big "* ]]; then
    for r in $(seq 1 "$ROUNDS"); do
        for cfg in "${CONFIGS[@]}"; do big_get "$cfg" "$r"; done
    done
fi

if [[ " $PHASES " == *" idle "* ]]; then
    for r in $(seq 1 "$ROUNDS"); do
        for cfg in "${CONFIGS[@]}"; do idle_conns "$cfg" "$r"; done
    done
fi

if [[ " $PHASES " == *" idle_tls "* ]]; then
    for r in $(seq 1 "$ROUNDS"); do
        for cfg in b c; do idle_conns "$cfg" "$r" tls; done
    done
fi

log "measured in $((SECONDS - START)) s"
{
    echo "## Load harness: $(date -u +%FT%TZ), $(nproc) CPUs, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
    echo
    echo "ROUNDS=$ROUNDS DURATION=${DURATION}s OL_DURATION=${OL_DURATION}s CONNS=$CONNS BIG_MIB=$BIG_MIB IDLE_CONNS=$IDLE_CONNS;" \
        "load generator + backend on CPU $LOADGEN_CPU, proxy on CPU $PROXY_CPU; gatekeeper at $GK_DESC"
    echo
    python3 "$HERE/stats.py" "$RESULTS"
} | tee "$OUT/summary.md"
log "raw results: $RESULTS"

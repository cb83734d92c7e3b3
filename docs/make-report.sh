#!/usr/bin/env bash
# Makes docs/report.png: a gate on the example rules (rules/, plus one
# basis that expires in 45 days so that section has a row) in front of the
# built-in store, driven by boto3 through every decision reason; then
# `audit verify`, `audit replay` against the same rules (every replayable
# record must come out as recorded), `audit report`, and a screenshot of
# the page in headless Chromium. Everything stays on 127.0.0.1.
#
#   docs/make-report.sh            # needs cargo, python3 with boto3, chromium
#   KEEP=1 docs/make-report.sh     # keep the work directory (log, report.html)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
cargo build --quiet --bin gatekeeper
target=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
gk="$target/debug/gatekeeper"

work=$(mktemp -d)
gate_pid=
cleanup() {
    if [ -n "$gate_pid" ]; then kill "$gate_pid" 2>/dev/null || true; fi
    if [ -z "${KEEP:-}" ]; then rm -rf "$work"; else echo "kept $work" >&2; fi
}
trap cleanup EXIT

cp -r rules "$work/rules"
cat > "$work/rules/zz-report-demo.toml" <<TOML
# Added by docs/make-report.sh: a contract about to lapse.
[[basis]]
id = "acme-dpa-sg-2024"
tenant = "acme"
kind = "dpa"
from = "CN"
to = ["SG"]
categories = ["logs"]
recipient = "Acme Services Singapore Pte. Ltd."
valid_from = 2024-01-01
valid_until = $(date -u -d '+45 days' +%F)
evidence = "contracts/acme-dpa-sg-2024.pdf"
TOML

"$gk" audit keygen --out "$work/certs" >/dev/null
cat > "$work/gatekeeper.toml" <<TOML
region = "cn-beijing-6"
rules = "rules"
mode = "enforce"
unknown_bucket = "deny"

[listen]
s3 = "127.0.0.1:0"
admin = "127.0.0.1:0"

[upstream]
url = "embedded:data"
access_key = "report"
secret_key = "report-secret"

[s3]
hosts = ["localhost", "127.0.0.1"]

[geoip]
database = "$repo/geoip/GeoIP2-Country-Test.mmdb"

[network]
# The driver stands in for clients around the world with X-Forwarded-For.
trusted_proxies = ["127.0.0.1/32"]

[audit]
dir = "audit"
instance = "report-demo"
fsync = "batch"
signing_key = "certs/audit-ed25519.pem"
TOML

"$gk" serve -c "$work/gatekeeper.toml" > "$work/gate.out" 2> "$work/gate.err" &
gate_pid=$!
for _ in $(seq 100); do
    grep -q "gatekeeper listening" "$work/gate.out" 2>/dev/null && break
    sleep 0.1
done
s3=$(sed -n 's/.*s3=\([^ ]*\).*/\1/p' "$work/gate.out")
[ -n "$s3" ] || { cat "$work/gate.err" >&2; exit 1; }

{
    cat tests/client/prelude.py
    cat <<'PY'
CN, HK, GB, US, JP, DE, NOWHERE = ("175.16.199.1", "2001:2e0::1", "81.2.69.142",
    "216.160.83.56", "2001:218::1", "2a02:d180::1", "214.1.1.1")
s3 = client()
for b in ["acme-web", "acme-data", "acme-hr", "acme-legacy-hk", "globex-crm",
          "globex-analytics", "initech-payments"]:
    attempt(s3.create_bucket, Bucket=b)
body = lambda n: b"x" * n


def got(r):
    """Reads the object, so its bytes move and are counted."""
    r["Body"].read()
    return r


# (requester, call, repetitions)
plan = [
    (None, lambda c: c.put_object(Bucket="acme-data", Key="report.txt", Body=body(48_000)), 1),
    (None, lambda c: c.put_object(Bucket="acme-hr", Key="passport.jpg", Body=body(250_000)), 1),
    (None, lambda c: c.put_object(Bucket="acme-web", Key="index.html", Body=body(9_000)), 1),
    (None, lambda c: c.put_object(Bucket="initech-payments", Key="ledger.csv", Body=body(30_000)), 1),
    (DE, lambda c: c.put_object(Bucket="globex-crm", Key="customers.json", Body=body(120_000)), 2),
    (None, lambda c: got(c.get_object(Bucket="acme-data", Key="report.txt")), 12),
    (CN, lambda c: got(c.get_object(Bucket="acme-hr", Key="passport.jpg")), 3),
    (HK, lambda c: got(c.get_object(Bucket="acme-data", Key="report.txt")), 6),
    (GB, lambda c: c.get_object(Bucket="acme-data", Key="report.txt"), 2),
    (HK, lambda c: c.get_object(Bucket="acme-hr", Key="passport.jpg"), 2),
    (GB, lambda c: got(c.get_object(Bucket="acme-web", Key="index.html")), 5),
    (US, lambda c: got(c.get_object(Bucket="acme-web", Key="index.html")), 3),
    (GB, lambda c: c.get_object(Bucket="acme-legacy-hk", Key="archive.zip"), 1),
    (NOWHERE, lambda c: c.get_object(Bucket="acme-data", Key="report.txt"), 1),
    (None, lambda c: c.get_object(Bucket="nobody-owns-this", Key="k"), 2),
    (None, lambda c: c.put_object(Bucket="acme-legacy-hk", Key="k", Body=body(10)), 1),
    (None, lambda c: c.delete_object(Bucket="acme-data", Key="gone"), 2),
    (GB, lambda c: got(c.get_object(Bucket="initech-payments", Key="ledger.csv")), 4),
    (None, lambda c: c.put_object(Bucket="acme-web", Key="k", Body=body(10),
                                  Metadata={"data-category": "identity"}), 1),
    (US, lambda c: got(c.get_object(Bucket="globex-crm", Key="customers.json")), 3),
    (JP, lambda c: got(c.get_object(Bucket="globex-crm", Key="customers.json")), 1),
    (CN, lambda c: c.get_object(Bucket="globex-crm", Key="customers.json"), 2),
]
reasons = {}
for xff, call, n in plan:
    c = client(xff)
    for _ in range(n):
        r = attempt(call, c)
        reason = r["headers"].get("x-gatekeeper-reason", "?")
        reasons[reason] = reasons.get(reason, 0) + 1
out(reasons)
PY
} > "$work/drive.py"
GK_ENDPOINT="http://$s3" GK_ACCESS_KEY=report GK_SECRET_KEY=report-secret \
    AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
    python3 "$work/drive.py"

# A clean stop writes the final checkpoint.
kill -TERM "$gate_pid"
wait "$gate_pid" || true
gate_pid=

pub="$work/certs/audit-ed25519.pub.pem"
"$gk" audit verify "$work/audit" --public-key "$pub"
# Same rules: nothing may change (exit 0), and the summary says how many
# records were reproduced under their own kept rule set.
"$gk" audit replay "$work/audit" --rules "$work/rules" -c "$work/gatekeeper.toml" --format table
"$gk" audit report "$work/audit" --public-key "$pub" -o "$work/report.html"

browser=$(command -v chromium || command -v chromium-browser || true)
[ -n "$browser" ] || { echo "no chromium: apt-get install -y chromium" >&2; exit 1; }
"$browser" --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run \
    --user-data-dir="$work/chromium" --hide-scrollbars --virtual-time-budget=3000 \
    --screenshot="$repo/docs/report.png" --window-size=1200,1600 \
    "file://$work/report.html" 2>/dev/null
echo "docs/report.png from $work/report.html"

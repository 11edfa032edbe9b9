#!/usr/bin/env bash
# What the release profile's fat LTO (and one codegen unit) earns: the same
# source built twice, with the release profile (fat) and with lto = false
# and 16 codegen units (target/nolto), measured pinned (server on CPU 0,
# generators on CPU 1), the two binaries alternated: RPC echo 64 B 32 x 16
# (`corral bench rpc`), HTTP 1 KiB (wrk -t1 -c64), chat fan-out to 100
# subscribers (`corral bench chat`). Then the medians and fat / no-LTO.
# Usage: scripts/bench-lto.sh [RUNS=3] [SECS=5]
# (FAT_BIN / NOLTO_BIN: binaries already built, instead of building them.)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
SECS=${2:-5}
FAT_BIN=${FAT_BIN:-}
NOLTO_BIN=${NOLTO_BIN:-}
if [ -z "$FAT_BIN" ]; then cargo build --release -q --bin corral; FAT_BIN=$PWD/target/release/corral; fi
if [ -z "$NOLTO_BIN" ]; then
  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    CARGO_TARGET_DIR=$PWD/target/nolto cargo build --release -q --bin corral
  NOLTO_BIN=$PWD/target/nolto/release/corral
fi
# layout, medians
. scripts/bench-lib.sh
LAYOUTS=pinned
layout pinned
DATA=$(mktemp -d /tmp/corral-bench-lto.XXXXXX)
OUT=$DATA/figures.txt
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$DATA"; }
trap cleanup EXIT
mkdir -p "$DATA/www"
head -c 1024 /dev/zero | tr '\0' a >"$DATA/www/1k.txt"
cat >"$DATA/c.toml" <<TOML
[node]
data_dir = "$DATA/data"
[[listener]]
name = "rpc"
port = 17270
[[listener]]
name = "http"
protocol = "http"
port = 18290
[http]
docroot = "$DATA/www"
max_requests_per_connection = 100000
[cache]
revalidate_ms = 60000
[rpc]
max_in_flight = 2048
[chat]
rate_per_second = 0.0
[log]
level = "warn"
TOML
json() { python3 -c 'import json,sys; print(int(json.load(sys.stdin)[sys.argv[1]]))' "$1" 2>/dev/null || echo 0; }
for r in $(seq "$RUNS"); do
  echo "# run $r"
  for v in fat nolto; do
    bin=$FAT_BIN; [ "$v" = nolto ] && bin=$NOLTO_BIN
    rm -rf "$DATA/data"
    "${SRV[@]}" "$bin" serve --config "$DATA/c.toml" >"$DATA/serve.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:18290/1k.txt && break; sleep 0.1; done
    echo "pinned.$v.echo64 rate=$("${GEN[@]}" "$FAT_BIN" bench rpc --addr 127.0.0.1:17270 --cmd echo --size 64 \
      --concurrency 32 --in-flight 16 --requests 100000000 --duration "$SECS" --json 2>/dev/null | json rps)"
    echo "pinned.$v.http1k rate=$("${GEN[@]}" wrk -t1 -c64 -d"${SECS}s" http://127.0.0.1:18290/1k.txt |
      awk '/^Requests\/sec/ {print int($2)}')"
    echo "pinned.$v.fanout.s100 rate=$("${GEN[@]}" "$FAT_BIN" bench chat --addr 127.0.0.1:17270 --subscribers 100 \
      --size 64 --duration "$SECS" --json 2>/dev/null | json delivered_per_s)"
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
  done
done | tee -a "$OUT"
medians "$OUT" fat.echo64/nolto.echo64 fat.http1k/nolto.http1k fat.fanout.s100/nolto.fanout.s100

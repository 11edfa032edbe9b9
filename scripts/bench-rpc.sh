#!/usr/bin/env bash
# Compares corral's RPC service with the peers in ../shared/peers, in one run,
# interleaved, with the same load generator (`corral bench rpc`):
#   echo 64 B, 32 connections x 16 in flight; compute n=100000, 8 connections.
# Usage: scripts/bench-rpc.sh [RUNS=3] [SECS=5]
# Needs the peers built: see ../shared/peers/README.md (rpc-tokio).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
SECS=${2:-5}
PEERS=${PEERS:-../shared/peers}
PEER_BIN=${PEER_BIN:-/tmp/corral-peers/target/release}
cargo build --release -q
CORRAL=target/release/corral
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

CORRAL__LOG__LEVEL=warn $CORRAL serve --config config/sys.toml >/tmp/corral-bench-serve.log 2>&1 &
pids+=($!)
[ -x "$PEER_BIN/rpc-tokio" ] && { "$PEER_BIN/rpc-tokio" --addr 127.0.0.1:17002 --codec json & pids+=($!); }
[ -f "$PEERS/rpc-python/rpc_peer.py" ] && { python3 "$PEERS/rpc-python/rpc_peer.py" --port 17001 >/dev/null 2>&1 & pids+=($!); }
sleep 1

bench() { # name addr shape args...
  local name=$1 addr=$2 shape=$3; shift 3
  local out
  out=$($CORRAL bench rpc --addr "$addr" --shape "$shape" --requests 100000000 --duration "$SECS" --json "$@" 2>/dev/null) || true
  echo "$name $(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); l=d["latency_us"]; print("rps=%d p50_us=%.0f p99_us=%.0f errors=%d" % (d["rps"], l["p50"], l["p99"], d["errors"]))' "$out" 2>/dev/null || echo "failed: $out")"
}

ECHO=(--cmd echo --size 64 --concurrency 32 --in-flight 16)
COMPUTE=(--cmd compute --size 100000 --concurrency 8 --in-flight 1)
for r in $(seq "$RUNS"); do
  echo "# run $r"
  bench corral.native.echo64.c32.if16 127.0.0.1:7070 native "${ECHO[@]}"
  bench corral.tc.echo64.c32.if16 127.0.0.1:7070 threadcenter "${ECHO[@]}"
  bench tokio.echo64.c32.if16 127.0.0.1:17002 threadcenter "${ECHO[@]}"
  bench python.echo64.c32.if16 127.0.0.1:17001 threadcenter "${ECHO[@]}"
  bench corral.native.compute100k.c8 127.0.0.1:7070 native "${COMPUTE[@]}"
  bench tokio.compute100k.c8 127.0.0.1:17002 threadcenter "${COMPUTE[@]}"
  bench python.compute100k.c8 127.0.0.1:17001 threadcenter "${COMPUTE[@]}"
done

#!/usr/bin/env bash
# Compares corral's RPC service with the peers in ../shared/peers, in one run,
# interleaved, with the same load generator (`corral bench rpc`), in two
# layouts (scripts/bench-lib.sh): pinned (the servers on CPU 0, the
# generator on CPU 1; the headline) and colocated (all on both CPUs):
#   echo 64 B, 32 connections x 16 in flight (corral in its native shape and
#   in ThreadCenter's, the peers in ThreadCenter's); compute n=100000, 8
#   connections. Each line gives the rate, latency and the CPU the server
#   used (% of one core); then the medians and the ratios to the raw tokio
#   peer.
# Usage: [LAYOUTS="pinned colocated"] scripts/bench-rpc.sh [RUNS=3] [SECS=5]
# Needs the peers built: see ../shared/peers/README.md (rpc-tokio); without
# them corral is measured alone.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
SECS=${2:-5}
PEERS=${PEERS:-../shared/peers}
PEER_BIN=${PEER_BIN:-/tmp/corral-peers/target/release}
RPC_PORT=${RPC_PORT:-17070}
cargo build --release -q
# ticks, cpu, summarize, layout, medians; LAYOUTS
. scripts/bench-lib.sh
CORRAL=$PWD/target/release/corral
DATA=$(mktemp -d /tmp/corral-bench-rpc.XXXXXX)
OUT=$DATA/figures.txt
pids=()
stop_servers() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; pids=(); }
cleanup() { stop_servers; rm -rf "$DATA"; }
trap cleanup EXIT

cat >"$DATA/rpc.toml" <<TOML
[node]
data_dir = "$DATA/data"
[[listener]]
name = "rpc"
port = $RPC_PORT
[chat]
enabled = false
[log]
level = "warn"
TOML

ECHO=(--cmd echo --size 64 --concurrency 32 --in-flight 16)
COMPUTE=(--cmd compute --size 100000 --concurrency 8 --in-flight 1)
for layout in $LAYOUTS; do
  layout "$layout"
  "${SRV[@]}" "$CORRAL" serve --config "$DATA/rpc.toml" >"$DATA/serve.log" 2>&1 &
  corral_pid=$!; pids+=($corral_pid)
  tokio_pid= python_pid=
  if [ -x "$PEER_BIN/rpc-tokio" ]; then
    "${SRV[@]}" "$PEER_BIN/rpc-tokio" --addr 127.0.0.1:17002 --codec json >/dev/null 2>&1 &
    tokio_pid=$!; pids+=($tokio_pid)
  else
    echo "# $PEER_BIN/rpc-tokio missing: no tokio lines" >&2
  fi
  if [ -f "$PEERS/rpc-python/rpc_peer.py" ]; then
    "${SRV[@]}" python3 "$PEERS/rpc-python/rpc_peer.py" --port 17001 >/dev/null 2>&1 &
    python_pid=$!; pids+=($python_pid)
  fi
  sleep 1
  bench() { # name pid port shape args...
    local name=$1 pid=$2 port=$3 shape=$4; shift 4
    [ -n "$pid" ] || return 0
    summarize "$layout.$name" "$(cpu "$pid" "${GEN[@]}" "$CORRAL" bench rpc --addr "127.0.0.1:$port" \
      --shape "$shape" --requests 100000000 --duration "$SECS" --json "$@")"
  }
  for r in $(seq "$RUNS"); do
    echo "# $layout run $r"
    bench corral.native.echo64 "$corral_pid" "$RPC_PORT" native "${ECHO[@]}"
    bench corral.tc.echo64 "$corral_pid" "$RPC_PORT" threadcenter "${ECHO[@]}"
    bench tokio.echo64 "$tokio_pid" 17002 threadcenter "${ECHO[@]}"
    bench python.echo64 "$python_pid" 17001 threadcenter "${ECHO[@]}"
    bench corral.compute100k "$corral_pid" "$RPC_PORT" native "${COMPUTE[@]}"
    bench tokio.compute100k "$tokio_pid" 17002 threadcenter "${COMPUTE[@]}"
    bench python.compute100k "$python_pid" 17001 threadcenter "${COMPUTE[@]}"
  done | tee -a "$OUT"
  stop_servers
done

medians "$OUT" corral.native.echo64/tokio.echo64 corral.tc.echo64/tokio.echo64 \
  corral.compute100k/tokio.compute100k corral.native.echo64/python.echo64

#!/usr/bin/env bash
# Compares corral's chat fan-out with Redis pub/sub (../shared/peers), in one
# run, interleaved: 1 publisher, 100 subscribers on one channel, 64-byte
# messages, the publisher at most 2000 messages ahead of the slowest
# subscriber. Redis is driven by the peers' pubsub-load, corral by
# `corral bench chat` (the same experiment over corral's RPC envelope; every
# publish durable). Then corral's durable publish rate with no subscribers.
# Each line also gives the CPU the server used (% of one core).
# Usage: scripts/bench-chat.sh [RUNS=3] [SECS=5]
# Needs redis-server (Debian package) and pubsub-load built (see
# ../shared/peers/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
SECS=${2:-5}
PEER_BIN=${PEER_BIN:-/tmp/corral-peers/target/release}
REDIS_PORT=${REDIS_PORT:-16390}
cargo build --release -q
CORRAL=target/release/corral
DATA=$(mktemp -d /tmp/corral-bench-chat.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$DATA"; }
trap cleanup EXIT

CORRAL__NODE__DATA_DIR=$DATA $CORRAL serve --config config/sys.toml --env bench >"$DATA/serve.log" 2>&1 &
corral_pid=$!; pids+=($corral_pid)
redis_pid=
if command -v redis-server >/dev/null && [ -x "$PEER_BIN/pubsub-load" ]; then
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
    --protected-mode no --dir "$DATA" --logfile "$DATA/redis.log" &
  redis_pid=$!; pids+=($redis_pid)
else
  echo "# redis-server or $PEER_BIN/pubsub-load missing: corral only" >&2
fi
sleep 1

# ticks, cpu
. scripts/bench-lib.sh
corral() { # name args...
  local name=$1; shift
  local line
  line=$(cpu "$corral_pid" $CORRAL bench chat --addr 127.0.0.1:7070 --duration "$SECS" --json "$@")
  echo "$name $(python3 -c '
import json, sys
j, cpu = sys.argv[1].rsplit(" ", 1)
try:
    d = json.loads(j)
except ValueError:
    print("failed: " + j); sys.exit()
l = d["latency_us"]
print("delivered_per_s=%d acked_per_s=%d p50_us=%.0f p99_us=%.0f missing=%d errors=%d %s" % (
    d["delivered_per_s"], d["acked_per_s"], l["p50"], l["p99"], d["missing"], d["errors"], cpu))' "$line")"
}

for r in $(seq "$RUNS"); do
  echo "# run $r"
  corral corral.fanout.s100.64B --subscribers 100 --size 64
  if [ -n "$redis_pid" ]; then
    echo "redis.fanout.s100.64B $(cpu "$redis_pid" "$PEER_BIN/pubsub-load" --backend redis --addr 127.0.0.1:$REDIS_PORT \
      --subscribers 100 --size 64 --messages 100000000 --max-secs "$SECS")"
  fi
  corral corral.durable_publish.s0.64B --subscribers 0 --size 64
done

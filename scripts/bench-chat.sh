#!/usr/bin/env bash
# Compares corral's chat fan-out with Redis pub/sub (../shared/peers), in one
# run, interleaved, in two layouts (scripts/bench-lib.sh): pinned (the
# servers on CPU 0, the generators on CPU 1; the headline) and colocated
# (all on both CPUs). 1 publisher, 100 subscribers on one channel, 64-byte
# messages, the publisher at most 2000 messages ahead of the slowest
# subscriber. Redis is driven by the peers' pubsub-load, corral by
# `corral bench chat` (the same experiment over corral's RPC envelope; every
# publish durable). Then corral's durable publish rate with no subscribers.
# Each line also gives the CPU the server used (% of one core); then the
# medians and the ratio to Redis.
# Usage: [LAYOUTS="pinned colocated"] scripts/bench-chat.sh [RUNS=3] [SECS=5]
# Needs redis-server (Debian package) and pubsub-load built (see
# ../shared/peers/README.md); without them corral is measured alone.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
SECS=${2:-5}
PEER_BIN=${PEER_BIN:-/tmp/corral-peers/target/release}
REDIS_PORT=${REDIS_PORT:-16390}
cargo build --release -q
# ticks, cpu, summarize, layout, medians; LAYOUTS
. scripts/bench-lib.sh
CORRAL=$PWD/target/release/corral
DATA=$(mktemp -d /tmp/corral-bench-chat.XXXXXX)
OUT=$DATA/figures.txt
pids=()
stop_servers() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; pids=(); }
cleanup() { stop_servers; rm -rf "$DATA"; }
trap cleanup EXIT

have_redis=
if command -v redis-server >/dev/null && [ -x "$PEER_BIN/pubsub-load" ]; then
  have_redis=1
else
  echo "# redis-server or $PEER_BIN/pubsub-load missing: corral only" >&2
fi

for layout in $LAYOUTS; do
  layout "$layout"
  rm -rf "$DATA/data"
  CORRAL__NODE__DATA_DIR=$DATA/data "${SRV[@]}" "$CORRAL" serve --config config/sys.toml --env bench \
    >"$DATA/serve.log" 2>&1 &
  corral_pid=$!; pids+=($corral_pid)
  redis_pid=
  if [ -n "$have_redis" ]; then
    "${SRV[@]}" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
      --daemonize no --protected-mode no --dir "$DATA" --logfile "$DATA/redis.log" &
    redis_pid=$!; pids+=($redis_pid)
  fi
  sleep 1
  corral() { # name args...
    local name=$1; shift
    summarize "$layout.$name" "$(cpu "$corral_pid" "${GEN[@]}" "$CORRAL" bench chat \
      --addr 127.0.0.1:7070 --duration "$SECS" --size 64 --json "$@")"
  }
  for r in $(seq "$RUNS"); do
    echo "# $layout run $r"
    corral corral.fanout.s100 --subscribers 100
    if [ -n "$redis_pid" ]; then
      echo "$layout.redis.fanout.s100 $(cpu "$redis_pid" "${GEN[@]}" "$PEER_BIN/pubsub-load" --backend redis \
        --addr 127.0.0.1:$REDIS_PORT --subscribers 100 --size 64 --messages 100000000 --max-secs "$SECS" \
        | sed -n 's/.*delivered_per_s=\([0-9.]*\).*/rate=\1/p')"
    fi
    corral corral.durable_publish.s0 --subscribers 0
  done | tee -a "$OUT"
  stop_servers
done

medians "$OUT" corral.fanout.s100/redis.fanout.s100

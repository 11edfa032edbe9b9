#!/usr/bin/env bash
# The ZeroMQ front against corral's own framing and against Redis, in one
# run, interleaved, in two layouts:
#   pinned      the servers on CPU 0, the load generators on CPU 1 (taskset;
#               the headline: the server's own efficiency)
#   colocated   everything on both CPUs
# Figures (each with the CPU the server used, % of one core):
#   rpc.{tcp,zmq}.echo64     echo of 64 B, MessagePack, 32 connections x 16
#                            in flight (`corral bench rpc`, --transport tcp
#                            to the RPC listener, zmq to the zmq_router one)
#   rpc.{tcp,zmq}.login160   echo of a 160-byte payload: a seed login request
#                            and its reply, in size
#   fanout.{rpc,zmq}.s100    1 publisher, 100 subscribers on one channel,
#                            64-byte messages (`corral bench chat`; the
#                            subscribers RPC connections, or ZeroMQ SUB peers
#                            of the zmq_xpub endpoint with --sub-zmq)
#   redis.fanout.s100        the same fan-out on Redis pub/sub (pubsub-load
#                            from ../shared/peers)
# then the medians and the ratios the issue sets goals for (zmq / tcp,
# zmq fan-out / redis).
# Usage: scripts/bench-zmq.sh [RUNS=3] [SECS=5]
# Needs redis-server (Debian package) and pubsub-load built (see
# ../shared/peers/README.md); without them the Redis line is left out.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
SECS=${2:-5}
PEER_BIN=${PEER_BIN:-/tmp/corral-peers/target/release}
RPC_PORT=${RPC_PORT:-17170}
ZMQ_PORT=${ZMQ_PORT:-15555}
XPUB_PORT=${XPUB_PORT:-15558}
REDIS_PORT=${REDIS_PORT:-16391}
cargo build --release -q
# ticks, cpu, layout, medians; LAYOUTS
. scripts/bench-lib.sh
CORRAL=$PWD/target/release/corral
DATA=$(mktemp -d /tmp/corral-bench-zmq.XXXXXX)
OUT=$DATA/figures.txt
pids=()
stop_servers() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; pids=(); }
cleanup() { stop_servers; rm -rf "$DATA"; }
trap cleanup EXIT

cat >"$DATA/zmq.toml" <<TOML
[node]
data_dir = "$DATA/data"
[[listener]]
name = "rpc"
port = $RPC_PORT
[[listener]]
name = "zmq"
protocol = "zmq_router"
port = $ZMQ_PORT
[[listener]]
name = "zmq_pub"
protocol = "zmq_xpub"
port = $XPUB_PORT
[rpc]
max_in_flight = 2048
[chat]
rate_per_second = 0.0
[log]
level = "warn"
TOML

for layout in $LAYOUTS; do
  layout "$layout"
  rm -rf "$DATA/data"
  "${SRV[@]}" "$CORRAL" serve --config "$DATA/zmq.toml" >"$DATA/serve.log" 2>&1 &
  corral_pid=$!; pids+=($corral_pid)
  redis_pid=
  if command -v redis-server >/dev/null && [ -x "$PEER_BIN/pubsub-load" ]; then
    "${SRV[@]}" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
      --daemonize no --protected-mode no --dir "$DATA" --logfile "$DATA/redis.log" &
    redis_pid=$!; pids+=($redis_pid)
  else
    echo "# redis-server or $PEER_BIN/pubsub-load missing: no Redis line" >&2
  fi
  sleep 1
  rpc() { # name transport port args...
    local name=$1 transport=$2 port=$3; shift 3
    summarize "$layout.$name" "$(cpu "$corral_pid" "${GEN[@]}" "$CORRAL" bench rpc \
      --addr "127.0.0.1:$port" --transport "$transport" --codec msgpack --concurrency 32 \
      --in-flight 16 --requests 100000000 --duration "$SECS" --json "$@")"
  }
  fanout() { # name args...
    local name=$1; shift
    summarize "$layout.$name" "$(cpu "$corral_pid" "${GEN[@]}" "$CORRAL" bench chat \
      --addr "127.0.0.1:$RPC_PORT" --subscribers 100 --size 64 --duration "$SECS" --json "$@")"
  }
  for r in $(seq "$RUNS"); do
    echo "# $layout run $r"
    rpc rpc.tcp.echo64 tcp "$RPC_PORT" --cmd echo --size 64
    rpc rpc.zmq.echo64 zmq "$ZMQ_PORT" --cmd echo --size 64
    rpc rpc.tcp.login160 tcp "$RPC_PORT" --cmd echo --size 160
    rpc rpc.zmq.login160 zmq "$ZMQ_PORT" --cmd echo --size 160
    fanout fanout.rpc.s100
    fanout fanout.zmq.s100 --sub-zmq "127.0.0.1:$XPUB_PORT"
    if [ -n "$redis_pid" ]; then
      echo "$layout.redis.fanout.s100 $(cpu "$redis_pid" "${GEN[@]}" "$PEER_BIN/pubsub-load" --backend redis \
        --addr 127.0.0.1:$REDIS_PORT --subscribers 100 --size 64 --messages 100000000 --max-secs "$SECS" \
        | sed -n 's/.*delivered_per_s=\([0-9.]*\).*/rate=\1/p')"
    fi
  done | tee -a "$OUT"
  stop_servers
done

medians "$OUT" rpc.zmq.echo64/rpc.tcp.echo64 rpc.zmq.login160/rpc.tcp.login160 \
  fanout.zmq.s100/redis.fanout.s100 fanout.zmq.s100/fanout.rpc.s100

#!/usr/bin/env bash
# The cluster's benchmarks (issue #14), in one run on one machine: a local
# cluster (three nats-server in a JetStream cluster, three corral nodes, as
# scripts/cluster starts them, on ports of its own, in a temp dir) and, for
# the fan-out row, a single corral node. Per run:
#
#   cluster.publish      acknowledged publishes/s across the cluster: three
#                        `corral bench chat --subscribers 0` at once, one
#                        per node, each at most WINDOW publishes ahead of
#                        its acks; every publish durable (quorum ack + apply)
#   nats.publish         the peer: three plain async-nats JetStream
#                        publishers (examples/nats_publish_peer.rs), one per
#                        NATS server, WINDOW acks in flight each, payload of
#                        the size of corral's log entries (measured), on the
#                        same NATS cluster; then the ratio (goal >= 0.8)
#   cluster.fanout       1 publisher -> 100 subscribers spread over the three
#                        nodes, 64 B; delivered/s, p50/p99 delivery latency
#   single.fanout        the same on one corral node (bench-chat.sh's
#                        experiment); then the ratio
#   failover.leader      bench chat over the three nodes while the stream
#                        leader's nats-server is killed (-9): max_ack_gap_ms
#   failover.nats        the same, killing a nats-server that is not the
#                        stream's leader
#   failover.node        the same while the publisher's corral node is killed
#                        (-9) (goal for all: under 3000 ms)
# Then once, on a new cluster after SECS of publish3's writes: catch-up:
# n3 stopped, its data_dir wiped, restarted: the time
# until it has applied every event of the stream (its /metrics
# corral_cluster_log_applied_sequence), events/s.
#
# Each line gives the CPU the servers used over the row (% of one core):
# corral= the corral node(s), nats= the three nats-server.
#
# Usage: scripts/bench-cluster.sh [RUNS=2] [SECS=5]
# Environment: ROWS=publish (only the publish rows and their ratio; default
# all), CORRAL_BIN, PEER_BIN (skip the build), WINDOW (1024: the
# cluster log's own bound on JetStream publishes in flight per node),
# BENCH_PORT_BASE (17000: NATS +1222.., routes +2222.., monitoring +3222..,
# RPC +71.., HTTP +81.., the single node +70 / +80).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
RUNS=${1:-2}
SECS=${2:-5}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "bench-cluster: RUNS must be a positive integer, got $RUNS" >&2; exit 1; }
[[ $SECS =~ ^[1-9][0-9]*$ ]] || { echo "bench-cluster: SECS must be a positive integer, got $SECS" >&2; exit 1; }
WINDOW=${WINDOW:-1024}
B=${BENCH_PORT_BASE:-17000}
T=${CARGO_TARGET_DIR:-$ROOT/target}

command -v nats-server >/dev/null || { echo "bench-cluster: nats-server missing (scripts/setup installs it)" >&2; exit 1; }
if [ -z "${CORRAL_BIN:-}" ] || [ -z "${PEER_BIN:-}" ]; then
  cargo build --release -q --bin corral --example nats_publish_peer
fi
CORRAL=${CORRAL_BIN:-$T/release/corral}
PEER=${PEER_BIN:-$T/release/examples/nats_publish_peer}

DIR=$(mktemp -d /tmp/corral-bench-cluster.XXXXXX)
# A nats-server restarted after kill -9 is healthy once its copy of the
# stream is current: on a loaded machine that took over a minute once.
export CLUSTER_DIR=$DIR/cluster CORRAL_BIN=$CORRAL CLUSTER_SETUP=0 CLUSTER_UP_GUARD_S=${CLUSTER_UP_GUARD_S:-300}
export CLUSTER_NATS_PORTS="$((B + 1222)) $((B + 1223)) $((B + 1224))"
export CLUSTER_ROUTE_PORTS="$((B + 2222)) $((B + 2223)) $((B + 2224))"
export CLUSTER_MONITOR_PORTS="$((B + 3222)) $((B + 3223)) $((B + 3224))"
export CLUSTER_RPC_PORTS="$((B + 71)) $((B + 72)) $((B + 73))"
export CLUSTER_HTTP_PORTS="$((B + 81)) $((B + 82)) $((B + 83))"
# As config/bench.toml for bench-chat.sh: no rate limit, a pipelining
# publisher's window fits in a connection's requests in progress.
export CORRAL__RPC__MAX_IN_FLIGHT=2048 CORRAL__CHAT__RATE_PER_SECOND=0 CORRAL__LOG__LEVEL=warn
read -r -a NATS_PORTS <<<"$CLUSTER_NATS_PORTS"
read -r -a MON <<<"$CLUSTER_MONITOR_PORTS"
read -r -a RPC <<<"$CLUSTER_RPC_PORTS"
read -r -a HTTP <<<"$CLUSTER_HTTP_PORTS"
ADDRS="127.0.0.1:${RPC[0]},127.0.0.1:${RPC[1]},127.0.0.1:${RPC[2]}"
SERVERS="nats://127.0.0.1:${NATS_PORTS[0]},nats://127.0.0.1:${NATS_PORTS[1]},nats://127.0.0.1:${NATS_PORTS[2]}"
SINGLE_RPC=$((B + 70)) SINGLE_HTTP=$((B + 80))

single_pid=
bg_pids=()
cleanup() {
  local p
  for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "$single_pid" ] && kill "$single_pid" 2>/dev/null || true
  scripts/cluster stop >/dev/null 2>&1 || true # by PID, as the script started them
  [ -n "$single_pid" ] && wait "$single_pid" 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT

# Starts what is not running; then waits (30 s at most) until every node
# takes a write (a login), so that no row starts on a node not yet ready.
cluster_up() {
  if ! scripts/cluster start >"$DIR/cluster-start.log" 2>&1; then
    cat "$DIR/cluster-start.log" >&2
    tail -n 5 "$CLUSTER_DIR"/logs/*.log >&2
    exit 1
  fi
  local i j
  for i in 0 1 2; do
    for ((j = 0; j < 300; j++)); do
      "$CORRAL" call login '{"user":"bench_ready"}' --addr "127.0.0.1:${RPC[$i]}" >/dev/null 2>&1 && break
      sleep 0.1
    done
  done
}
# A new cluster (empty streams, every nats-server current): each run and
# each failover row starts on one. nats-server 2.9.10 (Debian's) restarted
# after kill -9 under load sometimes never catches its copy of the stream
# up ("Catchup for stream ... stalled", for minutes), so a row after a
# failover row would run on two current replicas, or wait.
fresh_cluster() {
  scripts/cluster clean >/dev/null 2>&1 || true
  cluster_up
}
pid_of() { cat "$CLUSTER_DIR/pids/$1.pid"; }
corral_pids() { echo "$(pid_of n1) $(pid_of n2) $(pid_of n3)"; }
nats_pids() { echo "$(pid_of nats1) $(pid_of nats2) $(pid_of nats3)"; }

echo "# bench-cluster: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at start; data in $DIR"

mkdir -p "$DIR/single"
cat >"$DIR/single/corral.toml" <<EOF
[node]
name = "single"
[[listener]]
name = "rpc"
transport = "tcp"
protocol = "rpc"
address = "127.0.0.1"
port = $SINGLE_RPC
[[listener]]
name = "http"
transport = "tcp"
protocol = "http"
address = "127.0.0.1"
port = $SINGLE_HTTP
EOF
CORRAL__NODE__DATA_DIR=$DIR/single/data "$CORRAL" serve --config "$DIR/single/corral.toml" \
  >"$DIR/single/serve.log" 2>&1 &
single_pid=$!
for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$SINGLE_RPC") 2>/dev/null && break; sleep 0.1; done

# CPU ticks (user + system) of a list of PIDs, summed; a PID gone counts 0.
ticks() {
  local p s=0 t
  for p in "$@"; do
    t=$(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0)
    s=$((s + t))
  done
  echo "$s"
}
CLK=$(getconf CLK_TCK)
# pct T0 T1 S0 S1: CPU as % of one core.
pct() { python3 -c "print('%.0f%%' % (($2-$1)/$CLK/($4-$3)*100))" "$@"; }

# summary NAME JSON...: the fields of bench chat's --json objects (summed over several).
summary() {
  python3 - "$@" <<'EOF'
import json, sys
name, outs = sys.argv[1], sys.argv[2:]
ds = []
for o in outs:
    try:
        ds.append(json.loads(o))
    except ValueError:
        print("%s failed: %s" % (name, o.strip()[:300])); sys.exit()
acked = sum(d["acked_per_s"] for d in ds)
line = "%s acked_per_s=%d" % (name, acked)
if any(d["subscribers"] for d in ds):
    d = ds[0]
    line += " delivered_per_s=%d p50_us=%.0f p99_us=%.0f" % (
        d["delivered_per_s"], d["latency_us"]["p50"], d["latency_us"]["p99"])
line += " missing=%d errors=%d" % (sum(d["missing"] for d in ds), sum(d["errors"] for d in ds))
errs = [d["first_error"] for d in ds if d.get("first_error")]
if errs:
    line += " first_error=%r" % errs[0][:200]
if any(d.get("failovers") for d in ds) or len(ds[0]["addr"].split(",")) > 1:
    line += " failovers=%d max_ack_gap_ms=%.0f" % (
        sum(d["failovers"] for d in ds), max(d["max_ack_gap_ms"] for d in ds))
print(line)
EOF
}

# The stream's leader (a server name, nats1..3) and its average entry size.
stream_info() { # STREAM FIELD(leader|avg)
  local i out
  for i in 0 1 2; do
    out=$(curl -s -m 2 "http://127.0.0.1:${MON[$i]}/jsz?accounts=true&streams=true" 2>/dev/null) || continue
    python3 - "$1" "$2" "$out" <<'EOF' && return 0
import json, sys
name, field, doc = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
for a in doc.get("account_details") or []:
    for s in a.get("stream_detail") or []:
        if s.get("name") != name:
            continue
        if field == "leader":
            l = (s.get("cluster") or {}).get("leader")
            if l:
                print(l); sys.exit(0)
        else:
            st = s["state"]
            if st["messages"]:
                print(st["bytes"] // st["messages"]); sys.exit(0)
sys.exit(1)
EOF
  done
  return 1
}

# chat ARGS...: one corral bench chat, its --json object on stdout.
# A run that prints nothing leaves its error in the summary's "failed" line.
chat() {
  local out err
  err=$(mktemp -p "$DIR" chat.XXXXXX.err)
  out=$("$CORRAL" bench chat --duration "${DUR:-$SECS}" --json "$@" 2>"$err") || true
  if [ -n "$out" ]; then echo "$out"; else tail -n 3 "$err" | tr '\n' ' '; fi
}

# cpu_row "CORRAL_PIDS" COMMAND...: runs it, prints its line and the CPU
# the corral PIDs and the three nats-server used meanwhile.
cpu_row() {
  local cpids=$1 t0c t0n t1c t1n s0 s1 npids
  shift
  npids=$(nats_pids)
  # shellcheck disable=SC2086
  t0c=$(ticks $cpids); t0n=$(ticks $npids); s0=$(date +%s.%N)
  local out
  out=$("$@")
  # shellcheck disable=SC2086
  t1c=$(ticks $cpids); t1n=$(ticks $npids); s1=$(date +%s.%N)
  echo "$out corral_cpu=$(pct "$t0c" "$t1c" "$s0" "$s1") nats_cpu=$(pct "$t0n" "$t1n" "$s0" "$s1")"
}

publish3() {
  local i outs=() files=()
  for i in 0 1 2; do
    chat --addr "127.0.0.1:${RPC[$i]}" --subscribers 0 --size 64 --window "$WINDOW" \
      --user "bench_pub$((i + 1))" --channel bench_3pub >"$DIR/pub$i.json" &
    files+=("$DIR/pub$i.json"); bg_pids+=($!)
  done
  wait "${bg_pids[@]}"; bg_pids=()
  for i in "${files[@]}"; do outs+=("$(cat "$i")"); done
  summary cluster.publish.3x64B "${outs[@]}"
}

peer() {
  local size=$1 out
  out=$("$PEER" --servers "$SERVERS" --publishers 3 --in-flight "$WINDOW" --size "$size" --secs "$SECS" 2>&1) || true
  python3 -c '
import json, sys
try:
    d = json.loads(sys.argv[1])
except ValueError:
    print("nats.publish failed: " + sys.argv[1][:300]); sys.exit()
print("nats.publish.3x%dB acked_per_s=%d errors=%d" % (d["size"], d["acked_per_s"], d["errors"]))' "$out"
}

fanout() { summary "$1" "$(chat --addr "$2" --subscribers 100 --size 64)"; }

rate_of() { sed -n 's/.*acked_per_s=\([0-9]*\).*/\1/p' <<<"$1"; }
delivered_of() { sed -n 's/.*delivered_per_s=\([0-9]*\).*/\1/p' <<<"$1"; }
ratio() { python3 -c "import sys; a,b=sys.argv[1:]; print('%.2f' % (float(a)/float(b)) if a and b and float(b) > 0 else 'n/a')" "$1" "$2"; }

# failover WHAT(leader|nats|node): bench chat over the three nodes (10
# subscribers); 3 s in, the victim is killed -9: the stream's leader
# nats-server, another nats-server, or the publisher's corral node (the
# first address); then it is started again. The run lasts SECS + 15 s so
# that the whole gap falls inside it (bench chat's max_ack_gap_ms is the
# longest time between two acknowledgements).
failover() {
  local what=$1 victim leader pid secs=$((SECS + 15))
  fresh_cluster
  DUR=$secs chat --addr "$ADDRS" --subscribers 10 --size 64 >"$DIR/failover.json" &
  local bench=$!; bg_pids+=($bench)
  sleep 3
  leader=$(stream_info CORRAL_CHAT leader) || leader=nats1
  case $what in
    leader) victim=$leader ;;
    nats) victim=nats1; [ "$leader" = nats1 ] && victim=nats2 ;;
    node) victim=n1 ;;
  esac
  pid=$(pid_of "$victim")
  kill -9 "$pid"
  wait "$bench" || true; bg_pids=()
  summary "failover.$what.kill9.$victim" "$(cat "$DIR/failover.json")"
}

# catch-up: n3 stopped, data_dir wiped, started; polls its applied sequence.
# The time runs from the start command to the last event applied (n3's
# start included); n3_cpu is all the CPU the new process used over it.
catch_up() {
  local target pid s0 s1 applied=0 i
  target=$(curl -s -m 2 "http://127.0.0.1:${HTTP[0]}/metrics" | awk '/^corral_cluster_log_applied_sequence /{print $2}')
  pid=$(pid_of n3)
  kill -TERM "$pid"
  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  rm -rf "$CLUSTER_DIR/n3/data"
  s0=$(date +%s.%N)
  cluster_up
  pid=$(pid_of n3)
  for ((i = 0; i < 6000; i++)); do # a guard of 10 minutes against a hang
    applied=$(curl -s -m 2 "http://127.0.0.1:${HTTP[2]}/metrics" 2>/dev/null |
      awk '/^corral_cluster_log_applied_sequence /{print $2}')
    [ -n "$applied" ] && [ "${applied%.*}" -ge "${target%.*}" ] && break
    sleep 0.1
  done
  s1=$(date +%s.%N)
  python3 -c '
import sys
n, a, s0, s1, cpu = sys.argv[1:]
n, a, secs = int(float(n)), int(float(a or 0)), float(s1) - float(s0)
print("catchup.n3 events=%d applied=%d secs=%.1f events_per_s=%d n3_cpu=%s" % (n, a, secs, a / secs, cpu))' \
    "$target" "$applied" "$s0" "$s1" "$(pct 0 "$(ticks "$pid")" "$s0" "$s1")"
}

for r in $(seq "$RUNS"); do
  echo "# run $r (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  fresh_cluster
  pub=$(cpu_row "$(corral_pids)" publish3)
  echo "$pub"
  size=$(stream_info CORRAL_CHAT avg) || size=64
  nats=$(cpu_row "" peer "$size")
  echo "$nats"
  echo "ratio.publish corral/nats=$(ratio "$(rate_of "$pub")" "$(rate_of "$nats")") (goal >= 0.8)"
  [ "${ROWS:-all}" = publish ] && continue
  fan=$(cpu_row "$(corral_pids)" fanout cluster.fanout.s100.64B "$ADDRS")
  echo "$fan"
  one=$(cpu_row "$single_pid" fanout single.fanout.s100.64B "127.0.0.1:$SINGLE_RPC")
  echo "${one% nats_cpu=*}"
  echo "ratio.fanout cluster/single=$(ratio "$(delivered_of "$fan")" "$(delivered_of "$one")")"
  failover leader
  failover nats
  failover node
done
[ "${ROWS:-all}" = publish ] && exit 0
# The catch-up row: a new cluster, SECS of publishes to read back.
fresh_cluster
publish3 >/dev/null
catch_up

#!/usr/bin/env bash
# Resident memory per idle connection: corral's RPC connections, HTTP/1.1
# keep-alive connections and chat subscribers, and nginx's keep-alive
# connections (../shared/peers/nginx) beside them, in one run.
#
# For each count N and each kind, a fresh server is started, warmed up (a
# few connections of that kind opened and closed), its resident memory read
# (VmRSS, summed over the server's processes: nginx's master and workers),
# then `corral bench idle` opens N connections, each after one exchange:
#   rpc    one `ping`
#   http   one keep-alive GET of the 1 KiB file
#   chat   `login` as a user of its own, then `subscribe` to one channel
# and holds them open; once they are all open and the server has settled,
# the resident memory is read again. The line gives the growth per
# connection, in KiB (1024 bytes), and whether every connection stayed open.
# The idle and header timeouts are raised to 10 minutes so that no
# connection is closed while it is measured (timers stay armed as usual).
#
# The servers and the generator each need a file descriptor per connection:
# the script raises its soft limit to the hard one (`ulimit -Hn`) and leaves
# out the counts that do not fit under it. Beyond ~28,000 connections the
# generator spreads over several loopback source addresses.
#
# BASELINE=PATH also measures the corral binary at PATH (an older build,
# say) as the server, in the same run: its lines are named base.*.
#
# Usage: [BASELINE=PATH] scripts/bench-memory.sh [CONNS...]   (default: 2000 10000)
# Needs: apt-get install -y nginx (without it nginx is left out)
set -euo pipefail
cd "$(dirname "$0")/.."
COUNTS=("$@")
[[ ${#COUNTS[@]} -gt 0 ]] || COUNTS=(2000 10000)
PEERS=${PEERS:-../shared/peers}
# Idle HTTP/1 connections hibernate after [http] hibernate_after_ms (1 s),
# and the allocator returns freed pages a little later: 6 s sees both.
SETTLE=${SETTLE:-6}
ulimit -n "$(ulimit -Hn)"
FD_LIMIT=$(ulimit -n)
SCRATCH=$(mktemp -d /tmp/corral-bench-memory.XXXXXX)
chmod 755 "$SCRATCH" # nginx workers run as another user
cargo build --release -q --bin corral
CORRAL=${CARGO_TARGET_DIR:-target}/release/corral
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$SCRATCH"; }
trap cleanup EXIT

mkdir -p "$SCRATCH/nginx/logs" "$SCRATCH/nginx/tmp" "$SCRATCH/corral" "$SCRATCH/data"
python3 "$PEERS/nginx/gen-docroot.py" "$SCRATCH/nginx/html" >/dev/null
cp "$SCRATCH/nginx/html/1k.txt" "$SCRATCH/corral/"
# The peer's nginx config, with room for the connections (worker_connections).
sed "s/worker_connections [0-9]*;/worker_connections $FD_LIMIT;/" \
  "$PEERS/nginx/nginx.conf" >"$SCRATCH/nginx.conf"
cat >"$SCRATCH/corral.toml" <<TOML
[node]
data_dir = "$SCRATCH/data"
[[listener]]
name = "rpc"
protocol = "rpc"
port = 17070
max_connections = 1000000
[[listener]]
name = "http"
protocol = "http"
port = 18090
max_connections = 1000000
[rpc]
idle_timeout_ms = 600000
[http]
docroot = "$SCRATCH/corral"
idle_timeout_ms = 600000
header_read_timeout_ms = 600000
[log]
level = "warn"
TOML

# Resident KiB of PID and its children (nginx's workers).
rss() {
  local p
  for p in "$1" $(pgrep -P "$1" || true); do
    awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null
  done | awk '{s += $1} END {print s + 0}'
}
wait_port() { # port: until it accepts
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on port $1" >&2
  return 1
}
start_server() { # kind: sets SERVER
  case $1 in
  nginx)
    nginx -p "$SCRATCH/nginx/" -c "$SCRATCH/nginx.conf" </dev/null >/dev/null 2>&1 &
    SERVER=$!
    pids+=("$SERVER")
    wait_port 18080
    ;;
  *)
    local bin=$CORRAL
    [[ $1 == base ]] && bin=$BASELINE
    rm -rf "$SCRATCH/data" && mkdir -p "$SCRATCH/data"
    "$bin" serve --config "$SCRATCH/corral.toml" </dev/null >>"$SCRATCH/corral.log" 2>&1 &
    SERVER=$!
    pids+=("$SERVER")
    wait_port 17070 && wait_port 18090
    ;;
  esac
}
stop_server() {
  kill "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
}
# The generator's arguments for server NAME, kind KIND.
gen_args() {
  case $1/$2 in
  nginx/http) echo "--kind http --addr 127.0.0.1:18080 --path /1k.txt" ;;
  */http) echo "--kind http --addr 127.0.0.1:18090 --path /1k.txt" ;;
  */rpc) echo "--kind rpc --addr 127.0.0.1:17070" ;;
  */chat) echo "--kind chat --addr 127.0.0.1:17070" ;;
  esac
}
measure() { # server kind count
  local server=$1 kind=$2 n=$3 sources before after gen out ready done_line
  # Descriptors: the server's and the generator's own, plus some spare.
  if ((n + 64 > FD_LIMIT)); then
    echo "$server.$kind conns=$n skipped: over the file descriptor limit ($FD_LIMIT)"
    return
  fi
  # More than one source address only where one has too few ports.
  sources=$((n > 20000 ? (n + 19999) / 20000 : 0))
  start_server "$server"
  # Warm-up: connections of this kind opened and closed, unmeasured.
  # shellcheck disable=SC2046
  $CORRAL bench idle $(gen_args "$server" "$kind") --connections 200 --hold 0 \
    --user-prefix warm >/dev/null 2>&1 || true
  sleep "$SETTLE"
  before=$(rss "$SERVER")
  out="$SCRATCH/gen.out"
  # shellcheck disable=SC2046
  $CORRAL bench idle $(gen_args "$server" "$kind") --connections "$n" \
    --sources "$sources" --hold 300 >"$out" 2>"$SCRATCH/gen.err" &
  gen=$!
  pids+=("$gen")
  for _ in $(seq 1200); do
    grep -q '^ready' "$out" && break
    kill -0 "$gen" 2>/dev/null || break
    sleep 0.1
  done
  sleep "$SETTLE"
  after=$(rss "$SERVER")
  kill -TERM "$gen" 2>/dev/null || true
  wait "$gen" 2>/dev/null || true
  ready=$(grep '^ready' "$out" || echo "ready failed: generator gave no line")
  done_line=$(grep '^done' "$out" || echo "done ?")
  stop_server
  # Per connection opened (the ready line says how many).
  awk -v name="$server.$kind" -v n="$n" -v b="$before" -v a="$after" \
    -v ready="$ready" -v done_line="$done_line" 'BEGIN {
      k = n
      if (match(ready, /connections=[0-9]+/)) k = substr(ready, RSTART + 12, RLENGTH - 12) + 0
      per = k > 0 ? (a - b) / k : 0
      printf "%s conns=%d rss_before_kib=%d rss_after_kib=%d kib_per_conn=%.2f (%s; %s)\n",
        name, k, b, a, per, ready, done_line
    }'
  if [[ -s "$SCRATCH/gen.err" ]]; then sed 's/^/  generator: /' "$SCRATCH/gen.err"; fi
}

HAVE_NGINX=1
command -v nginx >/dev/null || { HAVE_NGINX=0; echo "nginx not installed: left out"; }
echo "fd limit $FD_LIMIT; counts: ${COUNTS[*]}"
for n in "${COUNTS[@]}"; do
  measure corral rpc "$n"
  measure corral http "$n"
  measure corral chat "$n"
  if [[ -n ${BASELINE:-} ]]; then
    measure base rpc "$n"
    measure base http "$n"
    measure base chat "$n"
  fi
  if ((HAVE_NGINX)); then measure nginx http "$n"; fi
done

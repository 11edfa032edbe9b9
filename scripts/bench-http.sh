#!/usr/bin/env bash
# Compares corral's static files with nginx (../shared/peers/nginx) and the
# minimal hyper server (../shared/peers/hyper-min: one 1 KiB body from
# memory, the floor of any hyper server's cost), in one run, interleaved,
# with wrk -t1 -c64 (keep-alive), in two layouts (scripts/bench-lib.sh):
# pinned (the servers on CPU 0, wrk on CPU 1; the headline) and colocated
# (all on both CPUs):
#   1k        1k.txt (1 KiB); hyper-min's fixed 1 KiB body beside it
#   100k      100k.txt (100 KiB of text), no compression
#   100k.gzip 100k.txt with Accept-Encoding: gzip. nginx gzips on the fly
#             (level 1) and from its gzip_static copies (/pre/); corral
#             serves the gzip variant its file cache made once (its docroot
#             has no .gz copies, so the variant is its own).
# corral runs with its default of one runtime thread per CPU it may use (one,
# pinned); colocated, also with worker_threads = 1 (corral1t.*). nginx runs
# its peer config's two worker processes. Both trust their file caches for
# 60 s (nginx: open_file_cache_valid 60s; corral: [cache] revalidate_ms =
# 60000) instead of a stat per request.
#
# Each server starts in its own session (setsid), as a service manager
# starts a service in its own cgroup: with the kernel's autogroup scheduling
# a session is one scheduling group, so wrk (run from this script's session)
# and a server share the cores group against group. SHARED_SESSION=1 starts
# them in this script's session instead, as ../shared/peers/run-all.sh does:
# there every thread competes with wrk on its own, which costs a server with
# two busy threads (corral's default) about a fifth of its rate here.
# Each line gives wrk's requests per second and the server's CPU time per
# response (user and system, from /proc over the run): the steadier figure
# on a shared machine. Then the medians and the ratios the goals are set on.
# Usage: [SHARED_SESSION=1] [LAYOUTS="pinned colocated"] scripts/bench-http.sh [RUNS=3] [SECS=5]
# Needs: apt-get install -y nginx wrk; hyper-min built (../shared/peers/README.md)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
SECS=${2:-5}
PEER_BIN=${PEER_BIN:-/tmp/corral-peers/target/release}
PEERS=${PEERS:-../shared/peers}
SCRATCH=$(mktemp -d /tmp/corral-bench-http.XXXXXX)
chmod 755 "$SCRATCH" # nginx workers run as another user
cargo build --release -q --bin corral
# layout, medians; LAYOUTS
. scripts/bench-lib.sh
CORRAL=target/release/corral
OUT=$SCRATCH/figures.txt
pids=()
stop_servers() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; pids=(); }
cleanup() { stop_servers; rm -rf "$SCRATCH"; }
trap cleanup EXIT

mkdir -p "$SCRATCH/nginx/logs" "$SCRATCH/nginx/tmp" "$SCRATCH/corral"
python3 "$PEERS/nginx/gen-docroot.py" "$SCRATCH/nginx/html" >/dev/null
cp "$SCRATCH/nginx/html/1k.txt" "$SCRATCH/nginx/html/100k.txt" "$SCRATCH/corral/"
cat >"$SCRATCH/corral.toml" <<TOML
[[listener]]
name = "http"
protocol = "http"
port = 18090
[http]
docroot = "$SCRATCH/corral"
max_requests_per_connection = 100000
[cache]
revalidate_ms = 60000
[chat]
enabled = false
[log]
level = "warn"
TOML
sed 's/^port = 18090$/port = 18091/' "$SCRATCH/corral.toml" >"$SCRATCH/corral1t.toml"
# A background job of a script is no process-group leader, so setsid runs
# the server in a new session in place: $! stays the server's PID.
SESSION=(setsid)
WHERE="their own sessions"
if [[ "${SHARED_SESSION:-0}" == 1 ]]; then SESSION=() WHERE="this script's session"; fi
echo "servers in $WHERE"
HYPER=
[ -x "$PEER_BIN/hyper-min" ] && HYPER=$PEER_BIN/hyper-min || echo "# $PEER_BIN/hyper-min missing: no hyper lines" >&2

# CPU ticks (user, system) so far of PID and its children, threads included.
user_sys_ticks() {
  local p
  for p in "$1" $(pgrep -P "$1" || true); do
    sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12, $13}'
  done | awk '{u += $1; s += $2} END {print u + 0, s + 0}'
}
HZ=$(getconf CLK_TCK)
fig() { # name server-pid url [wrk args]: req/s, and the server's CPU per response
  local name=$1 pid=$2 url=$3; shift 3
  [ -n "$pid" ] || return 0
  local before after out
  before=$(user_sys_ticks "$pid")
  out=$("${GEN[@]}" wrk -t1 -c64 -d"${SECS}s" --latency "$@" "$url")
  after=$(user_sys_ticks "$pid")
  echo "$out" | awk -v name="$layout.$name" -v before="$before" -v after="$after" -v hz="$HZ" '
    /requests in/ {n = $1}
    /^Requests\/sec:/ {rps = $2}
    /Non-2xx|Socket errors/ {err = err " ERR:" $0}
    END {
      split(before, b, " "); split(after, a, " ")
      us = n > 0 ? 1e6 / hz / n : 0
      printf "%s rps=%s cpu_us/resp=%.2f (user %.2f, sys %.2f)%s\n", name, rps,
        (a[1] - b[1] + a[2] - b[2]) * us, (a[1] - b[1]) * us, (a[2] - b[2]) * us, err
    }'
}

GZ=(-H 'Accept-Encoding: gzip')
for layout in $LAYOUTS; do
  layout "$layout"
  "${SESSION[@]}" "${SRV[@]}" nginx -p "$SCRATCH/nginx/" -c "$(realpath "$PEERS/nginx/nginx.conf")" </dev/null &
  NGINX=$!; pids+=($NGINX)
  "${SESSION[@]}" "${SRV[@]}" "$CORRAL" serve --config "$SCRATCH/corral.toml" >"$SCRATCH/corral.log" 2>&1 </dev/null &
  CORRAL_PID=$!; pids+=($CORRAL_PID)
  ports=(18080 18090)
  CORRAL1T= HYPER_PID=
  if [ "$layout" = colocated ]; then
    CORRAL__NODE__WORKER_THREADS=1 "${SESSION[@]}" "$CORRAL" serve --config "$SCRATCH/corral1t.toml" \
      >"$SCRATCH/corral1t.log" 2>&1 </dev/null &
    CORRAL1T=$!; pids+=($CORRAL1T); ports+=(18091)
  fi
  if [ -n "$HYPER" ]; then
    "${SESSION[@]}" "${SRV[@]}" "$HYPER" 127.0.0.1:18081 >/dev/null 2>&1 </dev/null &
    HYPER_PID=$!; pids+=($HYPER_PID); ports+=(18081)
  fi
  for port in "${ports[@]}"; do
    for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/1k.txt" && break; sleep 0.1; done
  done
  # A short warm-up of every server and file, not measured: the first run
  # of each otherwise pays for its process's first large responses.
  for port in "${ports[@]}"; do
    for path in 1k.txt 100k.txt pre/100k.txt; do
      [[ $port != 18080 && $path == pre/* ]] && continue
      "${GEN[@]}" wrk -t1 -c64 -d2s "${GZ[@]}" "http://127.0.0.1:$port/$path" >/dev/null
    done
  done
  for i in $(seq "$RUNS"); do
    echo "# $layout run $i"
    fig nginx.1k "$NGINX" http://127.0.0.1:18080/1k.txt
    fig corral.1k "$CORRAL_PID" http://127.0.0.1:18090/1k.txt
    fig corral1t.1k "$CORRAL1T" http://127.0.0.1:18091/1k.txt
    fig hyper.1k "$HYPER_PID" http://127.0.0.1:18081/
    fig nginx.100k "$NGINX" http://127.0.0.1:18080/100k.txt
    fig corral.100k "$CORRAL_PID" http://127.0.0.1:18090/100k.txt
    fig nginx.100k.gzip_fly "$NGINX" http://127.0.0.1:18080/100k.txt "${GZ[@]}"
    fig nginx.100k.gzip_static "$NGINX" http://127.0.0.1:18080/pre/100k.txt "${GZ[@]}"
    fig corral.100k.gzip "$CORRAL_PID" http://127.0.0.1:18090/100k.txt "${GZ[@]}"
    fig corral1t.100k.gzip "$CORRAL1T" http://127.0.0.1:18091/100k.txt "${GZ[@]}"
  done | tee -a "$OUT"
  stop_servers
done

medians "$OUT" corral.1k/nginx.1k corral.1k/hyper.1k corral.100k/nginx.100k \
  corral.100k.gzip/nginx.100k.gzip_static

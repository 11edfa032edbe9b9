#!/bin/sh
# SCTP vs TCP echo throughput, relative figures: a node with an SCTP and a
# TCP RPC listener, and `corral bench rpc` against each, interleaved, all in
# one scripts/sctp-vm guest (this script runs under busybox sh there).
#
# From the repo root, on the host:
#   cargo build --release
#   SCTP_VM_FILES="$PWD/target/release/corral" SCTP_VM_ENV="CORRAL BENCH_ARGS" \
#     CORRAL="$PWD/target/release/corral" scripts/sctp-vm scripts/bench-sctp-vm.sh
# Knobs: CORRAL (the binary), BENCH_ARGS (extra `bench rpc` arguments),
# RUNS (default 3), SECS (default 5).
set -eu
CORRAL=${CORRAL:-target/release/corral}
RUNS=${RUNS:-3}
SECS=${SECS:-5}
BENCH_ARGS=${BENCH_ARGS:---concurrency 8 --in-flight 16 --size 64}
cat > /tmp/bench.toml <<'TOML'
[[listener]]
name = "rpc-tcp"
transport = "tcp"
port = 17070
[[listener]]
name = "rpc-sctp"
transport = "sctp"
port = 17071
[log]
level = "warn"
TOML
"$CORRAL" serve --config /tmp/bench.toml > /tmp/serve.log 2>&1 &
SERVE=$!
trap 'kill $SERVE 2>/dev/null || true' EXIT
# Wait until both listeners answer.
for t in tcp sctp; do
  port=17070; [ $t = sctp ] && port=17071
  i=0
  until "$CORRAL" call ping --transport $t --addr 127.0.0.1:$port --timeout 2 >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 100 ] || { cat /tmp/serve.log; exit 1; }
    sleep 0.2
  done
done
echo "bench: echo, $BENCH_ARGS, ${SECS}s per run, $RUNS runs, interleaved"
r=1
while [ $r -le "$RUNS" ]; do
  for t in tcp sctp; do
    port=17070; [ $t = sctp ] && port=17071
    # shellcheck disable=SC2086
    line=$("$CORRAL" bench rpc --transport $t --addr 127.0.0.1:$port --cmd echo \
      --requests 100000000 --duration "$SECS" $BENCH_ARGS 2>&1 | grep -E 'throughput|errors|latency' | tr -s ' ' | tr '\n' ' ')
    echo "run $r $t: $line"
  done
  r=$((r + 1))
done

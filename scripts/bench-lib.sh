# Sourced by the bench scripts: what they share.
#
# ticks PID          the CPU ticks (user + system) the process and its
#                    children (nginx's workers, Python's pool) have used
# cpu PID CMD...     runs CMD, prints its stdout and, after it,
#                    srv_cpu=<the % of one core PID used meanwhile>
# layout NAME        sets SRV and GEN, the command prefixes that place the
#                    servers and the load generators for layout NAME:
#                      pinned     servers on CPU $SRV_CPUS (0), generators on
#                                 CPU $GEN_CPUS (1), with taskset: a server's
#                                 own efficiency, the headline
#                      colocated  everything on every CPU, competing
#                    $LAYOUTS (default "pinned colocated") lists the layouts
#                    a script measures, in order.
# summarize NAME 'JSON srv_cpu=N%'
#                    one figure line from `corral bench rpc|chat --json`
#                    and cpu's figure: NAME rate=... p50_us p99_us errors
#                    (a chat line's rate: deliveries per second, or
#                    acknowledged publishes when nobody subscribed)
# medians FILE A/B...  the median rate of each figure over the runs (from
#                    lines "<layout>.<figure> <rate|rps|delivered_per_s>=N
#                    ..."), then, per layout, the ratio of figure A's median
#                    to figure B's for each A/B given.
ticks() {
  local p
  for p in "$1" $(pgrep -P "$1" || true); do sed 's/.*) //' "/proc/$p/stat" 2>/dev/null; done |
    awk '{t += $12 + $13} END {print t + 0}'
}
cpu() {
  local pid=$1 t0 t1 s0 s1 out; shift
  t0=$(ticks "$pid"); s0=$(date +%s.%N)
  out=$("$@" 2>/dev/null) || true
  t1=$(ticks "$pid"); s1=$(date +%s.%N)
  echo "$out srv_cpu=$(python3 -c "print('%.0f%%' % (($t1-$t0)/$(getconf CLK_TCK)/($s1-$s0)*100))")"
}

summarize() { # name json+cpu: one figure line
  python3 -c '
import json, sys
name, line = sys.argv[1], sys.argv[2]
j, cpu = line.rsplit(" ", 1)
try:
    d = json.loads(j)
except ValueError:
    print(name, "failed:", j); sys.exit()
l = d["latency_us"]
if "rps" in d:
    print(name, "rate=%d p50_us=%.0f p99_us=%.0f errors=%d %s" % (d["rps"], l["p50"], l["p99"], d["errors"], cpu))
else:
    # A fan-out rate is what the subscribers got; with none, the publishes.
    rate = d["delivered_per_s"] or d["acked_per_s"]
    print(name, "rate=%d acked_per_s=%d p50_us=%.0f p99_us=%.0f missing=%d errors=%d %s" % (
        rate, d["acked_per_s"], l["p50"], l["p99"], d["missing"], d["errors"], cpu))' "$1" "$2"
}

LAYOUTS=${LAYOUTS:-pinned colocated}
layout() {
  case $1 in
    pinned) SRV=(taskset -c "${SRV_CPUS:-0}"); GEN=(taskset -c "${GEN_CPUS:-1}") ;;
    colocated) SRV=(); GEN=() ;;
    *) echo "unknown layout $1 (pinned, colocated)" >&2; return 1 ;;
  esac
}

medians() {
  python3 - "$LAYOUTS" "$@" <<'PY'
import re, statistics, sys
layouts, path, pairs = sys.argv[1].split(), sys.argv[2], sys.argv[3:]
rates = {}
for line in open(path):
    m = re.match(r"(\S+) (?:rate|rps|delivered_per_s)=([0-9.]+)", line)
    if m:
        rates.setdefault(m.group(1), []).append(float(m.group(2)))
print("# medians")
med = {k: statistics.median(v) for k, v in rates.items()}
for k, v in med.items():
    print("%s median=%d runs=%s" % (k, v, "/".join("%d" % x for x in rates[k])))
print("# ratios of the medians")
for layout in layouts:
    for pair in pairs:
        a, b = pair.split("/")
        ka, kb = layout + "." + a, layout + "." + b
        if ka in med and kb in med and med[kb] > 0:
            print("%s %s / %s = %.2f" % (layout, a, b, med[ka] / med[kb]))
PY
}

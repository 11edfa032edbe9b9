# Sourced by the bench scripts: what they share.
#
# ticks PID          the CPU ticks (user + system) the process has used
# cpu PID CMD...     runs CMD, prints its stdout and, after it,
#                    srv_cpu=<the % of one core PID used meanwhile>
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
cpu() {
  local pid=$1 t0 t1 s0 s1 out; shift
  t0=$(ticks "$pid"); s0=$(date +%s.%N)
  out=$("$@" 2>/dev/null) || true
  t1=$(ticks "$pid"); s1=$(date +%s.%N)
  echo "$out srv_cpu=$(python3 -c "print('%.0f%%' % (($t1-$t0)/$(getconf CLK_TCK)/($s1-$s0)*100))")"
}

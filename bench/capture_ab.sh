#!/usr/bin/env bash
# A/B of two capture builds on bench/loadgen.c's loops, with the kernel's BPF statistics:
# per repetition, no tracer, then build A, then build B (interleaved, so the machine's drift
# hits both alike), each capture at its default configuration. Prints the loop rates and, per
# program, its runs and ns per run as capture's summary reports them (a tail-called program's
# time counts in its caller's: the exec program's figure includes its fd readers).
#
#   bench/capture_ab.sh A_BINARY B_BINARY [--secs 3] [--reps 5] [--workloads "exec open connect getppid"]
#
# The per-program ns/run is the figure to compare on a busy machine: loop rates move with other
# load, the kernel time of a program much less. Needs root; turns kernel.bpf_stats_enabled on
# for the run and restores it (the statistics add ~47 ns to every program run meanwhile).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n '2,11p' "$0" >&2; exit 2; }
a=$1 b=$2; shift 2
secs=3 reps=5 workloads="exec open connect getppid"
while [ $# -gt 0 ]; do
  case "$1" in
    --secs) secs=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --workloads) workloads=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "bench/capture_ab.sh needs root (eBPF)" >&2; exit 1; }
mkdir -p target/bench
gcc -O2 -o target/bench/loadgen bench/loadgen.c
work=$(mktemp -d)
old_stats=$(cat /proc/sys/kernel/bpf_stats_enabled)
pid=""
cleanup() {
  [ -n "$pid" ] && kill -INT "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  sysctl -q kernel.bpf_stats_enabled="$old_stats"
  rm -rf "$work"
}
trap cleanup EXIT
sysctl -q kernel.bpf_stats_enabled=1
echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), kernel $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "A=$a B=$b"
for w in $workloads; do
  for rep in $(seq 1 "$reps"); do
    for mode in none A B; do
      dir=$work/$w-$mode-$rep; mkdir -p "$dir"
      if [ "$mode" != none ]; then
        bin=$a; [ "$mode" = B ] && bin=$b
        "$bin" --output "$dir/traces" >"$dir/summary" 2>"$dir/err" & pid=$!
        for _ in $(seq 1 600); do grep -q "recording with" "$dir/err" 2>/dev/null && break; sleep 0.1; done
      fi
      rate=$(target/bench/loadgen "$w" "$secs" 2 | sed -n 's/.*rate=\([0-9.]*\).*/\1/p')
      if [ -n "$pid" ]; then kill -INT "$pid"; wait "$pid" || true; pid=""; fi
      echo "RATE workload=$w mode=$mode rep=$rep ops_per_s=$rate"
      if [ "$mode" != none ]; then
        sed -n 's/^ *\([a-z0-9_]*\) *\([0-9]*\) runs *\([0-9.]*\) ns\/run.*/\1 \2 \3/p' "$dir/summary" |
          while read -r prog runs ns; do
            echo "COST workload=$w mode=$mode rep=$rep program=$prog runs=$runs ns_per_run=$ns"
          done
      fi
      rm -rf "$dir"
    done
  done
done

#!/usr/bin/env bash
# Capture overhead benchmark: each workload runs with no tracer, with `capture` (default
# configuration), with `capture --syscalls full` (heaviest mode) and with bpftrace on the
# equivalent tracepoints (counting in the kernel, and printing every event), all in one run; the
# median of --reps runs is compared to the no-tracer baseline.
#
#   bench/capture.sh [--secs 5] [--reps 3] [--workers 2] [--workloads "exec open getppid connect dns"]
#
# Needs root. Prints one table and one machine-readable `BENCH …` line per workload and mode.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=5 reps=3 workers=$(nproc) workloads="exec open getppid connect dns"
while [ $# -gt 0 ]; do
  case "$1" in
    --secs) secs=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --workloads) workloads=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "bench/capture.sh needs root (eBPF)" >&2; exit 1; }

bash scripts/setup.sh --bench
cargo build --release -p capture >&2
mkdir -p target/bench
gcc -O2 -o target/bench/loadgen bench/loadgen.c
CAPTURE=target/release/capture
LOADGEN=target/bench/loadgen
work=$(mktemp -d)
trap 'pkill -INT -f "$CAPTURE --output $work" 2>/dev/null || true; pkill -INT bpftrace 2>/dev/null || true; rm -rf "$work"' EXIT

wait_for() { # file pattern seconds
  for _ in $(seq 1 $(( $3 * 10 ))); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "timed out waiting for '$2' in $1" >&2; cat "$1" >&2; return 1
}

# The tracepoints bpftrace attaches to for each workload: what capture records for it.
tracepoints() {
  case "$1" in
    exec) echo 'tracepoint:sched:sched_process_exec,tracepoint:sched:sched_process_fork,tracepoint:sched:sched_process_exit' ;;
    open) echo 'tracepoint:syscalls:sys_exit_openat' ;;
    getppid) echo 'tracepoint:raw_syscalls:sys_exit' ;;
    connect) echo 'tracepoint:syscalls:sys_enter_connect' ;;
    dns) echo 'tracepoint:syscalls:sys_enter_sendto,tracepoint:syscalls:sys_exit_recvfrom' ;;
  esac
}

# run_one WORKLOAD MODE REP -> prints "rate events lost bytes cpu_s"
run_one() {
  local w=$1 mode=$2 rep=$3 dir="$work/$1-$2-$3" pid rate TP
  TP=$(tracepoints "$w")
  mkdir -p "$dir"
  case "$mode" in
    none) ;;
    capture)
      "$CAPTURE" --output "$dir/traces" >"$dir/summary" 2>"$dir/err" & pid=$!
      wait_for "$dir/err" "recording with" 30 ;;
    capture-full)
      "$CAPTURE" --syscalls full --output "$dir/traces" >"$dir/summary" 2>"$dir/err" & pid=$!
      wait_for "$dir/err" "recording with" 30 ;;
    bpftrace-count)
      bpftrace -e "$TP { @[probe] = count(); }" >"$dir/bt" 2>&1 & pid=$!
      wait_for "$dir/bt" "Attaching" 60 ;;
    bpftrace-print)
      bpftrace -e "$TP { printf(\"%d %d %s\\n\", pid, tid, comm); }" >"$dir/bt" 2>&1 & pid=$!
      wait_for "$dir/bt" "Attaching" 60 ;;
  esac
  rate=$("$LOADGEN" "$w" "$secs" "$workers" | sed -n 's/.*rate=\([0-9.]*\).*/\1/p')
  local events=- lost=- bytes=- cpu=-
  if [ "$mode" != none ]; then
    kill -INT "$pid"; wait "$pid" || true
  fi
  if [ "${mode%-full}" = capture ]; then
    events=$(sed -n 's/^  events *\([0-9]*\) .*/\1/p' "$dir/summary")
    lost=$(sed -n 's/^  events lost *\([0-9]*\) .*/\1/p' "$dir/summary")
    bytes=$(sed -n 's/^  bytes written *\([0-9]*\) .*/\1/p' "$dir/summary")
    cpu=$(sed -n 's/^  cpu (recording) *\([0-9.]*\) s user, \([0-9.]*\) s system.*/\1 \2/p' "$dir/summary" | awk '{print $1+$2}')
  fi
  rm -rf "$dir/traces"
  echo "$rate $events $lost $bytes $cpu"
}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

modes="none capture capture-full bpftrace-count bpftrace-print"
printf '%-8s %-15s %14s %7s %10s %6s %11s %14s\n' workload mode "ops/s(median)" ratio events/s lost bytes/event "cpu s/M events"
for w in $workloads; do
  # Modes are interleaved within each repetition, so drift in the machine's speed (other VMs,
  # thermal, page cache) hits every mode alike instead of biasing whichever ran last.
  for mode in $modes; do : > "$work/rates-$mode"; : > "$work/extra-$mode"; done
  for rep in $(seq 1 "$reps"); do
    for mode in $modes; do
      read -r rate events lost bytes cpu < <(run_one "$w" "$mode" "$rep")
      echo "$rate" >> "$work/rates-$mode"
      echo "$events $lost $bytes $cpu" >> "$work/extra-$mode"
    done
  done
  base=$(median < "$work/rates-none")
  for mode in $modes; do
    med=$(median < "$work/rates-$mode")
    ratio=$(awk -v a="$med" -v b="$base" 'BEGIN {printf "%.3f", a/b}')
    # events/s, lost, bytes/event and CPU per million events summed over the repetitions.
    read -r ev lo by cp < <(awk '{e+=$1; l+=$2; b+=$3; c+=$4} END {printf "%d %d %d %.3f\n", e, l, b, c}' "$work/extra-$mode")
    if [ "${mode%-full}" = capture ] && [ "$ev" -gt 0 ]; then
      evs=$(awk -v e="$ev" -v r="$reps" -v s="$secs" 'BEGIN {printf "%.0f", e/(r*s)}')
      bpe=$(awk -v b="$by" -v e="$ev" 'BEGIN {printf "%.1f", b/e}')
      cpm=$(awk -v c="$cp" -v e="$ev" 'BEGIN {printf "%.2f", c/e*1e6}')
    else
      evs=- bpe=- cpm=-; [ "${mode%-full}" = capture ] || lo=-
    fi
    printf '%-8s %-15s %14.0f %7s %10s %6s %11s %14s\n' "$w" "$mode" "$med" "$ratio" "$evs" "$lo" "$bpe" "$cpm"
    echo "BENCH suite=capture workload=$w mode=$mode ops_per_s=$med ratio=$ratio events_per_s=$evs lost=$lo bytes_per_event=$bpe cpu_s_per_m_events=$cpm secs=$secs reps=$reps workers=$workers" >> "$work/lines"
  done
done
echo
cat "$work/lines"

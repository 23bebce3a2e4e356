#!/usr/bin/env bash
# needle's capture performance suite: what recording costs a host, side by side with a peer
# measured in the same run. Four scenarios:
#
#   loops       micro loops (bench/loadgen.c: exec, open, getppid, connect, dns) with no tracer,
#               capture (default configuration), capture --syscalls full (heaviest mode), and
#               bpftrace 0.17 on the equivalent tracepoints (counting in the kernel; printing
#               every event): throughput ratios to the no-tracer baseline, medians of --reps.
#   redis       redis-server + redis-benchmark -t set,get on 127.0.0.1, the same five modes
#               (Falco publishes its cost on this workload).
#   saturation  capture --syscalls full while getppid runs at fixed rates: the highest rate
#               with zero lost events and the loss curve above it, for several ring buffer
#               sizes (the reader is woken once 1/8 of the ring waits: the batch size).
#   footprint   capture's CPU seconds per million events and peak RSS at each saturation
#               step, and bytes/event on disk per kind on the lab's real traces.
#
#   bench/capture.sh [--secs 5] [--reps 3] [--workers N] [--scenarios "loops redis saturation footprint"]
#                    [--workloads "exec open getppid connect dns"] [--rates "100000 ..."] [--rings "1024 4096 16384"]
#                    [--smoke]
#
# --smoke runs every scenario in a tiny configuration (a test does, so the suite cannot rot).
# CAPTURE=path uses that capture binary instead of building the release one. Needs root. Prints
# a table per scenario, one `BENCH …` line per measurement and one `SUMMARY …` line per scenario.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=5 reps=3 workers=$(nproc)
scenarios="loops redis saturation footprint"
workloads="exec open getppid connect dns"
rates="100000 200000 300000 400000 500000 700000 850000 1000000"
rings="1024 4096 16384"
redis_requests=200000
profile=bench   # cargo profile of the bytes bench (--smoke: dev, no release build)
while [ $# -gt 0 ]; do
  case "$1" in
    --secs) secs=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --scenarios) scenarios=$2; shift 2 ;;
    --workloads) workloads=$2; shift 2 ;;
    --rates) rates=$2; shift 2 ;;
    --rings) rings=$2; shift 2 ;;
    --smoke) secs=1 reps=1 workloads="exec open" rates="20000 50000" rings="4096" redis_requests=4000 profile=dev; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "bench/capture.sh needs root (eBPF)" >&2; exit 1; }

bash scripts/setup.sh --bench
if [ -z "${CAPTURE:-}" ]; then
  cargo build --release -p capture >&2
  CAPTURE=target/release/capture
fi
mkdir -p target/bench
gcc -O2 -o target/bench/loadgen bench/loadgen.c
LOADGEN=target/bench/loadgen
work=$(mktemp -d)
redis_pid=""
cleanup() {
  pkill -INT -f "$CAPTURE --output $work" 2>/dev/null || true
  pkill -INT -f "bpftrace -e" 2>/dev/null || true
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ)"

wait_for() { # file pattern seconds
  for _ in $(seq 1 $(( $3 * 10 ))); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "timed out waiting for '$2' in $1" >&2; cat "$1" >&2; return 1
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
summary_field() { # summary-file sed-expression
  sed -n "$2" "$1" | head -1
}

# start_tracer MODE DIR TRACEPOINTS [capture args...]: starts the tracer of MODE; sets tracer_pid.
start_tracer() {
  local mode=$1 dir=$2 tp=$3; shift 3
  tracer_pid=""
  case "$mode" in
    none) ;;
    capture|capture-full)
      local extra=()
      [ "$mode" = capture-full ] && extra=(--syscalls full)
      "$CAPTURE" --output "$dir/traces" "${extra[@]}" "$@" >"$dir/summary" 2>"$dir/err" & tracer_pid=$!
      wait_for "$dir/err" "recording with" 60 ;;
    bpftrace-count)
      bpftrace -e "$tp { @[probe] = count(); }" >"$dir/bt" 2>&1 & tracer_pid=$!
      wait_for "$dir/bt" "Attaching" 60 ;;
    bpftrace-print)
      bpftrace -e "$tp { printf(\"%d %d %s\\n\", pid, tid, comm); }" >"$dir/bt" 2>&1 & tracer_pid=$!
      wait_for "$dir/bt" "Attaching" 60 ;;
  esac
}

# stop_tracer MODE DIR: stops it; prints "events lost bytes cpu_s rss_kib secs" (dashes for
# peers; secs is how long capture recorded).
# Call it in this shell (not in $(…) or <(…)): it must wait for the tracer, its own child.
stop_tracer() {
  local mode=$1 dir=$2 rss=-
  [ -z "$tracer_pid" ] && { echo "- - - - - -"; return; }
  rss=$(awk '/VmHWM/ {print $2}' "/proc/$tracer_pid/status" 2>/dev/null || echo -)
  kill -INT "$tracer_pid"; wait "$tracer_pid" || true
  if [ "${mode%-full}" = capture ]; then
    local s=$dir/summary
    echo "$(summary_field "$s" 's/^  events *\([0-9]*\) .*/\1/p') \
$(summary_field "$s" 's/^  events lost *\([0-9]*\) .*/\1/p') \
$(summary_field "$s" 's/^  bytes written *\([0-9]*\) .*/\1/p') \
$(summary_field "$s" 's/^  cpu (recording) *\([0-9.]*\) s user, \([0-9.]*\) s system.*/\1 \2/p' | awk '{print $1+$2}') $rss \
$(summary_field "$s" 's/^  duration *\([0-9.]*\) s/\1/p')"
  else
    echo "- - - - - -"
  fi
  rm -rf "$dir/traces"
}

tracepoints() {
  case "$1" in
    exec) echo 'tracepoint:sched:sched_process_exec,tracepoint:sched:sched_process_fork,tracepoint:sched:sched_process_exit' ;;
    open) echo 'tracepoint:syscalls:sys_exit_openat' ;;
    getppid|redis) echo 'tracepoint:raw_syscalls:sys_exit' ;;
    connect) echo 'tracepoint:syscalls:sys_enter_connect' ;;
    dns) echo 'tracepoint:syscalls:sys_enter_sendto,tracepoint:syscalls:sys_exit_recvfrom' ;;
  esac
}

modes="none capture capture-full bpftrace-count bpftrace-print"

# report SCENARIO WORKLOAD UNIT: medians per mode from $work/rates-* and $work/extra-*.
report() {
  local scenario=$1 w=$2 unit=$3 base med ratio
  base=$(median < "$work/rates-none")
  for mode in $modes; do
    med=$(median < "$work/rates-$mode")
    ratio=$(awk -v a="$med" -v b="$base" 'BEGIN {printf "%.3f", a/b}')
    read -r ev lo by cp rss dur < <(awk '$1 != "-" {e+=$1; l+=$2; b+=$3; c+=$4; if ($5 > r) r = $5; d+=$6; n++}
      END {if (n) printf "%d %d %d %.3f %d %.3f\n", e, l, b, c, r, d; else print "- - - - - -"}' "$work/extra-$mode")
    local evs=- bpe=- cpm=- mib=-
    if [ "$ev" != - ] && [ "$ev" -gt 0 ]; then
      # Over the time capture recorded (the load runs for most of it).
      evs=$(awk -v e="$ev" -v d="$dur" 'BEGIN {printf "%.0f", (d > 0 ? e/d : 0)}')
      bpe=$(awk -v b="$by" -v e="$ev" 'BEGIN {printf "%.1f", b/e}')
      cpm=$(awk -v c="$cp" -v e="$ev" 'BEGIN {printf "%.2f", c/e*1e6}')
      mib=$(awk -v r="$rss" 'BEGIN {printf "%.0f", r/1024}')
    fi
    [ "$ev" = - ] && lo=-
    printf '%-8s %-15s %14.0f %7s %10s %9s %11s %10s %8s\n' "$w" "$mode" "$med" "$ratio" "$evs" "$lo" "$bpe" "$cpm" "$mib"
    echo "BENCH suite=capture scenario=$scenario workload=$w mode=$mode ${unit}=$med ratio=$ratio events_per_s=$evs lost=$lo bytes_per_event=$bpe cpu_s_per_m_events=$cpm peak_rss_mib=$mib secs=$secs reps=$reps workers=$workers" >> "$work/lines"
  done
}
header() { printf '%-8s %-15s %14s %7s %10s %9s %11s %10s %8s\n' workload mode "$1" ratio events/s lost bytes/event "cpu s/M ev" "rss MiB"; }

scenario_loops() {
  echo; echo "== loops (${secs}s x ${reps}, ${workers} workers; medians)"; header "ops/s(median)"
  for w in $workloads; do
    # Modes are interleaved within each repetition, so drift in the machine's speed hits every
    # mode alike instead of biasing whichever ran last.
    for mode in $modes; do : > "$work/rates-$mode"; : > "$work/extra-$mode"; done
    for rep in $(seq 1 "$reps"); do
      for mode in $modes; do
        local dir="$work/$w-$mode-$rep"; mkdir -p "$dir"
        start_tracer "$mode" "$dir" "$(tracepoints "$w")"
        "$LOADGEN" "$w" "$secs" "$workers" | sed -n 's/.*rate=\([0-9.]*\).*/\1/p' >> "$work/rates-$mode"
        stop_tracer "$mode" "$dir" >> "$work/extra-$mode"
      done
    done
    report loops "$w" ops_per_s
  done
  local worst
  worst=$(grep "scenario=loops" "$work/lines" | grep "mode=capture " | sed -n 's/.*workload=\([a-z]*\).*ratio=\([0-9.]*\).*/\1=\2/p' | tr '\n' ' ')
  echo "SUMMARY scenario=loops capture_ratio: $worst" >> "$work/summary"
}

scenario_redis() {
  local port=$(( 16379 + RANDOM % 1000 ))
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no >"$work/redis.log" 2>&1 & redis_pid=$!
  for _ in $(seq 1 50); do redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
  echo; echo "== redis (redis-benchmark -t set,get -n $redis_requests -c 50 on 127.0.0.1; ${reps} reps; medians)"; header "requests/s"
  for t in SET GET; do for mode in $modes; do : > "$work/rates-$mode-$t"; : > "$work/extra-$mode-$t"; done; done
  for rep in $(seq 1 "$reps"); do
    for mode in $modes; do
      local dir="$work/redis-$mode-$rep"; mkdir -p "$dir"
      start_tracer "$mode" "$dir" "$(tracepoints redis)"
      redis-benchmark -h 127.0.0.1 -p "$port" -t set,get -n "$redis_requests" -c 50 -q --csv > "$dir/out"
      stop_tracer "$mode" "$dir" > "$dir/stopped"
      for t in SET GET; do
        sed -n "s/^\"$t\",\"\([0-9.]*\)\".*/\1/p" "$dir/out" >> "$work/rates-$mode-$t"
        cat "$dir/stopped" >> "$work/extra-$mode-$t"
      done
    done
  done
  for t in SET GET; do
    for mode in $modes; do cp "$work/rates-$mode-$t" "$work/rates-$mode"; cp "$work/extra-$mode-$t" "$work/extra-$mode"; done
    report redis "$t" requests_per_s
  done
  kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; redis_pid=""
  local r
  r=$(grep "scenario=redis" "$work/lines" | grep -E "mode=(capture|capture-full|bpftrace-count|bpftrace-print) " | sed -n 's/.*workload=\([A-Z]*\) mode=\([a-z-]*\) .*ratio=\([0-9.]*\).*/\1:\2=\3/p' | tr '\n' ' ')
  echo "SUMMARY scenario=redis ratio: $r" >> "$work/summary"
}

scenario_saturation() {
  echo; echo "== saturation (capture --syscalls full; getppid at a fixed rate on ${workers} workers, ${secs}s a step)"
  printf '%9s %12s %12s %12s %10s %8s %11s %8s\n' ring_kib target_calls/s achieved "events/s(run)" lost loss_% "cpu s/M ev" "rss MiB"
  for ring in $rings; do
    local best=0
    for rate in $rates; do
      local dir="$work/sat-$ring-$rate"; mkdir -p "$dir"
      start_tracer capture-full "$dir" "" --ring-kib-per-cpu "$ring"
      local got; got=$("$LOADGEN" rate "$secs" "$workers" "$rate" | sed -n 's/.*rate=\([0-9.]*\).*/\1/p')
      stop_tracer capture-full "$dir" > "$dir/stopped"
      # The whole host is recorded (every syscall of every process while capture runs); the
      # offered load of the step is the calls/s the load generator achieved.
      read -r ev lo by cp rss dur < "$dir/stopped"
      local evs pct cpm mib
      evs=$(awk -v e="$ev" -v d="$dur" 'BEGIN {printf "%.0f", (d > 0 ? e/d : 0)}')
      pct=$(awk -v l="$lo" -v e="$ev" 'BEGIN {printf "%.2f", ((e+l) > 0 ? 100*l/(e+l) : 0)}')
      cpm=$(awk -v c="$cp" -v e="$ev" 'BEGIN {printf "%.2f", (e > 0 ? c/e*1e6 : 0)}')
      mib=$(awk -v r="$rss" 'BEGIN {printf "%.0f", r/1024}')
      # A step the load generator could not reach (the machine is saturated) may achieve less
      # than the step before it: the highest zero-loss rate is the highest achieved, not the last.
      [ "$lo" -eq 0 ] && best=$(awk -v a="$best" -v b="$got" 'BEGIN {print (b > a ? b : a)}')
      printf '%9s %12s %12.0f %12s %10s %8s %11s %8s\n' "$ring" "$rate" "$got" "$evs" "$lo" "$pct" "$cpm" "$mib"
      echo "BENCH suite=capture scenario=saturation ring_kib_per_cpu=$ring target_calls_per_s=$rate achieved_calls_per_s=$got events_per_s=$evs lost=$lo loss_pct=$pct cpu_s_per_m_events=$cpm peak_rss_mib=$mib secs=$secs workers=$workers" >> "$work/lines"
    done
    echo "SUMMARY scenario=saturation ring_kib_per_cpu=$ring highest_zero_loss_calls_per_s=$best" >> "$work/summary"
  done
}

scenario_footprint() {
  echo; echo "== footprint: bytes/event on disk per kind (the lab's real traces, re-encoded with the writer's settings)"
  cargo bench -q --profile "$profile" -p capture --bench bytes -- datasets/lab-train datasets/lab-validation 2>/dev/null | tee "$work/bytes"
  grep '^BENCH' "$work/bytes" >> "$work/lines" || true
  local all rss cpm
  all=$(sed -n 's/^BENCH suite=bytes kind=all .*file_bytes_per_event=\([0-9.]*\).*/\1/p' "$work/bytes")
  rss=$(grep "scenario=saturation" "$work/lines" | sed -n 's/.*peak_rss_mib=\([0-9]*\).*/\1/p' | sort -n | tail -1)
  cpm=$(grep "scenario=saturation" "$work/lines" | sed -n 's/.*lost=0 .*cpu_s_per_m_events=\([0-9.]*\).*/\1/p' | sort -g | tail -1)
  echo "SUMMARY scenario=footprint lab_bytes_per_event=${all:--} peak_rss_mib_saturation=${rss:--} cpu_s_per_m_events_zero_loss_max=${cpm:--}" >> "$work/summary"
}

: > "$work/lines"; : > "$work/summary"
for s in $scenarios; do
  case "$s" in
    loops|redis|saturation|footprint) "scenario_$s" ;;
    *) echo "unknown scenario $s" >&2; exit 2 ;;
  esac
done
echo
cat "$work/lines"
echo
cat "$work/summary"

#!/usr/bin/env bash
# A/B of two capture builds, alternated run by run on one machine (the suite's back-to-back
# halves drift apart on a busy machine): per run, capture starts, `loadgen LOOP SECS 2` runs
# once it is recording, VmHWM is read, SIGINT, and the summary gives rows and CPU per million.
#
#   sudo bench/capture_alternate.sh A_BIN B_BIN [PAIRS] [SECS] [LOOPS...]
#
# LOOPS default to `getppid dns`; every run is `--syscalls full`. Prints one line per run.
set -euo pipefail
A=$1 B=$2 PAIRS=${3:-3} SECS=${4:-3}
shift $(( $# < 4 ? $# : 4 ))
LOOPS=("${@:-getppid dns}")
[ ${#LOOPS[@]} -eq 1 ] && read -r -a LOOPS <<<"${LOOPS[0]}"
cd "$(dirname "$0")/.."
mkdir -p target/bench
[ -x target/bench/loadgen ] || gcc -O2 -o target/bench/loadgen bench/loadgen.c
for loop in "${LOOPS[@]}"; do
  for r in $(seq "$PAIRS"); do
    for side in A B; do
      bin=$A; [ "$side" = B ] && bin=$B
      out=$(mktemp -d) log=$(mktemp)
      "$bin" --output "$out" --syscalls full >"$log" 2>&1 &
      pid=$!
      for _ in $(seq 600); do grep -q "recording with" "$log" && break; sleep 0.2; done
      target/bench/loadgen "$loop" "$SECS" 2 >/dev/null
      hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
      kill -INT "$pid"; wait "$pid" || true
      rows=$(awk '/^  events / {print $2; exit}' "$log")
      lost=$(awk '/^  events lost/ {print $3; exit}' "$log")
      cpu=$(sed -n 's/.*(\([0-9.]*\) s per million events).*/\1/p' "$log")
      echo "loop=$loop run=$r side=$side rows=$rows lost=$lost cpu_s_per_M=$cpu vmhwm_mib=$((hwm / 1024)) load=$(cut -d' ' -f1 /proc/loadavg)"
      rm -rf "$out" "$log"
    done
  done
done

#!/usr/bin/env bash
# A loop's throughput with and without capture, alternated pair by pair on one machine (the
# suite measures its no-tracer baseline and each mode back to back; on a busy 2-core machine
# the baseline alone drifts by ±15 % between them). Per pair: `loadgen LOOP SECS 2` with no
# tracer, then under capture (its default configuration plus CAPTURE_ARGS). Needs root.
#
#   bench/ratio_alternate.sh CAPTURE_BIN [LOOP] [PAIRS] [SECS] [CAPTURE_ARGS...]
#
# LOOP defaults to dns, PAIRS to 6, SECS to 3. Prints one line per pair and the median ratio.
set -euo pipefail
BIN=$1 LOOP=${2:-dns} PAIRS=${3:-6} SECS=${4:-3}
shift $(( $# < 4 ? $# : 4 ))
cd "$(dirname "$0")/.."
mkdir -p target/bench
[ -x target/bench/loadgen ] || gcc -O2 -o target/bench/loadgen bench/loadgen.c
rate() { target/bench/loadgen "$LOOP" "$SECS" 2 | sed -n 's/.*rate=\([0-9.]*\).*/\1/p'; }
ratios=()
for r in $(seq "$PAIRS"); do
  none=$(rate)
  out=$(mktemp -d) log=$(mktemp)
  "$BIN" --output "$out" "$@" >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 600); do grep -q "recording with" "$log" && break; sleep 0.2; done
  cap=$(rate)
  kill -INT "$pid"; wait "$pid" || true
  lost=$(awk '/^  events lost/ {print $3; exit}' "$log")
  ratio=$(awk -v c="$cap" -v n="$none" 'BEGIN { printf "%.3f", c / n }')
  ratios+=("$ratio")
  echo "loop=$LOOP pair=$r none=$none capture=$cap ratio=$ratio lost=$lost load=$(cut -d' ' -f1 /proc/loadavg)"
  rm -rf "$out" "$log"
done
printf '%s\n' "${ratios[@]}" | sort -n | awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "loop=%s median_ratio=%.3f pairs=%d\n", ENV_LOOP, m, NR }' ENV_LOOP="$LOOP"

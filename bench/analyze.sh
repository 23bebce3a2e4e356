#!/usr/bin/env bash
# Analyzer benchmark: `analyze features` against DuckDB computing the same aggregates in SQL
# (bench/duckdb_features.py) over the same synthetic traces, in one run.
#
#   bench/analyze.sh [--events 50000000] [--workloads 1000] [--files 8] [--reps 3]
#
# The trace is generated once (analyze/examples/synth.rs, our own writer) under
# target/bench/analyze-synth-<events>-<workloads>-<files>/ and reused. DuckDB is installed with
# pip into target/bench/venv. Prints wall time (best of --reps), events/s per core, the
# ratio DuckDB time / analyze time (≥ 1 means analyze is faster), and peak RSS of each; then
# analyze on the last half hour only (`--since 30m`: half the events, the same workloads), to
# show that memory follows the workloads, not the input size.
# Not a test: nothing is asserted.
set -euo pipefail
cd "$(dirname "$0")/.."

events=50000000 workloads=1000 files=8 reps=3
while [ $# -gt 0 ]; do
  case "$1" in
    --events) events=$2; shift 2 ;;
    --workloads) workloads=$2; shift 2 ;;
    --files) files=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

target=${CARGO_TARGET_DIR:-target}
cargo build --release -p analyze --bins --example synth >&2
ANALYZE=$target/release/analyze
SYNTH=$target/release/examples/synth
data=target/bench/analyze-synth-$events-$workloads-$files
mkdir -p target/bench

if [ ! -f "$data/.complete" ]; then
  rm -rf "$data"
  echo "generating $events events over $workloads workloads in $files files…" >&2
  /usr/bin/time -f "generated in %e s" "$SYNTH" --events "$events" --workloads "$workloads" --files "$files" --out "$data"
  touch "$data/.complete"
fi
venv=target/bench/venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import duckdb' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet duckdb
fi
PY=$venv/bin/python
cores=$(nproc)
bytes=$(du -sb "$data" | cut -f1)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# run LABEL CMD… → prints "seconds max_rss_kib cpu_seconds" of the best of $reps runs (CPU time,
# user + system, is the figure that other load on the machine disturbs least)
run() {
  local label=$1; shift
  local best="" rss=0 cpu=""
  for _ in $(seq 1 "$reps"); do
    /usr/bin/time -f "%e %M %U %S" -o "$out/time" "$@" >/dev/null 2>"$out/err" || { cat "$out/err" >&2; exit 1; }
    read -r secs kib user sys < "$out/time"
    if [ -z "$best" ] || awk "BEGIN{exit !($secs < $best)}"; then best=$secs; fi
    c=$(awk "BEGIN{print $user + $sys}")
    if [ -z "$cpu" ] || awk "BEGIN{exit !($c < $cpu)}"; then cpu=$c; fi
    [ "$kib" -gt "$rss" ] && rss=$kib
  done
  echo "$best $rss $cpu"
}

read -r a_secs a_rss a_cpu < <(run analyze "$ANALYZE" features "$data" --out "$out/native.parquet" --no-progress)
read -r d_secs d_rss d_cpu < <(run duckdb "$PY" bench/duckdb_features.py --threads "$cores" "$data")
read -r q_secs q_rss q_cpu < <(run analyze-half "$ANALYZE" features "$data" --since 30m --out "$out/q.parquet" --no-progress)
duck_version=$("$PY" -c 'import duckdb; print(duckdb.__version__)')

awk -v e="$events" -v w="$workloads" -v f="$files" -v b="$bytes" -v c="$cores" \
    -v as="$a_secs" -v ar="$a_rss" -v ds="$d_secs" -v dr="$d_rss" -v qs="$q_secs" -v qr="$q_rss" -v dv="$duck_version" \
    -v ac="$a_cpu" -v dc="$d_cpu" -v qc="$q_cpu" 'BEGIN {
  printf "input: %d events, %d workloads, %d files, %.0f MiB on disk, %d cores\n", e, w, f, b / 1048576, c
  printf "%-28s %8s %14s %16s %8s %14s %12s\n", "", "wall s", "events/s", "events/s/core", "CPU s", "events/CPU-s", "peak RSS"
  printf "%-28s %8.2f %14.3g %16.3g %8.2f %14.3g %9.0f MiB\n", "analyze features", as, e / as, e / as / c, ac, e / ac, ar / 1024
  printf "%-28s %8.2f %14.3g %16.3g %8.2f %14.3g %9.0f MiB\n", "duckdb " dv " (same SQL)", ds, e / ds, e / ds / c, dc, e / dc, dr / 1024
  printf "%-28s %8.2f %14.3g %16.3g %8.2f %14.3g %9.0f MiB\n", "analyze, --since 30m (1/2)", qs, e / 2 / qs, e / 2 / qs / c, qc, e / 2 / qc, qr / 1024
  printf "ratio duckdb/analyze: %.2f wall, %.2f CPU (>= 1.0: analyze is as fast or faster)\n", ds / as, dc / ac
  printf "BENCH analyze events=%d workloads=%d secs=%.3f cpu_secs=%.3f events_per_s_core=%.0f events_per_cpu_s=%.0f rss_kib=%d duckdb_secs=%.3f duckdb_cpu_secs=%.3f duckdb_rss_kib=%d ratio=%.3f half_input_rss_kib=%d\n", e, w, as, ac, e / as / c, e / ac, ar, ds, dc, dr, ds / as, qr
}'

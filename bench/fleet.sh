#!/usr/bin/env bash
# Fleet map step: native `analyze TREE` against Spark local[2] running `analyze partials` per
# task (scripts/spark/needle_partials.py) then `analyze PARTS/`, on the same hive tree, in one
# run. Prints wall time and CPU seconds (user+sys, children included) of each step, the size of
# the partial files, and checks that both JSON outputs are byte-identical.
#
#   bench/fleet.sh [--hosts 4] [--days 2] [--partitions 2] [--reps 3]
#
# The tree is the lab's three real traces (train, validation, holdout) copied under every
# host=…/date=… pair (target/bench/fleet-tree-<hosts>x<days>/). Needs the venv with pyspark
# and Java 17 (scripts/setup.sh). Not a test: nothing but equality is checked.
set -euo pipefail
cd "$(dirname "$0")/.."

hosts=4 days=2 partitions=2 reps=3
while [ $# -gt 0 ]; do
  case "$1" in
    --hosts) hosts=$2; shift 2 ;;
    --days) days=$2; shift 2 ;;
    --partitions) partitions=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

root=$PWD
target=${CARGO_TARGET_DIR:-target}
cargo build --release -p analyze --bins >&2
analyze=$(cd "$target/release" && pwd)/analyze
py=$PWD/target/py/bin
export PATH="$py:$PATH" PYSPARK_PYTHON="$py/python" SPARK_LOCAL_IP=127.0.0.1

source bench/fleet_tree.sh
work=$(fleet_tree "$hosts" "$days" "$target")
cd "$work"
files=$(find tree -name '*.parquet' | wc -l)
bytes=$(du -sb tree | cut -f1)
echo "tree: $files files, $((bytes / 1024 / 1024)) MiB, $hosts hosts x $days days; $(nproc) cores"

measure() { # label, command…: best wall of $reps, its CPU seconds
  local label=$1; shift
  local best_wall=999999 best_cpu=0
  for _ in $(seq 1 "$reps"); do
    /usr/bin/time -f '%e %U %S' -o time.txt "$@" > /dev/null 2> err.txt || { cat err.txt >&2; exit 1; }
    read -r wall user sys < time.txt
    if awk "BEGIN{exit !($wall < $best_wall)}"; then
      best_wall=$wall best_cpu=$(awk "BEGIN{print $user + $sys}")
    fi
  done
  printf '%-34s wall %6.2f s   cpu %6.2f s\n' "$label" "$best_wall" "$best_cpu"
}

spark() {
  rm -rf parts
  spark-submit --master "local[2]" --conf spark.ui.enabled=false \
    --conf spark.driver.bindAddress=127.0.0.1 --conf spark.driver.host=127.0.0.1 \
    --files "$analyze" "$root/scripts/spark/needle_partials.py" tree --out parts \
    --partitions "$partitions"
}

export -f spark
export analyze root partitions
measure "native: analyze tree" "$analyze" tree --format json --no-progress
measure "spark local[2]: partials ($partitions tasks)" bash -c spark
measure "reduce: analyze parts/" "$analyze" parts --format json --no-progress
measure "one process: analyze partials tree" "$analyze" partials tree --out all.npart --no-progress
echo "partial files: $(du -sb parts | cut -f1) bytes in $(ls parts | wc -l) files; one for the whole tree: $(stat -c %s all.npart) bytes"
"$analyze" tree --format json --no-progress > native.json
"$analyze" parts --format json --no-progress > spark.json
cmp native.json spark.json && echo "native and Spark JSON: identical ($(stat -c %s native.json) bytes)"

# Sourced by bench/fleet.sh and bench/fleet_s3.sh: the multi-host, multi-day hive tree both
# benchmarks read (the committed lab traces copied under host=…/date=…/), built once per shape.
#
#   fleet_tree HOSTS DAYS TARGET   # prints the work directory; the tree is in its `tree/`
fleet_tree() {
  local hosts=$1 days=$2 target=$3
  local work=$target/bench/fleet-tree-${hosts}x${days}
  if [ ! -d "$work/tree" ]; then
    for h in $(seq 1 "$hosts"); do
      for d in $(seq 1 "$days"); do
        local dir="$work/tree/host=node-$h/date=2026-11-$((22 + d))"
        mkdir -p "$dir"
        for set in lab-train lab-validation lab-holdout; do
          cp datasets/$set/traces/*.parquet "$dir/$set.parquet"
        done
      done
    done
  fi
  echo "$work"
}

#!/usr/bin/env bash
# Sequence models on real programs: every UNM program (../shared/datasets/unm-syscalls) and the
# synthetic set, through the documented commands only — import → train → eval — and one table:
# each scorer's ROC AUC, the combination's, train and eval time.
#
# UNM, as the literature scores it (the dataset's README): each normal file's processes are
# split in order of first appearance, the first half to train on and the rest to test; every
# intrusion file is one attack recording scored by its highest process (`--attack-unit file`).
# lpr-live has no intrusions of its own and is tested on lpr-synthetic's (the same exploit).
#
# Usage: bench/sequences.sh [WORKDIR]   (needs `cargo build --release -p analyze`)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-$(mktemp -d)}
bin=${ANALYZE_BIN:-$PWD/target/release/analyze}
unm=${UNM_DIR:-../shared/datasets/unm-syscalls}
mkdir -p "$work"
results=()

# run NAME TRAIN_PARQUET TEST_PARQUET... -- EVAL_FLAGS...
run() {
    local name=$1 train=$2
    shift 2
    local tests=()
    while [[ $1 != -- ]]; do tests+=("$1"); shift; done
    shift
    local t0 t1 t2
    t0=$(date +%s.%N)
    "$bin" train "$train" --out "$work/$name.model" --no-progress 2>"$work/$name.train.log"
    t1=$(date +%s.%N)
    "$bin" eval "${tests[@]}" --model "$work/$name.model" --no-progress --format json "$@" >"$work/$name.eval.json"
    t2=$(date +%s.%N)
    results+=("$name $(echo "$t1 - $t0" | bc) $(echo "$t2 - $t1" | bc)")
}

# split FILE TRAIN_OUT TEST_OUT: the first half of FILE's processes (by first appearance).
split_pids() {
    awk -v train="$2" -v test="$3" '
        !($1 in seen) { seen[$1] = n++; order[n - 1] = $1 }
        { lines[NR] = $0; pid[NR] = $1 }
        END {
            half = int((n + 1) / 2)
            for (i = 1; i <= NR; i++) print lines[i] > (seen[pid[i]] < half ? train : test)
        }' "$1"
}

if [[ -d $unm ]]; then
    for prog in sendmail lpr-synthetic lpr-live named xlock login ps inetd ftp; do
        attack=$prog
        [[ $prog == lpr-live ]] && attack=lpr-synthetic
        d=$work/unm/$prog
        rm -rf "$d" && mkdir -p "$d/train" "$d/test"
        for f in "$unm/$prog"/normal/*.int; do
            b=$(basename "$f")
            split_pids "$f" "$d/train/$b" "$d/test/$b"
        done
        "$bin" import syscall-traces "$d/train" --format pid-call --label normal --out "$d/train.parquet" 2>/dev/null
        "$bin" import syscall-traces "$d/test" --format pid-call --label normal --out "$d/test-normal.parquet" 2>/dev/null
        "$bin" import syscall-traces "$unm/$attack/intrusion" --format pid-call --label attack --out "$d/attack.parquet" 2>/dev/null
        run "unm-$prog" "$d/train.parquet" "$d/test-normal.parquet" "$d/attack.parquet" -- --attack-unit file
    done
else
    echo "SKIP UNM: $unm is absent" >&2
fi

# The synthetic set (analyze/src/models/sequence/synth.rs): 600 normal training traces,
# 200 held-out normal and 200 attack traces.
NEEDLE_SYNTH_DIR="$work/synth" cargo test -q -p analyze --lib models::tests::write_synthetic_benchmark_set -- --ignored >/dev/null
for s in train test-normal test-attack; do
    label=normal
    [[ $s == test-attack ]] && label=attack
    "$bin" import syscall-traces "$work/synth/$s" --label $label --out "$work/synth-$s.parquet" 2>/dev/null
done
run synthetic "$work/synth-train.parquet" "$work/synth-test-normal.parquet" "$work/synth-test-attack.parquet" --

python3 - "$work" "${results[@]}" <<'EOF'
import json, sys
work, rows = sys.argv[1], sys.argv[2:]
cols = None
for r in rows:
    name, train_s, eval_s = r.split()
    rep = json.load(open(f"{work}/{name}.eval.json"))
    aucs = {m["scorer"]: m["roc_auc"] for m in rep["workloads"]}
    if cols is None:
        cols = [c for c in aucs if not c.startswith("ranking")]
        print("| data | normal / attack | " + " | ".join(cols) + " | best member | train s | eval s |")
        print("|---" * (len(cols) + 5) + "|")
    members = [v for k, v in aucs.items() if k.startswith("sequences: ") or k == "workload features"]
    best = max(v for v in members if v is not None)
    fmt = lambda v: "-" if v is None else f"{v:.3f}"
    print(f"| {name} | {rep['normal']} / {rep['attack']} | " + " | ".join(fmt(aucs.get(c)) for c in cols)
          + f" | {best:.3f} | {float(train_s):.1f} | {float(eval_s):.1f} |")
EOF

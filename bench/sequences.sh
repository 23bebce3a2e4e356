#!/usr/bin/env bash
# Sequence models on the synthetic syscall-trace set (analyze/src/models/sequence/synth.rs):
# 600 normal training traces, 200 held-out normal and 200 attack traces, through the real
# pipeline: plain trace files → `analyze import` → `analyze train` → `analyze eval`.
# Usage: bench/sequences.sh [WORKDIR]   (needs `cargo build --release -p analyze`)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-$(mktemp -d)}
bin=target/release/analyze
NEEDLE_SYNTH_DIR="$work" cargo test -q -p analyze --lib models::tests::write_synthetic_benchmark_set -- --ignored >/dev/null
"$bin" import syscall-traces "$work/train" --label normal --out "$work/train.parquet"
"$bin" import syscall-traces "$work/test-normal" --label normal --out "$work/test-normal.parquet"
"$bin" import syscall-traces "$work/test-attack" --label attack --out "$work/test-attack.parquet"
/usr/bin/time -f "train: %e s wall, %U s user, %M KiB max RSS" "$bin" train "$work/train.parquet" --out "$work/synth.model" --no-progress
"$bin" eval "$work/test-normal.parquet" "$work/test-attack.parquet" --model "$work/synth.model" --no-progress

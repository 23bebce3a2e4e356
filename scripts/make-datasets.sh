#!/usr/bin/env bash
# Regenerates datasets/lab-train (benign only) and datasets/lab-validation (benign + every attack,
# another seed) with the scenario lab: real runc containers recorded by the real capture.
# Needs root. About 7 minutes. See datasets/README.md.
#
#   scripts/make-datasets.sh [lab-train] [lab-validation]     (default: both)
#   scripts/make-datasets.sh lab-holdout                  (only as a NEW held-out set: generate it
#                                                        before any change aimed at it, never tune on it)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "make-datasets.sh needs root (eBPF, runc)" >&2; exit 1; }
presets=("$@")
[ "${#presets[@]}" -gt 0 ] || presets=(lab-train lab-validation)
bash scripts/setup.sh
cargo build --release -p capture >&2
cargo build --release -p needle-tests --bin lab >&2
for p in "${presets[@]}"; do
  target/release/lab --preset "$p"
  chmod 755 "datasets/$p" "datasets/$p/traces"
  chmod 644 "datasets/$p"/traces/*.parquet "datasets/$p/labels.csv" "datasets/$p/lab-run.json"
  du -sh "datasets/$p"
done

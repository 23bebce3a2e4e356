#!/usr/bin/env bash
# Runs every test of needle: unit tests, and the end-to-end tests that drive the real binaries,
# real eBPF programs and real containers. Installs the toolchain first (idempotent).
#
# Privileged tests need root; run as another user they are skipped with a SKIP line, and the
# skips are listed at the end. In CI (CI=true) a privileged test that cannot run fails instead.
set -euo pipefail
cd "$(dirname "$0")/.."

# --bench: the peers the bench suite's smoke test runs (bpftrace, redis).
bash scripts/setup.sh --bench

if [ "${CI:-}" = "true" ]; then export NEEDLE_REQUIRE_PRIVILEGED=1; fi
export NEEDLE_SKIP_LOG="${NEEDLE_SKIP_LOG:-$(mktemp -t needle-skips.XXXXXX)}"
: > "$NEEDLE_SKIP_LOG"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export NEEDLE_PYTHON="${NEEDLE_PYTHON:-$PWD/target/py/bin/python}"

cargo fmt --all --check
cargo build --workspace --all-targets
cargo clippy --workspace --all-targets -- -D warnings
(cd capture-ebpf && cargo +nightly clippy --release --target bpfel-unknown-none -Z build-std=core -- -D warnings)
# Not under `set -e`: a failing test must still reach the summary below.
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee /tmp/needle-test-output.txt
status=${PIPESTATUS[0]}
set -e

skips=$(grep -c . "$NEEDLE_SKIP_LOG" || true)
if [ "$skips" -gt 0 ]; then
  echo
  echo "SKIPPED privileged tests ($skips) — they did not run and did not pass:"
  sed 's/^/  /' "$NEEDLE_SKIP_LOG"
fi
passed=$(grep -Eo '[0-9]+ passed' /tmp/needle-test-output.txt | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' /tmp/needle-test-output.txt | awk '{s+=$1} END {print s+0}')
echo
echo "tests: $passed passed, $failed failed, $skips skipped"
exit "$status"

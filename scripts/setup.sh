#!/usr/bin/env bash
# Installs everything needle's build and tests need on a fresh Debian machine of this kind.
# Idempotent: a second run only checks and takes seconds.
#
#   scripts/setup.sh            toolchain for building capture (eBPF) + test dependencies
#   scripts/setup.sh --bench    also the peers the bench suite compares against (bpftrace, redis)
set -euo pipefail
cd "$(dirname "$0")/.."

want_bench=0
for arg in "$@"; do
  case "$arg" in
    --bench) want_bench=1 ;;
    *) echo "setup.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

log() { printf '\033[1msetup:\033[0m %s\n' "$*" >&2; }
sudo_if() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

LLVM_VERSION=22
BPF_LINKER_VERSION=0.13.0
packages=(
  "llvm-${LLVM_VERSION}-dev" "libpolly-${LLVM_VERSION}-dev" libzstd-dev zlib1g-dev  # bpf-linker
  runc busybox-static                                                               # container tests
  podman conmon containerd buildah tar                                              # real engines (capture_engines), the capture image (capture_image)
  iproute2                                                                          # network namespaces
  gcc libc6-dev                                                                     # the lab builds its static implant tool
  chromium chromium-driver                                                          # the HTML report's browser test
  openjdk-17-jre-headless                                                           # Spark (pyspark, local mode) for the fleet map step (fleet_spark)
)
if [ "$want_bench" -eq 1 ]; then packages+=(bpftrace redis-server redis-tools); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  sudo_if apt-get update -qq
  sudo_if env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  log "Debian packages present"
fi

# The eBPF crate is built with nightly's build-std (core for bpfel-unknown-none).
if ! rustup toolchain list | grep -q '^nightly'; then
  log "rustup toolchain install nightly"
  rustup toolchain install nightly --profile minimal
fi
for component in rust-src clippy; do
  if ! rustup component list --toolchain nightly --installed 2>/dev/null | grep -q "^${component}"; then
    log "rustup component add ${component} --toolchain nightly"
    rustup component add "${component}" --toolchain nightly
  fi
done

if ! bpf-linker --version 2>/dev/null | grep -q "$BPF_LINKER_VERSION"; then
  log "cargo install bpf-linker $BPF_LINKER_VERSION (llvm-$LLVM_VERSION)"
  LLVM_PREFIX="/usr/lib/llvm-${LLVM_VERSION}" PATH="/usr/lib/llvm-${LLVM_VERSION}/bin:$PATH" \
    cargo install --locked bpf-linker --version "$BPF_LINKER_VERSION" \
      --no-default-features --features "llvm-${LLVM_VERSION}"
else
  log "bpf-linker $BPF_LINKER_VERSION present"
fi

# Python for the tests that compare needle with DuckDB, drive the report in Chromium (selenium),
# execute the notebooks (nbconvert, polars, matplotlib), run the map step on Spark (pyspark,
# with the Java above; its wheel is ~500 MB, installed once) and serve S3 locally for the
# object-storage tests (moto[server], started by tests/src/s3.rs on 127.0.0.1): a venv inside
# target/ so that it is per checkout and cached with the build.
py=target/py
req=scripts/requirements.txt
if [ ! -x "$py/bin/python" ] || ! cmp -s "$req" "$py/requirements.installed"; then
  log "python venv $py (${req})"
  python3 -m venv "$py"
  "$py/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  cp "$req" "$py/requirements.installed"
else
  log "python venv present"
fi

# Classic tracepoints need tracefs; mounting it needs root, so only try when we are root.
if [ ! -d /sys/kernel/tracing/events ] && [ "$(id -u)" -eq 0 ]; then
  log "mount -t tracefs nodev /sys/kernel/tracing"
  mount -t tracefs nodev /sys/kernel/tracing || log "could not mount tracefs (capture will report it)"
fi
log "done"

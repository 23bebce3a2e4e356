#!/usr/bin/env bash
# Builds capture's OCI image from scratch with buildah: the capture binary (debug info stripped)
# and the shared libraries it links (as ldd lists them), nothing else — no shell, no package
# manager. No registry is involved; push or save the result as you like.
#
#   deploy/image/build.sh [--binary PATH] [--tag NAME] [-- BUILDAH-GLOBAL-OPTIONS…]
#
#   --binary  the capture executable (default target/release/capture: cargo build --release -p capture)
#   --tag     image name (default localhost/needle-capture:<workspace version>)
#   after --   options for every buildah command (--root, --runroot, --storage-driver: the tests
#              build into a private storage)
# Prints the image name on success.
set -euo pipefail
cd "$(dirname "$0")/../.."

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
binary=target/release/capture
tag="localhost/needle-capture:${version}"
buildah_opts=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    --binary) binary=${2:?--binary needs a path}; shift 2 ;;
    --tag) tag=${2:?--tag needs a name}; shift 2 ;;
    --) shift; buildah_opts=("$@"); break ;;
    *) echo "build.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done
if [ ! -x "$binary" ] || [ -d "$binary" ]; then
  echo "build.sh: $binary is not an executable file (cargo build --release -p capture)" >&2
  exit 1
fi
command -v buildah >/dev/null || { echo "build.sh: buildah is not installed (scripts/setup.sh)" >&2; exit 1; }

b() { buildah "${buildah_opts[@]}" "$@"; }
work=$(mktemp -d)
ctr=""
cleanup() {
  if [ -n "$ctr" ]; then b rm "$ctr" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

strip --strip-debug -o "$work/capture" "$binary"
ctr=$(b from --quiet scratch)
b copy --quiet --chmod 0755 "$ctr" "$work/capture" /usr/bin/capture >/dev/null
# The dynamic loader and libraries, at the paths the binary asks for (symlinks resolved).
libs=$(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
for lib in $libs; do
  b copy --quiet "$ctr" "$(readlink -f "$lib")" "$lib" >/dev/null
done
b config \
  --entrypoint '["/usr/bin/capture"]' \
  --cmd '["--output", "/var/lib/needle/traces"]' \
  --workingdir / \
  --stop-signal SIGTERM \
  --label org.opencontainers.image.title=needle-capture \
  --label org.opencontainers.image.description="needle's eBPF capture: container runtime events as zstd Parquet" \
  --label org.opencontainers.image.version="$version" \
  "$ctr"
b commit --quiet --format oci --rm "$ctr" "$tag" >/dev/null
ctr=""
echo "$tag"

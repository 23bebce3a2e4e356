#!/usr/bin/env bash
# Object storage: `analyze TREE` from local disk against `analyze s3://BUCKET/TREE/` from a local
# S3 server (moto's server mode on 127.0.0.1, from the project venv) on the same hive tree, in
# one run. Prints wall time and CPU seconds (user+sys) of each, the tree's size, the bytes of
# column chunks analyze reads (inputs.files[].bytes_read), what the store actually sent (the
# "fetched" line on stderr), and checks that both JSON outputs are the same once the URL prefix
# is put back to the local directory.
#
#   bench/fleet_s3.sh [--hosts 4] [--days 2] [--reps 3]
#
# The tree is the one bench/fleet.sh builds (the lab's three traces under every host=…/date=…
# pair, target/bench/fleet-tree-<hosts>x<days>/). moto keeps objects in memory and serves them
# from one Python process: it is a stand-in for the protocol (ranged GETs, listing), not for S3's
# throughput or latency. Not a test: nothing but equality is checked.
set -euo pipefail
cd "$(dirname "$0")/.."

hosts=4 days=2 reps=3
while [ $# -gt 0 ]; do
  case "$1" in
    --hosts) hosts=$2; shift 2 ;;
    --days) days=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

target=${CARGO_TARGET_DIR:-target}
cargo build --release -p analyze --bins >&2
analyze=$(cd "$target/release" && pwd)/analyze
py=$PWD/target/py/bin/python

source bench/fleet_tree.sh
work=$(fleet_tree "$hosts" "$days" "$target")
cd "$work"

port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$py" -m moto.server -H 127.0.0.1 -p "$port" > moto.log 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null; wait $moto 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  "$py" -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break
  sleep 0.2
done
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_DEFAULT_REGION=us-east-1
endpoint=http://127.0.0.1:$port
"$py" - "$endpoint" <<'EOF'
import os, sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1])
s3.create_bucket(Bucket="bench")
for root, _, files in os.walk("tree"):
    for f in files:
        p = os.path.join(root, f)
        s3.upload_file(p, "bench", p)
EOF

files=$(find tree -name '*.parquet' | wc -l)
bytes=$(du -sb tree | cut -f1)
echo "tree: $files files, $bytes bytes ($((bytes / 1024 / 1024)) MiB), $hosts hosts x $days days; $(nproc) cores"

measure() { # label, command…: best wall of $reps, its CPU seconds
  local label=$1; shift
  local best_wall=999999 best_cpu=0
  for _ in $(seq 1 "$reps"); do
    /usr/bin/time -f '%e %U %S' -o time.txt "$@" > out.json 2> err.txt || { cat err.txt >&2; exit 1; }
    read -r wall user sys < time.txt
    if awk "BEGIN{exit !($wall < $best_wall)}"; then
      best_wall=$wall best_cpu=$(awk "BEGIN{print $user + $sys}")
    fi
  done
  printf '%-36s wall %6.2f s   cpu %6.2f s\n' "$label" "$best_wall" "$best_cpu"
}

measure "local disk: analyze tree" "$analyze" tree --format json --no-progress
cp out.json local.json
measure "local S3 (moto): analyze s3://…" "$analyze" s3://bench/tree/ --s3-endpoint "$endpoint" \
  --format json --no-progress
cp out.json s3.json
echo "column chunks read (inputs.files[].bytes_read): $(jq '[.inputs.files[].bytes_read] | add' s3.json) bytes of $bytes"
grep -h "fetched" err.txt
sed "s#s3://bench/##g" s3.json | cmp - local.json && echo "local and S3 JSON: identical ($(stat -c %s local.json) bytes)"

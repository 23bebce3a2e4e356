#!/usr/bin/env python3
"""needle's map step on Spark: every task runs the shipped `analyze partials` on its share of
the trace files and writes one partial file; `analyze OUT/` then merges and ranks.

Both paths run the same Rust code, so the result equals `analyze TRACES` on one machine, byte
for byte, whatever the number of partitions or the order of the files.

Local mode (N cores of this machine):

    spark-submit --master 'local[2]' --files target/release/analyze \\
        scripts/spark/needle_partials.py traces/ --out parts/
    analyze parts/

A cluster: the same, with `--master spark://HOST:7077` (or yarn, k8s://…) and TRACES and
--out on a filesystem every executor mounts at the same path (NFS, a FUSE mount of the
bucket). `--files` ships the binary to each executor (built for the executors' Linux).

Inputs are trace files or directories, searched recursively for *.parquet (hive trees such as
traces/host=a/date=2026-11-23/ work); hidden files (segments still being written) are skipped.
Options after `--` go to `analyze partials` as they are (--rules DIR, --intel DIR,
--no-signatures, --since/--until with absolute times); give `analyze` the same --rules,
--intel and --no-signatures.
"""

import argparse
import os
import random
import subprocess
import sys


def list_traces(inputs):
    """Trace files of the inputs, in a stable order (directories walked sorted)."""
    files = []
    for item in inputs:
        if os.path.isdir(item):
            for root, dirs, names in os.walk(item):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(names):
                    if not name.startswith(".") and name.lower().endswith(".parquet"):
                        files.append(os.path.join(root, name))
        elif os.path.exists(item):
            files.append(item)
        else:
            sys.exit(f"needle_partials: {item}: no such file or directory")
    seen = set()
    return [f for f in files if not (f in seen or seen.add(f))]


def main():
    argv = sys.argv[1:]
    extra = []
    if "--" in argv:
        at = argv.index("--")
        argv, extra = argv[:at], argv[at + 1 :]
    p = argparse.ArgumentParser(
        prog="needle_partials.py",
        description="Run `analyze partials` on Spark tasks; then `analyze OUT/`.",
    )
    p.add_argument("inputs", nargs="+", help="trace files or directories (hive trees)")
    p.add_argument("--out", required=True, help="directory for the partial files (created)")
    p.add_argument(
        "--analyze",
        default="analyze",
        help="the analyze binary: the name it was shipped under with spark-submit --files "
        "(default analyze), or a path to ship from here",
    )
    p.add_argument(
        "--partitions",
        type=int,
        default=None,
        help="tasks (default: Spark's default parallelism)",
    )
    p.add_argument(
        "--shuffle-seed",
        type=int,
        default=None,
        help="shuffle the file list with this seed before spreading it (the result must not change)",
    )
    args = p.parse_args(argv)

    # Python workers run the interpreter of the driver unless told otherwise.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark import SparkFiles
    from pyspark.sql import SparkSession

    files = list_traces(args.inputs)
    if not files:
        sys.exit("needle_partials: no trace files (*.parquet) in the input")
    if args.shuffle_seed is not None:
        random.Random(args.shuffle_seed).shuffle(files)
    out = os.path.abspath(args.out)
    os.makedirs(out, mode=0o700, exist_ok=True)
    stale = sorted(n for n in os.listdir(out) if n.endswith(".npart"))
    if stale:
        sys.exit(
            f"needle_partials: {out} already holds partial files ({stale[0]}, …): "
            "remove them or choose another --out (analyze would merge old and new)"
        )

    spark = SparkSession.builder.appName("needle-partials").getOrCreate()
    sc = spark.sparkContext
    shipped = os.path.basename(args.analyze)
    if os.path.isfile(args.analyze):
        sc.addFile(os.path.abspath(args.analyze))
    partitions = max(1, args.partitions or sc.defaultParallelism)
    cwd = os.getcwd()

    def run(index, share):
        share = list(share)
        if not share:
            return []
        exe = SparkFiles.get(shipped)
        if not os.path.exists(exe):
            raise RuntimeError(
                f"{shipped}: not shipped to this executor (spark-submit --files PATH/analyze)"
            )
        os.chmod(exe, 0o755)
        dst = os.path.join(out, f"part-{index:05d}.npart")
        cmd = [exe, "partials", *share, "--out", dst, "--no-progress", *extra]
        # Relative trace paths are the driver's: run where it runs (same path on a cluster).
        r = subprocess.run(
            cmd,
            cwd=cwd if os.path.isdir(cwd) else None,
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            raise RuntimeError(
                f"task {index}: analyze partials failed ({r.returncode}): {r.stderr.strip()}"
            )
        return [(dst, len(share))]

    written = sc.parallelize(files, partitions).mapPartitionsWithIndex(run).collect()
    spark.stop()
    for path, n in sorted(written):
        print(f"{path}: {n} trace files", file=sys.stderr)
    print(
        f"needle_partials: {len(files)} trace files in {partitions} tasks → "
        f"{len(written)} partial files in {out}; now: analyze {out}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()

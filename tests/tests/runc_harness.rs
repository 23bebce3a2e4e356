//! The runc harness itself: real containers in every cgroup layout, with Kubernetes annotations,
//! commands run inside, the cgroup path the kernel reports, and clean-up (also after a panic).
//! Root only; skips (recorded) where runc cannot run.

use std::collections::BTreeMap;
use std::fs;
use std::time::{Duration, Instant};

use needle_tests::require;
use needle_tests::runc::{
    CgroupStyle, Container, ContainerSpec, random_container_id, runc_available, runc_list,
};

fn kubernetes(style: CgroupStyle, name: &str) -> ContainerSpec {
    let mut spec = ContainerSpec::new(style);
    let annotations = [
        ("io.kubernetes.pod.name", format!("{name}-pod")),
        ("io.kubernetes.pod.namespace", "needle-test".to_owned()),
        ("io.kubernetes.container.name", name.to_owned()),
    ];
    spec.annotations = annotations
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect::<BTreeMap<_, _>>();
    spec
}

/// The container id capture's `parse_cgroup_path` finds in a path (a copy of its rules, for the
/// forms this harness makes: tests/ cannot depend on capture).
fn id_in_cgroup_path(path: &str) -> Option<String> {
    let is_id = |s: &str| {
        s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    parts.iter().enumerate().rev().find_map(|(i, c)| {
        let from_unit = ["docker-", "cri-containerd-", "crio-", "libpod-"]
            .iter()
            .find_map(|p| c.strip_prefix(p)?.strip_suffix(".scope"))
            .filter(|id| is_id(id));
        let bare = (is_id(c)
            && (i == 0 || parts[i - 1] == "docker" || parts[i - 1].starts_with("pod")))
        .then_some(*c);
        from_unit.or(bare).map(str::to_owned)
    })
}

fn proc_cgroup(pid: u32) -> String {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("/proc/<pid>/cgroup");
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .expect("a cgroup2 line")
        .to_owned()
}

#[test]
fn every_cgroup_style_runs_commands_and_cleans_up() {
    if !require("runc_harness::every_cgroup_style", runc_available()) {
        return;
    }
    let styles = [
        (CgroupStyle::DockerCgroupfs, "/docker/"),
        (CgroupStyle::DockerSystemd, "/system.slice/docker-"),
        (
            CgroupStyle::ContainerdSystemd,
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod",
        ),
        (
            CgroupStyle::CriO,
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod",
        ),
        (CgroupStyle::Podman, "/machine.slice/libpod-"),
        (CgroupStyle::PlainRunc, "/"),
        (CgroupStyle::KubepodsCgroupfs, "/kubepods/besteffort/pod"),
    ];
    for (style, prefix) in styles {
        let spec = kubernetes(style.clone(), "web");
        let id = spec.id.clone();
        let bundle;
        {
            let c = Container::start(spec).unwrap_or_else(|e| panic!("{style:?}: {e}"));
            bundle = c.bundle().to_owned();
            let out = c.exec(&["/bin/sh", "-c", "echo hi"]).expect("exec");
            assert!(out.status.success(), "{style:?}: {out:?}");
            assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n", "{style:?}");

            let pid = c.init_pid().expect("init pid");
            let path = proc_cgroup(pid);
            assert_eq!(path, c.cgroup_path(), "{style:?}");
            assert!(
                path.starts_with(prefix) && path.contains(&id),
                "{style:?}: {path}"
            );
            assert_eq!(
                id_in_cgroup_path(&path).as_deref(),
                Some(id.as_str()),
                "{style:?}: {path}"
            );

            // What the resolver reads: runc's state has the annotations and the bundle.
            let state =
                fs::read_to_string(format!("/run/runc/{id}/state.json")).expect("state.json");
            let state: serde_json::Value = serde_json::from_str(&state).expect("state JSON");
            let labels: Vec<&str> = state["config"]["labels"]
                .as_array()
                .expect("labels")
                .iter()
                .filter_map(|l| l.as_str())
                .collect();
            assert!(
                labels.contains(&"io.kubernetes.pod.name=web-pod"),
                "{labels:?}"
            );
            assert!(
                labels.contains(&"io.kubernetes.container.name=web"),
                "{labels:?}"
            );
            assert!(
                labels.contains(&format!("bundle={}", bundle.display()).as_str()),
                "{labels:?}"
            );
            assert!(runc_list().contains(&id));
        }
        assert!(
            !runc_list().contains(&id),
            "{style:?}: container left behind"
        );
        assert!(!bundle.exists(), "{style:?}: bundle left behind");
        assert!(!fs::exists(format!("/run/runc/{id}")).unwrap_or(true));
    }
}

#[test]
fn processes_inside_are_real_execs_with_users_and_files() {
    if !require("runc_harness::processes_inside", runc_available()) {
        return;
    }
    let mut spec = kubernetes(CgroupStyle::ContainerdSystemd, "tools");
    spec.files
        .push(("/etc/motd".into(), b"needle\n".to_vec(), 0o644));
    spec.files.push((
        "/usr/local/bin/hello".into(),
        b"#!/bin/sh\necho hello from script\n".to_vec(),
        0o755,
    ));
    let c = Container::start(spec).expect("start");
    let run = |args: &[&str]| {
        let out = c.exec(args).expect("exec");
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(run(&["/bin/cat", "/etc/motd"]), "needle\n");
    assert_eq!(run(&["/usr/local/bin/hello"]), "hello from script\n");
    assert_eq!(run(&["/bin/id", "-un"]), "root\n", "/etc/passwd is there");
    assert!(
        run(&["/bin/ps"]).contains("sleep"),
        "ps works and sees the init"
    );
    // The container can write (the scenario lab drops files).
    run(&[
        "/bin/sh",
        "-c",
        "echo x > /tmp/dropped && /bin/cat /tmp/dropped",
    ]);
    assert!(c.rootfs().join("tmp/dropped").exists());
    // A nested shell is in the container's cgroup too.
    let inner = run(&["/bin/sh", "-c", "/bin/sh -c '/bin/cat /proc/self/cgroup'"]);
    assert!(
        inner
            .lines()
            .any(|l| l == format!("0::{}", c.cgroup_path())),
        "{inner}"
    );
}

#[test]
fn host_network_is_shared_on_request() {
    if !require("runc_harness::host_network", runc_available()) {
        return;
    }
    let own = fs::read_link("/proc/self/ns/net").expect("own netns");
    let mut spec = ContainerSpec::new(CgroupStyle::DockerCgroupfs);
    spec.share_host_network = true;
    let shared = Container::start(spec).expect("start");
    let ns = |c: &Container| {
        fs::read_link(format!("/proc/{}/ns/net", c.init_pid().expect("pid"))).expect("netns")
    };
    assert_eq!(ns(&shared), own);
    let isolated =
        Container::start(ContainerSpec::new(CgroupStyle::DockerCgroupfs)).expect("start");
    assert_ne!(ns(&isolated), own);
}

#[test]
fn wait_exit_and_bounded_exec() {
    if !require("runc_harness::wait_exit", runc_available()) {
        return;
    }
    let mut spec = ContainerSpec::new(CgroupStyle::PlainRunc);
    spec.args = vec![
        "/bin/sh".into(),
        "-c".into(),
        "echo started; /bin/sleep 0.3".into(),
    ];
    let mut c = Container::start(spec).expect("start");
    c.wait_exit(Duration::from_secs(10)).expect("exits");
    assert_eq!(c.init_stdout(), "started\n");

    let c = Container::start(ContainerSpec::new(CgroupStyle::PlainRunc)).expect("start");
    let t = Instant::now();
    let err = c
        .exec_timeout(&["/bin/sleep", "30"], Duration::from_millis(500))
        .expect_err("bounded");
    assert!(err.contains("timed out"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(10));
    let mut c = c;
    assert!(
        c.wait_exit(Duration::from_millis(200)).is_err(),
        "sleep 3600 is still running"
    );
}

#[test]
fn cleanup_happens_even_when_the_test_panics() {
    if !require("runc_harness::cleanup_on_panic", runc_available()) {
        return;
    }
    let spec = ContainerSpec::new(CgroupStyle::ContainerdSystemd);
    let id = spec.id.clone();
    let pod_dir = format!(
        "/sys/fs/cgroup/unified{}",
        spec.cgroup.cgroup_path(&id, &spec.pod_uid())
    );
    let pod_dir = std::path::Path::new(&pod_dir)
        .parent()
        .expect("pod")
        .to_owned();
    let result = std::panic::catch_unwind(|| {
        let c = Container::start(spec).expect("start");
        assert!(runc_list().contains(&c.id().to_owned()));
        panic!("test failure inside");
    });
    assert!(result.is_err());
    assert!(!runc_list().contains(&id), "container survived the panic");
    if pod_dir.starts_with("/sys/fs/cgroup/unified/kubepods.slice")
        && fs::exists("/sys/fs/cgroup/unified").unwrap_or(false)
    {
        assert!(!pod_dir.exists(), "{} left behind", pod_dir.display());
    }
}

#[test]
fn bad_specs_are_errors_not_leaks() {
    if !require("runc_harness::bad_specs", runc_available()) {
        return;
    }
    let mut spec = ContainerSpec::new(CgroupStyle::PlainRunc);
    spec.id = "UPPER".repeat(13)[..64].to_owned();
    assert!(Container::start(spec).is_err());

    let mut spec = ContainerSpec::new(CgroupStyle::PlainRunc);
    spec.files.push(("../escape".into(), Vec::new(), 0o644));
    assert!(Container::start(spec).is_err());

    // runc refuses a missing init binary; nothing stays behind.
    let mut spec = ContainerSpec::new(CgroupStyle::PlainRunc);
    let id = spec.id.clone();
    spec.args = vec!["/bin/does-not-exist".into()];
    assert!(Container::start(spec).is_err());
    assert!(!runc_list().contains(&id));
    assert_ne!(random_container_id(), random_container_id());
}

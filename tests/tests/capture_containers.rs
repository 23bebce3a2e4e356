//! End to end: real runc containers in Docker-, containerd- and CRI-O-like cgroups with
//! Kubernetes annotations, recorded by the real `capture`: container id, runtime, pod, namespace,
//! name, executable hash, ancestry inside the container, new-binary flags, start and stop rows.

use std::collections::BTreeMap;
use std::time::Duration;

use needle_common::schema::{Detail, Event};
use needle_tests::capture::{Capture, stop_and_read};
use needle_tests::runc::{CgroupStyle, Container, ContainerSpec, runc_available};
use needle_tests::{require, require_privileges, sha256sum};

struct Expect {
    style: CgroupStyle,
    runtime: &'static str,
    pod: &'static str,
    namespace: &'static str,
    name: &'static str,
}

#[test]
fn containers_get_runtime_kubernetes_and_process_context() {
    if !require_privileges("capture_containers::context")
        || !require("capture_containers::context", runc_available())
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("traces");
    let cap = Capture::start(&out, &["--duration", "120s"]);

    let cases = [
        Expect {
            style: CgroupStyle::DockerSystemd,
            runtime: "docker",
            pod: "web-0",
            namespace: "prod",
            name: "web",
        },
        Expect {
            style: CgroupStyle::ContainerdSystemd,
            runtime: "containerd",
            pod: "api-7f9c",
            namespace: "staging",
            name: "api",
        },
        Expect {
            style: CgroupStyle::CriO,
            runtime: "cri-o",
            pod: "db-2",
            namespace: "data",
            name: "db",
        },
    ];
    let mut running = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let mut spec = ContainerSpec::new(c.style.clone());
        spec.annotations = BTreeMap::from([
            ("io.kubernetes.pod.name".to_string(), c.pod.to_string()),
            (
                "io.kubernetes.pod.namespace".to_string(),
                c.namespace.to_string(),
            ),
            (
                "io.kubernetes.container.name".to_string(),
                c.name.to_string(),
            ),
        ]);
        // sh → sh → sh → /bin/true (each inner command is not the last one, so it is forked),
        // then a binary dropped into a hidden /tmp directory after start, executed.
        let script = format!(
            "/bin/sleep 1; /bin/sh -c '/bin/sh -c \"/bin/true mark-{i}; :\"; :'; \
             /bin/mkdir -p /tmp/.x; /bin/cp /bin/busybox /tmp/.x/dropped; /tmp/.x/dropped true; /bin/sleep 60"
        );
        spec.args = vec!["/bin/sh".into(), "-c".into(), script];
        running.push(Container::start(spec).expect("start container"));
    }
    std::thread::sleep(Duration::from_secs(4));
    let stopped_id = running[0].id().to_string();
    let busybox_sha = sha256sum(&running[0].rootfs().join("bin/busybox"));
    drop(running.remove(0)); // killed and deleted: its cgroup goes away
    std::thread::sleep(Duration::from_secs(4));
    let (rec, _) = stop_and_read(vec![(cap, &out)]).remove(0);
    let events = rec.events;

    let ids: Vec<String> = std::iter::once(stopped_id.clone())
        .chain(running.iter().map(|c| c.id().to_string()))
        .collect();
    for (i, (c, id)) in cases.iter().zip(&ids).enumerate() {
        let rows: Vec<&Event> = events
            .iter()
            .filter(|e| e.container.as_ref().is_some_and(|k| &*k.id == id))
            .collect();
        assert!(!rows.is_empty(), "{}: no rows for container {id}", c.name);
        for e in &rows {
            let k = e.container.as_ref().unwrap();
            assert_eq!(k.runtime.as_deref(), Some(c.runtime), "{}: runtime", c.name);
            assert_eq!(
                k.pod.as_deref(),
                Some(c.pod),
                "{}: pod on every row ({:?})",
                c.name,
                e.detail.kind()
            );
            assert_eq!(
                k.namespace.as_deref(),
                Some(c.namespace),
                "{}: namespace",
                c.name
            );
            assert_eq!(
                k.name.as_deref(),
                Some(c.name),
                "{}: container name",
                c.name
            );
            assert_eq!(
                e.workload.as_deref(),
                Some(id.as_str()),
                "{}: workload is the container id ({:?} {} {:?})",
                c.name,
                e.detail.kind(),
                e.process.comm,
                e.exe_path
            );
        }
        assert_eq!(
            rows.iter()
                .filter(|e| e.detail == Detail::ContainerStart)
                .count(),
            1,
            "{}: one container_start",
            c.name
        );

        let mark = format!("mark-{i}");
        let t = rows
            .iter()
            .find(|e| matches!(&e.detail, Detail::Exec { argv, .. } if argv.contains(&mark)))
            .unwrap_or_else(|| panic!("{}: exec of /bin/true {mark}", c.name));
        assert_eq!(t.exe_path.as_deref(), Some("/bin/true"));
        assert_eq!(
            t.exe_sha256.as_deref(),
            Some(busybox_sha.as_str()),
            "{}: sha256 of the container's busybox",
            c.name
        );
        let ctx = t.context.as_ref().expect("context");
        assert_eq!(
            ctx.ancestry
                .iter()
                .take(3)
                .map(|s| &**s)
                .collect::<Vec<_>>(),
            vec!["/bin/sh", "/bin/sh", "/bin/sh"],
            "{}: ancestry inside the container, parent first: {:?}",
            c.name,
            ctx.ancestry
        );
        assert_eq!(ctx.user.as_deref(), Some("root"));
        assert_eq!(
            ctx.exe_new,
            Some(false),
            "{}: /bin/true came with the image",
            c.name
        );
        assert_eq!(ctx.exe_writable, Some(false));

        let dropped = rows
            .iter()
            .find(|e| {
                e.exe_path.as_deref() == Some("/tmp/.x/dropped")
                    && matches!(e.detail, Detail::Exec { .. })
            })
            .unwrap_or_else(|| panic!("{}: exec of the dropped binary", c.name));
        let dctx = dropped.context.as_ref().unwrap();
        assert_eq!(
            (dctx.exe_new, dctx.exe_writable, dctx.exe_fileless),
            (Some(true), Some(true), Some(false)),
            "{}: dropped binary flags",
            c.name
        );
    }
    assert!(
        events.iter().any(|e| e.detail == Detail::ContainerStop
            && e.container.as_ref().is_some_and(|k| *k.id == *stopped_id)),
        "container_stop after the first container was deleted"
    );
    assert!(
        !events.iter().any(|e| e.detail == Detail::ContainerStop
            && e.container
                .as_ref()
                .is_some_and(|k| ids[1..].contains(&k.id.to_string()))),
        "running containers are not reported stopped"
    );
}

//! End to end with real container engines: containers started by real podman (`podman run`,
//! `podman pod create`) and real containerd (`ctr -n k8s.io run` with kubelet's labels, under
//! containerd's default, cgroupfs-driver and systemd-driver cgroup layouts), recorded by the real
//! `capture`, read back from Parquet: every row of each container carries the engine's own id,
//! name, image, image digest, runtime, labels and pod.

use std::collections::BTreeMap;
use std::time::Duration;

use needle_common::schema::{Container, Detail, Event};
use needle_tests::capture::{Capture, Recorded, stop_and_read};
use needle_tests::containerd::{self, Containerd, Run, containerd_available};
use needle_tests::podman::{self, Podman, cgroup_of, podman_available};
use needle_tests::runc::random_container_id;
use needle_tests::{require, require_privileges};

/// The rows of container `id`; at least one, and one of them the exec of `/bin/true <marker>`
/// (so the container's own processes were attributed to it, not folded into the host).
fn rows_of<'a>(rec: &'a Recorded, id: &str, marker: &str) -> Vec<&'a Event> {
    let rows: Vec<&Event> = rec
        .events
        .iter()
        .filter(|e| e.container.as_ref().is_some_and(|c| &*c.id == id))
        .collect();
    assert!(
        rows.iter()
            .any(|e| matches!(&e.detail, Detail::Exec { argv, .. }
            if argv.iter().any(|a| a == marker))),
        "container {id}: no exec of /bin/true {marker} among its {} rows",
        rows.len()
    );
    let strays: Vec<&Event> = rec
        .events
        .iter()
        .filter(|e| {
            matches!(&e.detail, Detail::Exec { argv, .. }
            if argv.iter().any(|a| a == marker))
        })
        .filter(|e| e.container.as_ref().is_none_or(|c| &*c.id != id))
        .collect();
    assert!(strays.is_empty(), "{marker} ran outside {id}: {strays:?}");
    rows
}

/// Every row carries exactly `want` (labels compared as the subset given in `labels`).
fn assert_context(rows: &[&Event], want: &Container, labels: &[(&str, &str)]) {
    for e in rows {
        let c = e.container.as_deref().expect("container");
        let kind = e.detail.kind();
        assert_eq!(c.id, want.id, "{kind:?}");
        assert_eq!(c.name, want.name, "{}: name on {kind:?}", want.id);
        assert_eq!(c.image, want.image, "{}: image on {kind:?}", want.id);
        assert_eq!(c.image_digest, want.image_digest, "{}: digest", want.id);
        assert_eq!(c.runtime, want.runtime, "{}: runtime", want.id);
        assert_eq!(c.pod, want.pod, "{}: pod on {kind:?}", want.id);
        assert_eq!(c.namespace, want.namespace, "{}: namespace", want.id);
        let got: BTreeMap<String, String> = c
            .labels
            .as_deref()
            .map(|l| serde_json::from_str(l).expect("labels are a JSON object"))
            .unwrap_or_default();
        for (k, v) in labels {
            assert_eq!(
                got.get(*k).map(String::as_str),
                Some(*v),
                "{}: label {k} in {got:?}",
                want.id
            );
        }
    }
    assert!(
        rows.iter()
            .any(|e| matches!(e.detail, Detail::ContainerStart)),
        "{}: a container_start row",
        want.id
    );
}

/// A container's script: after a second (capture is recording), exec `/bin/true <marker>`, then
/// sleep.
fn script(marker: &str) -> String {
    format!("/bin/sleep 1; /bin/true {marker}; /bin/sleep 30")
}

#[test]
fn podman_containers_and_pods_carry_the_engines_context() {
    const TEST: &str = "capture_engines::podman";
    if !require_privileges(TEST) || !require(TEST, podman_available()) {
        return;
    }
    let podman = Podman::new().unwrap_or_else(|e| panic!("podman: {e}"));
    let digest = podman.image_digest().expect("image digest");
    assert!(digest.starts_with("sha256:"), "{digest:?}");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("traces");
    let cap = Capture::start(&out, &["--duration", "120s"]);

    let tag = std::process::id();
    let (web, pod, cart) = (
        format!("web-{tag}"),
        format!("shop-{tag}"),
        format!("cart-{tag}"),
    );
    let (web_mark, cart_mark) = (format!("podman-web-{tag}"), format!("podman-cart-{tag}"));
    let web_id = podman
        .run(&[
            "run",
            "--detach",
            "--network",
            "none",
            "--name",
            &web,
            "--label",
            "app=shop",
            "--label",
            "tier=front",
            podman::IMAGE,
            "/bin/sh",
            "-c",
            &script(&web_mark),
        ])
        .expect("podman run web");
    // A pod without an infra container: its image would come from a registry.
    podman
        .run(&["pod", "create", "--infra=false", "--name", &pod])
        .expect("podman pod create");
    let cart_id = podman
        .run(&[
            "run",
            "--detach",
            "--network",
            "none",
            "--pod",
            &pod,
            "--name",
            &cart,
            "--label",
            "app=cart",
            podman::IMAGE,
            "/bin/sh",
            "-c",
            &script(&cart_mark),
        ])
        .expect("podman run cart");
    let web_pid = podman.pid(&web).expect("web pid");
    assert_eq!(
        cgroup_of(web_pid).as_deref(),
        Some(format!("/libpod_parent/libpod-{web_id}").as_str()),
        "podman's cgroupfs layout"
    );
    std::thread::sleep(Duration::from_secs(3));
    let (rec, _) = stop_and_read(vec![(cap, out.as_path())]).remove(0);

    let image = Some(podman::IMAGE.into());
    let context = |id: &str, name: &str, pod: Option<&str>| Container {
        id: id.into(),
        name: Some(name.into()),
        image: image.clone(),
        image_digest: Some(digest.as_str().into()),
        runtime: Some("podman".into()),
        pod: pod.map(Into::into),
        namespace: None,
        labels: None,
    };
    assert_context(
        &rows_of(&rec, &web_id, &web_mark),
        &context(&web_id, &web, None),
        &[("app", "shop"), ("tier", "front")],
    );
    assert_context(
        &rows_of(&rec, &cart_id, &cart_mark),
        &context(&cart_id, &cart, Some(&pod)),
        &[("app", "cart")],
    );
}

#[test]
fn containerd_kubernetes_containers_under_each_cgroup_layout() {
    const TEST: &str = "capture_engines::containerd";
    if !require_privileges(TEST) || !require(TEST, containerd_available()) {
        return;
    }
    let mut ctrd = Containerd::start().unwrap_or_else(|e| panic!("containerd: {e}"));
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("traces");
    let cap = Capture::start(&out, &["--duration", "120s"]);

    struct Case {
        layout: &'static str,
        pod: &'static str,
        namespace: &'static str,
        name: &'static str,
    }
    let cases = [
        Case {
            layout: "containerd default",
            pod: "api-7f9c-x2",
            namespace: "shop",
            name: "api",
        },
        Case {
            layout: "kubelet cgroupfs driver",
            pod: "db-0",
            namespace: "data",
            name: "postgres",
        },
        Case {
            layout: "kubelet systemd driver",
            pod: "web-5d8b-q1",
            namespace: "front",
            name: "nginx",
        },
    ];
    let mut started = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let id = random_container_id();
        let uid = format!(
            "{}-{}-4{}-8{}-{}",
            &id[..8],
            &id[8..12],
            &id[13..16],
            &id[17..20],
            &id[20..32]
        );
        let cgroup = match i {
            0 => None,
            1 => Some(format!("/kubepods/besteffort/pod{uid}/{id}")),
            _ => {
                let u = uid.replace('-', "_");
                Some(format!(
                    "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{u}.slice/cri-containerd-{id}.scope"
                ))
            }
        };
        let marker = format!("ctrd-{i}-{}", std::process::id());
        let labels = [
            ("io.kubernetes.pod.name", case.pod),
            ("io.kubernetes.pod.namespace", case.namespace),
            ("io.kubernetes.container.name", case.name),
            ("io.kubernetes.pod.uid", uid.as_str()),
        ];
        let annotations = [
            ("io.kubernetes.cri.container-type", "container"),
            ("io.kubernetes.cri.sandbox-name", case.pod),
            ("io.kubernetes.cri.sandbox-namespace", case.namespace),
            ("io.kubernetes.cri.container-name", case.name),
        ];
        let sh = script(&marker);
        ctrd.run(&Run {
            id: &id,
            cgroup: cgroup.clone(),
            labels: &labels,
            annotations: &annotations,
            args: &["/bin/sh", "-c", &sh],
        })
        .unwrap_or_else(|e| panic!("{}: ctr run: {e}\n{}", case.layout, ctrd.log()));
        let pid = ctrd.pid(&id).expect("task pid");
        let expected = cgroup.unwrap_or_else(|| format!("/{}/{id}", containerd::NAMESPACE));
        assert_eq!(cgroup_of(pid), Some(expected), "{}", case.layout);
        started.push((id, uid, marker));
    }
    std::thread::sleep(Duration::from_secs(3));
    let (rec, _) = stop_and_read(vec![(cap, out.as_path())]).remove(0);

    for (case, (id, uid, marker)) in cases.iter().zip(&started) {
        let rows = rows_of(&rec, id, marker);
        let want = Container {
            id: id.as_str().into(),
            name: Some(case.name.into()),
            image: Some(containerd::IMAGE.into()),
            image_digest: Some(ctrd.image_digest().into()),
            runtime: Some("containerd".into()),
            pod: Some(case.pod.into()),
            namespace: Some(case.namespace.into()),
            labels: None,
        };
        eprintln!("{}: {} rows of {id}", case.layout, rows.len());
        assert_context(&rows, &want, &[("io.kubernetes.pod.uid", uid)]);
    }
    drop(ctrd);
}

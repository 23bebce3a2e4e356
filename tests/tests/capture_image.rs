//! capture deployed as a container, proven here: the image built by `deploy/image/build.sh`
//! (buildah, from scratch) runs under real podman with exactly the pod spec of
//! `deploy/kubernetes/daemonset.yaml` (host PID and UTS namespaces, its capabilities and nothing
//! else, seccomp, read-only root, 256 MiB, its read-only hostPath mounts), becomes ready through
//! its readiness probe, records other containers — a podman one with labels in a pod, a
//! containerd one with kubelet's labels — with the same context as the host binary recording
//! beside it, and stops cleanly on SIGTERM within the grace period.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use needle_common::schema::Container;
use needle_tests::capture::{Capture, Recorded, stop_and_read};
use needle_tests::containerd::{Containerd, Run, containerd_available};
use needle_tests::deploy::{self, validator_available, workspace};
use needle_tests::engine::{checked, find_tool};
use needle_tests::podman::{self, Podman, podman_available};
use needle_tests::runc::random_container_id;
use needle_tests::{binary, require, require_privileges};

/// Every distinct container context recorded for `id` (at least one row must carry it).
fn contexts(rec: &Recorded, id: &str) -> BTreeSet<String> {
    rec.events
        .iter()
        .filter_map(|e| e.container.as_deref())
        .filter(|c| &*c.id == id)
        .map(|c: &Container| format!("{c:?}"))
        .collect()
}

#[test]
fn the_daemonset_pod_records_what_the_host_binary_records() {
    const TEST: &str = "capture_image::daemonset_pod";
    let buildah = find_tool("buildah")
        .is_none()
        .then(|| "buildah is not installed (scripts/setup.sh)".to_owned());
    if !require_privileges(TEST)
        || !require(TEST, podman_available())
        || !require(TEST, containerd_available())
        || !require(TEST, buildah)
        || !require(TEST, validator_available())
    {
        return;
    }
    let podman = Podman::new().unwrap_or_else(|e| panic!("podman: {e}"));
    let mut ctrd = Containerd::start().unwrap_or_else(|e| panic!("containerd: {e}"));

    // The image, into the test's private podman storage.
    let mut build = Command::new("bash");
    build
        .arg(workspace().join("deploy/image/build.sh"))
        .arg("--binary")
        .arg(binary("capture"))
        .args(["--tag", "localhost/needle-capture:test", "--"])
        .args(podman.storage_options());
    let image = checked(build, Duration::from_secs(300)).expect("build the image");
    assert_eq!(image, "localhost/needle-capture:test");

    // The pod spec, with the trace hostPath in this test's directory; the engines' state
    // directories of this test are mounted read-only beside the standard ones.
    let tmp = tempfile::tempdir().unwrap();
    let pod_traces = tmp.path().join("pod-traces");
    let ds = deploy::daemonset().unwrap_or_else(|e| panic!("{e}"));
    let (mut opts, args) = deploy::podman_run_options(&ds, |name, _| {
        (name == "traces").then(|| pod_traces.clone())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    for dir in [podman.dir().to_owned(), ctrd.dir().to_owned()] {
        opts.push(format!("--volume={0}:{0}:ro,rbind", dir.display()));
    }
    let grace = ds["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("terminationGracePeriodSeconds");

    let host_traces = tmp.path().join("host-traces");
    let host = Capture::start(&host_traces, &["--duration", "180s"]);
    let mut run: Vec<String> = vec!["run".into(), "--detach".into(), "--name".into()];
    run.push("needle-capture".into());
    run.extend(opts);
    run.push(image.clone());
    run.extend(args);
    podman.run(&run).expect("podman run the capture pod");

    // The readiness probe, as the kubelet runs it: exec of the image's own binary.
    let probe: Vec<String> =
        ds["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["exec"]["command"]
            .as_array()
            .expect("probe")
            .iter()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect();
    let mut exec = vec!["exec".to_owned(), "needle-capture".to_owned()];
    exec.extend(probe);
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Err(e) = podman.run(&exec) {
        let logs = podman.run(&["logs", "needle-capture"]).unwrap_or_default();
        assert!(
            Instant::now() < deadline,
            "the pod never became ready: {e}\n{logs}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // The workloads both captures must see alike.
    let tag = std::process::id();
    let pod = format!("img-pod-{tag}");
    podman
        .run(&["pod", "create", "--infra=false", "--name", &pod])
        .expect("pod create");
    let web_id = podman
        .run(&[
            "run",
            "--detach",
            "--network",
            "none",
            "--pod",
            &pod,
            "--name",
            "img-web",
            "--label",
            "app=web",
            podman::IMAGE,
            "/bin/sh",
            "-c",
            "/bin/sleep 1; /bin/true img-web; /bin/sleep 30",
        ])
        .expect("podman run");
    let k8s_id = random_container_id();
    ctrd.run(&Run {
        id: &k8s_id,
        cgroup: None,
        labels: &[
            ("io.kubernetes.pod.name", "api-0"),
            ("io.kubernetes.pod.namespace", "shop"),
            ("io.kubernetes.container.name", "api"),
        ],
        annotations: &[],
        args: &[
            "/bin/sh",
            "-c",
            "/bin/sleep 1; /bin/true img-api; /bin/sleep 30",
        ],
    })
    .unwrap_or_else(|e| panic!("ctr run: {e}"));
    std::thread::sleep(Duration::from_secs(3));

    // SIGTERM, as the kubelet stops a pod; capture must finish well within the grace period.
    let stopped = Instant::now();
    podman
        .run(&["stop", "--time", &grace.to_string(), "needle-capture"])
        .expect("podman stop");
    assert!(
        stopped.elapsed() < Duration::from_secs(grace),
        "stopped only after {:?}",
        stopped.elapsed()
    );
    let code = podman
        .run(&[
            "inspect",
            "--format",
            "{{.State.ExitCode}}",
            "needle-capture",
        ])
        .expect("inspect");
    let logs = podman.run(&["logs", "needle-capture"]).unwrap_or_default();
    assert_eq!(code, "0", "the pod's capture exits 0 on SIGTERM:\n{logs}");
    assert!(
        logs.contains(" loaded, 0 skipped"),
        "every program loads in the pod:\n{logs}"
    );
    let (host_rec, _) = stop_and_read(vec![(host, host_traces.as_path())]).remove(0);
    let pod_rec = Recorded::read(&pod_traces);

    for (id, what) in [
        (&web_id, "podman container"),
        (&k8s_id, "containerd container"),
    ] {
        let in_host = contexts(&host_rec, id);
        let in_pod = contexts(&pod_rec, id);
        assert!(
            !in_host.is_empty(),
            "{what}: the host capture has no rows of {id}"
        );
        assert_eq!(
            in_pod, in_host,
            "{what} {id}: the pod's context differs from the host's"
        );
        eprintln!("{what}: {in_pod:?}");
    }
    // Spot checks that the shared context is the full one, not empty in both.
    let web = pod_rec
        .events
        .iter()
        .find_map(|e| e.container.as_deref().filter(|c| *c.id == *web_id))
        .expect("web rows");
    assert_eq!(web.name.as_deref(), Some("img-web"));
    assert_eq!(web.pod.as_deref(), Some(pod.as_str()));
    let api = pod_rec
        .events
        .iter()
        .find_map(|e| e.container.as_deref().filter(|c| *c.id == *k8s_id))
        .expect("api rows");
    assert_eq!(api.pod.as_deref(), Some("api-0"));
    assert_eq!(api.image.as_deref(), Some(needle_tests::containerd::IMAGE));

    // The traces name the node, as the host binary's do (host UTS namespace).
    let host_name = |rec_dir: &PathBuf| {
        needle_tests::capture::trace_files(rec_dir)
            .first()
            .map(|f| needle_tests::read_trace(f).expect("trace").metadata.host)
    };
    assert_eq!(host_name(&pod_traces), host_name(&host_traces));
}

//! The HTML report of datasets/demo in a real browser (headless Chromium through
//! chromedriver, driven by Python selenium from the project's venv): the page's script runs
//! without error and the attacked container ranks first. The screenshot is left in
//! target/report-browser/ for a person to look at.
//!
//! Needs `chromium`, `chromium-driver` and selenium (scripts/setup.sh installs them). Without
//! them it prints a SKIP line, except in CI (`CI=true`), where it fails.

use std::path::Path;
use std::process::Command;

use needle_tests::binary;

fn python_with_selenium() -> Option<String> {
    let py = std::env::var("NEEDLE_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py)
        .args(["-c", "import selenium"])
        .output()
        .is_ok_and(|o| o.status.success());
    let driver = Command::new("chromedriver")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    (ok && driver).then_some(py)
}

#[test]
fn demo_report_renders_in_chromium_with_the_attack_first() {
    let Some(py) = python_with_selenium() else {
        let why = "no chromedriver or no Python with selenium (scripts/setup.sh installs them)";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
        eprintln!("SKIP demo_report_renders_in_chromium_with_the_attack_first: {why}");
        if let Some(log) = std::env::var_os("NEEDLE_SKIP_LOG") {
            use std::io::Write;
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
            {
                let _ = writeln!(
                    f,
                    "demo_report_renders_in_chromium_with_the_attack_first: {why}"
                );
            }
        }
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let demo = root.join("datasets/demo");
    let labels =
        std::fs::read_to_string(demo.join("labels.csv")).expect("datasets/demo/labels.csv");
    let attack = labels
        .lines()
        .filter_map(|l| {
            l.split(',')
                .collect::<Vec<_>>()
                .get(..3)
                .map(|f| (f[0].to_string(), f[2].to_string()))
        })
        .find(|(_, label)| label == "attack")
        .map(|(w, _)| w)
        .expect("the demo has an attacked container");
    let out_dir = root.join("target/report-browser");
    std::fs::create_dir_all(&out_dir).unwrap();
    let report = out_dir.join("demo.html");
    let o = Command::new(binary("analyze"))
        .arg(&demo)
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let screenshot = out_dir.join("demo.png");
    let _ = std::fs::remove_file(&screenshot);
    let o = Command::new(py)
        .arg(root.join("tests/py/report_browser.py"))
        .arg(&report)
        .arg(&screenshot)
        .arg(&attack)
        .output()
        .unwrap();
    eprintln!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "the browser check failed (see above)");
    let png = std::fs::read(&screenshot).expect("a screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "the screenshot is a real picture"
    );
}

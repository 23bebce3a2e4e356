//! `analyze --report`: the HTML report of a trace whose strings are attacker-controlled shows
//! them as text, and holds the suspicious workload's process tree, peers and DNS names.

mod analyze_support;

use std::sync::Arc;

use analyze_support::*;
use needle_common::schema::{Container, Detail, FilePath, PathSource};

const SCRIPT: &str = "<script>alert(1)</script>";
const IMG: &str = "\"><img src=x onerror=alert(2)>";
const ANSI: &str = "\x1b]0;pwned\x07\x1b[2J";
const BIDI: &str = "evil\u{202e}gpj.exe";

/// The attacked container of the fleet, with HTML/JS payloads in every string a process
/// controls: comm, argv, paths, DNS names, and the container name.
fn hostile() -> Workload {
    let mut w = Workload::attacked(&cid(999), "web-evil", 42);
    let tmp = FilePath {
        path: format!("/tmp/{IMG}"),
        source: PathSource::Kernel,
    };
    w.event(
        35,
        400,
        301,
        SCRIPT,
        &format!("/tmp/.x/{SCRIPT}"),
        Detail::Exec {
            argv: vec![SCRIPT.into(), IMG.into(), ANSI.into(), BIDI.into()],
            truncated: false,
            state: None,
        },
    )
    .event(
        36,
        400,
        301,
        SCRIPT,
        &format!("/tmp/.x/{SCRIPT}"),
        Detail::Open {
            file: tmp,
            flags: 0o101,
            mode: 0o755,
            ret: 3,
            count: None,
        },
    )
    .event(
        37,
        400,
        301,
        SCRIPT,
        &format!("/tmp/.x/{SCRIPT}"),
        Detail::DnsQuery(Box::new(dns(&format!("{IMG}.pool.example")))),
    )
    .event(
        38,
        400,
        301,
        SCRIPT,
        &format!("/tmp/.x/{SCRIPT}"),
        Detail::Connect(Box::new(net("203.0.113.9", 4444))),
    );
    let evil = Arc::new(Container {
        id: cid(999).into(),
        name: Some(format!("{SCRIPT}{IMG}").into()),
        image: Some(format!("{IMG}:1").into()),
        ..Default::default()
    });
    for e in &mut w.events {
        e.container = Some(evil.clone());
    }
    w
}

#[test]
fn report_shows_attacker_strings_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let mut ws = fleet(6, false);
    ws.push(hostile());
    let trace = dir.path().join("t.parquet");
    write_trace(&trace, &ws, |_| {});
    let html_path = dir.path().join("report.html");
    let o = analyze(&[p(&trace), "--no-model", "--report", p(&html_path)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let html = std::fs::read_to_string(&html_path).unwrap();

    // Nothing from the trace became markup.
    assert_eq!(
        html.matches("<script").count(),
        1,
        "only the report's own script"
    );
    assert!(!html.contains("<img"), "an <img> tag from the trace");
    assert!(
        !html.contains('\x1b') && !html.contains('\u{202e}'),
        "control or bidi characters shown raw"
    );
    // … and every payload is there as text.
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
        "comm/argv escaped"
    );
    assert!(
        html.contains("&quot;&gt;&lt;img src=x onerror=alert(2)&gt;"),
        "argv escaped"
    );
    assert!(
        html.contains("\\x1b]0;pwned\\x07"),
        "ANSI shown as visible escapes"
    );
    assert!(
        html.contains("evil\\u{202e}gpj.exe"),
        "bidi override shown as an escape"
    );
    assert!(
        html.contains("img src=x onerror=alert(2)&gt;.pool.example"),
        "DNS name shown"
    );
    // The page allows no script but its own.
    assert!(
        html.contains("script-src 'sha256-"),
        "a CSP restricts scripts"
    );
    for fetch in ["src=\"http", "href=\"http", "url(", "@import"] {
        assert!(!html.contains(fetch), "the page fetches nothing ({fetch})");
    }

    // The attacked workload is detailed: process tree (sh from nginx, then the payload-named
    // process), its peers and DNS names.
    let detail = html
        .split("id=\"w1\"")
        .nth(1)
        .expect("a detail section for the top workload");
    assert!(detail.contains("Process tree"), "process tree");
    assert!(
        detail.contains("&#x2f;usr&#x2f;sbin&#x2f;nginx") && detail.contains("&#x2f;bin&#x2f;sh"),
        "the tree's processes"
    );
    assert!(
        detail.contains("203.0.113.9") && detail.contains("4444"),
        "network destination"
    );
    assert!(detail.contains("x9qz7k2v.pool.example"), "DNS name");
    assert!(
        detail.contains("class=\"flagged\""),
        "the suspicious branch is highlighted"
    );
}

#[test]
fn report_is_written_alongside_the_normal_output_and_nothing_suspicious_is_fine() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.parquet");
    write_trace(&trace, &fleet(4, false), |_| {});
    let html_path = dir.path().join("r.html");
    let o = analyze(&[
        p(&trace),
        "--no-model",
        "--no-signatures",
        "--format",
        "json",
        "--report",
        p(&html_path),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let json: serde_json::Value =
        serde_json::from_slice(&o.stdout).expect("the JSON output is unchanged");
    assert_eq!(json["workloads"].as_array().map(Vec::len), Some(4));
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(html.contains("id=\"ranked\""), "the ranking");
    let ranking = html
        .split("id=\"ranked\"")
        .nth(1)
        .and_then(|t| t.split("</table>").next())
        .expect("the ranked table");
    assert_eq!(
        ranking.matches("<tr class=").count(),
        4,
        "one row per workload"
    );
    // An unwritable report path is an error naming it.
    let o = analyze(&[p(&trace), "--report", "/nonexistent-dir/r.html"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("/nonexistent-dir/r.html"),
        "{}",
        stderr(&o)
    );
}

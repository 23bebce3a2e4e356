//! `analyze intel update`: public threat-intel feeds fetched, parsed in their published
//! formats, and written as intel files that `analyze --intel DIR` reads.
//!
//! Each feed writes one file per intel list it fills, `DIR/<feed>--<list>.txt`, with a
//! header naming the list (`# list:`), its kind, the feed's URL, licence and the time it was
//! fetched (`# version:`). A file is written beside its final name and renamed over it, so a
//! reader sees the old file or the new one; a feed that cannot be fetched or parsed leaves its
//! previous files as they were.

pub mod parse;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use parse::Parsed;

/// Format version of the files written (the `# needle-intel:` header).
pub const FILE_VERSION: u32 = 1;
/// Environment variable holding an abuse.ch Auth-Key, sent to the abuse.ch feeds when set.
pub const ABUSE_CH_KEY_ENV: &str = "ABUSE_CH_AUTH_KEY";
/// Largest feed body read.
const MAX_BODY: u64 = 512 << 20;

/// How a feed's body is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A hosts file of domains (`127.0.0.1 name`) for one list.
    Hosts(&'static str),
    /// ThreatFox's CSV export (several lists).
    ThreatFoxCsv,
    /// One IP address per line for one list.
    Addresses(&'static str),
    /// One SHA-256 digest per line for one list.
    Hashes(&'static str),
    /// An Onionoo summary document (JSON) for one list.
    OnionooSummary(&'static str),
}

/// One public feed.
#[derive(Clone, Copy, Debug)]
pub struct Feed {
    /// Short name (`--source NAME=URL`, file names).
    pub name: &'static str,
    /// Where it is published.
    pub url: &'static str,
    /// What it is, for the file header.
    pub source: &'static str,
    /// Its licence, for the file header.
    pub licence: &'static str,
    /// Its layout.
    pub format: Format,
    /// Sends the abuse.ch Auth-Key when one is set.
    pub abuse_ch: bool,
}

/// The feeds `intel update` fetches.
pub const FEEDS: &[Feed] = &[
    Feed {
        name: "urlhaus",
        url: "https://urlhaus.abuse.ch/downloads/hostfile/",
        source: "abuse.ch URLhaus host file (hosts serving malware)",
        licence: "CC0-1.0 (abuse.ch terms of use)",
        format: Format::Hosts("malicious_domains"),
        abuse_ch: true,
    },
    Feed {
        name: "threatfox",
        url: "https://threatfox.abuse.ch/export/csv/recent/",
        source: "abuse.ch ThreatFox IOCs, recent additions (CSV export)",
        licence: "CC0-1.0 (abuse.ch terms of use)",
        format: Format::ThreatFoxCsv,
        abuse_ch: true,
    },
    Feed {
        name: "feodo",
        url: "https://feodotracker.abuse.ch/downloads/ipblocklist.txt",
        source: "abuse.ch Feodo Tracker botnet C2 IP block list",
        licence: "CC0-1.0 (abuse.ch terms of use)",
        format: Format::Addresses("c2_addresses"),
        abuse_ch: true,
    },
    Feed {
        name: "malwarebazaar",
        url: "https://bazaar.abuse.ch/export/txt/sha256/recent/",
        source: "abuse.ch MalwareBazaar SHA-256 of recent samples",
        licence: "CC0-1.0 (abuse.ch terms of use)",
        format: Format::Hashes("bad_hashes"),
        abuse_ch: true,
    },
    Feed {
        name: "tor-relays",
        url: "https://onionoo.torproject.org/summary?type=relay&running=true",
        source: "Tor Project Onionoo: addresses of every running Tor relay",
        licence: "Tor Metrics data (CC0-1.0 per metrics.torproject.org)",
        format: Format::OnionooSummary("tor_relay_addresses"),
        abuse_ch: false,
    },
    Feed {
        name: "tor-exits",
        url: "https://check.torproject.org/torbulkexitlist",
        source: "Tor Project bulk exit list: addresses Tor exit relays connect from",
        licence: "Tor Project public data (no licence stated in the list)",
        format: Format::Addresses("tor_relay_addresses"),
        abuse_ch: false,
    },
];

/// Why a feed or the update failed.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// `--source` names no known feed.
    #[error(
        "--source {0}: unknown feed (known: urlhaus, threatfox, feodo, malwarebazaar, tor-relays, tor-exits)"
    )]
    UnknownFeed(String),
    /// `--source` without `=URL`, or not an http(s) URL.
    #[error("--source {0}: expected NAME=URL with an http:// or https:// URL")]
    BadSource(String),
    /// The intel directory cannot be created or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Feeds failed (their previous files are kept).
    #[error(
        "intel update: {failed} of {total} feeds failed ({names}); their previous files are kept"
    )]
    Failed {
        /// How many failed.
        failed: usize,
        /// How many there are.
        total: usize,
        /// Their names.
        names: String,
    },
}

/// What to update.
#[derive(Clone, Debug)]
pub struct Options {
    /// The directory of intel files.
    pub dir: PathBuf,
    /// Feed name → URL overrides.
    pub sources: Vec<(String, String)>,
    /// Time limit of one download.
    pub timeout: Duration,
}

/// What one feed did.
#[derive(Clone, Debug)]
pub struct FeedReport {
    /// The feed.
    pub name: &'static str,
    /// The URL fetched.
    pub url: String,
    /// Entries per list written, or why nothing was.
    pub outcome: Result<Vec<(PathBuf, usize)>, String>,
    /// Lines skipped.
    pub skipped: usize,
    /// Records of kinds needle has no list for.
    pub ignored: usize,
}

/// Parses `NAME=URL` overrides against the feed table.
pub fn parse_sources(values: &[String]) -> Result<Vec<(String, String)>, FeedError> {
    values
        .iter()
        .map(|v| {
            let (name, url) = v
                .split_once('=')
                .ok_or_else(|| FeedError::BadSource(crate::http::redact(v)))?;
            if !FEEDS.iter().any(|f| f.name == name) {
                return Err(FeedError::UnknownFeed(name.to_string()));
            }
            if !crate::http::is_http_url(url) {
                return Err(FeedError::BadSource(crate::http::redact(v)));
            }
            Ok((name.to_string(), url.to_string()))
        })
        .collect()
}

fn kind_of(list: &str) -> &'static str {
    match list {
        "bad_hashes" => "hashes",
        "c2_addresses" | "tor_relay_addresses" => "addresses",
        _ => "domains",
    }
}

fn fetch(agent: &ureq::Agent, feed: &Feed, url: &str) -> Result<String, String> {
    let mut req = agent.get(url);
    if feed.abuse_ch
        && let Ok(key) = std::env::var(ABUSE_CH_KEY_ENV)
    {
        req = req.header("Auth-Key", key.trim());
    }
    let mut resp = req.call().map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    if status != 200 {
        return Err(format!("HTTP {status}"));
    }
    let bytes = resp
        .body_mut()
        .with_config()
        .limit(MAX_BODY)
        .read_to_vec()
        .map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|_| "the body is not UTF-8 text".to_string())
}

fn parse(feed: &Feed, body: &str) -> Result<Parsed, String> {
    let p = match feed.format {
        Format::Hosts(list) => parse::hosts_file(body, list),
        Format::ThreatFoxCsv => parse::threatfox_csv(body),
        Format::Addresses(list) => parse::one_per_line(body, list, parse::address),
        Format::Hashes(list) => parse::one_per_line(body, list, parse::sha256),
        Format::OnionooSummary(list) => parse::onionoo_summary(body, list)?,
    };
    // An error page or a changed format must not replace good data with nothing.
    if p.entries() == 0 {
        return Err(format!(
            "no entries ({} lines skipped): not the feed's published format",
            p.skipped
        ));
    }
    Ok(p)
}

/// `YYYY-MM-DDTHH:MM:SSZ` of `t`.
fn stamp(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The text of one intel file.
fn file_text(
    feed: &Feed,
    url: &str,
    list: &str,
    p: &Parsed,
    entries: &[&String],
    when: &str,
) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "# kind: {}", kind_of(list));
    let _ = writeln!(t, "# list: {list}");
    let _ = writeln!(t, "# source: {} <{url}>", feed.source);
    let _ = writeln!(t, "# licence: {}", feed.licence);
    let _ = writeln!(t, "# version: {when}");
    let _ = writeln!(
        t,
        "# needle-intel: {FILE_VERSION} (written by analyze intel update, feed {})",
        feed.name
    );
    let _ = writeln!(
        t,
        "# entries: {}; feed lines skipped: {}; records of other kinds: {}",
        entries.len(),
        p.skipped,
        p.ignored
    );
    for e in entries {
        t.push_str(e);
        t.push('\n');
    }
    t
}

/// Writes `text` to `path` through a temporary file in the same directory and a rename.
fn replace(path: &Path, text: &str) -> Result<(), std::io::Error> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("intel.txt");
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written = std::fs::write(&tmp, text).and_then(|()| {
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, path)
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Updates every feed into `opts.dir`; each feed's report, in table order. Fails (after
/// trying every feed) when any feed failed.
pub fn update(opts: &Options) -> Result<Vec<FeedReport>, (Vec<FeedReport>, FeedError)> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FeedError::Io { path, source }
    };
    if let Err(e) = std::fs::create_dir_all(&opts.dir).map_err(io(&opts.dir)) {
        return Err((Vec::new(), e));
    }
    let agent = crate::http::agent(opts.timeout, 5);
    let when = stamp(SystemTime::now());
    let mut reports = Vec::new();
    for feed in FEEDS {
        let url = opts
            .sources
            .iter()
            .rev()
            .find(|(n, _)| n == feed.name)
            .map_or(feed.url.to_string(), |(_, u)| u.clone());
        let parsed = fetch(&agent, feed, &url).and_then(|body| parse(feed, &body));
        let (skipped, ignored) = parsed.as_ref().map_or((0, 0), |p| (p.skipped, p.ignored));
        let outcome = parsed.and_then(|p| {
            let mut written = Vec::new();
            for (list, entries) in &p.lists {
                let path = opts.dir.join(format!("{}--{list}.txt", feed.name));
                let entries: Vec<&String> = entries.iter().collect();
                replace(&path, &file_text(feed, &url, list, &p, &entries, &when))
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                written.push((path, entries.len()));
            }
            Ok(written)
        });
        reports.push(FeedReport {
            name: feed.name,
            url: crate::http::redact(&url),
            outcome,
            skipped,
            ignored,
        });
    }
    let failed: Vec<&str> = reports
        .iter()
        .filter(|r| r.outcome.is_err())
        .map(|r| r.name)
        .collect();
    if failed.is_empty() {
        Ok(reports)
    } else {
        let e = FeedError::Failed {
            failed: failed.len(),
            total: FEEDS.len(),
            names: failed.join(", "),
        };
        Err((reports, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_name_known_feeds_and_http_urls() {
        let ok = parse_sources(&["feodo=http://127.0.0.1:1/x".into()]).unwrap();
        assert_eq!(
            ok,
            [("feodo".to_string(), "http://127.0.0.1:1/x".to_string())]
        );
        assert!(matches!(
            parse_sources(&["nope=http://h/".into()]),
            Err(FeedError::UnknownFeed(_))
        ));
        assert!(parse_sources(&["feodo".into()]).is_err());
        assert!(parse_sources(&["feodo=file:///etc/passwd".into()]).is_err());
    }

    #[test]
    fn files_read_back_as_the_list_they_fill() {
        let dir = tempfile::tempdir().unwrap();
        let feed = &FEEDS[2];
        let p = parse::one_per_line("192.0.2.1\nbad\n", "c2_addresses", parse::address);
        let entries: Vec<&String> = p.lists["c2_addresses"].iter().collect();
        let path = dir.path().join("feodo--c2_addresses.txt");
        replace(
            &path,
            &file_text(
                feed,
                feed.url,
                "c2_addresses",
                &p,
                &entries,
                "2026-12-06T00:00:00Z",
            ),
        )
        .unwrap();
        let mut intel = crate::signatures::Intel::shipped().unwrap();
        intel.add_dir(dir.path()).unwrap();
        let l = intel.get("c2_addresses").unwrap();
        assert!(l.matches("192.0.2.1"));
        assert!(
            l.sources
                .iter()
                .any(|s| s.contains("Feodo") && s.contains("2026-12-06"))
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left");
    }
}

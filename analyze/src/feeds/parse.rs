//! Parsers of the published feed formats. Every entry is validated for its list's kind (a
//! domain name, an IP address, a SHA-256 digest) before it is kept: a feed is data from
//! outside, and an entry is written into an intel file one per line. Lines that are not
//! entries are skipped and counted.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// What one feed gave: entries per intel list, and how many lines were skipped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// List name → entries (deduplicated, sorted).
    pub lists: BTreeMap<&'static str, BTreeSet<String>>,
    /// Lines that should have held an entry and did not (malformed, wrong kind).
    pub skipped: usize,
    /// Valid records of a kind needle has no list for (ThreatFox URLs, MD5 hashes…).
    pub ignored: usize,
}

impl Parsed {
    fn add(&mut self, list: &'static str, entry: Option<String>) {
        match entry {
            Some(e) => {
                self.lists.entry(list).or_default().insert(e);
            }
            None => self.skipped += 1,
        }
    }

    /// Entries in all lists.
    pub fn entries(&self) -> usize {
        self.lists.values().map(BTreeSet::len).sum()
    }
}

/// A DNS name as intel lists hold it (lowercase, no trailing dot), if `s` is one.
pub fn domain(s: &str) -> Option<String> {
    let d = s.trim().trim_end_matches('.').to_ascii_lowercase();
    let labels: Vec<&str> = d.split('.').collect();
    let ok = d.len() <= 253
        && labels.len() >= 2
        && d.parse::<IpAddr>().is_err()
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    ok.then_some(d)
}

/// An IP address in its canonical text form (IPv6 may come in brackets), if `s` is one.
pub fn address(s: &str) -> Option<String> {
    let s = s.trim();
    let s = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    s.parse::<IpAddr>().ok().map(|ip| ip.to_string())
}

/// A lowercase hex SHA-256 digest, if `s` is one.
pub fn sha256(s: &str) -> Option<String> {
    let s = s.trim();
    (s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())).then(|| s.to_ascii_lowercase())
}

/// Lines that carry data: not blank, not `#` comments.
fn data_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// A hosts file (abuse.ch URLhaus): `127.0.0.1<TAB>name` lines, `#` comments.
pub fn hosts_file(text: &str, list: &'static str) -> Parsed {
    let mut p = Parsed::default();
    for line in data_lines(text) {
        let mut fields = line.split_whitespace();
        let entry = match (fields.next(), fields.next(), fields.next()) {
            (Some(ip), Some(name), None) if address(ip).is_some() => domain(name),
            _ => None,
        };
        p.add(list, entry);
    }
    p
}

/// One value per line (IP block lists, hash lists, Tor's exit list), `#` comments.
pub fn one_per_line(text: &str, list: &'static str, check: fn(&str) -> Option<String>) -> Parsed {
    let mut p = Parsed::default();
    for line in data_lines(text) {
        p.add(list, check(line));
    }
    p
}

/// The ThreatFox CSV export: `#` comment lines (one holds the column names), then quoted
/// fields separated by `", "`: first_seen_utc, ioc_id, ioc_value, ioc_type, threat_type, ….
/// Command-and-control indicators (`botnet_cc`) go to the C2 lists, other domains (payload
/// delivery) to `malicious_domains`, SHA-256 hashes to `bad_hashes`; URLs and MD5/SHA-1
/// hashes are counted as ignored.
pub fn threatfox_csv(text: &str) -> Parsed {
    let mut p = Parsed::default();
    let body: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(body.as_bytes());
    for record in reader.records() {
        let Ok(r) = record else {
            p.skipped += 1;
            continue;
        };
        let (Some(value), Some(kind), Some(threat)) = (r.get(2), r.get(3), r.get(4)) else {
            p.skipped += 1;
            continue;
        };
        let value = value.trim_matches('"');
        let c2 = threat.trim_matches('"') == "botnet_cc";
        match kind.trim_matches('"') {
            "domain" if c2 => p.add("c2_domains", domain(value)),
            "domain" => p.add("malicious_domains", domain(value)),
            "ip:port" if c2 => {
                let ip = value.rsplit_once(':').map_or(value, |(ip, _)| ip);
                p.add("c2_addresses", address(ip));
            }
            "sha256_hash" => p.add("bad_hashes", sha256(value)),
            "ip:port" | "url" | "md5_hash" | "sha1_hash" | "sha3_384_hash" => p.ignored += 1,
            _ => p.skipped += 1,
        }
    }
    p
}

#[derive(serde::Deserialize)]
struct OnionooSummary {
    relays: Vec<OnionooRelay>,
}

#[derive(serde::Deserialize)]
struct OnionooRelay {
    #[serde(default)]
    a: Vec<String>,
}

/// An Onionoo summary document (`/summary`): every relay's addresses (`a`: where it accepts
/// onion-routing connections or exits from), IPv6 in brackets.
pub fn onionoo_summary(text: &str, list: &'static str) -> Result<Parsed, String> {
    let doc: OnionooSummary =
        serde_json::from_str(text).map_err(|e| format!("not an Onionoo summary document: {e}"))?;
    let mut p = Parsed::default();
    for relay in doc.relays {
        if relay.a.is_empty() {
            p.skipped += 1;
        }
        for a in relay.a {
            p.add(list, address(&a));
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked_for_their_kind() {
        assert_eq!(domain("Evil.Example.COM."), Some("evil.example.com".into()));
        for bad in [
            "localhost",
            "1.2.3.4",
            "a b.com",
            "x..com",
            "evil.com\n#x",
            "",
        ] {
            assert_eq!(domain(bad), None, "{bad:?}");
        }
        assert_eq!(address("[2001:db8::1]"), Some("2001:db8::1".into()));
        assert_eq!(address("192.0.2.300"), None);
        assert_eq!(sha256(&"A".repeat(64)), Some("a".repeat(64)));
        assert_eq!(sha256(&"a".repeat(63)), None);
    }

    #[test]
    fn hosts_files_skip_and_count_bad_lines() {
        let p = hosts_file(
            "# abuse.ch URLhaus Host file\n127.0.0.1\tbad.example\n0.0.0.0 Other.example\nnot-a-line\n127.0.0.1\t1.2.3.4\n",
            "malicious_domains",
        );
        let got: Vec<&String> = p.lists["malicious_domains"].iter().collect();
        assert_eq!(got, ["bad.example", "other.example"]);
        assert_eq!(p.skipped, 2);
    }

    #[test]
    fn threatfox_rows_go_to_their_lists() {
        let text = r#"# ThreatFox IOCs: recent additions - CSV format
# "first_seen_utc","ioc_id","ioc_value","ioc_type","threat_type","fk_malware","malware_alias","malware_printable","last_seen_utc","confidence_level","reference","tags","anonymous","reporter"
"2026-12-05 10:00:00", "1", "c2.bad.test", "domain", "botnet_cc", "win.x", "None", "X", "", "100", "None", "x", "0", "r"
"2026-12-05 10:00:01", "2", "198.51.100.7:443", "ip:port", "botnet_cc", "win.x", "None", "X", "", "75", "None", "x", "0", "r"
"2026-12-05 10:00:02", "3", "drop.bad.test", "domain", "payload_delivery", "js.y", "None", "Y", "", "100", "None", "y", "0", "r"
"2026-12-05 10:00:03", "4", "ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789", "sha256_hash", "payload", "elf.z", "None", "Z", "", "100", "None", "z", "0", "r"
"2026-12-05 10:00:04", "5", "http://198.51.100.8/x.sh", "url", "payload_delivery", "elf.z", "None", "Z", "", "100", "None", "z", "0", "r"
"2026-12-05 10:00:05", "6", "not a domain", "domain", "botnet_cc", "win.x", "None", "X", "", "100", "None", "x", "0", "r"
"#;
        let p = threatfox_csv(text);
        assert!(p.lists["c2_domains"].contains("c2.bad.test"));
        assert!(p.lists["c2_addresses"].contains("198.51.100.7"));
        assert!(p.lists["malicious_domains"].contains("drop.bad.test"));
        assert!(p.lists["bad_hashes"].contains(&"abcdef0123456789".repeat(4)));
        assert_eq!((p.entries(), p.skipped, p.ignored), (4, 1, 1));
    }

    #[test]
    fn onionoo_relays_give_their_addresses() {
        let p = onionoo_summary(
            r#"{"version":"8.0","relays_published":"2026-12-05 10:00:00","relays":[{"n":"a","f":"AB","a":["192.0.2.10","[2001:db8::10]"],"r":true},{"n":"b","f":"CD","a":["nope"],"r":true}],"bridges_published":"2026-12-05 10:00:00","bridges":[]}"#,
            "tor_relay_addresses",
        )
        .unwrap();
        assert_eq!(p.lists["tor_relay_addresses"].len(), 2);
        assert_eq!(p.skipped, 1);
        assert!(onionoo_summary("<html>", "x").is_err());
    }
}

//! Threat-intel lists: plain text files, one entry per line, with a header that says what the
//! entries are and where they came from.
//!
//! ```text
//! # kind: domains            domains | addresses | ports | names | patterns | hashes
//! # source: where the entries came from (URL, report, or "needle maintainers")
//! # version: 2026-11-23
//! # mode: extend             (files given with --intel only) extend | replace
//! # list: mining_pool_domains (optional) the list this file adds to [default: the file stem]
//! minexmr.com
//! pool.supportxmr.com        # a comment after whitespace and '#'
//! ```
//!
//! How an entry matches depends on the list's kind: a domain matches itself and every
//! subdomain (`minexmr.com` matches `pool.minexmr.com`), an address entry is an IP or a CIDR
//! block, a port is a number, a name is compared case-insensitively (executable basenames),
//! a pattern is a case-insensitive regular expression, a hash is lowercase hex SHA-256.
//!
//! A `# list:` header lets several files of one directory add to the same list (what
//! `analyze intel update` writes: one file per feed and list, `threatfox--c2_domains.txt`).

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use regex::RegexSet;

use super::SignatureError;

/// What the entries of a list are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListKind {
    /// DNS names; an entry matches itself and its subdomains.
    Domains,
    /// IP addresses or CIDR blocks.
    Addresses,
    /// Port numbers.
    Ports,
    /// Names compared case-insensitively (executable basenames, tools).
    Names,
    /// Case-insensitive regular expressions, matched anywhere in the value.
    Patterns,
    /// Lowercase hex SHA-256 digests.
    Hashes,
}

impl ListKind {
    fn parse(s: &str) -> Option<ListKind> {
        Some(match s {
            "domains" => ListKind::Domains,
            "addresses" => ListKind::Addresses,
            "ports" => ListKind::Ports,
            "names" => ListKind::Names,
            "patterns" => ListKind::Patterns,
            "hashes" => ListKind::Hashes,
            _ => return None,
        })
    }
}

/// One list, ready to match.
#[derive(Clone, Debug)]
pub struct List {
    /// Name (the file stem).
    pub name: String,
    /// What the entries are.
    pub kind: ListKind,
    /// Where the entries came from (one line per file that contributed).
    pub sources: Vec<String>,
    /// Entries, as written (normalised to lowercase except patterns).
    pub entries: Vec<String>,
    set: HashSet<String>,
    blocks: Vec<(IpAddr, u8)>,
    ports: HashSet<u64>,
    patterns: Option<RegexSet>,
}

impl List {
    fn new(name: &str, kind: ListKind) -> List {
        List {
            name: name.to_string(),
            kind,
            sources: Vec::new(),
            entries: Vec::new(),
            set: HashSet::new(),
            blocks: Vec::new(),
            ports: HashSet::new(),
            patterns: None,
        }
    }

    fn add(&mut self, entry: &str, file: &str, line: usize) -> Result<(), SignatureError> {
        let bad = |message: String| SignatureError::Intel {
            file: file.to_string(),
            line,
            message,
        };
        match self.kind {
            ListKind::Addresses => {
                let (ip, bits) = match entry.split_once('/') {
                    Some((ip, bits)) => (ip, Some(bits)),
                    None => (entry, None),
                };
                let ip: IpAddr = ip
                    .parse()
                    .map_err(|_| bad(format!("`{entry}` is not an IP address or CIDR block")))?;
                let max = if ip.is_ipv4() { 32 } else { 128 };
                let bits = match bits {
                    Some(b) => b
                        .parse::<u8>()
                        .ok()
                        .filter(|&b| b <= max)
                        .ok_or_else(|| bad(format!("bad prefix length in `{entry}`")))?,
                    None => max,
                };
                self.blocks.push((ip, bits));
            }
            ListKind::Ports => {
                let p: u64 = entry
                    .parse()
                    .ok()
                    .filter(|&p| p <= 65535)
                    .ok_or_else(|| bad(format!("`{entry}` is not a port number")))?;
                self.ports.insert(p);
            }
            ListKind::Patterns => {
                regex::Regex::new(entry).map_err(|e| bad(format!("bad pattern `{entry}`: {e}")))?;
            }
            ListKind::Hashes => {
                if entry.len() != 64 || !entry.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(bad(format!(
                        "`{entry}` is not a SHA-256 digest (64 hex characters)"
                    )));
                }
            }
            ListKind::Domains | ListKind::Names => {}
        }
        let normal = if self.kind == ListKind::Patterns {
            entry.to_string()
        } else {
            entry.to_ascii_lowercase()
        };
        let normal = if self.kind == ListKind::Domains {
            normal.trim_matches('.').to_string()
        } else {
            normal
        };
        self.set.insert(normal.clone());
        self.entries.push(normal);
        Ok(())
    }

    fn build(&mut self) -> Result<(), SignatureError> {
        if self.kind == ListKind::Patterns {
            let set =
                RegexSet::new(self.entries.iter().map(|p| format!("(?i){p}"))).map_err(|e| {
                    SignatureError::Intel {
                        file: self.name.clone(),
                        line: 0,
                        message: e.to_string(),
                    }
                })?;
            self.patterns = Some(set);
        }
        Ok(())
    }

    /// True when `value` matches an entry (see the module docs for each kind).
    pub fn matches(&self, value: &str) -> bool {
        match self.kind {
            ListKind::Domains => {
                let v = value.trim_end_matches('.');
                let lower;
                let mut rest = if v.bytes().any(|b| b.is_ascii_uppercase()) {
                    lower = v.to_ascii_lowercase();
                    lower.as_str()
                } else {
                    v
                };
                loop {
                    if self.set.contains(rest) {
                        return true;
                    }
                    match rest.split_once('.') {
                        Some((_, parent)) if !parent.is_empty() => rest = parent,
                        _ => return false,
                    }
                }
            }
            ListKind::Addresses => value.parse::<IpAddr>().is_ok_and(|ip| {
                self.blocks
                    .iter()
                    .any(|&(net, bits)| in_block(ip, net, bits))
            }),
            ListKind::Ports => value.parse::<u64>().is_ok_and(|p| self.ports.contains(&p)),
            ListKind::Names | ListKind::Hashes => {
                if value.bytes().any(|b| b.is_ascii_uppercase()) {
                    self.set.contains(&value.to_ascii_lowercase())
                } else {
                    self.set.contains(value)
                }
            }
            ListKind::Patterns => self.patterns.as_ref().is_some_and(|p| p.is_match(value)),
        }
    }

    /// True when the number `value` matches (ports; other kinds compare its decimal form).
    pub fn matches_num(&self, value: u64) -> bool {
        match self.kind {
            ListKind::Ports => self.ports.contains(&value),
            _ => self.matches(&value.to_string()),
        }
    }
}

fn in_block(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(bits))
            };
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(bits))
            };
            u128::from(a) & mask == u128::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V4(_)) => a
            .to_ipv4_mapped()
            .is_some_and(|a| in_block(IpAddr::V4(a), net, bits)),
        _ => false,
    }
}

/// Every list, by name.
#[derive(Clone, Debug, Default)]
pub struct Intel {
    lists: BTreeMap<String, List>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Extend,
    Replace,
}

impl Intel {
    /// The lists shipped with this build (`models/intel/`, embedded at build time).
    pub fn shipped() -> Result<Intel, SignatureError> {
        let mut intel = Intel::default();
        for (file, text) in super::embedded::INTEL {
            intel.add_file(file, text)?;
        }
        intel.build()?;
        Ok(intel)
    }

    /// Adds every `*.txt` file of `dir`: a list of a new name is added, a list of a shipped
    /// name is extended (or replaced, with `# mode: replace`).
    pub fn add_dir(&mut self, dir: &Path) -> Result<(), SignatureError> {
        for path in text_files(dir, "txt")? {
            let text = std::fs::read_to_string(&path).map_err(|source| SignatureError::Io {
                path: path.clone(),
                source,
            })?;
            self.add_file(&path.display().to_string(), &text)?;
        }
        self.build()
    }

    fn add_file(&mut self, file: &str, text: &str) -> Result<(), SignatureError> {
        let mut name = Path::new(file)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or(file)
            .to_string();
        let mut kind = None;
        let mut source = None;
        let mut version = None;
        let mut mode = Mode::Extend;
        let mut entries = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if let Some(header) = line.strip_prefix('#') {
                if let Some((k, v)) = header.split_once(':') {
                    let v = v.trim();
                    match k.trim() {
                        "kind" => {
                            kind = Some(ListKind::parse(v).ok_or_else(|| SignatureError::Intel {
                                file: file.to_string(),
                                line: i + 1,
                                message: format!("unknown kind `{v}` (domains, addresses, ports, names, patterns, hashes)"),
                            })?)
                        }
                        "source" => source = Some(v.to_string()),
                        "version" => version = Some(v.to_string()),
                        "mode" if v == "replace" => mode = Mode::Replace,
                        "list" => {
                            if v.is_empty()
                                || !v
                                    .bytes()
                                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                            {
                                return Err(SignatureError::Intel {
                                    file: file.to_string(),
                                    line: i + 1,
                                    message: format!("bad list name `{v}`"),
                                });
                            }
                            name = v.to_string();
                        }
                        _ => {}
                    }
                }
                continue;
            }
            // A comment after an entry starts at whitespace followed by '#'.
            let entry = line
                .split(" #")
                .next()
                .unwrap_or("")
                .split("\t#")
                .next()
                .unwrap_or("")
                .trim();
            if !entry.is_empty() {
                entries.push((i + 1, entry.to_string()));
            }
        }
        let missing = |what: &str| SignatureError::Intel {
            file: file.to_string(),
            line: 0,
            message: format!("no `# {what}:` header line"),
        };
        let kind = kind.ok_or_else(|| missing("kind"))?;
        let source = source.ok_or_else(|| missing("source"))?;
        let list = match self.lists.get_mut(&name) {
            Some(existing) if mode == Mode::Extend => {
                if existing.kind != kind {
                    return Err(SignatureError::Intel {
                        file: file.to_string(),
                        line: 0,
                        message: format!(
                            "list `{name}` holds {:?}, this file says {kind:?}",
                            existing.kind
                        ),
                    });
                }
                existing
            }
            _ => {
                self.lists.insert(name.clone(), List::new(&name, kind));
                self.lists.get_mut(&name).ok_or_else(|| missing("kind"))?
            }
        };
        list.sources.push(match version {
            Some(v) => format!("{source} (version {v}; {file})"),
            None => format!("{source} ({file})"),
        });
        for (line, e) in entries {
            list.add(&e, file, line)?;
        }
        Ok(())
    }

    fn build(&mut self) -> Result<(), SignatureError> {
        self.lists.values_mut().try_for_each(List::build)
    }

    /// The list called `name`.
    pub fn get(&self, name: &str) -> Option<&List> {
        self.lists.get(name)
    }

    /// Every list.
    pub fn lists(&self) -> impl Iterator<Item = &List> {
        self.lists.values()
    }
}

/// Files with extension `ext` in `dir` (not recursive, hidden files skipped), sorted.
pub(super) fn text_files(dir: &Path, ext: &str) -> Result<Vec<PathBuf>, SignatureError> {
    let rd = std::fs::read_dir(dir).map_err(|source| SignatureError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .filter(|p| {
            !p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(kind: &str, body: &str) -> List {
        let mut i = Intel::default();
        i.add_file("t.txt", &format!("# kind: {kind}\n# source: test\n{body}"))
            .unwrap();
        i.build().unwrap();
        i.get("t").unwrap().clone()
    }

    #[test]
    fn domains_match_subdomains_only_at_label_boundaries() {
        let l = list("domains", "minexmr.com\n");
        assert!(
            l.matches("minexmr.com")
                && l.matches("POOL.minexmr.com.")
                && !l.matches("notminexmr.com")
                && !l.matches("com")
        );
    }

    #[test]
    fn addresses_ports_names_patterns_hashes() {
        let a = list(
            "addresses",
            "10.0.0.0/8\n192.0.2.7 # one host\n2001:db8::/32\n",
        );
        assert!(
            a.matches("10.2.3.4")
                && a.matches("192.0.2.7")
                && !a.matches("192.0.2.8")
                && a.matches("2001:db8::1")
                && !a.matches("nope")
        );
        assert!(a.matches("::ffff:10.1.1.1"));
        let p = list("ports", "3333\n");
        assert!(p.matches_num(3333) && !p.matches_num(3334) && p.matches("3333"));
        let n = list("names", "xmrig\n");
        assert!(n.matches("XMRig") && !n.matches("xmrig2"));
        let r = list("patterns", "stratum\\+tcp://\n");
        assert!(r.matches("x -o STRATUM+TCP://a:1") && !r.matches("stratum"));
        let h = list("hashes", &format!("{}\n", "A".repeat(64)));
        assert!(h.matches(&"a".repeat(64)));
    }

    #[test]
    fn bad_files_are_errors_naming_file_and_line() {
        let mut i = Intel::default();
        let e = i
            .add_file("x.txt", "# kind: ports\n# source: t\n99999\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.txt") && e.contains("line 3"), "{e}");
        assert!(
            i.add_file("y.txt", "# source: t\na\n")
                .unwrap_err()
                .to_string()
                .contains("kind")
        );
        assert!(
            i.add_file("z.txt", "# kind: names\na\n")
                .unwrap_err()
                .to_string()
                .contains("source")
        );
    }

    #[test]
    fn a_list_header_names_the_list_a_file_adds_to() {
        let mut i = Intel::default();
        i.add_file("a/c2_domains.txt", "# kind: domains\n# source: s\nx.test\n")
            .unwrap();
        i.add_file(
            "b/threatfox--c2_domains.txt",
            "# kind: domains\n# list: c2_domains\n# source: t\ny.test\n",
        )
        .unwrap();
        assert_eq!(i.get("c2_domains").unwrap().entries, ["x.test", "y.test"]);
        assert!(i.get("threatfox--c2_domains").is_none());
        let e = i
            .add_file("c/x.txt", "# kind: domains\n# list: ../x\n# source: t\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("c/x.txt") && e.contains("line 2"), "{e}");
    }

    #[test]
    fn user_files_extend_or_replace() {
        let mut i = Intel::default();
        i.add_file("a/t.txt", "# kind: names\n# source: s\nx\n")
            .unwrap();
        i.add_file("b/t.txt", "# kind: names\n# source: u\ny\n")
            .unwrap();
        assert_eq!(i.get("t").unwrap().entries, ["x", "y"]);
        i.add_file(
            "c/t.txt",
            "# kind: names\n# source: u\n# mode: replace\nz\n",
        )
        .unwrap();
        assert_eq!(i.get("t").unwrap().entries, ["z"]);
        assert!(
            i.add_file("d/t.txt", "# kind: ports\n# source: u\n1\n")
                .is_err()
        );
    }

    #[test]
    fn shipped_lists_load_and_name_their_source() {
        let i = Intel::shipped().unwrap();
        assert!(i.lists().count() >= 8);
        for l in i.lists() {
            // A list with nothing worth shipping says where its entries come from.
            let filled_later = l.sources.iter().all(|s| s.contains("analyze intel update"));
            assert!(
                !l.sources.is_empty() && (!l.entries.is_empty() || filled_later),
                "{}",
                l.name
            );
        }
    }
}

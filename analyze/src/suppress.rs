//! Suppression rules: findings a user expects and silences, as GuardDuty suppression rules and
//! Falco exceptions do. A finding means what its definition says wherever it fires (an agent
//! that downloads its plugin at start and runs it *is* a new binary executed); whether that is
//! expected in this fleet is the user's call, written down in a file and applied here — never
//! an exemption inside a rule. Suppressed findings add nothing to a workload's score and are
//! counted, per workload and per rule, in every output.
//!
//! ```toml
//! [[rule]]
//! name = "telemetry agent installs its plugin"      # shown with every count
//! finding = "Execution:Runtime/NewBinaryExecuted"   # a type, or a glob over types
//! image = "registry.local/agents/*"                 # every criterion given must match
//! exe = ["/usr/local/bin/*", "/opt/agent/bin/*"]    # one glob, or any of a list
//! ```
//!
//! Criteria (globs, `*` also matches `/`; a list matches when any entry does): `finding`
//! (required), `workload`, `container` (its name), `image`, `pod`, `namespace`, `exe` (the
//! finding's process or any of its events' executables), `argv` (the process's command
//! line), `path` (a file path in any of its events). A criterion about the finding's process
//! or events never matches a finding that has none (a learned-behaviour finding has no
//! process): such a rule can only be silenced by workload-level criteria.

use std::path::{Path, PathBuf};

use glob::{MatchOptions, Pattern};
use serde::{Deserialize, Serialize};

use crate::features::WorkloadFeatures;
use crate::finding::Finding;

/// Why a suppression file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SuppressError {
    /// The file cannot be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong (TOML position, rule, field).
        message: String,
    },
}

/// One glob or a list of them, as written in the file.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
enum Globs {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    #[serde(default)]
    reason: Option<String>,
    finding: Globs,
    #[serde(default)]
    workload: Option<Globs>,
    #[serde(default)]
    container: Option<Globs>,
    #[serde(default)]
    image: Option<Globs>,
    #[serde(default)]
    pod: Option<Globs>,
    #[serde(default)]
    namespace: Option<Globs>,
    #[serde(default)]
    exe: Option<Globs>,
    #[serde(default)]
    argv: Option<Globs>,
    #[serde(default)]
    path: Option<Globs>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rule: Vec<RawRule>,
}

/// Compiled globs of one criterion.
#[derive(Clone, Debug)]
struct Criterion(Vec<Pattern>);

const OPTIONS: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: false,
    require_literal_leading_dot: false,
};

impl Criterion {
    fn compile(field: &str, g: &Globs) -> Result<Criterion, String> {
        let list = match g {
            Globs::One(s) => vec![s.clone()],
            Globs::Many(v) => v.clone(),
        };
        if list.is_empty() {
            return Err(format!("`{field}` is an empty list"));
        }
        list.iter()
            .map(|s| Pattern::new(s).map_err(|e| format!("`{field}` = {s:?}: {e}")))
            .collect::<Result<Vec<_>, _>>()
            .map(Criterion)
    }

    fn matches(&self, value: &str) -> bool {
        self.0.iter().any(|p| p.matches_with(value, OPTIONS))
    }

    fn any(&self, mut values: impl Iterator<Item = impl AsRef<str>>) -> bool {
        values.any(|v| self.matches(v.as_ref()))
    }
}

/// One suppression rule.
#[derive(Clone, Debug)]
pub struct Rule {
    /// Its name (reported with the counts).
    pub name: String,
    /// Why the user expects these findings.
    pub reason: Option<String>,
    finding: Criterion,
    workload: Vec<(Field, Criterion)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Workload,
    Container,
    Image,
    Pod,
    Namespace,
    Exe,
    Argv,
    Path,
}

impl Rule {
    /// True when this rule silences `f` on workload `w`.
    pub fn matches(&self, w: &WorkloadFeatures, f: &Finding) -> bool {
        if !self.finding.matches(&f.kind) {
            return false;
        }
        let ctx = &w.context;
        self.workload.iter().all(|(field, c)| match field {
            Field::Workload => c.matches(&w.workload),
            Field::Container => ctx.name.as_deref().is_some_and(|v| c.matches(v)),
            Field::Image => ctx.image.as_deref().is_some_and(|v| c.matches(v)),
            Field::Pod => ctx.pod.as_deref().is_some_and(|v| c.matches(v)),
            Field::Namespace => ctx.namespace.as_deref().is_some_and(|v| c.matches(v)),
            Field::Exe => c.any(
                f.process
                    .iter()
                    .filter_map(|p| p.exe.as_deref())
                    .chain(f.events.iter().filter_map(|e| e.exe.as_deref())),
            ),
            Field::Argv => c.any(f.process.iter().filter_map(|p| p.argv.as_deref())),
            Field::Path => c.any(
                f.events
                    .iter()
                    .flat_map(|e| e.fields.iter())
                    .filter(|(k, _)| k.as_str() == "path" || k.as_str() == "path2")
                    .map(|(_, v)| v.as_str()),
            ),
        })
    }
}

/// A finding silenced by a rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Suppressed {
    /// Finding type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The rule that silenced it.
    pub rule: String,
}

/// The user's suppression rules (none by default).
#[derive(Clone, Debug, Default)]
pub struct Suppressions {
    rules: Vec<Rule>,
    /// The files they came from, for reports.
    pub files: Vec<PathBuf>,
}

impl Suppressions {
    /// Reads and compiles the rules of every file; an error names the file and the problem.
    pub fn load(paths: &[PathBuf]) -> Result<Suppressions, SuppressError> {
        let mut out = Suppressions::default();
        for path in paths {
            let text = std::fs::read_to_string(path).map_err(|source| SuppressError::Io {
                path: path.clone(),
                source,
            })?;
            out.rules.extend(parse(path, &text)?);
            out.files.push(path.clone());
        }
        Ok(out)
    }

    /// The rules.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Splits `findings` of workload `w` into those kept and those silenced (with the first
    /// rule that matched each).
    pub fn apply(
        &self,
        w: &WorkloadFeatures,
        findings: Vec<Finding>,
    ) -> (Vec<Finding>, Vec<Suppressed>) {
        if self.rules.is_empty() {
            return (findings, Vec::new());
        }
        let mut kept = Vec::with_capacity(findings.len());
        let mut silenced = Vec::new();
        for f in findings {
            match self.rules.iter().find(|r| r.matches(w, &f)) {
                Some(r) => silenced.push(Suppressed {
                    kind: f.kind,
                    rule: r.name.clone(),
                }),
                None => kept.push(f),
            }
        }
        (kept, silenced)
    }
}

fn parse(path: &Path, text: &str) -> Result<Vec<Rule>, SuppressError> {
    let invalid = |message: String| SuppressError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let raw: RawFile = toml::from_str(text).map_err(|e| invalid(e.message().to_string()))?;
    let mut rules = Vec::new();
    for (i, r) in raw.rule.into_iter().enumerate() {
        let at = |m: String| invalid(format!("rule {} ({:?}): {m}", i + 1, r.name));
        if r.name.trim().is_empty() {
            return Err(at("`name` is empty".into()));
        }
        let finding = Criterion::compile("finding", &r.finding).map_err(at)?;
        let mut workload = Vec::new();
        for (field, g, name) in [
            (Field::Workload, &r.workload, "workload"),
            (Field::Container, &r.container, "container"),
            (Field::Image, &r.image, "image"),
            (Field::Pod, &r.pod, "pod"),
            (Field::Namespace, &r.namespace, "namespace"),
            (Field::Exe, &r.exe, "exe"),
            (Field::Argv, &r.argv, "argv"),
            (Field::Path, &r.path, "path"),
        ] {
            if let Some(g) = g {
                workload.push((field, Criterion::compile(name, g).map_err(&at)?));
            }
        }
        rules.push(Rule {
            name: r.name,
            reason: r.reason,
            finding,
            workload,
        });
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::Context;
    use crate::finding::{EventEvidence, ProcessInfo, Severity};

    fn workload(image: &str, ns: &str) -> WorkloadFeatures {
        WorkloadFeatures {
            workload: "c0ffee".into(),
            context: Context {
                name: Some("agent".into()),
                image: Some(image.into()),
                namespace: Some(ns.into()),
                ..Default::default()
            },
            hosts: Vec::new(),
            first_ns: 0,
            last_ns: 0,
            capped: 0,
            change: None,
            values: Vec::new(),
        }
    }

    fn finding(kind: &str, exe: Option<&str>, path: Option<&str>) -> Finding {
        Finding {
            kind: kind.into(),
            severity: Severity::Medium,
            process: exe.map(|e| ProcessInfo {
                exe: Some(e.into()),
                ..Default::default()
            }),
            events: path
                .map(|p| EventEvidence {
                    kind: "open".into(),
                    fields: [("path".to_string(), p.to_string())].into(),
                    ..Default::default()
                })
                .into_iter()
                .collect(),
            ..Default::default()
        }
    }

    const FILE: &str = r#"
        [[rule]]
        name = "agent installs its plugin"
        reason = "expected at start"
        finding = "Execution:Runtime/NewBinaryExecuted"
        image = "registry.local/agents/*"
        exe = ["/usr/local/bin/*", "/opt/agent/bin/*"]

        [[rule]]
        name = "log rotation"
        finding = "DefenseEvasion:Runtime/*"
        namespace = "logging"
        path = "/var/log/*"
    "#;

    #[test]
    fn a_finding_is_silenced_only_when_every_criterion_matches() {
        let s = Suppressions {
            rules: parse(Path::new("s.toml"), FILE).expect("parses"),
            files: Vec::new(),
        };
        let agent = workload("registry.local/agents/otel:1.2", "observability");
        let nbe = "Execution:Runtime/NewBinaryExecuted";
        let (kept, gone) = s.apply(
            &agent,
            vec![
                finding(nbe, Some("/usr/local/bin/otel-collect"), None),
                // Same type, another place: kept (the near miss).
                finding(nbe, Some("/var/tmp/.x/kswapd0"), None),
                // Another type: kept.
                finding(
                    "Execution:Runtime/ReverseShell",
                    Some("/usr/local/bin/otel"),
                    None,
                ),
                // A finding without a process cannot match an `exe` criterion.
                finding(nbe, None, None),
            ],
        );
        assert_eq!(
            gone,
            vec![Suppressed {
                kind: nbe.into(),
                rule: "agent installs its plugin".into()
            }]
        );
        assert_eq!(kept.len(), 3);
        // Another image: nothing silenced.
        let other = workload("registry.local/shop/web:1", "observability");
        let (kept, gone) = s.apply(
            &other,
            vec![finding(nbe, Some("/usr/local/bin/otel-collect"), None)],
        );
        assert!(gone.is_empty() && kept.len() == 1);
        // A glob over types and a path criterion.
        let logs = workload("registry.local/ops/logrotate:3", "logging");
        let tamper = "DefenseEvasion:Runtime/LogTampering";
        let (_, gone) = s.apply(
            &logs,
            vec![
                finding(tamper, None, Some("/var/log/nginx/error.log")),
                finding(tamper, None, Some("/root/.ash_history")),
            ],
        );
        assert_eq!(gone.len(), 1);
    }

    #[test]
    fn bad_files_are_errors_naming_the_file_and_the_rule() {
        let err = |text: &str| {
            parse(Path::new("mine.toml"), text)
                .expect_err("must be refused")
                .to_string()
        };
        let e = err("[[rule]]\nname = \"x\"\nfinding = \"A\"\nimage = \"[\"\n");
        assert!(e.starts_with("mine.toml: rule 1 (\"x\"): `image`"), "{e}");
        let e = err("[[rule]]\nname = \"x\"\nfinding = \"A\"\ncolour = \"red\"\n");
        assert!(e.starts_with("mine.toml: ") && e.contains("colour"), "{e}");
        let e = err("[[rule]]\nname = \"x\"\n");
        assert!(e.contains("finding"), "{e}");
        let e = err("[[rule]]\nname = \"x\"\nfinding = []\n");
        assert!(e.contains("empty"), "{e}");
        assert!(
            Suppressions::load(&[PathBuf::from("/nonexistent/s.toml")])
                .expect_err("missing file")
                .to_string()
                .starts_with("/nonexistent/s.toml: ")
        );
    }
}

//! The rule format (TOML, one rule per file under `models/rules/`) and its compiled form.
//!
//! ```toml
//! id = "miner-pool-dns"                       # unique; a user rule with the same id replaces it
//! finding = "CryptoCurrency:Runtime/BitcoinTool.B!DNS"
//! severity = "high"                           # low | medium | high | critical
//! summary = "DNS query for a known mining pool"
//! doc = "what it detects, why it matters, references"
//! mitre = ["T1496"]
//!
//! [[match]]                                   # one event; several [[match]] blocks = any of them
//! kind = "dns_query"                          # one kind or a list
//! dns_name = { in_list = "mining_pool_domains" }
//! unless = [{ parent_name = "runc" }]         # exceptions: the event must match none of them
//! ```
//!
//! A sequence uses `[[step]]` blocks instead, in order, with `same = "process" | "lineage" |
//! "workload"` (every later step's process is the first step's, or a descendant of it, or
//! anything in the workload) and `within = "10m"`. A step can `bind = { var = "field" }` and a
//! later one test `field = { bound = "var" }`; `same = "siblings"` asks for a process with the
//! same parent as the first step's (two ends of a pipe). `[threshold] distinct = "field",
//! at_least = N` raises the finding only when N distinct values of that field matched in the
//! workload; `within = "60s"` asks for them within one window, `group = "field"` counts them
//! per value of another field (see [`super::threshold`]).
//! `actor = "first"` makes a sequence's first step the finding's process (default: the last).
//!
//! Conditions: `field = value` (equality), `field = [values]` (one of), or a table with one
//! or more tests: `eq`, `ne`, `in`, `in_list` (an intel list), `prefix`, `suffix`, `contains`,
//! `glob`, `regex`, `bits_any`, `bits_all`, `bits_none`, `gt`, `gte`, `lt`, `lte`, `dga`,
//! `exists`, `bound`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use needle_common::abi::EventKind;
use regex::Regex;
use serde::Deserialize;

use super::SignatureError;
use super::fields::{FIELD_NAMES, Field};
use super::intel::{Intel, List};
use super::threshold::Threshold;
use crate::classify::hash_str;
use crate::finding::Severity;

/// A rule file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// Unique id.
    pub id: String,
    /// GuardDuty finding type; absent for context rules.
    #[serde(default)]
    pub finding: Option<String>,
    /// Severity.
    #[serde(default)]
    pub severity: Option<String>,
    /// One line.
    pub summary: String,
    /// What it detects and why it matters.
    pub doc: String,
    /// MITRE ATT&CK ids.
    #[serde(default)]
    pub mitre: Vec<String>,
    /// A context rule names no finding: its events only join other findings' evidence chains.
    #[serde(default)]
    pub context: bool,
    /// `false` disables a shipped rule of the same id.
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default, rename = "match")]
    matches: Vec<toml::Table>,
    #[serde(default, rename = "step")]
    steps: Vec<toml::Table>,
    #[serde(default)]
    same: Option<String>,
    #[serde(default)]
    within: Option<String>,
    #[serde(default)]
    threshold: Option<ThresholdFile>,
    /// Whose process the finding is about in a sequence: the `first` step's or the `last`'s
    /// (default).
    #[serde(default)]
    actor: Option<String>,
    /// Fixtures: events that must raise the finding, and near misses that must not.
    #[serde(default)]
    pub test: Option<toml::Table>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThresholdFile {
    distinct: String,
    at_least: u32,
    #[serde(default)]
    within: Option<String>,
    #[serde(default)]
    group: Option<String>,
}

/// Which processes later steps of a sequence may come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Same {
    /// The first step's process.
    Process,
    /// The first step's process or a descendant of it.
    Lineage,
    /// Any process of the workload.
    Workload,
    /// A process with the same parent as the first step's (the other side of a pipe).
    Siblings,
}

/// One test of one field.
#[derive(Clone, Debug)]
pub enum Test {
    /// Equal to.
    Eq(Lit),
    /// Not equal to.
    Ne(Lit),
    /// One of.
    In(Vec<Lit>),
    /// Matches the intel list.
    InList(Arc<List>),
    /// Starts with one of.
    Prefix(Vec<String>),
    /// Ends with one of.
    Suffix(Vec<String>),
    /// Contains one of.
    Contains(Vec<String>),
    /// Matches one of the glob patterns (each with its literal prefix, checked first).
    Glob(Vec<(String, glob::Pattern)>),
    /// Matches the regular expression.
    Regex(Regex),
    /// Some of these bits set.
    BitsAny(u64),
    /// All these bits set.
    BitsAll(u64),
    /// None of these bits set.
    BitsNone(u64),
    /// Numeric comparisons.
    Gt(i64),
    /// ≥.
    Gte(i64),
    /// <.
    Lt(i64),
    /// ≤.
    Lte(i64),
    /// Looks algorithmically generated (DNS names).
    Dga(bool),
    /// Present (non-null) or not.
    Exists(bool),
    /// Equal to a value bound by an earlier step (checked when sequences are joined).
    Bound(String),
}

/// A literal in a rule.
#[derive(Clone, Debug, PartialEq)]
pub enum Lit {
    /// Text.
    Str(String),
    /// Number.
    Num(i64),
    /// Flag.
    Bool(bool),
}

/// A set of tests on one event: its kind and fields, minus exceptions.
#[derive(Clone, Debug, Default)]
pub struct Cond {
    /// Event kinds it applies to.
    pub kinds: Vec<EventKind>,
    /// Field tests, all of which must hold.
    pub tests: Vec<(Field, Test)>,
    /// Exceptions: the event matches none of these.
    pub unless: Vec<Cond>,
    /// Values to remember for later steps: (variable, field).
    pub bind: Vec<(String, Field)>,
    /// What a hit carries for joins: bound variables, and `=var` for `bound` tests.
    pub(super) carry: Vec<(Arc<str>, Field)>,
}

/// A compiled rule.
#[derive(Clone, Debug)]
pub struct Rule {
    /// Unique id.
    pub id: String,
    /// Finding type (None for context rules).
    pub finding: Option<String>,
    /// Severity.
    pub severity: Severity,
    /// One line.
    pub summary: String,
    /// Alternatives (single-event rules) or steps (sequences).
    pub conds: Vec<Cond>,
    /// True for a sequence.
    pub sequence: bool,
    /// Sequence scope.
    pub same: Same,
    /// Sequence window (ns).
    pub within_ns: i64,
    /// Distinct-count threshold.
    pub threshold: Option<Threshold>,
    /// MITRE ATT&CK technique ids.
    pub mitre: Vec<String>,
    /// The finding's process is the first step's (else the last step's).
    pub actor_first: bool,
    /// Where the rule came from.
    pub file: String,
}

fn err(file: &str, message: impl Into<String>) -> SignatureError {
    SignatureError::Rule {
        file: file.to_string(),
        message: message.into(),
    }
}

fn lit(v: &toml::Value) -> Option<Lit> {
    match v {
        toml::Value::String(s) => Some(Lit::Str(s.clone())),
        toml::Value::Integer(i) => Some(Lit::Num(*i)),
        toml::Value::Boolean(b) => Some(Lit::Bool(*b)),
        _ => None,
    }
}

fn strings(file: &str, v: &toml::Value) -> Result<Vec<String>, SignatureError> {
    match v {
        toml::Value::String(s) => Ok(vec![s.clone()]),
        toml::Value::Array(a) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| err(file, "expected strings"))
            })
            .collect(),
        _ => Err(err(
            file,
            format!("expected a string or a list of strings, found {v}"),
        )),
    }
}

fn int(file: &str, v: &toml::Value) -> Result<i64, SignatureError> {
    v.as_integer()
        .ok_or_else(|| err(file, format!("expected an integer, found {v}")))
}

fn test(file: &str, op: &str, v: &toml::Value, intel: &Intel) -> Result<Test, SignatureError> {
    Ok(match op {
        "eq" => Test::Eq(lit(v).ok_or_else(|| err(file, "eq: expected a scalar"))?),
        "ne" => Test::Ne(lit(v).ok_or_else(|| err(file, "ne: expected a scalar"))?),
        "in" => Test::In(
            v.as_array()
                .ok_or_else(|| err(file, "in: expected a list"))?
                .iter()
                .filter_map(lit)
                .collect(),
        ),
        "in_list" => {
            let name = v
                .as_str()
                .ok_or_else(|| err(file, "in_list: expected a list name"))?;
            Test::InList(Arc::new(
                intel
                    .get(name)
                    .ok_or_else(|| err(file, format!("no intel list `{name}`")))?
                    .clone(),
            ))
        }
        "prefix" => Test::Prefix(strings(file, v)?),
        "suffix" => Test::Suffix(strings(file, v)?),
        "contains" => Test::Contains(strings(file, v)?),
        "glob" => Test::Glob(
            strings(file, v)?
                .iter()
                .map(|g| {
                    let prefix: String = g.chars().take_while(|c| !"*?[".contains(*c)).collect();
                    glob::Pattern::new(g)
                        .map(|p| (prefix, p))
                        .map_err(|e| err(file, format!("glob `{g}`: {e}")))
                })
                .collect::<Result<_, _>>()?,
        ),
        "regex" => {
            let r = v
                .as_str()
                .ok_or_else(|| err(file, "regex: expected a string"))?;
            Test::Regex(Regex::new(r).map_err(|e| err(file, format!("regex `{r}`: {e}")))?)
        }
        "bits_any" => Test::BitsAny(int(file, v)? as u64),
        "bits_all" => Test::BitsAll(int(file, v)? as u64),
        "bits_none" => Test::BitsNone(int(file, v)? as u64),
        "gt" => Test::Gt(int(file, v)?),
        "gte" => Test::Gte(int(file, v)?),
        "lt" => Test::Lt(int(file, v)?),
        "lte" => Test::Lte(int(file, v)?),
        "dga" => Test::Dga(
            v.as_bool()
                .ok_or_else(|| err(file, "dga: expected true or false"))?,
        ),
        "exists" => Test::Exists(
            v.as_bool()
                .ok_or_else(|| err(file, "exists: expected true or false"))?,
        ),
        "bound" => Test::Bound(
            v.as_str()
                .ok_or_else(|| err(file, "bound: expected a variable name"))?
                .to_string(),
        ),
        other => return Err(err(file, format!("unknown test `{other}`"))),
    })
}

fn field(file: &str, name: &str) -> Result<Field, SignatureError> {
    Field::parse(name).ok_or_else(|| {
        err(
            file,
            format!(
                "unknown field `{name}` (fields: {})",
                FIELD_NAMES.join(", ")
            ),
        )
    })
}

/// Relative cost of a test, so a condition tries the cheap ones first (a number, a flag),
/// and the string tests (lists, globs, regular expressions) only on rows that passed them.
fn cost(f: Field, t: &Test) -> u8 {
    let stringy = matches!(
        f,
        Field::Argv | Field::ArgvHosts | Field::ArgvPaths | Field::AncestorName | Field::DnsAnswers
    );
    let base = match t {
        Test::Exists(_) | Test::Bound(_) => 0,
        Test::BitsAny(_) | Test::BitsAll(_) | Test::BitsNone(_) => 0,
        Test::Gt(_) | Test::Gte(_) | Test::Lt(_) | Test::Lte(_) => 0,
        Test::Eq(_) | Test::Ne(_) | Test::In(_) => 1,
        Test::Prefix(_) | Test::Suffix(_) | Test::Contains(_) => 2,
        Test::InList(_) => 3,
        Test::Glob(_) => 4,
        Test::Regex(_) | Test::Dga(_) => 5,
    };
    base + if stringy { 4 } else { 0 }
}

fn cond(file: &str, t: &toml::Table, intel: &Intel) -> Result<Cond, SignatureError> {
    let mut c = cond_in_file_order(file, t, intel)?;
    c.tests.sort_by_key(|(f, t)| cost(*f, t));
    c.carry = c
        .bind
        .iter()
        .map(|(var, f)| (Arc::from(var.as_str()), *f))
        .collect();
    for (f, t) in &c.tests {
        if let Test::Bound(var) = t {
            c.carry.push((Arc::from(format!("={var}")), *f));
        }
    }
    Ok(c)
}

fn cond_in_file_order(file: &str, t: &toml::Table, intel: &Intel) -> Result<Cond, SignatureError> {
    let mut c = Cond::default();
    for (key, v) in t {
        match key.as_str() {
            "kind" => {
                for k in strings(file, v)? {
                    c.kinds.push(
                        EventKind::from_name(&k)
                            .ok_or_else(|| err(file, format!("unknown event kind `{k}`")))?,
                    );
                }
            }
            "unless" => {
                let list = v
                    .as_array()
                    .ok_or_else(|| err(file, "unless: expected a list of tables"))?;
                for u in list {
                    c.unless.push(cond(
                        file,
                        u.as_table()
                            .ok_or_else(|| err(file, "unless: expected tables"))?,
                        intel,
                    )?);
                }
            }
            "bind" => {
                for (var, f) in v
                    .as_table()
                    .ok_or_else(|| err(file, "bind: expected a table"))?
                {
                    c.bind.push((
                        var.clone(),
                        field(
                            file,
                            f.as_str()
                                .ok_or_else(|| err(file, "bind: expected field names"))?,
                        )?,
                    ));
                }
            }
            name => {
                let f = field(file, name)?;
                match v {
                    toml::Value::Table(ops) => {
                        for (op, ov) in ops {
                            c.tests.push((f, test(file, op, ov, intel)?));
                        }
                    }
                    toml::Value::Array(a) => c
                        .tests
                        .push((f, Test::In(a.iter().filter_map(lit).collect()))),
                    other => c.tests.push((
                        f,
                        Test::Eq(
                            lit(other)
                                .ok_or_else(|| err(file, format!("{name}: unsupported value")))?,
                        ),
                    )),
                }
            }
        }
    }
    Ok(c)
}

impl Rule {
    /// Compiles a parsed rule file against the intel lists.
    pub fn compile(file: &str, r: &RuleFile, intel: &Intel) -> Result<Rule, SignatureError> {
        let severity = match (r.context, r.severity.as_deref()) {
            (true, _) => Severity::Low,
            (false, Some("low")) => Severity::Low,
            (false, Some("medium")) => Severity::Medium,
            (false, Some("high")) => Severity::High,
            (false, Some("critical")) => Severity::Critical,
            (false, s) => {
                return Err(err(
                    file,
                    format!("severity must be low, medium, high or critical (found {s:?})"),
                ));
            }
        };
        if r.finding.is_none() && !r.context {
            return Err(err(file, "a rule names a `finding` or is `context = true`"));
        }
        let sequence = !r.steps.is_empty();
        if sequence != r.matches.is_empty() {
            return Err(err(
                file,
                "a rule has either [[match]] blocks or [[step]] blocks",
            ));
        }
        let tables = if sequence { &r.steps } else { &r.matches };
        let conds = tables
            .iter()
            .map(|t| cond(file, t, intel))
            .collect::<Result<Vec<_>, _>>()?;
        if conds.iter().any(|c| c.kinds.is_empty()) {
            return Err(err(file, "every [[match]]/[[step]] names its event `kind`"));
        }
        let same = match r.same.as_deref() {
            None | Some("lineage") => Same::Lineage,
            Some("process") => Same::Process,
            Some("workload") => Same::Workload,
            Some("siblings") => Same::Siblings,
            Some(o) => {
                return Err(err(
                    file,
                    format!("same = `{o}`: expected process, lineage, siblings or workload"),
                ));
            }
        };
        let within: Duration = match &r.within {
            Some(w) => {
                humantime::parse_duration(w).map_err(|e| err(file, format!("within `{w}`: {e}")))?
            }
            None => Duration::from_secs(3600),
        };
        let threshold = match &r.threshold {
            Some(t) => {
                if sequence {
                    return Err(err(
                        file,
                        "a [threshold] applies to [[match]] rules, not sequences",
                    ));
                }
                let window_ns = match &t.within {
                    Some(w) => {
                        let d = humantime::parse_duration(w)
                            .map_err(|e| err(file, format!("threshold within `{w}`: {e}")))?;
                        if d.is_zero() {
                            return Err(err(file, "threshold within must be longer than 0"));
                        }
                        Some(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
                    }
                    None => None,
                };
                Some(Threshold {
                    field: field(file, &t.distinct)?,
                    at_least: t.at_least.max(1),
                    window_ns,
                    group: t.group.as_deref().map(|g| field(file, g)).transpose()?,
                })
            }
            None => None,
        };
        Ok(Rule {
            id: r.id.clone(),
            finding: r.finding.clone(),
            severity,
            summary: r.summary.clone(),
            conds,
            sequence,
            same,
            within_ns: i64::try_from(within.as_nanos()).unwrap_or(i64::MAX),
            threshold,
            mitre: r.mitre.clone(),
            actor_first: match r.actor.as_deref() {
                None | Some("last") => false,
                Some("first") => true,
                Some(o) => return Err(err(file, format!("actor = `{o}`: expected first or last"))),
            },
            file: file.to_string(),
        })
    }
}

/// Stable hash of a variable's value, for joins.
pub fn value_hash(s: &str) -> u64 {
    hash_str(s)
}

/// Parses a rule file's text.
pub fn parse(file: &str, text: &str) -> Result<RuleFile, SignatureError> {
    toml::from_str(text).map_err(|e| err(file, e.to_string()))
}

/// Fixture tables of a rule (`[[test.positive]]` / `[[test.negative]]`).
pub fn fixtures(r: &RuleFile) -> BTreeMap<String, Vec<toml::Table>> {
    let mut out = BTreeMap::new();
    for (k, v) in r.test.iter().flatten() {
        let list = v
            .as_array()
            .map(|a| a.iter().filter_map(|t| t.as_table().cloned()).collect())
            .unwrap_or_default();
        out.insert(k.clone(), list);
    }
    out
}

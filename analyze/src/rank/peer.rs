//! Baselines from the data being analyzed: each workload is compared, feature by feature, with
//! its own peers in the input — the replicas of its image, else the pods of its workload
//! template (the Deployment, ReplicaSet or StatefulSet its pod name was made from), else its
//! namespace, else the whole input. A workload that differs from its own peers ranks up even
//! in an environment no trained model has seen.
//!
//! Per feature, the peers' values (after `ln(1 + x)` for counts) give a tail probability for
//! the workload's value ([`TailCalibration`]: empirical, with an exponential tail whose scale
//! is at least the feature's resolution, so a value beyond every peer's still grades with its
//! distance), read in the feature's suspicious direction. Small groups leave the workload
//! itself out; groups larger than [`LEAVE_ONE_OUT_BELOW`] are fitted once with it (one value
//! among many barely moves the fit). The per-feature surprises combine with
//! [`family_sum`]; from that sum the median sum of the group's other members is subtracted,
//! so that a group of unrelated workloads (a namespace of different applications), whose
//! members all differ from each other, does not make every member look anomalous — replicas
//! barely differ, and the one that does stands out.

use std::collections::HashMap;

use super::{Contribution, Model, ModelScore, TOP_CONTRIBUTIONS};
use crate::calibrate::median;
use crate::calibrate::{TailCalibration, family_sum, surprise};
use crate::features::catalog::{Direction, resolution, transform};
use crate::features::{FeatureTable, WorkloadFeatures};

/// Fewest *other* members a peer group needs; below it the next, wider group is used.
pub const MIN_PEERS: usize = 2;
/// Groups of at least this many members are fitted once, the workload included.
pub const LEAVE_ONE_OUT_BELOW: usize = 32;

/// The surprise of transformed value `t` against transformed reference values `reference`
/// (normal training workloads, or peers), in the feature's suspicious direction.
pub fn feature_surprise(
    name: &str,
    reference: &[f64],
    t: f64,
    direction: Direction,
    floor: f64,
) -> f64 {
    let upper = TailCalibration::fit_floored(name, reference, floor);
    match direction {
        Direction::Unscored => 0.0,
        Direction::High => upper.surprise(t),
        Direction::Both => {
            let neg: Vec<f64> = reference.iter().map(|x| -x).collect();
            let lower = TailCalibration::fit_floored(name, &neg, floor);
            let p = 2.0 * upper.p_value(t).min(lower.p_value(-t));
            surprise(p.min(1.0))
        }
    }
}

/// The workload template a pod was made from: `web-7d9f8c6b5-x2x7k` (Deployment →
/// ReplicaSet hash → pod suffix) → `web`; `db-2` (StatefulSet ordinal) → `db`; `agent-x2x7k`
/// (DaemonSet, Job) → `agent`. Generated suffixes use Kubernetes' alphabet (no vowels, no
/// 0, 1, 3), so `node-agent` is not mistaken for one. None when the name has no such suffix.
pub fn template_of(pod: &str) -> Option<&str> {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let generated = |s: &str, lo: usize, hi: usize| {
        (lo..=hi).contains(&s.len()) && s.bytes().all(|b| ALPHABET.contains(&b))
    };
    let (rest, last) = pod.rsplit_once('-')?;
    if rest.is_empty() || last.is_empty() {
        return None;
    }
    if generated(last, 5, 5) {
        return Some(match rest.rsplit_once('-') {
            Some((base, rs)) if !base.is_empty() && generated(rs, 5, 10) => base,
            _ => rest,
        });
    }
    last.bytes().all(|b| b.is_ascii_digit()).then_some(rest)
}

/// A workload's peer group: how it was chosen and who is in it (rows of the table, the
/// workload itself excluded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerGroup {
    /// `image:<repository>`, `template:<namespace>/<name>`, `namespace:<name>` or `all`.
    pub key: String,
    /// The other members.
    pub members: Vec<usize>,
}

fn image_repo(image: &str) -> &str {
    let image = image.split('@').next().unwrap_or(image);
    match image.rfind(':') {
        Some(colon) if !image[colon..].contains('/') => &image[..colon],
        _ => image,
    }
}

/// True for the host's own workloads (processes outside containers).
pub fn is_host(w: &WorkloadFeatures) -> bool {
    w.workload.starts_with("host:")
}

/// Keys of a workload's candidate groups, most specific first.
fn keys(w: &WorkloadFeatures) -> Vec<String> {
    let c = &w.context;
    let mut k = Vec::new();
    if is_host(w) {
        // A host's processes are compared with other hosts', never with containers.
        k.push("hosts".to_string());
        return k;
    }
    if let Some(image) = c.image.as_deref().filter(|s| !s.is_empty()) {
        k.push(format!("image:{}", image_repo(image)));
    }
    if let Some(t) = c.pod.as_deref().and_then(template_of) {
        k.push(format!(
            "template:{}/{t}",
            c.namespace.as_deref().unwrap_or("")
        ));
    }
    if let Some(ns) = c.namespace.as_deref().filter(|s| !s.is_empty()) {
        k.push(format!("namespace:{ns}"));
    }
    k
}

/// Every workload's peer group: the most specific of its groups with at least [`MIN_PEERS`]
/// other members, else every container workload of the input (None for a host workload
/// without other hosts, or when the input has too few workloads to compare with).
pub fn peer_groups(table: &FeatureTable) -> Vec<Option<PeerGroup>> {
    let mut members: HashMap<String, Vec<usize>> = HashMap::new();
    let all_keys: Vec<Vec<String>> = table.rows.iter().map(keys).collect();
    for (i, ks) in all_keys.iter().enumerate() {
        for k in ks {
            members.entry(k.clone()).or_default().push(i);
        }
    }
    all_keys
        .iter()
        .enumerate()
        .map(|(i, ks)| {
            ks.iter()
                .find_map(|k| {
                    let m = &members[k];
                    (m.len() > MIN_PEERS).then(|| PeerGroup {
                        key: k.clone(),
                        members: m.iter().copied().filter(|&j| j != i).collect(),
                    })
                })
                .or_else(|| {
                    let members: Vec<usize> = (0..table.rows.len())
                        .filter(|&j| j != i && !is_host(&table.rows[j]))
                        .collect();
                    (!is_host(&table.rows[i]) && members.len() >= MIN_PEERS).then(|| PeerGroup {
                        key: "all".into(),
                        members,
                    })
                })
        })
        .collect()
}

impl PeerGroup {
    /// True when the peers are replicas of the workload: the same image or pod template.
    pub fn replicas(&self) -> bool {
        self.key.starts_with("image:") || self.key.starts_with("template:")
    }
}

/// The smallest tail scale of column `c` in a peer group's fit: the feature's resolution, or
/// half its standard deviation over the input's container workloads when that is larger. A
/// few peers say little about how far a value may stray: a feature that varies by orders of
/// magnitude across the input (inbound connections: a server's thousands, a client's none)
/// must not make a value beyond a handful of peers look impossible, while one almost every
/// workload has at the same value (execs from /tmp: none) keeps its sharp tail.
fn pooled_floor(table: &FeatureTable, c: usize) -> f64 {
    let def = table.columns[c].def;
    let scale = def.scale;
    let mut v: Vec<f64> = table
        .rows
        .iter()
        .filter(|r| !is_host(r))
        .map(|r| transform(r.values[c], scale))
        .collect();
    let n = v.len() as f64;
    let sd = if v.len() < 2 {
        0.0
    } else {
        let mean = v.iter().sum::<f64>() / n;
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    };
    resolution(def, median(&mut v)).max(0.5 * sd)
}

/// The peer-group model: every workload against its own peers.
#[derive(Clone, Copy, Debug, Default)]
pub struct PeerGroups;

impl Model for PeerGroups {
    fn name(&self) -> &str {
        "peer-groups"
    }

    fn score(&self, table: &FeatureTable) -> Vec<ModelScore> {
        let groups = peer_groups(table);
        let mut fit = GroupFit::new(table);
        groups
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let Some(g) = g else {
                    return ModelScore {
                        no_reference: true,
                        basis: Some("no peers".into()),
                        ..ModelScore::default()
                    };
                };
                let mut everyone = g.members.clone();
                everyone.push(i);
                everyone.sort_unstable();
                let mut s = fit.against(&g.key, &everyone, i);
                // A group of unrelated workloads (a namespace, the whole input) differs from
                // itself: what counts is how much more this one differs than its peers do.
                let mut others: Vec<f64> = g
                    .members
                    .iter()
                    .map(|&j| fit.against(&g.key, &everyone, j).score)
                    .collect();
                let typical = median(&mut others);
                s.score = (s.score - typical).max(0.0);
                s.time = s.time.min(s.score);
                s.basis = Some(format!("{} ({} peers)", g.key, g.members.len()));
                s.replicas = g.replicas();
                s
            })
            .collect()
    }
}

/// Surprises of workloads against the members of their group, with what can be reused: the
/// fits of large groups (per group and feature) and each (group, workload) result.
struct GroupFit<'a> {
    table: &'a FeatureTable,
    scored: Vec<usize>,
    /// Per column, the smallest tail scale a group's fit may have (see [`pooled_floor`]).
    floor: Vec<f64>,
    shared: HashMap<(String, usize), (TailCalibration, Option<TailCalibration>)>,
    done: HashMap<(String, usize), ModelScore>,
}

impl<'a> GroupFit<'a> {
    fn new(table: &'a FeatureTable) -> Self {
        GroupFit {
            table,
            scored: (0..table.columns.len())
                .filter(|&c| table.columns[c].def.direction != Direction::Unscored)
                .collect(),
            floor: (0..table.columns.len())
                .map(|c| pooled_floor(table, c))
                .collect(),
            shared: HashMap::new(),
            done: HashMap::new(),
        }
    }

    /// Row `i` against the other members of group `key` (`everyone`, `i` among them): the
    /// raw surprise sum, its `late.*` share and the strongest features.
    fn against(&mut self, key: &str, everyone: &[usize], i: usize) -> ModelScore {
        if let Some(s) = self.done.get(&(key.to_string(), i)) {
            return s.clone();
        }
        let table = self.table;
        let row = &table.rows[i];
        let others: Vec<usize> = everyone.iter().copied().filter(|&j| j != i).collect();
        let mut surprises = Vec::new();
        for &c in &self.scored {
            let col = &table.columns[c];
            let (scale, direction) = (col.def.scale, col.def.direction);
            let t = transform(row.values[c], scale);
            let s = if everyone.len() >= LEAVE_ONE_OUT_BELOW {
                let (upper, lower) = self.shared.entry((key.to_string(), c)).or_insert_with(|| {
                    let mut v: Vec<f64> = everyone
                        .iter()
                        .map(|&j| transform(table.rows[j].values[c], scale))
                        .collect();
                    let floor = self.floor[c];
                    let upper = TailCalibration::fit_floored(&col.name, &v, floor);
                    let lower = (direction == Direction::Both).then(|| {
                        v.iter_mut().for_each(|x| *x = -*x);
                        TailCalibration::fit_floored(&col.name, &v, floor)
                    });
                    (upper, lower)
                });
                match lower {
                    None => upper.surprise(t),
                    Some(lower) => {
                        surprise((2.0 * upper.p_value(t).min(lower.p_value(-t))).min(1.0))
                    }
                }
            } else {
                let v: Vec<f64> = others
                    .iter()
                    .map(|&j| transform(table.rows[j].values[c], scale))
                    .collect();
                feature_surprise(&col.name, &v, t, direction, self.floor[c])
            };
            if s > 0.0 {
                surprises.push((c, s));
            }
        }
        let named = |v: &[(usize, f64)]| -> Vec<(&str, f64)> {
            v.iter()
                .map(|&(c, s)| (table.columns[c].name.as_str(), s))
                .collect()
        };
        let score = family_sum(named(&surprises));
        let late: Vec<(usize, f64)> = surprises
            .iter()
            .copied()
            .filter(|&(c, _)| table.columns[c].name.starts_with("late."))
            .collect();
        let time = family_sum(named(&late));
        surprises.sort_by(|a, b| {
            b.1.total_cmp(&a.1)
                .then_with(|| table.columns[a.0].name.cmp(&table.columns[b.0].name))
        });
        let contributions = surprises
            .iter()
            .take(TOP_CONTRIBUTIONS)
            .map(|&(c, s)| {
                let mut raw: Vec<f64> = others.iter().map(|&j| table.rows[j].values[c]).collect();
                Contribution {
                    feature: table.columns[c].name.clone(),
                    value: row.values[c],
                    peer_median: median(&mut raw),
                    surprise: s,
                }
            })
            .collect();
        let out = ModelScore {
            score,
            time,
            contributions,
            ..ModelScore::default()
        };
        self.done.insert((key.to_string(), i), out.clone());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibrate::median;
    use crate::features::catalog::Scale;

    #[test]
    fn medians() {
        assert_eq!(median(&mut []), 0.0);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn transforms_tolerate_bad_values() {
        assert_eq!(transform(f64::NAN, Scale::Log), 0.0);
        assert_eq!(transform(-5.0, Scale::Log), 0.0);
        assert!((transform(1.0, Scale::Log) - 2f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn templates_come_from_pod_names() {
        assert_eq!(template_of("web-7d9f8c6b5-x2x7k"), Some("web"));
        assert_eq!(
            template_of("checkout-api-6c8d9-qw2zr"),
            Some("checkout-api")
        );
        assert_eq!(template_of("db-2"), Some("db"));
        assert_eq!(template_of("node-agent-x2x7k"), Some("node-agent"));
        assert_eq!(template_of("standalone"), None);
        assert_eq!(template_of("my-pod"), None);
        assert_eq!(template_of("-2"), None);
    }

    #[test]
    fn a_value_beyond_every_peer_grades_with_its_distance() {
        let peers = [0.0, 0.0, 0.0];
        let def = crate::features::catalog::FAMILIES[1];
        let floor = resolution(&def, 0.0);
        let s = |x: f64| {
            feature_surprise(
                "f",
                &peers,
                transform(x, Scale::Log),
                Direction::High,
                floor,
            )
        };
        assert_eq!(s(0.0), 0.0);
        assert!(s(1.0) > 0.0 && s(10.0) > s(1.0) && s(100.0) > s(10.0));
        let both = |x: f64| feature_surprise("f", &[5.0, 6.0, 5.5], x, Direction::Both, 0.05);
        assert!(both(0.0) > 1.0 && both(12.0) > 1.0 && both(5.5) < 0.5);
    }
}

//! Finish step: one workload's hits into findings with evidence chains.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::rule::Same;
use super::{Engine, Hit, HitEvent, SigPartial};
use crate::finding::{EventEvidence, Finding, ProcessInfo};
use crate::timefmt::rfc3339;

/// Most partial sequence matches followed per rule and workload.
const MAX_PARTIAL: usize = 256;
/// Most events listed per finding, and in its chain.
const MAX_EVENTS: usize = 20;
const MAX_CHAIN: usize = 40;
/// Deepest parent walk.
const MAX_DEPTH: usize = 64;

/// True when `p` is `root` or one of its descendants.
fn in_lineage(parents: &HashMapLike<'_>, p: u64, root: u64) -> bool {
    let mut cur = p;
    for _ in 0..MAX_DEPTH {
        if cur == root {
            return true;
        }
        match parents.get(&cur) {
            Some(&next) => cur = next,
            None => return false,
        }
    }
    false
}

type HashMapLike<'a> = crate::fasthash::FastMap<u64, u64>;

/// One way a rule matched: its hits, in order.
struct Instance<'a> {
    hits: Vec<&'a Hit>,
}

fn single_instances<'a>(hits: &[&'a Hit]) -> Vec<Instance<'a>> {
    hits.iter().map(|h| Instance { hits: vec![h] }).collect()
}

struct Partial<'a> {
    next: u8,
    root: u64,
    start: i64,
    binds: HashMap<&'a str, &'a [u64]>,
    hits: Vec<&'a Hit>,
}

fn sequence_instances<'a>(
    hits: &[&'a Hit],
    steps: u8,
    same: Same,
    within: i64,
    parents: &HashMapLike<'_>,
) -> Vec<Instance<'a>> {
    let mut partials: Vec<Partial<'a>> = Vec::new();
    let mut done = Vec::new();
    for &h in hits {
        let mut advanced = Vec::new();
        for (i, p) in partials.iter().enumerate() {
            if p.next != h.cond || h.time - p.start > within || h.time < p.start {
                continue;
            }
            let scoped = match same {
                Same::Process => h.proc == p.root,
                Same::Lineage => in_lineage(parents, h.proc, p.root),
                Same::Siblings => {
                    h.proc != p.root
                        && parents
                            .get(&h.proc)
                            .is_some_and(|pp| parents.get(&p.root) == Some(pp))
                }
                Same::Workload => true,
            };
            let joined = h
                .carried
                .iter()
                .filter_map(|(var, vals)| var.strip_prefix('=').map(|v| (v, vals)))
                .all(|(var, vals)| {
                    p.binds
                        .get(var)
                        .is_some_and(|bound| bound.iter().any(|b| vals.contains(b)))
                });
            if scoped && joined {
                advanced.push(i);
            }
        }
        for i in advanced.into_iter().rev() {
            let mut p = partials.swap_remove(i);
            p.hits.push(h);
            for (var, vals) in &h.carried {
                if !var.starts_with('=') {
                    p.binds.insert(var.as_ref(), vals.as_slice());
                }
            }
            p.next += 1;
            if p.next == steps {
                done.push(Instance { hits: p.hits });
            } else {
                partials.push(p);
            }
        }
        if h.cond == 0 && partials.len() < MAX_PARTIAL {
            let binds = h
                .carried
                .iter()
                .filter(|(v, _)| !v.starts_with('='))
                .map(|(v, vals)| (v.as_ref(), vals.as_slice()))
                .collect();
            if steps == 1 {
                done.push(Instance { hits: vec![h] });
            } else {
                partials.push(Partial {
                    next: 1,
                    root: h.proc,
                    start: h.time,
                    binds,
                    hits: vec![h],
                });
            }
        }
    }
    done
}

fn evidence(e: &HitEvent) -> EventEvidence {
    EventEvidence {
        time: rfc3339(e.time),
        time_ns: e.time,
        kind: e.kind.name().to_string(),
        pid: e.pid,
        exe: e.exe.clone(),
        fields: e
            .fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    }
}

fn process_of(e: &HitEvent, proc: u64, sig: &SigPartial) -> ProcessInfo {
    ProcessInfo {
        pid: e.pid,
        process_key: e.process_key.clone(),
        exe: e.exe.clone(),
        argv: sig
            .execs
            .get(&proc)
            .map(|x| x.argv.clone())
            .filter(|a| !a.is_empty()),
        sha256: e.sha256.clone(),
        uid: e.uid,
        user: e.user.clone(),
        ancestry: e.ancestry.clone(),
    }
}

fn same_event(a: &Arc<HitEvent>, b: &Arc<HitEvent>) -> bool {
    Arc::ptr_eq(a, b)
        || (a.time == b.time && a.kind == b.kind && a.pid == b.pid && a.fields == b.fields)
}

/// The findings of one workload.
pub fn findings_for(engine: &Engine, sig: &SigPartial) -> Vec<Finding> {
    if sig.hits.is_empty() && sig.thresholds.is_empty() {
        return Vec::new();
    }
    let mut by_rule: BTreeMap<u16, Vec<&Hit>> = BTreeMap::new();
    for h in &sig.hits {
        by_rule.entry(h.rule).or_default().push(h);
    }
    // Per finding type: (rules, instances). Hits that are part of some instance (of any rule,
    // context rules included) are the ones an evidence chain may show: a sequence step that
    // never completed proves nothing.
    let mut by_type: BTreeMap<&str, Vec<(usize, Vec<Instance<'_>>)>> = BTreeMap::new();
    let mut meaningful: Vec<&Hit> = Vec::new();
    for (ri, rule) in engine.rules.iter().enumerate() {
        let ri16 = ri as u16;
        let instances = match (&rule.threshold, by_rule.get_mut(&ri16)) {
            (Some(t), _) => sig
                .thresholds
                .crossings(ri16, t)
                .into_iter()
                .map(|hits| Instance { hits })
                .collect(),
            (None, Some(hits)) => {
                hits.sort_by_key(|h| (h.time, h.cond));
                if rule.finding.is_none() {
                    meaningful.extend(hits.iter().copied());
                    continue;
                }
                if rule.sequence {
                    sequence_instances(
                        hits,
                        rule.conds.len() as u8,
                        rule.same,
                        rule.within_ns,
                        &sig.parents,
                    )
                } else {
                    single_instances(hits)
                }
            }
            (None, None) => continue,
        };
        meaningful.extend(instances.iter().flat_map(|i| i.hits.iter().copied()));
        if let (Some(finding), false) = (rule.finding.as_deref(), instances.is_empty()) {
            by_type.entry(finding).or_default().push((ri, instances));
        }
    }
    let mut out = Vec::new();
    for (kind, matched) in by_type {
        let rules: Vec<&super::Rule> = matched.iter().map(|(ri, _)| &engine.rules[*ri]).collect();
        let severity = rules.iter().map(|r| r.severity).max().unwrap_or_default();
        let occurrences: usize = matched.iter().map(|(_, i)| i.len()).sum();
        let mut events: Vec<&Hit> = matched
            .iter()
            .flat_map(|(_, inst)| inst.iter().flat_map(|i| i.hits.iter().copied()))
            .collect();
        events.sort_by_key(|h| h.time);
        let mut shown: Vec<&Hit> = Vec::new();
        for h in events {
            if !shown.iter().any(|s| same_event(&s.event, &h.event)) {
                shown.push(h);
            }
        }
        // The actor: the process of the last event of an instance, the deepest in its process
        // tree (a container's init names everything its children do), then the latest.
        let actor = matched
            .iter()
            .flat_map(|(ri, inst)| {
                let first = engine.rules[*ri].actor_first;
                inst.iter().filter_map(move |i| {
                    if first {
                        i.hits.first().copied()
                    } else {
                        i.hits.last().copied()
                    }
                })
            })
            .max_by_key(|h| (h.event.ancestry.len(), h.time));
        let Some(actor) = actor else { continue };
        let related = |p: u64| {
            in_lineage(&sig.parents, p, actor.proc) || in_lineage(&sig.parents, actor.proc, p)
        };
        let mut chain: Vec<&Hit> = meaningful
            .iter()
            .copied()
            .filter(|h| related(h.proc))
            .collect();
        chain.sort_by_key(|h| h.time);
        let mut chain_shown: Vec<&Hit> = Vec::new();
        for h in chain {
            if !chain_shown.iter().any(|s| same_event(&s.event, &h.event)) {
                chain_shown.push(h);
            }
        }
        let first = shown.first().map_or(0, |h| h.time);
        let last = shown.last().map_or(0, |h| h.time);
        out.push(Finding {
            kind: kind.to_string(),
            severity,
            first_seen: rfc3339(first),
            last_seen: rfc3339(last),
            rules: rules.iter().map(|r| r.id.clone()).collect(),
            summary: rules.first().map(|r| r.summary.clone()),
            process: Some(process_of(&actor.event, actor.proc, sig)),
            events: shown
                .iter()
                .take(MAX_EVENTS)
                .map(|h| evidence(&h.event))
                .collect(),
            occurrences: occurrences as u64,
            chain: chain_shown
                .iter()
                .take(MAX_CHAIN)
                .map(|h| evidence(&h.event))
                .collect(),
            ..Default::default()
        });
    }
    out
}

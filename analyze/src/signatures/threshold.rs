//! Distinct-count thresholds: "at least N distinct values of a field, per value of another
//! field, within a time window" — DGA names walked by one workload, ports probed on one host,
//! hosts probed on one port, credential files read in a burst.
//!
//! A threshold cannot be decided row by row, and the rows of a workload arrive in row groups
//! scanned in parallel, so the map step only counts: per (rule, group value, time bucket) it
//! keeps the earliest distinct values (at most N: more cannot change the answer) and the
//! events of the earliest few as evidence. Buckets are `within` long and aligned to the epoch;
//! the finish step counts each bucket together with the next one, so N distinct values that
//! fall within `within` of each other are always found (values up to 2 × `within` apart may
//! count together too). Without `within` there is one bucket: the whole trace. Merging keeps
//! the earliest values, so the answer and the evidence do not depend on how the input was split.
//!
//! A finding reports a group's earliest crossing, so once a group has crossed (a window alone,
//! or with the next), windows past that span cannot change the output and are neither created
//! nor kept: a client that reaches 32 replicas on port 443 every minute keeps two windows of
//! state, not one per minute.

use std::collections::BTreeMap;

use super::Hit;
use super::fields::Field;
use crate::fasthash::FastMap;

/// Evidence events kept per bucket (those of its earliest distinct values).
pub const MAX_SAMPLES: usize = 8;
/// Most buckets kept per rule and workload; later ones are counted as dropped.
pub const MAX_BUCKETS_PER_RULE: usize = 8192;

/// A rule's `[threshold]`, compiled.
#[derive(Clone, Debug, PartialEq)]
pub struct Threshold {
    /// The field whose distinct values are counted.
    pub field: Field,
    /// How many distinct values raise the finding.
    pub at_least: u32,
    /// Window length (ns); `None` counts over the whole trace.
    pub window_ns: Option<i64>,
    /// Values are counted separately per value of this field (e.g. ports per host).
    pub group: Option<Field>,
}

impl Threshold {
    /// The time bucket of an event at `time`.
    pub fn bucket(&self, time: i64) -> i64 {
        self.window_ns.map_or(0, |w| time.div_euclid(w.max(1)))
    }
}

/// Counts of one (rule, group, bucket): its earliest distinct values and evidence.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Bucket {
    cap: usize,
    /// (first time seen, value hash), earliest first, at most `cap`.
    values: Vec<(i64, u64)>,
    /// Events of the earliest values, earliest first, at most [`MAX_SAMPLES`].
    samples: Vec<(u64, Hit)>,
}

impl Bucket {
    /// Notes `value` at `time`; true when its event belongs to the evidence.
    fn add_value(&mut self, time: i64, value: u64) -> bool {
        match self.values.iter_mut().find(|e| e.1 == value) {
            Some(e) if e.0 <= time => return false,
            Some(e) => e.0 = time,
            None => self.values.push((time, value)),
        }
        self.values.sort_unstable();
        self.values.truncate(self.cap);
        let values = &self.values;
        self.samples
            .retain(|(v, _)| values.iter().any(|e| e.1 == *v));
        self.values.iter().any(|e| e.1 == value)
            && (self.samples.len() < MAX_SAMPLES
                || self
                    .samples
                    .iter()
                    .any(|(v, h)| *v == value || h.time > time))
    }

    fn add_sample(&mut self, value: u64, hit: Hit) {
        self.samples.retain(|(v, _)| *v != value);
        let at = self.samples.partition_point(|(_, h)| h.time <= hit.time);
        self.samples.insert(at, (value, hit));
        self.samples.truncate(MAX_SAMPLES);
    }
}

/// Threshold counts of one workload; merges like the other aggregates.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ThresholdState {
    buckets: FastMap<(u16, u64, i64), Bucket>,
    per_rule: FastMap<u16, usize>,
    /// (rule, group) → the window where its earliest crossing starts.
    crossed: FastMap<(u16, u64), i64>,
    /// Values not counted because a rule's bucket cap was reached.
    pub dropped: u64,
}

/// Distinct values of two windows together.
fn union_len(a: &Bucket, b: Option<&Bucket>) -> usize {
    let mut v: Vec<u64> = a.values.iter().map(|e| e.1).collect();
    if let Some(b) = b {
        v.extend(b.values.iter().map(|e| e.1));
    }
    v.sort_unstable();
    v.dedup();
    v.len()
}

impl ThresholdState {
    /// Counts `value` for `rule` in `group` at `time`; true when its event belongs to the
    /// evidence (then [`ThresholdState::keep`] it).
    pub fn count(&mut self, rule: u16, t: &Threshold, group: u64, value: u64, time: i64) -> bool {
        let bucket = t.bucket(time);
        // Windows past a crossing's span cannot change the group's earliest crossing.
        if self
            .crossed
            .get(&(rule, group))
            .is_some_and(|&c| bucket > c + 1)
        {
            return false;
        }
        let key = (rule, group, bucket);
        if !self.buckets.contains_key(&key) {
            let n = self.per_rule.entry(rule).or_insert(0);
            if *n >= MAX_BUCKETS_PER_RULE {
                self.dropped += 1;
                return false;
            }
            *n += 1;
        }
        let b = self.buckets.entry(key).or_insert_with(|| Bucket {
            cap: t.at_least.max(1) as usize,
            values: Vec::new(),
            samples: Vec::new(),
        });
        let before = b.values.len();
        let keep = b.add_value(time, value);
        if b.values.len() != before
            && let Some(start) = self.crossing_at(rule, group, bucket)
        {
            let c = self.crossed.entry((rule, group)).or_insert(start);
            *c = (*c).min(start);
        }
        keep
    }

    /// Where a crossing involving window `b` of a group starts, if there is one: `b` alone,
    /// else with the window before, else with the window after.
    fn crossing_at(&self, rule: u16, group: u64, b: i64) -> Option<i64> {
        let at = |i: i64| self.buckets.get(&(rule, group, i));
        let this = at(b)?;
        if this.values.len() >= this.cap {
            return Some(b);
        }
        if let Some(prev) = at(b - 1)
            && union_len(prev, Some(this)) >= this.cap
        {
            return Some(b - 1);
        }
        at(b + 1)
            .filter(|next| union_len(this, Some(next)) >= this.cap)
            .map(|_| b)
    }

    /// Keeps the event of a value [`ThresholdState::count`] asked for.
    pub fn keep(&mut self, rule: u16, t: &Threshold, group: u64, value: u64, hit: Hit) {
        if let Some(b) = self.buckets.get_mut(&(rule, group, t.bucket(hit.time))) {
            b.add_sample(value, hit);
        }
    }

    /// Folds `other` into `self`.
    pub fn merge(&mut self, other: ThresholdState) {
        self.dropped += other.dropped;
        for (key, ob) in other.buckets {
            match self.buckets.get_mut(&key) {
                Some(b) => {
                    for &(time, value) in &ob.values {
                        b.add_value(time, value);
                    }
                    for (value, hit) in ob.samples {
                        if b.values.iter().any(|e| e.1 == value) {
                            b.add_sample(value, hit);
                        }
                    }
                }
                None => {
                    let n = self.per_rule.entry(key.0).or_insert(0);
                    if *n >= MAX_BUCKETS_PER_RULE {
                        self.dropped += ob.values.len() as u64;
                        continue;
                    }
                    *n += 1;
                    self.buckets.insert(key, ob);
                }
            }
        }
        // Crossings may start earlier now (windows met their neighbours): find each group's
        // earliest again, and drop the windows past its span.
        self.crossed.clear();
        for &(r, g, b) in self.buckets.keys() {
            if let Some(start) = self.crossing_at(r, g, b) {
                let c = self.crossed.entry((r, g)).or_insert(start);
                *c = (*c).min(start);
            }
        }
        if !self.crossed.is_empty() {
            let crossed = &self.crossed;
            let per_rule = &mut self.per_rule;
            self.buckets.retain(|&(r, g, b), _| {
                let keep = crossed.get(&(r, g)).is_none_or(|&c| b <= c + 1);
                if !keep && let Some(n) = per_rule.get_mut(&r) {
                    *n = n.saturating_sub(1);
                }
                keep
            });
        }
    }

    /// True when nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Where `rule` crossed its threshold: per group, the earliest window holding `at_least`
    /// distinct values by itself, or with the next window, as the evidence events of that
    /// span.
    pub fn crossings(&self, rule: u16, t: &Threshold) -> Vec<Vec<&Hit>> {
        let mut groups: BTreeMap<u64, Vec<(i64, &Bucket)>> = BTreeMap::new();
        for ((r, g, b), bucket) in &self.buckets {
            if *r == rule {
                groups.entry(*g).or_default().push((*b, bucket));
            }
        }
        let need = t.at_least.max(1) as usize;
        let mut out: Vec<Vec<&Hit>> = Vec::new();
        for mut buckets in groups.into_values() {
            buckets.sort_unstable_by_key(|(b, _)| *b);
            for (i, (b, bucket)) in buckets.iter().enumerate() {
                let next = buckets
                    .get(i + 1)
                    .filter(|(nb, _)| *nb == b + 1 && bucket.values.len() < need)
                    .map(|(_, nb)| *nb);
                if union_len(bucket, next) < need {
                    continue;
                }
                let mut hits: Vec<&Hit> = bucket.samples.iter().map(|(_, h)| h).collect();
                if let Some(n) = next {
                    hits.extend(n.samples.iter().map(|(_, h)| h));
                }
                hits.sort_by_key(|h| h.time);
                out.push(hits);
                break;
            }
        }
        out.sort_by_key(|hits| hits.first().map(|h| h.time));
        out
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use needle_common::abi::EventKind;

    use super::*;
    use crate::signatures::HitEvent;

    const S: i64 = 1_000_000_000;

    fn hit(time: i64) -> Hit {
        Hit {
            rule: 0,
            cond: 0,
            time,
            proc: 1,
            carried: Vec::new(),
            event: Arc::new(HitEvent {
                time,
                kind: EventKind::Connect,
                pid: 1,
                process_key: None,
                exe: None,
                sha256: None,
                uid: None,
                user: None,
                ancestry: Vec::new(),
                fields: Vec::new(),
            }),
        }
    }

    fn ports(at_least: u32, within: Option<i64>) -> Threshold {
        Threshold {
            field: Field::DstPort,
            at_least,
            window_ns: within,
            group: Some(Field::DstAddr),
        }
    }

    /// Feeds (group, value, seconds) events into a state, in the given order.
    fn feed(state: &mut ThresholdState, t: &Threshold, events: &[(u64, u64, i64)]) {
        for &(g, v, secs) in events {
            if state.count(0, t, g, v, secs * S) {
                state.keep(0, t, g, v, hit(secs * S));
            }
        }
    }

    #[test]
    fn counts_distinct_values_per_group_within_the_window() {
        let t = ports(4, Some(60 * S));
        let mut s = ThresholdState::default();
        // Host 1: four ports within a minute (two buckets); host 2: four ports over an hour.
        feed(
            &mut s,
            &t,
            &[
                (1, 22, 50),
                (1, 80, 55),
                (1, 80, 56),
                (1, 443, 70),
                (1, 8080, 100),
                (2, 22, 0),
                (2, 80, 1200),
                (2, 443, 2400),
                (2, 8080, 3600),
            ],
        );
        let c = s.crossings(0, &t);
        assert_eq!(c.len(), 1, "{c:?}");
        let times: Vec<i64> = c[0].iter().map(|h| h.time / S).collect();
        assert_eq!(times, [50, 55, 70, 100]);
        // Repeats of one value are one value.
        let mut s = ThresholdState::default();
        feed(
            &mut s,
            &t,
            &[(1, 22, 1), (1, 22, 2), (1, 22, 3), (1, 80, 4)],
        );
        assert!(s.crossings(0, &t).is_empty());
        // Without a window, the whole trace counts.
        let t = ports(4, None);
        let mut s = ThresholdState::default();
        feed(
            &mut s,
            &t,
            &[(2, 22, 0), (2, 80, 1200), (2, 443, 2400), (2, 8080, 3600)],
        );
        assert_eq!(s.crossings(0, &t).len(), 1);
    }

    #[test]
    fn the_split_and_order_of_the_input_do_not_change_the_answer_or_the_evidence() {
        let t = ports(3, Some(60 * S));
        let events: Vec<(u64, u64, i64)> = (0..40i64)
            .map(|i| (7, 1000 + (i % 13) as u64, 30 + i))
            .collect();
        let mut whole = ThresholdState::default();
        feed(&mut whole, &t, &events);
        for split in [1, 7, 20, 39] {
            let (a, b) = events.split_at(split);
            let mut left = ThresholdState::default();
            let mut right = ThresholdState::default();
            feed(&mut left, &t, a);
            feed(&mut right, &t, b);
            right.merge(left);
            assert_eq!(
                right.crossings(0, &t),
                whole.crossings(0, &t),
                "split {split}"
            );
        }
        let evidence: Vec<i64> = whole.crossings(0, &t)[0]
            .iter()
            .map(|h| h.time / S)
            .collect();
        // The first window holds three values by itself: its events are the evidence.
        assert_eq!(evidence, [30, 31, 32]);
    }

    #[test]
    fn windows_past_a_crossing_are_not_kept() {
        let t = ports(2, Some(60 * S));
        let mut s = ThresholdState::default();
        // A client reaching two ports of one host every minute for an hour: the first window
        // crosses by itself, and at most the next one is kept.
        let events: Vec<(u64, u64, i64)> =
            (0..120i64).map(|i| (1, (i % 2) as u64, i * 30)).collect();
        feed(&mut s, &t, &events);
        assert!(s.buckets.len() <= 2, "{}", s.buckets.len());
        assert_eq!(s.crossings(0, &t).len(), 1);
        // One value a window: it crosses with its neighbour, and the state stays bounded.
        let mut s = ThresholdState::default();
        let events: Vec<(u64, u64, i64)> =
            (0..120i64).map(|i| (1, (i % 2) as u64, i * 60)).collect();
        feed(&mut s, &t, &events);
        assert!(s.buckets.len() <= 3, "{}", s.buckets.len());
        assert_eq!(s.crossings(0, &t).len(), 1);
    }

    #[test]
    fn buckets_beyond_the_cap_are_counted_as_dropped() {
        let t = ports(2, Some(S));
        let mut s = ThresholdState::default();
        let events: Vec<(u64, u64, i64)> = (0..MAX_BUCKETS_PER_RULE as i64 + 5)
            .map(|i| (1, 1, i * 2))
            .collect();
        feed(&mut s, &t, &events);
        assert_eq!(s.dropped, 5);
    }
}

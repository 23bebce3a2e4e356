//! Detection metrics over scored items with a binary label (true = attack).

/// ROC AUC: the probability that a random attack scores above a random normal item (ties
/// count half). None without both classes.
pub fn roc_auc(scores: &[(f64, bool)]) -> Option<f64> {
    let pos = scores.iter().filter(|s| s.1).count();
    let neg = scores.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    let mut v: Vec<(f64, bool)> = scores.to_vec();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Mann–Whitney U with mid-ranks for ties.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1].0 == v[i].0 {
            j += 1;
        }
        let mid = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += mid * v[i..=j].iter().filter(|s| s.1).count() as f64;
        i = j + 1;
    }
    let u = rank_sum - (pos * (pos + 1)) as f64 / 2.0;
    Some(u / (pos as f64 * neg as f64))
}

/// Items ordered most suspicious first (ties: attacks last, the pessimistic order).
fn ordered(scores: &[(f64, bool)]) -> Vec<(f64, bool)> {
    let mut v = scores.to_vec();
    v.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    v
}

/// Average precision (area under the precision–recall curve, step-wise). None without attacks.
pub fn average_precision(scores: &[(f64, bool)]) -> Option<f64> {
    let pos = scores.iter().filter(|s| s.1).count();
    if pos == 0 {
        return None;
    }
    let mut hits = 0;
    let mut sum = 0.0;
    for (i, s) in ordered(scores).iter().enumerate() {
        if s.1 {
            hits += 1;
            sum += hits as f64 / (i + 1) as f64;
        }
    }
    Some(sum / pos as f64)
}

/// Share of attacks among the `k` highest scores.
pub fn precision_at(scores: &[(f64, bool)], k: usize) -> f64 {
    let k = k.min(scores.len());
    if k == 0 {
        return 0.0;
    }
    ordered(scores).iter().take(k).filter(|s| s.1).count() as f64 / k as f64
}

/// 1-based ranks of the attacks, most suspicious first (pessimistic on ties).
pub fn attack_ranks(scores: &[(f64, bool)]) -> Vec<usize> {
    ordered(scores)
        .iter()
        .enumerate()
        .filter(|(_, s)| s.1)
        .map(|(i, _)| i + 1)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        let perfect = [(0.9, true), (0.8, true), (0.1, false), (0.2, false)];
        assert_eq!(roc_auc(&perfect), Some(1.0));
        assert_eq!(average_precision(&perfect), Some(1.0));
        assert_eq!(attack_ranks(&perfect), vec![1, 2]);
        let mixed = [(0.9, false), (0.8, true), (0.1, false), (0.2, true)];
        assert_eq!(roc_auc(&mixed), Some(0.5));
        assert!((average_precision(&mixed).unwrap() - (0.5 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
        assert_eq!(precision_at(&mixed, 2), 0.5);
        let ties = [(1.0, true), (1.0, false)];
        assert_eq!(roc_auc(&ties), Some(0.5));
        assert_eq!(attack_ranks(&ties), vec![2]);
        assert_eq!(roc_auc(&[(1.0, true)]), None);
    }
}

//! The domain-generation heuristic behind the `dga` test: does a DNS name's registered label
//! look machine-made? Kept apart from the rule format because it is a model of names, not syntax.

use crate::classify::entropy;

/// Second-level label of a DNS name (the part a domain owner chose), skipping two-level
/// public suffixes such as `co.uk`.
fn registered_label(name: &str) -> &str {
    let labels: Vec<&str> = name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
        .collect();
    if labels.len() < 2 {
        return "";
    }
    let two_level = ["co", "com", "net", "org", "gov", "ac", "edu"];
    let i = if labels.len() >= 3
        && two_level.contains(&labels[labels.len() - 2])
        && labels[labels.len() - 1].len() == 2
    {
        labels.len() - 3
    } else {
        labels.len() - 2
    };
    labels[i]
}

/// True for a DNS name whose registered label looks machine-made: long, high-entropy, and
/// either mixing many digits into letters, nearly without vowels, or with long consonant runs.
pub fn looks_generated(name: &str) -> bool {
    let label = registered_label(name).to_ascii_lowercase();
    if label.len() < 10 || entropy(&label) < 3.0 {
        return false;
    }
    let letters = label.bytes().filter(u8::is_ascii_alphabetic).count();
    let digits = label.bytes().filter(u8::is_ascii_digit).count();
    let vowels = label.bytes().filter(|b| b"aeiouy".contains(b)).count();
    let mut run = 0;
    let mut max_run = 0;
    for b in label.bytes() {
        run = if b.is_ascii_alphabetic() && !b"aeiouy".contains(&b) {
            run + 1
        } else {
            0
        };
        max_run = max_run.max(run);
    }
    let digit_ratio = digits as f64 / label.len() as f64;
    let vowel_ratio = if letters == 0 {
        0.0
    } else {
        vowels as f64 / letters as f64
    };
    (letters >= 3 && (0.2..=0.8).contains(&digit_ratio))
        || (letters >= 8 && vowel_ratio < 0.2)
        || max_run >= 5
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names() {
        for n in [
            "xjwqkzvbtrplm.com",
            "a3f9c2e1b7d8.net",
            "qzx8k2m9v4p7w.info",
            "k7d9x2q8z1m3.co.uk",
        ] {
            assert!(looks_generated(n), "{n}");
        }
        for n in [
            "www.google.com",
            "cloudfront.net",
            "d1a2b3.cloudfront.net",
            "stackoverflow.com",
            "githubusercontent.com",
            "microsoftonline.com",
            "db.internal",
            "localhost",
            "kubernetes.default.svc.cluster.local",
        ] {
            assert!(!looks_generated(n), "{n}");
        }
    }
}

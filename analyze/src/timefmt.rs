//! Times as the outputs show them: RFC 3339 UTC, shared by the scan summary, findings, the
//! ranking and every report.

/// Formats ns since the epoch as RFC 3339 UTC, with as many fraction digits as needed.
pub fn rfc3339(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let nanos = ns.rem_euclid(1_000_000_000) as u32;
    match u64::try_from(secs) {
        Ok(s) => {
            let t = std::time::UNIX_EPOCH + std::time::Duration::new(s, nanos);
            let full = humantime::format_rfc3339_nanos(t).to_string();
            // 2027-01-15T08:00:00.500000000Z → 2027-01-15T08:00:00.5Z; whole seconds lose the dot.
            match full.strip_suffix('Z') {
                Some(body) if body.contains('.') => {
                    format!("{}Z", body.trim_end_matches('0').trim_end_matches('.'))
                }
                _ => full,
            }
        }
        Err(_) => format!("{ns}ns"),
    }
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn times() {
        assert_eq!(rfc3339(1_800_000_000_000_000_000), "2027-01-15T08:00:00Z");
        assert_eq!(rfc3339(1_800_000_000_500_000_000), "2027-01-15T08:00:00.5Z");
        assert_eq!(rfc3339(-1), "-1ns");
    }
}

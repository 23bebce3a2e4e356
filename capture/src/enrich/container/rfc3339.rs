//! RFC 3339 timestamps (as runtimes write `created`) to nanoseconds since the Unix epoch.

/// Parses `2026-11-23T07:51:24.727231903Z` or `…+02:00`; None when malformed.
pub fn parse_ns(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let year = digits(s, 0, 4)?;
    let month = digits(s, 5, 7)?;
    let day = digits(s, 8, 10)?;
    let (hour, min, sec) = (digits(s, 11, 13)?, digits(s, 14, 16)?, digits(s, 17, 19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut nanos = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        // Keep nanosecond precision; extra digits are truncated.
        for (i, d) in frac.bytes().take(9).take(n).enumerate() {
            nanos += i64::from(d - b'0') * 10i64.pow(8 - i as u32);
        }
        rest = &frac[n..];
    }
    let offset_s = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6
            && matches!(rest.as_bytes()[0], b'+' | b'-')
            && rest.as_bytes()[3] == b':' =>
        {
            let secs = digits(rest, 1, 3)? * 3600 + digits(rest, 4, 6)? * 60;
            if rest.starts_with('-') { -secs } else { secs }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec - offset_s;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

fn digits(s: &str, from: usize, to: usize) -> Option<i64> {
    let part = s.get(from..to)?;
    if !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::parse_ns;

    #[test]
    fn parses_runtime_timestamps() {
        assert_eq!(parse_ns("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_ns("2026-11-23T07:51:24.727231903Z"),
            Some(1_795_420_284_727_231_903)
        );
        assert_eq!(
            parse_ns("2000-02-29T12:00:00.5Z"),
            Some(951_825_600_500_000_000)
        );
        assert_eq!(
            parse_ns("2000-02-29T14:00:00.5+02:00"),
            Some(951_825_600_500_000_000)
        );
        assert_eq!(
            parse_ns("2000-02-29T12:00:00.1234567891Z"),
            Some(951_825_600_123_456_789)
        );
        assert_eq!(parse_ns("1969-12-31T23:59:59Z"), Some(-1_000_000_000));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "2026-11-23",
            "2026-11-23T07:51:24",
            "2026-13-23T07:51:24Z",
            "2026-11-23T07:51:24.Z",
            "2026-11-23T07:51:24+0200",
            "2026-11-23T07:5a:24Z",
            "2026-11-23T07:51:24Zjunk",
            "２026-11-23T07:51:24Z",
            "2026-11-23T07:51:24é0:00",
            "2026-11-23T07:51:24+é:00",
        ] {
            assert_eq!(parse_ns(bad), None, "{bad:?}");
        }
    }
}

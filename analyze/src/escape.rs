//! Making attacker-controlled strings harmless where they are shown.
//!
//! Traces carry strings an attacker chose (container names, paths, DNS names, comm). In a
//! terminal, control characters and ANSI escape sequences could rewrite the screen or the
//! title, and bidirectional overrides could reorder what is read; in a spreadsheet, a cell
//! starting with `=`, `+`, `-`, `@`, tab or CR is a formula. JSON is escaped by serde.

/// True for characters a terminal would interpret rather than print: C0 and C1 controls,
/// DEL, and the Unicode bidirectional overrides and isolates ("Trojan Source").
fn is_dangerous(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every dangerous character written as a visible escape (`\x1b`, `\u{202e}`),
/// cut to `max` characters (with `…`).
pub fn terminal(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max * 4));
    for (shown, c) in s.chars().enumerate() {
        if shown >= max {
            out.push('…');
            break;
        }
        if is_dangerous(c) {
            let esc = if (c as u32) < 0x100 {
                format!("\\x{:02x}", c as u32)
            } else {
                format!("\\u{{{:x}}}", c as u32)
            };
            out.push_str(&esc);
        } else {
            out.push(c);
        }
    }
    out
}

/// One CSV cell holding text: formula prefixes neutralized with a leading `'`, quoted when it
/// contains a separator, a quote or a line break (RFC 4180).
pub fn csv_text(s: &str) -> String {
    let neutral = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if neutral.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", neutral.replace('"', "\"\""))
    } else {
        neutral
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_escapes_controls_ansi_and_bidi() {
        assert_eq!(terminal("web-1", 40), "web-1");
        assert_eq!(terminal("\x1b]0;pwned\x07x", 40), "\\x1b]0;pwned\\x07x");
        assert_eq!(terminal("a\r\nb\tc\x7f", 40), "a\\x0d\\x0ab\\x09c\\x7f");
        assert_eq!(terminal("\u{9b}31m", 40), "\\x9b31m");
        assert_eq!(terminal("evil\u{202e}gpj.exe", 40), "evil\\u{202e}gpj.exe");
        assert!(!terminal("\x1b[2J\x1b[H", 40).contains('\x1b'));
        assert_eq!(terminal("abcdef", 3), "abc…");
        assert_eq!(terminal("äöü", 10), "äöü");
    }

    #[test]
    fn csv_neutralizes_formulas_and_quotes() {
        assert_eq!(csv_text("web"), "web");
        assert_eq!(
            csv_text("=HYPERLINK(\"http://x\")"),
            "\"'=HYPERLINK(\"\"http://x\"\")\""
        );
        for p in ["+1", "-1+2", "@SUM(A1)", "\tx", "\rx"] {
            let cell = csv_text(p);
            assert!(
                cell.starts_with('\'') || cell.starts_with("\"'"),
                "{p:?} → {cell:?}"
            );
        }
        assert_eq!(csv_text("a,b"), "\"a,b\"");
        assert_eq!(csv_text("line\nbreak"), "\"line\nbreak\"");
    }
}

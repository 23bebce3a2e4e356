//! How a compiled rule matches a row: each test of a condition against a field's value, and a
//! condition (its kinds, tests and exceptions) against an event. The rule format and its
//! compilation are in [`super::rule`].

use std::sync::Arc;

use needle_common::abi::EventKind;

use super::dga::looks_generated;
use super::fields::{Field, Row, Val};
use super::rule::{Cond, Lit, Test};

fn lit_eq(v: &Val<'_>, l: &Lit) -> bool {
    match (v, l) {
        (Val::Str(s), Lit::Str(x)) => s == x,
        (Val::Num(n), Lit::Num(x)) => n == x,
        (Val::Bool(b), Lit::Bool(x)) => b == x,
        (Val::Many(m), Lit::Str(x)) => m.iter().any(|s| s == x),
        _ => false,
    }
}

fn any_text(v: &Val<'_>, f: impl Fn(&str) -> bool) -> bool {
    match v {
        Val::Str(s) => f(s),
        Val::Many(m) => m.iter().any(|s| f(s)),
        _ => false,
    }
}

fn number(v: &Val<'_>) -> Option<i64> {
    match v {
        Val::Num(n) => Some(*n),
        _ => None,
    }
}

impl Test {
    /// Does `v` pass? (`Bound` passes here; it is checked when steps are joined.)
    pub fn check(&self, v: &Val<'_>) -> bool {
        match self {
            Test::Exists(want) => !matches!(v, Val::None) == *want,
            _ if matches!(v, Val::None) => false,
            Test::Eq(l) => lit_eq(v, l),
            Test::Ne(l) => !lit_eq(v, l),
            Test::In(ls) => ls.iter().any(|l| lit_eq(v, l)),
            Test::InList(list) => match v {
                Val::Num(n) => u64::try_from(*n).is_ok_and(|n| list.matches_num(n)),
                _ => any_text(v, |s| list.matches(s)),
            },
            Test::Prefix(p) => any_text(v, |s| p.iter().any(|x| s.starts_with(x.as_str()))),
            Test::Suffix(p) => any_text(v, |s| p.iter().any(|x| s.ends_with(x.as_str()))),
            Test::Contains(p) => any_text(v, |s| p.iter().any(|x| s.contains(x.as_str()))),
            Test::Glob(p) => any_text(v, |s| {
                p.iter()
                    .any(|(prefix, g)| s.starts_with(prefix.as_str()) && g.matches(s))
            }),
            Test::Regex(r) => any_text(v, |s| r.is_match(s)),
            Test::BitsAny(m) => number(v).is_some_and(|n| n as u64 & m != 0),
            Test::BitsAll(m) => number(v).is_some_and(|n| n as u64 & m == *m),
            Test::BitsNone(m) => number(v).is_some_and(|n| n as u64 & m == 0),
            Test::Gt(x) => number(v).is_some_and(|n| n > *x),
            Test::Gte(x) => number(v).is_some_and(|n| n >= *x),
            Test::Lt(x) => number(v).is_some_and(|n| n < *x),
            Test::Lte(x) => number(v).is_some_and(|n| n <= *x),
            Test::Dga(want) => any_text(v, looks_generated) == *want,
            Test::Bound(_) => true,
        }
    }
}

impl Cond {
    /// Does the row match (kind already checked by the caller)?
    pub fn matches(&self, row: &Row<'_>, kind: EventKind) -> bool {
        self.kinds.contains(&kind)
            && self.tests.iter().all(|(f, t)| t.check(&row.get(*f)))
            && !self.unless.iter().any(|u| {
                (u.kinds.is_empty() || u.kinds.contains(&kind))
                    && u.tests.iter().all(|(f, t)| t.check(&row.get(*f)))
            })
    }

    /// Fields whose values a hit must carry: bound variables (`var`) and `bound` tests
    /// (`=var`).
    pub fn carried(&self) -> &[(Arc<str>, Field)] {
        &self.carry
    }
}

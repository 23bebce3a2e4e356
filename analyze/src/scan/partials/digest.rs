//! A digest of a signature engine (its rules and intel), so that a partial file is merged only
//! into a run with the same engine: its hits name rules by their index in that engine.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use crate::signatures::Engine;
use crate::signatures::rule::{Cond, Test};

/// SHA-256 (hex) of everything in `engine` that decides what a partial's signature state holds:
/// each rule in order (id, finding, conditions, sequence, threshold…) and each intel list's
/// name, kind and entries. Deterministic: no hash-map order and no file path enters it.
pub fn engine_digest(engine: &Engine) -> String {
    let mut text = String::new();
    for r in engine.rules() {
        let _ = writeln!(
            text,
            "rule {:?} {:?} {:?} {:?} seq={} same={:?} within={} threshold={:?} mitre={:?} actor_first={}",
            r.id,
            r.finding,
            r.severity,
            r.summary,
            r.sequence,
            r.same,
            r.within_ns,
            r.threshold,
            r.mitre,
            r.actor_first
        );
        for c in &r.conds {
            cond(&mut text, c, 1);
        }
    }
    for l in engine.intel().lists() {
        let _ = writeln!(text, "list {:?} {:?} {}", l.name, l.kind, l.entries.len());
        for e in &l.entries {
            let _ = writeln!(text, "  {e:?}");
        }
    }
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn cond(text: &mut String, c: &Cond, depth: usize) {
    let pad = "  ".repeat(depth);
    let _ = writeln!(text, "{pad}cond {:?} bind={:?}", c.kinds, c.bind);
    for (field, test) in &c.tests {
        let shown = match test {
            // The list's content is in the digest once, below the rules; its Debug holds
            // hash sets whose order changes from run to run.
            Test::InList(list) => format!("InList({:?})", list.name),
            other => format!("{other:?}"),
        };
        let _ = writeln!(text, "{pad}  {field:?} {shown}");
    }
    for u in &c.unless {
        let _ = writeln!(text, "{pad}unless");
        cond(text, u, depth + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_engine_gives_the_same_digest_and_another_a_different_one() {
        let a = Engine::load(&[], &[]).unwrap();
        let b = Engine::load(&[], &[]).unwrap();
        assert_eq!(engine_digest(&a), engine_digest(&b));
        assert_eq!(engine_digest(&a).len(), 64);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("extra.txt"),
            "# kind: domains\n# source: test\n# version: 1\nexample-extra.invalid\n",
        )
        .unwrap();
        let c = Engine::load(&[], &[dir.path().to_path_buf()]).unwrap();
        assert_ne!(engine_digest(&a), engine_digest(&c));
    }
}

//! Small judgements about attacker-controlled strings: is this a shell, a writable location,
//! a fileless image; how random does a DNS label look.

use std::hash::BuildHasher;

/// Shell program names (basename of the executable, or `comm`).
const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "csh", "tcsh", "fish", "busybox",
];

/// The last path component.
pub fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// True for a shell's name (basename or comm).
pub fn is_shell(name: &str) -> bool {
    SHELLS.contains(&basename(name))
}

pub use needle_common::paths::is_fileless;

/// True for an executable in a writable or temporary place (the rule capture flags rows with,
/// see `needle_common::paths`), or no file at all.
pub fn is_writable_location(path: &str) -> bool {
    is_fileless(path) || needle_common::paths::is_writable_location(path)
}

/// A path with every run of ASCII digits as one `#`: the program a workload runs from a
/// fresh numbered directory per job or per process (`/builds/17/bin/app`, `/proc/812/exe`,
/// `/tmp/tmp.4411/run`) is one program, `/builds/#/bin/app`. Used where the question is whether
/// a workload runs *other* programs than before, not whether the file is new.
pub fn path_template(path: &str) -> std::borrow::Cow<'_, str> {
    if !path.bytes().any(|b| b.is_ascii_digit()) {
        return std::borrow::Cow::Borrowed(path);
    }
    let mut out = String::with_capacity(path.len());
    let mut in_digits = false;
    for c in path.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('#');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Shannon entropy of the bytes of `s`, in bits per character (0 for empty).
pub fn entropy(s: &str) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// First label of a DNS name, lower-cased semantics aside (`a1b2.pool.example` → `a1b2`).
pub fn first_label(name: &str) -> &str {
    name.trim_start_matches('.').split('.').next().unwrap_or("")
}

/// A stable 64-bit hash of a string, used for distinct counts and set joins that merge
/// across files and threads (the same on every run and machine: a fixed seed).
pub fn hash_str(s: &str) -> u64 {
    foldhash::quality::FixedState::with_seed(HASH_SEED).hash_one(s)
}

/// The seed of [`hash_str`] (recorded in partial files, whose sets hold these hashes).
pub const HASH_SEED: u64 = 0x6e65_6564_6c65_2121;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_templates() {
        assert_eq!(path_template("/builds/17/bin/app"), "/builds/#/bin/app");
        assert_eq!(path_template("/tmp/tmp.4411/run2"), "/tmp/tmp.#/run#");
        assert!(matches!(
            path_template("/usr/bin/env"),
            std::borrow::Cow::Borrowed("/usr/bin/env")
        ));
        assert_eq!(path_template("/é/1/ü22"), "/é/#/ü#");
    }

    #[test]
    fn shells() {
        assert!(is_shell("/bin/sh") && is_shell("bash") && is_shell("/usr/bin/dash"));
        assert!(!is_shell("/usr/sbin/nginx") && !is_shell("shx") && !is_shell(""));
    }

    #[test]
    fn writable_locations() {
        for p in [
            "/tmp/x",
            "/dev/shm/k",
            "/var/tmp/a",
            "/root/.cache/xmrig",
            "/tmp/.../m",
            "memfd:x (deleted)",
            "/memfd:abc",
            "/usr/bin/ls (deleted)",
        ] {
            assert!(is_writable_location(p), "{p}");
        }
        for p in [
            "/usr/bin/ls",
            "/bin/.hidden-file-is-fine",
            "/opt/app/bin/app",
            "relative",
            "/tmpfoo/x",
        ] {
            assert!(!is_writable_location(p), "{p}");
        }
        assert!(is_fileless("/memfd:x (deleted)") && !is_fileless("/tmp/x"));
    }

    #[test]
    fn entropy_and_labels() {
        assert_eq!(entropy(""), 0.0);
        assert_eq!(entropy("aaaa"), 0.0);
        assert!((entropy("ab") - 1.0).abs() < 1e-9);
        assert!(entropy("x7k2q9zp4m") > entropy("google"));
        assert_eq!(first_label("a1b2.pool.example."), "a1b2");
        assert_eq!(first_label(""), "");
        assert_eq!(hash_str("a"), hash_str("a"));
        assert_ne!(hash_str("a"), hash_str("b"));
    }
}

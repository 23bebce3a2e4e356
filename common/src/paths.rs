//! Judgements about executable paths shared by capture (which flags rows) and analyze (which
//! scores workloads), so both agree on what "runs from a writable place" means.

/// Home-directory dot folders where developer toolchains install their binaries. Code running
/// from these is normal on build hosts; a miner dropped into `~/.x/` is not.
const TOOL_DIRS: &[&str] = &[
    ".asdf",
    ".bun",
    ".cabal",
    ".cargo",
    ".deno",
    ".dotnet",
    ".ghcup",
    ".gradle",
    ".juliaup",
    ".krew",
    ".local",
    ".m2",
    ".nix-profile",
    ".npm",
    ".nvm",
    ".opam",
    ".pyenv",
    ".rbenv",
    ".rustup",
    ".sdkman",
    ".stack",
    ".volta",
    ".vscode-server",
];

/// World-writable or temporary directories.
const TEMP_PREFIXES: &[&str] = &[
    "/tmp/",
    "/dev/shm/",
    "/var/tmp/",
    "/run/",
    "/var/run/",
    "/dev/mqueue/",
];

/// True when `path` names a memfd or a deleted file (as `/proc/<pid>/exe` spells them).
pub fn is_fileless(path: &str) -> bool {
    path.starts_with("memfd:") || path.starts_with("/memfd:") || path.ends_with(" (deleted)")
}

/// True for an executable in a world-writable or temporary directory (`/tmp`, `/dev/shm`,
/// `/var/tmp`, `/run`), in a hidden directory at the top of the tree (`/.x/miner`), or in a
/// hidden directory of a home directory that is not a known toolchain folder (`/root/.x/m`,
/// but not `/root/.cargo/bin/cargo`).
pub fn is_writable_location(path: &str) -> bool {
    if TEMP_PREFIXES.iter().any(|p| path.starts_with(p)) {
        return true;
    }
    let Some(dir) = path.rfind('/').map(|i| &path[..i]) else {
        return false;
    };
    let mut parts = dir.split('/').skip(1);
    let hidden = |c: &str| c.starts_with('.') && c != "." && c != "..";
    match (parts.next(), parts.next(), parts.next()) {
        (Some(top), _, _) if hidden(top) => true,
        (Some("root"), Some(d), _) if hidden(d) => !TOOL_DIRS.contains(&d),
        (Some("home"), Some(_user), Some(d)) if hidden(d) => !TOOL_DIRS.contains(&d),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writable_locations() {
        for p in [
            "/tmp/x",
            "/dev/shm/kdevtmpfsi",
            "/var/tmp/.x/y",
            "/tmp/.X11-unix/.x/xmrig",
            "/.hidden/x",
            "/run/user/0/x",
            "/root/.cache/xmrig",
            "/home/app/.x/m",
        ] {
            assert!(is_writable_location(p), "{p}");
        }
        for p in [
            "/usr/bin/curl",
            "/bin/sh",
            "/opt/app/bin/server",
            "/usr/lib/x/.hidden_dir/f",
            "/root/.cargo/bin/cargo",
            "/root/.pyenv/shims/python3",
            "/home/dev/.local/bin/tool",
            "/.profile",
            "relative",
            "/tmpfoo/x",
        ] {
            assert!(!is_writable_location(p), "{p}");
        }
    }

    #[test]
    fn fileless() {
        assert!(
            is_fileless("/memfd:x (deleted)")
                && is_fileless("/usr/bin/ls (deleted)")
                && is_fileless("memfd:a")
        );
        assert!(!is_fileless("/tmp/x"));
    }
}

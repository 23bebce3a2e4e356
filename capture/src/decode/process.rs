//! Process lifecycle records.

use needle_common::abi::{
    EXE_IDENTITY, EXE_MTIME, EXEC_ARGS_MAX, EXEC_ARGS_TRUNCATED, EXEC_FILENAME_MAX,
    EXEC_FILENAME_TRUNCATED, ExecEvent, ExitEvent, ForkEvent,
};
use needle_common::schema::Detail;

use super::exec_state::{exec_state, resolve};
use super::{DecodeError, Decoded, Decoder, KernelExe, pod, text};
use crate::enrich::hash::ExeKey;

/// Splits a NUL-separated argv block (as in `/proc/<pid>/cmdline`).
fn split_args(block: &[u8]) -> Vec<String> {
    let block = block.strip_suffix(&[0]).unwrap_or(block);
    if block.is_empty() {
        return Vec::new();
    }
    block
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

pub(super) fn exec(d: &mut Decoder, bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let ev: ExecEvent = pod(bytes, "exec")?;
    let filename_len = (ev.filename_len as usize).min(EXEC_FILENAME_MAX);
    let args_len = (ev.args_len as usize).min(EXEC_ARGS_MAX);
    let state = exec_state(&ev);
    let path = resolve(
        &text(&ev.filename[..filename_len]),
        state.as_ref().and_then(|s| s.cwd.as_deref()),
    );
    let truncated = ev.flags & (EXEC_ARGS_TRUNCATED | EXEC_FILENAME_TRUNCATED) != 0;
    let detail = Detail::Exec {
        argv: split_args(&ev.args[..args_len]),
        truncated,
        state,
    };
    let mut out = d.decoded(&ev.header, detail);
    out.event.exe_path = Some(path.into());
    if ev.exe_flags & EXE_IDENTITY != 0 {
        let has_mtime = ev.exe_flags & EXE_MTIME != 0;
        out.exe = Some(KernelExe {
            key: ExeKey {
                dev: ExeKey::user_dev(ev.exe_dev),
                ino: ev.exe_ino,
                size: ev.exe_size,
                mtime_sec: if has_mtime { ev.exe_mtime_sec } else { 0 },
            },
            nlink: ev.exe_nlink,
            dname: text(&ev.exe_dname),
            has_mtime,
        });
    }
    Ok(out)
}

pub(super) fn fork(d: &mut Decoder, bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let ev: ForkEvent = pod(bytes, "fork")?;
    Ok(d.decoded(&ev.header, Detail::Fork))
}

pub(super) fn exit(d: &mut Decoder, bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let ev: ExitEvent = pod(bytes, "exit")?;
    Ok(d.decoded(&ev.header, Detail::exit_from_wait_status(ev.exit_code)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::tests::header;
    use crate::kernel::clock::BootClock;
    use bytemuck::Zeroable;
    use needle_common::abi::EventKind;

    #[test]
    fn exec_record_decodes_path_argv_and_truncation() {
        let mut ev = ExecEvent::zeroed();
        ev.header = header(EventKind::Exec);
        let path = b"/bin/true";
        ev.filename[..path.len()].copy_from_slice(path);
        ev.filename_len = path.len() as u32;
        let args = b"/bin/true\0--uuid=1234\0\0x\0";
        ev.args[..args.len()].copy_from_slice(args);
        ev.args_len = args.len() as u32;
        let mut d = Decoder::new(BootClock::measure());
        let e = d.decode(bytemuck::bytes_of(&ev)).unwrap().event;
        assert_eq!(e.exe_path.as_deref(), Some("/bin/true"));
        assert_eq!(
            e.detail,
            Detail::Exec {
                argv: vec![
                    "/bin/true".into(),
                    "--uuid=1234".into(),
                    "".into(),
                    "x".into()
                ],
                truncated: false,
                state: None
            }
        );
        assert_eq!(
            (
                e.process.pid,
                e.process.tgid,
                e.process.ppid,
                &*e.process.comm
            ),
            (11, 10, 1, "bash")
        );
        assert_eq!(e.process.cgroup_id, 42);

        ev.flags = EXEC_ARGS_TRUNCATED;
        ev.args_len = u32::MAX; // a lying length is clamped, not trusted
        let e = d.decode(bytemuck::bytes_of(&ev)).unwrap().event;
        assert!(matches!(
            e.detail,
            Detail::Exec {
                truncated: true,
                ..
            }
        ));
    }

    #[test]
    fn exit_record_decodes_status_and_signal() {
        let mut ev = ExitEvent::zeroed();
        ev.header = header(EventKind::Exit);
        ev.exit_code = 7 << 8;
        let mut d = Decoder::new(BootClock::measure());
        assert_eq!(
            d.decode(bytemuck::bytes_of(&ev)).unwrap().event.detail,
            Detail::Exit {
                code: Some(7),
                signal: None
            }
        );
        ev.exit_code = 15;
        assert_eq!(
            d.decode(bytemuck::bytes_of(&ev)).unwrap().event.detail,
            Detail::Exit {
                code: None,
                signal: Some(15)
            }
        );
    }

    #[test]
    fn fork_record_describes_the_child() {
        let mut ev = ForkEvent::zeroed();
        ev.header = header(EventKind::Fork);
        let mut d = Decoder::new(BootClock::measure());
        let e = d.decode(bytemuck::bytes_of(&ev)).unwrap().event;
        assert_eq!(e.detail, Detail::Fork);
        assert_eq!(e.process.tgid, 10);
    }

    #[test]
    fn empty_argv() {
        assert!(split_args(b"").is_empty());
        assert_eq!(split_args(b"a"), vec!["a"]);
    }
}

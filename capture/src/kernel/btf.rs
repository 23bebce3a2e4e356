//! Struct member offsets from the kernel's BTF (`/sys/kernel/btf/vmlinux`).
//!
//! Rust eBPF has no CO-RE relocations, so this is how the programs learn where
//! `task_struct::real_parent` or `mm_struct::arg_start` live on *this* kernel. Anonymous
//! structs and unions are searched through, as the C compiler would.

use std::path::{Path, PathBuf};

use btf_rs::{Btf, Type};

/// Default location of the kernel's BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Why an offset could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    /// The BTF file could not be read or parsed.
    #[error("cannot read kernel BTF {path}: {message} (is CONFIG_DEBUG_INFO_BTF enabled?)")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// No struct of that name.
    #[error("kernel BTF has no struct `{0}`")]
    NoStruct(String),
    /// The struct has no such member (searching anonymous members too).
    #[error("kernel BTF: struct `{strukt}` has no member `{member}`")]
    NoMember {
        /// Struct name.
        strukt: String,
        /// Member name.
        member: String,
    },
    /// The member is a bitfield, which the programs cannot read as a whole value.
    #[error("kernel BTF: `{strukt}.{member}` is a bitfield")]
    Bitfield {
        /// Struct name.
        strukt: String,
        /// Member name.
        member: String,
    },
}

/// Where a member was found.
struct Found {
    bits: u64,
    bitfield: bool,
}

/// The parsed kernel BTF.
pub struct KernelBtf {
    btf: Btf,
}

impl KernelBtf {
    /// Parses the BTF at `path`.
    pub fn from_file(path: &Path) -> Result<KernelBtf, BtfError> {
        let btf = Btf::from_file(path).map_err(|e| BtfError::Unreadable {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Ok(KernelBtf { btf })
    }

    /// Parses the running kernel's BTF.
    pub fn running() -> Result<KernelBtf, BtfError> {
        KernelBtf::from_file(Path::new(VMLINUX_BTF))
    }

    /// Byte offset of `member` within `struct strukt`.
    pub fn member_offset(&self, strukt: &str, member: &str) -> Result<u64, BtfError> {
        let types = self
            .btf
            .resolve_types_by_name(strukt)
            .map_err(|_| BtfError::NoStruct(strukt.into()))?;
        let s = types
            .iter()
            .find_map(|t| match t {
                Type::Struct(s) if !s.members.is_empty() => Some(s),
                _ => None,
            })
            .ok_or_else(|| BtfError::NoStruct(strukt.into()))?;
        match self.find(s, member, 0) {
            Some(Found {
                bits,
                bitfield: false,
            }) if bits % 8 == 0 => Ok(bits / 8),
            Some(_) => Err(BtfError::Bitfield {
                strukt: strukt.into(),
                member: member.into(),
            }),
            None => Err(BtfError::NoMember {
                strukt: strukt.into(),
                member: member.into(),
            }),
        }
    }

    /// Size in bytes of `struct strukt`.
    pub fn struct_size(&self, strukt: &str) -> Result<u64, BtfError> {
        let types = self
            .btf
            .resolve_types_by_name(strukt)
            .map_err(|_| BtfError::NoStruct(strukt.into()))?;
        types
            .iter()
            .find_map(|t| match t {
                Type::Struct(s) if !s.members.is_empty() => Some(s.size() as u64),
                _ => None,
            })
            .ok_or_else(|| BtfError::NoStruct(strukt.into()))
    }

    /// Offset of the first of `members` that `strukt` has (fields renamed across kernel versions,
    /// e.g. `inode.i_mtime_sec` since 6.11, `__i_mtime` in 6.7–6.10, `i_mtime` before).
    pub fn first_member_offset(&self, strukt: &str, members: &[&str]) -> Result<u64, BtfError> {
        let mut last = BtfError::NoStruct(strukt.into());
        for m in members {
            match self.member_offset(strukt, m) {
                Ok(off) => return Ok(off),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Bit offset of `member` in `s` (base `base_bits`), descending into anonymous members.
    fn find(&self, s: &btf_rs::Struct, member: &str, base_bits: u64) -> Option<Found> {
        for m in &s.members {
            let name = self.btf.resolve_name(m).unwrap_or_default();
            let bits = base_bits + u64::from(m.bit_offset());
            if name == member {
                return Some(Found {
                    bits,
                    bitfield: m.bitfield_size().is_some_and(|b| b != 0),
                });
            }
            if name.is_empty()
                && let Some(found) = self
                    .anonymous_aggregate(m)
                    .and_then(|inner| self.find(&inner, member, bits))
            {
                return Some(found);
            }
        }
        None
    }

    /// The struct/union type of an anonymous member, through typedefs and qualifiers.
    fn anonymous_aggregate(&self, m: &btf_rs::Member) -> Option<btf_rs::Struct> {
        let mut t = self.btf.resolve_chained_type(m).ok()?;
        for _ in 0..8 {
            match t {
                Type::Struct(s) | Type::Union(s) => return Some(s),
                Type::Typedef(ref td) => t = self.btf.resolve_chained_type(td).ok()?,
                Type::Const(ref c) => t = self.btf.resolve_chained_type(c).ok()?,
                Type::Volatile(ref v) => t = self.btf.resolve_chained_type(v).ok()?,
                _ => return None,
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel() -> Option<KernelBtf> {
        if !Path::new(VMLINUX_BTF).exists() {
            eprintln!("SKIP: no {VMLINUX_BTF} on this machine");
            return None;
        }
        Some(KernelBtf::running().expect("parse vmlinux BTF"))
    }

    #[test]
    fn resolves_task_and_mm_members_including_anonymous_ones() {
        let Some(btf) = kernel() else { return };
        let pid = btf.member_offset("task_struct", "pid").unwrap();
        let tgid = btf.member_offset("task_struct", "tgid").unwrap();
        // pid_t pid; pid_t tgid; are adjacent in every kernel since 2.6.
        assert_eq!(tgid, pid + 4);
        let start = btf.member_offset("mm_struct", "arg_start").unwrap();
        let end = btf.member_offset("mm_struct", "arg_end").unwrap();
        assert_eq!(end, start + 8, "arg_end follows arg_start");
    }

    #[test]
    fn missing_names_are_errors() {
        let Some(btf) = kernel() else { return };
        assert!(matches!(
            btf.member_offset("task_struct", "no_such_member"),
            Err(BtfError::NoMember { .. })
        ));
        assert!(matches!(
            btf.member_offset("no_such_struct_xyz", "pid"),
            Err(BtfError::NoStruct(_))
        ));
    }
}

//! The event fields rules can test, read from one row of a record batch.

use std::borrow::Cow;

use arrow::array::{Array, BooleanArray, Int64Array, ListArray, UInt32Array, UInt64Array};
use arrow::record_batch::RecordBatch;
use needle_common::schema::names as n;

use crate::classify::{basename, hash_str};
use crate::columns::ColumnError as FeatureError;
use crate::columns::{
    Columns, StrCol, bool_col, i64_col, list_at, list_col, opt, u32_col, u64_col,
};

/// Extra columns the signatures read (beyond the feature columns).
pub const EXTRA_COLUMNS: &[&str] = &[
    n::PID,
    n::UID,
    n::EXE_SHA256,
    n::PROCESS_KEY,
    n::PARENT_KEY,
    n::ANCESTRY,
    n::USER,
    n::EXE_NEW,
    n::EXE_WRITABLE,
    n::EXE_FILELESS,
    n::ARGV,
    n::OP,
    n::TARGET_PID,
    n::TARGET_UID,
    n::TARGET_GID,
    n::FSTYPE,
    n::FAMILY,
    n::PROTOCOL,
    n::SRC_PORT,
    n::DNS_TYPE,
    n::DNS_ANSWERS,
    n::STDIN_TYPE,
    n::STDIN_INODE,
    n::STDIN_PATH,
    n::STDIN_ADDR,
    n::STDIN_PORT,
    n::STDOUT_TYPE,
    n::STDOUT_INODE,
    n::STDOUT_PATH,
    n::STDOUT_ADDR,
    n::STDOUT_PORT,
    n::STDERR_TYPE,
    n::STDERR_INODE,
    n::STDERR_PATH,
    n::STDERR_ADDR,
    n::STDERR_PORT,
    n::CAP_EFFECTIVE,
    n::CAP_PERMITTED,
    n::ATIME_NS,
    n::MTIME_NS,
    n::LENGTH,
    n::CWD,
];

macro_rules! fields {
    ($($name:ident => $text:literal),* $(,)?) => {
        /// A field a rule condition tests.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[allow(missing_docs)]
        pub enum Field { $($name),* }
        impl Field {
            /// The field called `s` in rule files.
            pub fn parse(s: &str) -> Option<Field> {
                match s { $($text => Some(Field::$name),)* _ => None }
            }
            /// Its name in rule files.
            pub fn name(self) -> &'static str {
                match self { $(Field::$name => $text),* }
            }
        }
        /// Every field name, for error messages.
        pub const FIELD_NAMES: &[&str] = &[$($text),*];
    };
}

fields! {
    Comm => "comm", Exe => "exe", ExeName => "exe_name", Argv => "argv", Argv0Name => "argv0_name",
    ArgvHosts => "argv_hosts", ArgvPaths => "argv_paths", Script => "script", Sha256 => "sha256", ParentExe => "parent_exe", ParentName => "parent_name",
    GrandparentName => "grandparent_name", AncestorName => "ancestor_name", User => "user", Uid => "uid",
    ExeNew => "exe_new", ExeWritable => "exe_writable", ExeFileless => "exe_fileless",
    Path => "path", PathName => "path_name", PathPidIsSelf => "path_pid_is_self", Path2 => "path2", Flags => "flags", Mode => "mode", Op => "op",
    TargetPid => "target_pid", TargetIsSelf => "target_is_self", TargetUid => "target_uid",
    TargetGid => "target_gid", Fstype => "fstype", Family => "family", Protocol => "protocol",
    DstAddr => "dst_addr", DstPort => "dst_port", SrcPort => "src_port", DnsName => "dns_name",
    DnsType => "dns_type", DnsRcode => "dns_rcode", DnsAnswers => "dns_answers", Ret => "ret",
    StdinType => "stdin_type", StdinInode => "stdin_inode", StdinPath => "stdin_path",
    StdinAddr => "stdin_addr", StdinPort => "stdin_port",
    StdoutType => "stdout_type", StdoutInode => "stdout_inode", StdoutPath => "stdout_path",
    StdoutAddr => "stdout_addr", StdoutPort => "stdout_port",
    StderrType => "stderr_type", StderrInode => "stderr_inode", StderrPath => "stderr_path",
    StderrAddr => "stderr_addr", StderrPort => "stderr_port",
    CapEffective => "cap_effective", CapPermitted => "cap_permitted",
    AtimeNs => "atime_ns", MtimeNs => "mtime_ns", Length => "length", Cwd => "cwd",
}

/// A field's value in one row.
#[derive(Clone, Debug, PartialEq)]
pub enum Val<'a> {
    /// Null or not applicable.
    None,
    /// Text.
    Str(Cow<'a, str>),
    /// A number.
    Num(i64),
    /// A flag.
    Bool(bool),
    /// Several texts (ancestry, answers, hosts named in argv); a test holds if it holds for one.
    Many(Vec<Cow<'a, str>>),
}

impl Val<'_> {
    /// The value as text (numbers in decimal, lists joined with spaces).
    pub fn text(&self) -> Option<String> {
        match self {
            Val::None => None,
            Val::Str(s) => Some(s.to_string()),
            Val::Num(v) => Some(v.to_string()),
            Val::Bool(b) => Some(b.to_string()),
            Val::Many(v) => Some(v.join(" ")),
        }
    }

    /// [`hash_str`] of [`Val::text`], without building the text of a scalar.
    pub fn text_hash(&self) -> Option<u64> {
        use std::io::Write as _;
        match self {
            Val::None => None,
            Val::Str(s) => Some(hash_str(s)),
            Val::Num(n) => {
                let mut buf = [0u8; 24];
                let mut w = &mut buf[..];
                write!(w, "{n}").ok()?;
                let len = 24 - w.len();
                std::str::from_utf8(&buf[..len]).ok().map(hash_str)
            }
            Val::Bool(b) => Some(hash_str(if *b { "true" } else { "false" })),
            Val::Many(_) => self.text().map(|t| hash_str(&t)),
        }
    }

    /// [`hash_str`] of every text the value holds (one for scalars), as joins compare them.
    pub fn text_hashes(&self) -> Vec<u64> {
        match self {
            Val::Many(v) => v.iter().map(|s| hash_str(s)).collect(),
            other => other.text_hash().into_iter().collect(),
        }
    }

    /// Every text the value holds (one for scalars).
    pub fn texts(&self) -> Vec<String> {
        match self {
            Val::Many(v) => v.iter().map(|s| s.to_string()).collect(),
            other => other.text().into_iter().collect(),
        }
    }
}

/// The signature-only columns of one batch.
pub struct SigColumns {
    pid: Option<UInt32Array>,
    uid: Option<UInt32Array>,
    pub(crate) sha256: StrCol,
    pub(crate) process_key: StrCol,
    pub(crate) parent_key: StrCol,
    ancestry: Option<ListArray>,
    user: StrCol,
    exe_new: Option<BooleanArray>,
    exe_writable: Option<BooleanArray>,
    exe_fileless: Option<BooleanArray>,
    argv: Option<ListArray>,
    op: Option<UInt32Array>,
    target_pid: Option<UInt32Array>,
    target_uid: Option<UInt32Array>,
    target_gid: Option<UInt32Array>,
    fstype: StrCol,
    family: StrCol,
    protocol: StrCol,
    src_port: Option<UInt32Array>,
    dns_type: Option<UInt32Array>,
    dns_answers: Option<ListArray>,
    stdio: [StdioColumns; 3],
    cap_effective: Option<UInt64Array>,
    cap_permitted: Option<UInt64Array>,
    atime_ns: Option<Int64Array>,
    mtime_ns: Option<Int64Array>,
    length: Option<UInt64Array>,
    cwd: StrCol,
}

/// The columns of one standard fd of exec rows.
struct StdioColumns {
    ty: StrCol,
    inode: Option<UInt64Array>,
    path: StrCol,
    addr: StrCol,
    port: Option<UInt32Array>,
}

impl StdioColumns {
    fn new(batch: &RecordBatch, fd: usize) -> Result<StdioColumns, FeatureError> {
        let names = &n::STDIO[fd];
        Ok(StdioColumns {
            ty: StrCol::from_batch(batch, names.ty)?,
            inode: u64_col(batch, names.inode)?,
            path: StrCol::from_batch(batch, names.path)?,
            addr: StrCol::from_batch(batch, names.addr)?,
            port: u32_col(batch, names.port)?,
        })
    }
}

fn flag(a: &Option<BooleanArray>, row: usize) -> Val<'static> {
    match a.as_ref().filter(|a| a.is_valid(row)) {
        Some(a) => Val::Bool(a.value(row)),
        None => Val::None,
    }
}

impl SigColumns {
    /// Typed views of `batch`'s signature columns (missing ones read as null).
    pub fn new(batch: &RecordBatch) -> Result<SigColumns, FeatureError> {
        Ok(SigColumns {
            pid: u32_col(batch, n::PID)?,
            uid: u32_col(batch, n::UID)?,
            sha256: StrCol::from_batch(batch, n::EXE_SHA256)?,
            process_key: StrCol::from_batch(batch, n::PROCESS_KEY)?,
            parent_key: StrCol::from_batch(batch, n::PARENT_KEY)?,
            ancestry: list_col(batch, n::ANCESTRY)?,
            user: StrCol::from_batch(batch, n::USER)?,
            exe_new: bool_col(batch, n::EXE_NEW)?,
            exe_writable: bool_col(batch, n::EXE_WRITABLE)?,
            exe_fileless: bool_col(batch, n::EXE_FILELESS)?,
            argv: list_col(batch, n::ARGV)?,
            op: u32_col(batch, n::OP)?,
            target_pid: u32_col(batch, n::TARGET_PID)?,
            target_uid: u32_col(batch, n::TARGET_UID)?,
            target_gid: u32_col(batch, n::TARGET_GID)?,
            fstype: StrCol::from_batch(batch, n::FSTYPE)?,
            family: StrCol::from_batch(batch, n::FAMILY)?,
            protocol: StrCol::from_batch(batch, n::PROTOCOL)?,
            src_port: u32_col(batch, n::SRC_PORT)?,
            dns_type: u32_col(batch, n::DNS_TYPE)?,
            dns_answers: list_col(batch, n::DNS_ANSWERS)?,
            stdio: [
                StdioColumns::new(batch, 0)?,
                StdioColumns::new(batch, 1)?,
                StdioColumns::new(batch, 2)?,
            ],
            cap_effective: u64_col(batch, n::CAP_EFFECTIVE)?,
            cap_permitted: u64_col(batch, n::CAP_PERMITTED)?,
            atime_ns: i64_col(batch, n::ATIME_NS)?,
            mtime_ns: i64_col(batch, n::MTIME_NS)?,
            length: u64_col(batch, n::LENGTH)?,
            cwd: StrCol::from_batch(batch, n::CWD)?,
        })
    }
}

/// One row, as the rules see it.
pub struct Row<'a> {
    /// Feature columns.
    pub c: &'a Columns,
    /// Signature columns.
    pub s: &'a SigColumns,
    /// Row index.
    pub row: usize,
    // Decoded once per row, however many conditions read them.
    argv: std::cell::OnceCell<Vec<&'a str>>,
    ancestry: std::cell::OnceCell<Vec<&'a str>>,
    argv_text: std::cell::OnceCell<String>,
}

fn s<'a>(v: Option<&'a str>) -> Val<'a> {
    v.map_or(Val::None, |v| Val::Str(Cow::Borrowed(v)))
}

fn num<T: Into<i64>>(v: Option<T>) -> Val<'static> {
    v.map_or(Val::None, |v| Val::Num(v.into()))
}

/// A u64 as a rule number: the bits as they are (capability sets use bit 63 at most as a
/// flag; inode numbers and lengths stay below 2^63).
fn big(v: Option<u64>) -> Val<'static> {
    v.map_or(Val::None, |v| Val::Num(v as i64))
}

/// Host names in argv: `-o pool.example:3333`, `stratum+tcp://pool.example:3333`, `user@host`.
fn hosts_in(argv: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for a in argv {
        for tok in a.split([' ', '=', ',']) {
            let tok = tok.split_once("://").map_or(tok, |(_, rest)| rest);
            let tok = tok.rsplit_once('@').map_or(tok, |(_, h)| h);
            let host = tok.split(['/', ':']).next().unwrap_or("");
            if host.contains('.')
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
                && host.bytes().any(|b| b.is_ascii_alphabetic())
            {
                out.push(host.to_ascii_lowercase());
            }
        }
    }
    out
}

impl<'a> Row<'a> {
    /// Row `row` of a batch.
    pub fn new(c: &'a Columns, s: &'a SigColumns, row: usize) -> Row<'a> {
        Row {
            c,
            s,
            row,
            argv: std::cell::OnceCell::new(),
            ancestry: std::cell::OnceCell::new(),
            argv_text: std::cell::OnceCell::new(),
        }
    }

    /// The argv of an exec row.
    pub fn argv(&self) -> &[&'a str] {
        self.argv.get_or_init(|| list_at(&self.s.argv, self.row))
    }

    /// Ancestry, parent first.
    pub fn ancestry(&self) -> &[&'a str] {
        self.ancestry
            .get_or_init(|| list_at(&self.s.ancestry, self.row))
    }

    /// The process key.
    pub fn process_key(&self) -> Option<&'a str> {
        self.s.process_key.get(self.row)
    }

    /// The parent's process key.
    pub fn parent_key(&self) -> Option<&'a str> {
        self.s.parent_key.get(self.row)
    }

    /// Value of `f` in this row.
    pub fn get(&self, f: Field) -> Val<'_> {
        let (c, sc, row) = (self.c, self.s, self.row);
        match f {
            Field::Comm => s(c.comm.get(row)),
            Field::Exe => s(c.exe_path.get(row)),
            Field::ExeName => s(c.exe_path.get(row).map(basename)),
            Field::Argv => {
                if self.argv().is_empty() {
                    Val::None
                } else {
                    Val::Str(Cow::Borrowed(
                        self.argv_text.get_or_init(|| self.argv().join(" ")),
                    ))
                }
            }
            Field::Argv0Name => s(self.argv().first().map(|a| basename(a))),
            Field::ArgvHosts => {
                Val::Many(hosts_in(self.argv()).into_iter().map(Cow::Owned).collect())
            }
            Field::ArgvPaths => Val::Many(
                self.argv()
                    .iter()
                    .skip(1)
                    .flat_map(|a| a.split([' ', '=']))
                    .filter(|t| t.starts_with('/') && t.len() > 1)
                    .map(Cow::Borrowed)
                    .collect(),
            ),
            Field::Script => s(self
                .argv()
                .iter()
                .skip(1)
                .find(|a| !a.starts_with('-'))
                .copied()),
            Field::Sha256 => s(sc.sha256.get(row)),
            Field::ParentExe => s(self.ancestry().first().copied()),
            Field::ParentName => s(self.ancestry().first().map(|a| basename(a))),
            Field::GrandparentName => s(self.ancestry().get(1).map(|a| basename(a))),
            Field::AncestorName => Val::Many(
                self.ancestry()
                    .iter()
                    .map(|a| Cow::Borrowed(basename(a)))
                    .collect(),
            ),
            Field::User => s(sc.user.get(row)),
            Field::Uid => num(opt(&sc.uid, row)),
            Field::ExeNew => flag(&sc.exe_new, row),
            Field::ExeWritable => flag(&sc.exe_writable, row),
            Field::ExeFileless => flag(&sc.exe_fileless, row),
            Field::Path => s(c.path.get(row)),
            Field::PathName => s(c.path.get(row).map(basename)),
            Field::PathPidIsSelf => {
                let pid = c
                    .path
                    .get(row)
                    .and_then(|p| p.strip_prefix("/proc/"))
                    .and_then(|p| p.split('/').next())
                    .and_then(|p| p.parse::<u32>().ok());
                match pid {
                    Some(p) => {
                        Val::Bool(Some(p) == opt(&c.tgid, row) || Some(p) == opt(&sc.pid, row))
                    }
                    None => Val::None,
                }
            }
            Field::Path2 => s(c.path2.get(row)),
            Field::Flags => opt(&c.flags, row).map_or(Val::None, |v| Val::Num(v as i64)),
            Field::Mode => num(opt(&c.mode, row)),
            Field::Op => num(opt(&sc.op, row)),
            Field::TargetPid => num(opt(&sc.target_pid, row)),
            Field::TargetIsSelf => match (
                opt(&sc.target_pid, row),
                opt(&c.tgid, row),
                opt(&sc.pid, row),
            ) {
                (Some(t), tgid, pid) => Val::Bool(Some(t) == tgid || Some(t) == pid),
                _ => Val::None,
            },
            Field::TargetUid => num(opt(&sc.target_uid, row)),
            Field::TargetGid => num(opt(&sc.target_gid, row)),
            Field::Fstype => s(sc.fstype.get(row)),
            Field::Family => s(sc.family.get(row)),
            Field::Protocol => s(sc.protocol.get(row)),
            Field::DstAddr => s(c.dst_addr.get(row)),
            Field::DstPort => num(opt(&c.dst_port, row)),
            Field::SrcPort => num(opt(&sc.src_port, row)),
            Field::DnsName => s(c.dns_name.get(row)),
            Field::DnsType => num(opt(&sc.dns_type, row)),
            Field::DnsRcode => num(opt(&c.dns_rcode, row)),
            Field::DnsAnswers => Val::Many(
                list_at(&sc.dns_answers, row)
                    .into_iter()
                    .map(Cow::Borrowed)
                    .collect(),
            ),
            Field::Ret => num(opt(&c.ret, row)),
            Field::StdinType => s(sc.stdio[0].ty.get(row)),
            Field::StdinInode => big(opt(&sc.stdio[0].inode, row)),
            Field::StdinPath => s(sc.stdio[0].path.get(row)),
            Field::StdinAddr => s(sc.stdio[0].addr.get(row)),
            Field::StdinPort => num(opt(&sc.stdio[0].port, row)),
            Field::StdoutType => s(sc.stdio[1].ty.get(row)),
            Field::StdoutInode => big(opt(&sc.stdio[1].inode, row)),
            Field::StdoutPath => s(sc.stdio[1].path.get(row)),
            Field::StdoutAddr => s(sc.stdio[1].addr.get(row)),
            Field::StdoutPort => num(opt(&sc.stdio[1].port, row)),
            Field::StderrType => s(sc.stdio[2].ty.get(row)),
            Field::StderrInode => big(opt(&sc.stdio[2].inode, row)),
            Field::StderrPath => s(sc.stdio[2].path.get(row)),
            Field::StderrAddr => s(sc.stdio[2].addr.get(row)),
            Field::StderrPort => num(opt(&sc.stdio[2].port, row)),
            Field::CapEffective => big(opt(&sc.cap_effective, row)),
            Field::CapPermitted => big(opt(&sc.cap_permitted, row)),
            Field::AtimeNs => num(opt(&sc.atime_ns, row)),
            Field::MtimeNs => num(opt(&sc.mtime_ns, row)),
            Field::Length => big(opt(&sc.length, row)),
            Field::Cwd => s(sc.cwd.get(row)),
        }
    }

    /// pid and uid of the row.
    pub fn pid_uid(&self) -> (u32, Option<u32>) {
        (
            opt(&self.c.tgid, self.row).unwrap_or(0),
            opt(&self.s.uid, self.row),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_named_in_argv() {
        assert_eq!(
            hosts_in(&["x", "-o", "pool.minexmr.com:4444"]),
            ["pool.minexmr.com"]
        );
        assert_eq!(
            hosts_in(&["--url=stratum+tcp://a.b.example:3333"]),
            ["a.b.example"]
        );
        assert_eq!(
            hosts_in(&["-c", "wget http://u@dl.example/x -O /tmp/a.sh"]),
            ["dl.example"]
        );
        assert!(
            hosts_in(&["/bin/sh", "1.2.3.4:80", "file.txt"])
                .iter()
                .all(|h| h == "file.txt")
        );
        for f in FIELD_NAMES {
            assert_eq!(Field::parse(f).map(Field::name), Some(*f));
        }
        for v in [
            Val::Num(-111),
            Val::Num(i64::MIN),
            Val::Str(Cow::Borrowed("10.0.0.7")),
            Val::Bool(true),
            Val::Many(vec![Cow::Borrowed("a"), Cow::Borrowed("b")]),
        ] {
            assert_eq!(v.text_hash(), v.text().map(|t| hash_str(&t)), "{v:?}");
            let texts: Vec<u64> = v.texts().iter().map(|t| hash_str(t)).collect();
            assert_eq!(v.text_hashes(), texts, "{v:?}");
        }
        assert_eq!(Val::None.text_hash(), None);
    }
}

/// Serde of an event kind as its stable id (partial files).
pub(crate) mod serde_kind {
    use needle_common::abi::EventKind;
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(k: &EventKind, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(*k as u32)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<EventKind, D::Error> {
        let id = u32::deserialize(d)?;
        EventKind::try_from(id).map_err(|_| D::Error::custom(format!("unknown event kind {id}")))
    }
}

/// Serde of `(field name, value)` pairs: a name is read back as its [`Field`]'s own name.
pub(crate) mod serde_named {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::Field;

    pub fn serialize<S: Serializer>(v: &[(&'static str, String)], s: S) -> Result<S::Ok, S::Error> {
        v.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<(&'static str, String)>, D::Error> {
        Vec::<(String, String)>::deserialize(d)?
            .into_iter()
            .map(|(name, value)| match Field::parse(&name) {
                Some(f) => Ok((f.name(), value)),
                None => Err(D::Error::custom(format!("unknown field `{name}`"))),
            })
            .collect()
    }
}

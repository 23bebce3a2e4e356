//! The file [`TraceFileWriter`] writes reads back exactly as the one `ArrowWriter` writes from
//! [`TraceBatchBuilder`]'s batches: schema, key-value metadata, every value, statistics.

use std::sync::Arc;

use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::metadata::{KeyValue, ParquetMetaData};
use parquet::file::statistics::Statistics;

use super::*;
use crate::schema::event::{
    Container, Detail, Dns, ExecState, Fd, FdType, FilePath, Net, PathSource, Process,
    ProcessContext,
};
use crate::schema::{TraceBatchBuilder, arrow_schema};

/// xorshift: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Strings: shared ones (the same `Arc` in many rows, and equal text under other `Arc`s),
/// unique ones, long ones, empty ones, non-ASCII ones.
struct Pool {
    shared: Vec<Arc<str>>,
    long_unique: bool,
}

impl Pool {
    fn new(rng: &mut Rng, long_unique: bool) -> Pool {
        let mut shared: Vec<Arc<str>> = vec![
            "".into(),
            "bash".into(),
            "curl".into(),
            "bash".into(), // equal text, another allocation
            "ünïcödé ✓".into(),
            "x".repeat(70).into(),
            "y".repeat(70).into(),
            "é".repeat(40).into(), // 80 bytes: cut on a character boundary
            "/usr/bin/containerd-shim-runc-v2".into(),
        ];
        for i in 0..20 {
            shared.push(format!("s{i}-{}", rng.next()).into());
        }
        Pool {
            shared,
            long_unique,
        }
    }
    fn shared(&self, rng: &mut Rng) -> Arc<str> {
        self.shared[rng.below(self.shared.len() as u64) as usize].clone()
    }
    fn owned(&self, rng: &mut Rng) -> String {
        match rng.below(4) {
            0 | 1 => self.shared(rng).to_string(),
            2 if self.long_unique => format!("/{}/{}", "p".repeat(4000), rng.next()),
            _ => format!("u{}", rng.next()),
        }
    }
    fn maybe_shared(&self, rng: &mut Rng) -> Option<Arc<str>> {
        rng.chance(70).then(|| self.shared(rng))
    }
    fn maybe_owned(&self, rng: &mut Rng) -> Option<String> {
        rng.chance(70).then(|| self.owned(rng))
    }
    fn list(&self, rng: &mut Rng) -> Vec<String> {
        (0..rng.below(5)).map(|_| self.owned(rng)).collect()
    }
}

fn file(p: &Pool, rng: &mut Rng) -> FilePath {
    FilePath {
        path: p.owned(rng),
        source: if rng.chance(50) {
            PathSource::Kernel
        } else {
            PathSource::UserAtExit
        },
    }
}

fn net(p: &Pool, rng: &mut Rng) -> Box<Net> {
    Box::new(Net {
        family: ["inet", "inet6", "unix"][rng.below(3) as usize].into(),
        protocol: p.owned(rng).into(),
        src_addr: p.maybe_owned(rng),
        src_port: rng.chance(60).then(|| rng.next() as u16),
        dst_addr: p.maybe_owned(rng),
        dst_port: rng.chance(60).then(|| rng.next() as u16),
        bytes: rng.chance(30).then(|| rng.next()),
        ret: rng.chance(50).then(|| rng.next() as i64),
        count: rng.chance(20).then(|| rng.below(1000)),
    })
}

fn dns(p: &Pool, rng: &mut Rng, response: bool) -> Box<Dns> {
    Box::new(Dns {
        name: p.owned(rng),
        qtype: rng.next() as u16,
        id: rng.next() as u16,
        rcode: response.then(|| rng.next() as u8),
        answers: p.list(rng),
        net: *net(p, rng),
    })
}

fn fd(p: &Pool, rng: &mut Rng) -> Option<Fd> {
    rng.chance(70).then(|| Fd {
        kind: FdType::ALL[rng.below(FdType::ALL.len() as u64) as usize],
        inode: rng.chance(50).then(|| rng.next()),
        path: p.maybe_owned(rng),
        addr: p.maybe_owned(rng),
        port: rng.chance(30).then(|| rng.next() as u16),
    })
}

/// Every kind of detail, with random fields.
fn detail(p: &Pool, rng: &mut Rng) -> Detail {
    let r = rng.next() as i64;
    let u = rng.next() as u32;
    let f = rng.next();
    match rng.below(41) {
        0 => Detail::Exec {
            argv: p.list(rng),
            truncated: rng.chance(10),
            state: rng.chance(60).then(|| {
                Box::new(ExecState {
                    stdio: [fd(p, rng), fd(p, rng), fd(p, rng)],
                    cap_effective: rng.chance(50).then(|| rng.next()),
                    cap_permitted: rng.chance(50).then(|| rng.next()),
                    cwd: p.maybe_owned(rng),
                })
            }),
        },
        1 => Detail::Fork,
        2 => Detail::Exit {
            code: rng.chance(50).then_some(r as i32),
            signal: rng.chance(50).then_some(u as i32),
        },
        3 => Detail::Open {
            file: file(p, rng),
            flags: f,
            mode: u,
            ret: r,
            count: rng.chance(30).then_some(f >> 3),
        },
        4 => Detail::Unlink {
            file: file(p, rng),
            ret: r,
        },
        5 => Detail::Rename {
            file: file(p, rng),
            new_path: p.owned(rng),
            ret: r,
        },
        6 => Detail::Chmod {
            file: file(p, rng),
            mode: u,
            ret: r,
        },
        7 => Detail::Chown {
            file: file(p, rng),
            uid: u,
            gid: u.rotate_left(7),
            ret: r,
        },
        8 => Detail::MemfdCreate {
            name: p.owned(rng),
            flags: f,
            ret: r,
        },
        9 => Detail::MmapExec {
            file: file(p, rng),
            prot: f,
        },
        10 => Detail::Utimes {
            file: file(p, rng),
            atime_ns: rng.chance(50).then_some(r),
            mtime_ns: rng.chance(50).then_some(r / 3),
            flags: f,
            ret: r,
        },
        11 => Detail::Truncate {
            file: file(p, rng),
            length: f,
            ret: r,
        },
        12 => Detail::Link {
            file: file(p, rng),
            new_path: p.owned(rng),
            ret: r,
        },
        13 => Detail::Symlink {
            file: file(p, rng),
            new_path: p.owned(rng),
            ret: r,
        },
        14 => Detail::Mkdir {
            file: file(p, rng),
            mode: u,
            ret: r,
        },
        15 => Detail::Connect(net(p, rng)),
        16 => Detail::Accept(net(p, rng)),
        17 => Detail::Bind(net(p, rng)),
        18 => Detail::Listen(net(p, rng)),
        19 => Detail::SendTo(net(p, rng)),
        20 => Detail::Socket(net(p, rng)),
        21 => Detail::Dup(net(p, rng)),
        22 => Detail::DnsQuery(dns(p, rng, false)),
        23 => Detail::DnsResponse(dns(p, rng, true)),
        24 => Detail::Ptrace {
            request: u,
            target_pid: u >> 3,
            ret: r,
        },
        25 => Detail::ProcessVmWritev {
            target_pid: u,
            ret: r,
        },
        26 => Detail::ProcMemWrite {
            file: file(p, rng),
            target_pid: u,
            ret: r,
        },
        27 => Detail::ModuleLoad {
            file: rng.chance(50).then(|| file(p, rng)),
            ret: r,
        },
        28 => Detail::SetId {
            uid: rng.chance(50).then_some(u),
            gid: rng.chance(50).then_some(u >> 1),
            nr: u >> 20,
            ret: r,
        },
        29 => Detail::Capset {
            effective: f,
            ret: r,
        },
        30 => Detail::Userfaultfd { flags: f, ret: r },
        31 => Detail::Mount {
            source: p.owned(rng),
            target: p.owned(rng),
            fstype: p.owned(rng),
            flags: f,
            ret: r,
        },
        32 => Detail::Unshare { flags: f, ret: r },
        33 => Detail::Setns { flags: f, ret: r },
        34 => Detail::Bpf { cmd: u, ret: r },
        35 => Detail::Keyctl { op: u, ret: r },
        36 => Detail::SyscallProfile {
            counts: (0..rng.below(6))
                .map(|i| (i as u32 * 7, rng.next()))
                .collect(),
        },
        37 => Detail::Syscall {
            nr: u % 400,
            ret: rng.chance(80).then_some(r),
        },
        38 => Detail::ContainerStart,
        39 => Detail::ContainerStop,
        _ => Detail::Lost { count: f },
    }
}

fn events(rng: &mut Rng, n: usize, long_unique: bool) -> Vec<Event> {
    let p = Pool::new(rng, long_unique);
    let containers: Vec<Arc<Container>> = (0..3)
        .map(|i| {
            Arc::new(Container {
                id: format!("{i}").repeat(64).into(),
                name: p.maybe_shared(rng),
                image: p.maybe_shared(rng),
                image_digest: p.maybe_shared(rng),
                runtime: p.maybe_shared(rng),
                pod: p.maybe_shared(rng),
                namespace: p.maybe_shared(rng),
                labels: p.maybe_shared(rng),
            })
        })
        .collect();
    let contexts: Vec<Arc<ProcessContext>> = (0..5)
        .map(|i| {
            Arc::new(ProcessContext {
                key: format!("{i}@{}", rng.next()).into(),
                parent_key: p.maybe_shared(rng),
                ancestry: (0..rng.below(9)).map(|_| p.shared(rng)).collect(),
                user: p.maybe_shared(rng),
                exe_new: rng.chance(50).then(|| rng.chance(50)),
                exe_writable: rng.chance(50).then(|| rng.chance(50)),
                exe_fileless: rng.chance(50).then(|| rng.chance(50)),
            })
        })
        .collect();
    // Long runs of one column being null or not, and rows that alternate.
    let sparse = !long_unique && rng.chance(50);
    (0..n)
        .map(|i| {
            let process = Process {
                pid: rng.next() as u32,
                tgid: rng.below(50) as u32,
                ppid: rng.next() as u32,
                uid: rng.below(3) as u32,
                gid: rng.next() as u32,
                comm: p.shared(rng),
                cgroup_id: rng.next(),
            };
            let detail = if sparse && i % 100 < 90 {
                Detail::Syscall {
                    nr: 39,
                    ret: Some(0),
                }
            } else {
                detail(&p, rng)
            };
            let mut e = Event::new(rng.next() as i64, i as u64 * 3, process, detail);
            e.exe_path = p.maybe_shared(rng);
            e.exe_sha256 = p.maybe_shared(rng);
            e.container = rng
                .chance(60)
                .then(|| containers[rng.below(3) as usize].clone());
            e.workload = p.maybe_shared(rng);
            e.context = rng
                .chance(70)
                .then(|| contexts[rng.below(5) as usize].clone());
            e.label = rng.chance(10).then(|| p.shared(rng));
            e
        })
        .collect()
}

const META: &str = "needle.test";

/// The old way: Arrow batches of 1 000 rows through `ArrowWriter`.
fn arrow_file(events: &[Event], opts: &WriteOptions) -> Bytes {
    let props = writer_properties(opts, Vec::new()).unwrap();
    let mut out = Vec::new();
    let mut w = ArrowWriter::try_new(&mut out, arrow_schema(), Some(props)).unwrap();
    let mut b = TraceBatchBuilder::new("node-1");
    for chunk in events.chunks(1000) {
        chunk.iter().for_each(|e| b.push(e));
        w.write(&b.finish()).unwrap();
    }
    w.append_key_value_metadata(KeyValue::new(META.into(), "x".to_string()));
    w.close().unwrap();
    out.into()
}

fn chunk_file(events: &[Event], opts: &WriteOptions) -> Bytes {
    let mut w = TraceFileWriter::try_new(Vec::new(), "node-1", opts).unwrap();
    w.write(events).unwrap();
    w.append_key_value_metadata(KeyValue::new(META.into(), "x".to_string()));
    w.into_inner().unwrap().into()
}

fn read(
    file: Bytes,
) -> (
    arrow::datatypes::SchemaRef,
    Vec<RecordBatch>,
    Arc<ParquetMetaData>,
) {
    let b = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let meta = b.metadata().clone();
    let schema = b.schema().clone();
    let batches = b.build().unwrap().collect::<Result<Vec<_>, _>>().unwrap();
    (schema, batches, meta)
}

use arrow::record_batch::RecordBatch;

/// Statistics agree; a max longer than the truncation length is kept whole here (exact),
/// where parquet cuts it and rounds it up: both bound the column.
fn same_statistics(want: Option<&Statistics>, got: Option<&Statistics>, what: &str) {
    match (want, got) {
        (Some(Statistics::ByteArray(w)), Some(Statistics::ByteArray(g))) => {
            assert_eq!(w.null_count_opt(), g.null_count_opt(), "{what} nulls");
            assert_eq!(w.min_opt(), g.min_opt(), "{what} min");
            assert_eq!(w.min_is_exact(), g.min_is_exact(), "{what} min exact");
            if w.max_is_exact() || w.max_opt().is_none() {
                assert_eq!(w.max_opt(), g.max_opt(), "{what} max");
            } else {
                assert!(
                    g.max_is_exact() && g.max_opt() <= w.max_opt(),
                    "{what} max: {w:?} {g:?}"
                );
            }
        }
        (w, g) => assert_eq!(w, g, "{what}"),
    }
}

fn assert_same_files(events: &[Event], opts: &WriteOptions, what: &str) {
    let (ws, wb, wm) = read(arrow_file(events, opts));
    let (gs, gb, gm) = read(chunk_file(events, opts));
    assert_eq!(ws, gs, "{what}: schema");
    let want = arrow::compute::concat_batches(&ws, &wb).unwrap();
    let got = arrow::compute::concat_batches(&gs, &gb).unwrap();
    assert_eq!(want.num_rows(), events.len());
    for (i, c) in want.schema().fields().iter().enumerate() {
        assert_eq!(want.column(i), got.column(i), "{what}: column {}", c.name());
    }
    let (wf, gf) = (wm.file_metadata(), gm.file_metadata());
    assert_eq!(wf.key_value_metadata(), gf.key_value_metadata(), "{what}");
    assert_eq!(wf.created_by(), gf.created_by());
    assert_eq!(wf.schema_descr(), gf.schema_descr());
    assert_eq!(wm.num_row_groups(), gm.num_row_groups(), "{what}");
    for (w, g) in wm.row_groups().iter().zip(gm.row_groups()) {
        assert_eq!(w.num_rows(), g.num_rows());
        for (wc, gc) in w.columns().iter().zip(g.columns()) {
            let name = format!("{what}: {}", wc.column_path());
            assert_eq!(wc.compression(), gc.compression(), "{name}");
            assert_eq!(wc.num_values(), gc.num_values(), "{name}");
            same_statistics(wc.statistics(), gc.statistics(), &name);
            assert_eq!(
                wc.definition_level_histogram(),
                gc.definition_level_histogram(),
                "{name} definition levels"
            );
            assert_eq!(
                wc.repetition_level_histogram(),
                gc.repetition_level_histogram(),
                "{name} repetition levels"
            );
            assert_eq!(
                wc.unencoded_byte_array_data_bytes(),
                gc.unencoded_byte_array_data_bytes(),
                "{name} text bytes"
            );
            // Where parquet's dictionary outgrew a page, it wrote the rest DELTA_BYTE_ARRAY
            // (text) or DELTA_BINARY_PACKED (integers); this writer writes the whole chunk
            // PLAIN then.
            use parquet::basic::Encoding as E;
            let fell_back = wc.dictionary_page_offset().is_some()
                && wc
                    .encodings()
                    .any(|e| e == E::DELTA_BYTE_ARRAY || e == E::DELTA_BINARY_PACKED);
            if fell_back {
                assert!(gc.dictionary_page_offset().is_none(), "{name}");
                assert!(gc.encodings().any(|e| e == E::PLAIN), "{name}");
            } else {
                assert_eq!(
                    wc.encodings().collect::<Vec<_>>(),
                    gc.encodings().collect::<Vec<_>>(),
                    "{name}"
                );
            }
        }
    }
}

#[test]
fn files_read_back_as_arrow_writer_files() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for (case, n) in [0usize, 1, 2, 9, 100, 777, 3000].into_iter().enumerate() {
        let events = events(&mut rng, n, false);
        assert_same_files(&events, &WriteOptions::default(), &format!("case {case}"));
    }
}

#[test]
fn row_groups_split_as_arrow_writer_splits_them() {
    let mut rng = Rng(42);
    let events = events(&mut rng, 2500, false);
    let opts = WriteOptions {
        row_group_rows: 1000,
        ..Default::default()
    };
    assert_same_files(&events, &opts, "1000-row groups");
}

#[test]
fn a_dictionary_larger_than_a_page_falls_back_to_plain_values() {
    // ~4 000-byte unique strings in a quarter of the text of 4 000 rows: more than 1 MiB of distinct text.
    let mut rng = Rng(7);
    let events = events(&mut rng, 4000, true);
    assert_same_files(&events, &WriteOptions::default(), "long unique");
    let (_, _, meta) = read(chunk_file(&events, &WriteOptions::default()));
    let plain = meta.row_group(0).columns().iter().filter(|c| {
        c.column_type() == parquet::basic::Type::BYTE_ARRAY && c.dictionary_page_offset().is_none()
    });
    assert!(plain.count() > 0, "some column fell back to plain values");
}

#[test]
fn long_runs_and_all_null_columns_read_back_as_arrow_writer_files() {
    // Blocks of one kind of row, longer than a row group and shorter: most columns are null
    // for whole row groups, and null runs cross row-group boundaries.
    let mut rng = Rng(0x5eed);
    let mut events = events(&mut rng, 6000, false);
    let kinds = events.iter().map(|e| e.detail.clone()).collect::<Vec<_>>();
    for (i, e) in events.iter_mut().enumerate() {
        let block = [0, 0, 1, 2, 3, 0, 4][(i / 900) % 7];
        e.detail = kinds[block * 17 % kinds.len()].clone();
        if (i / 1300) % 2 == 0 {
            e.context = None;
            e.container = None;
        }
    }
    let opts = WriteOptions {
        row_group_rows: 1024,
        ..Default::default()
    };
    assert_same_files(&events, &opts, "blocks");
    // One row of every kind alone in its row group.
    let mut rng = Rng(99);
    let events = self::events(&mut rng, 300, false);
    let opts = WriteOptions {
        row_group_rows: 1,
        ..Default::default()
    };
    assert_same_files(&events[..120], &opts, "row groups of one row");
}

#[test]
fn an_integer_dictionary_larger_than_a_page_falls_back_to_plain_values() {
    // 140 000 distinct cgroup ids (8 bytes each) in one row group: more than 1 MiB.
    let mut rng = Rng(11);
    let events: Vec<Event> = (0..140_000u64)
        .map(|i| {
            let process = Process {
                pid: (i % 7) as u32,
                tgid: 1,
                ppid: 1,
                uid: 0,
                gid: 0,
                comm: "sh".into(),
                cgroup_id: rng.next(),
            };
            Event::new(i as i64, i, process, Detail::Fork)
        })
        .collect();
    let opts = WriteOptions {
        row_group_rows: 200_000,
        ..Default::default()
    };
    assert_same_files(&events, &opts, "distinct cgroup ids");
    let (_, _, meta) = read(chunk_file(&events, &opts));
    let cgroup = meta
        .row_group(0)
        .columns()
        .iter()
        .find(|c| c.column_path().string() == crate::schema::names::CGROUP_ID);
    assert!(cgroup.is_some_and(|c| c.dictionary_page_offset().is_none()));
}

//! Every standard Parquet codec (issue 22, item 5): Spark, pandas and pyarrow write snappy by
//! default, others gzip, lz4, brotli or zstd. The demo trace rewritten with each codec must rank
//! exactly like the original: the same `--format json`, byte for byte, but for
//! `inputs.files[].bytes_read` (the compressed bytes read, which the codec changes).

use std::fs::File;

use needle_tests::fleet::{analyze_json, dataset_trace, rewrite, without_bytes_read};
use parquet::basic::{BrotliLevel, Compression, GzipLevel, ZstdLevel};
use parquet::file::reader::{FileReader, SerializedFileReader};

#[test]
fn the_demo_trace_ranks_the_same_in_every_codec() {
    let src = dataset_trace("demo");
    let tmp = tempfile::tempdir().unwrap();
    // The original, under the same relative name as the rewrites, so `inputs.files` match.
    let original_dir = tmp.path().join("original");
    std::fs::create_dir(&original_dir).unwrap();
    std::fs::copy(&src, original_dir.join("trace.parquet")).unwrap();
    let expected = without_bytes_read(&analyze_json(&original_dir, &["trace.parquet"]));
    assert!(expected.contains("\"workloads\""));

    let codecs = [
        ("uncompressed", Compression::UNCOMPRESSED),
        ("snappy", Compression::SNAPPY),
        ("gzip", Compression::GZIP(GzipLevel::default())),
        ("lz4-hadoop", Compression::LZ4),
        ("lz4-raw", Compression::LZ4_RAW),
        ("brotli", Compression::BROTLI(BrotliLevel::default())),
        ("zstd", Compression::ZSTD(ZstdLevel::default())),
    ];
    for (name, codec) in codecs {
        let dir = tmp.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        let path = dir.join("trace.parquet");
        rewrite(&src, &path, codec, None);
        // The file really is in that codec.
        let reader = SerializedFileReader::new(File::open(&path).unwrap()).unwrap();
        let meta = reader.metadata();
        assert!(meta.num_row_groups() > 0);
        for rg in meta.row_groups() {
            for col in rg.columns() {
                assert_eq!(
                    std::mem::discriminant(&col.compression()),
                    std::mem::discriminant(&codec),
                    "{name}: column {} is {:?}",
                    col.column_path(),
                    col.compression()
                );
            }
        }
        let got = without_bytes_read(&analyze_json(&dir, &["trace.parquet"]));
        assert!(
            got == expected,
            "{name}: the ranking differs from the original's"
        );
        eprintln!("{name}: same JSON ({} bytes)", got.len());
    }
}

//! The feature table as CSV or Parquet: one row per workload, one column per feature, with
//! rank and score first when the rows are ranked.

use std::io::Write;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::ReportError;
use super::escape::csv_text;
use crate::features::{FeatureTable, WorkloadFeatures};
use crate::rank::Ranked;

type ContextField = (&'static str, fn(&WorkloadFeatures) -> Option<&str>);

const CONTEXT: [ContextField; 6] = [
    ("workload", |w| Some(w.workload.as_str())),
    ("name", |w| w.context.name.as_deref()),
    ("image", |w| w.context.image.as_deref()),
    ("pod", |w| w.context.pod.as_deref()),
    ("namespace", |w| w.context.namespace.as_deref()),
    ("label", |w| w.context.label.as_deref()),
];

/// Rows in output order: ranked order when ranked, else the table's order.
fn order<'a>(
    table: &FeatureTable,
    ranked: Option<&'a [Ranked]>,
) -> Vec<(usize, Option<&'a Ranked>)> {
    match ranked {
        Some(r) => r.iter().map(|r| (r.row, Some(r))).collect(),
        None => (0..table.rows.len()).map(|i| (i, None)).collect(),
    }
}

fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        String::new()
    }
}

pub(super) fn write_csv(
    table: &FeatureTable,
    ranked: Option<&[Ranked]>,
    out: &mut (dyn Write + Send),
) -> Result<(), ReportError> {
    let mut header: Vec<String> = Vec::new();
    if ranked.is_some() {
        header.extend(["rank".to_string(), "score".to_string()]);
    }
    header.extend(CONTEXT.iter().map(|c| c.0.to_string()));
    header.extend(table.columns.iter().map(|c| csv_text(&c.name)));
    writeln!(out, "{}", header.join(","))?;
    for (row, r) in order(table, ranked) {
        let Some(w) = table.rows.get(row) else {
            continue;
        };
        let mut cells: Vec<String> = Vec::with_capacity(header.len());
        if let Some(r) = r {
            cells.push(r.rank.to_string());
            cells.push(num(r.score));
        }
        cells.extend(
            CONTEXT
                .iter()
                .map(|(_, get)| get(w).map(csv_text).unwrap_or_default()),
        );
        cells.extend(w.values.iter().map(|&v| num(v)));
        writeln!(out, "{}", cells.join(","))?;
    }
    Ok(())
}

pub(super) fn write_parquet(
    table: &FeatureTable,
    ranked: Option<&[Ranked]>,
    out: &mut (dyn Write + Send),
) -> Result<(), ReportError> {
    let rows = order(table, ranked);
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    if ranked.is_some() {
        fields.push(Field::new("rank", DataType::UInt64, false));
        arrays.push(Arc::new(UInt64Array::from_iter_values(
            rows.iter().map(|(_, r)| r.map_or(0, |r| r.rank as u64)),
        )));
        fields.push(Field::new("score", DataType::Float64, false));
        arrays.push(Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|(_, r)| r.map_or(0.0, |r| r.score)),
        )));
    }
    let present: Vec<&WorkloadFeatures> = rows
        .iter()
        .filter_map(|(i, _)| table.rows.get(*i))
        .collect();
    for (name, get) in CONTEXT {
        fields.push(Field::new(name, DataType::Utf8, name != "workload"));
        arrays.push(Arc::new(
            present.iter().map(|w| get(w)).collect::<StringArray>(),
        ));
    }
    for (c, col) in table.columns.iter().enumerate() {
        fields.push(Field::new(col.name.clone(), DataType::Float64, false));
        arrays.push(Arc::new(Float64Array::from_iter_values(
            present
                .iter()
                .map(|w| w.values.get(c).copied().unwrap_or(0.0)),
        )));
    }
    let schema = Arc::new(Schema::new(fields));
    let err = |e: &dyn std::fmt::Display| ReportError::Parquet(e.to_string());
    let batch = RecordBatch::try_new(schema.clone(), arrays).map_err(|e| err(&e))?;
    let zstd = ZstdLevel::try_new(3).map_err(|e| err(&e))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(zstd))
        .build();
    let mut w = ArrowWriter::try_new(out, schema, Some(props)).map_err(|e| err(&e))?;
    w.write(&batch).map_err(|e| err(&e))?;
    w.close().map_err(|e| err(&e))?;
    Ok(())
}

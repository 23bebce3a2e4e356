//! Ground truth: a labels file (CSV with a header holding at least `workload` and `label`
//! columns, as the lab and demo datasets write) or the `label` column of the traces.

use std::collections::BTreeMap;
use std::path::Path;

use super::ModelError;
use crate::features::FeatureTable;

/// Ground truth of one workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Truth {
    /// Normal behaviour.
    Normal,
    /// An attack.
    Attack,
}

impl Truth {
    fn parse(s: &str) -> Option<Truth> {
        match s.trim().to_ascii_lowercase().as_str() {
            "normal" | "benign" => Some(Truth::Normal),
            "attack" | "malicious" => Some(Truth::Attack),
            _ => None,
        }
    }
}

/// Reads a labels file: workload key → truth.
pub fn read_labels(path: &Path) -> Result<BTreeMap<String, Truth>, ModelError> {
    let err = |message: String| ModelError::Labels {
        path: path.to_path_buf(),
        message,
    };
    let mut r = csv::ReaderBuilder::new()
        .flexible(false)
        .from_path(path)
        .map_err(|e| err(e.to_string()))?;
    let headers = r.headers().map_err(|e| err(e.to_string()))?.clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| err(format!("no `{name}` column in the header")))
    };
    let (w, l) = (col("workload")?, col("label")?);
    let mut out = BTreeMap::new();
    for (i, rec) in r.records().enumerate() {
        let rec = rec.map_err(|e| err(e.to_string()))?;
        let line = i + 2;
        let key = rec.get(w).unwrap_or("").trim();
        let label = rec.get(l).unwrap_or("");
        if key.is_empty() {
            return Err(err(format!("line {line}: empty workload")));
        }
        let truth = Truth::parse(label).ok_or_else(|| {
            err(format!(
                "line {line}: label {:?} is neither normal nor attack",
                crate::escape::terminal(label, 40)
            ))
        })?;
        out.insert(key.to_string(), truth);
    }
    Ok(out)
}

/// The truth of every row of `table`: from `file` when given (rows it does not name are
/// unlabelled), else from the traces' `label` column.
pub fn truths(table: &FeatureTable, file: Option<&BTreeMap<String, Truth>>) -> Vec<Option<Truth>> {
    table
        .rows
        .iter()
        .map(|r| match file {
            Some(f) => f.get(&r.workload).copied(),
            None => r.context.label.as_deref().and_then(Truth::parse),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lab_and_demo_layouts() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("labels.csv");
        std::fs::write(&p, "workload,label,scenario,expected_findings\nabc,normal,web,\ndef,attack,miner,\"A,B\"\n").unwrap();
        let l = read_labels(&p).unwrap();
        assert_eq!(l.get("abc"), Some(&Truth::Normal));
        assert_eq!(l.get("def"), Some(&Truth::Attack));
        std::fs::write(&p, "workload,name\nabc,x\n").unwrap();
        assert!(
            read_labels(&p)
                .unwrap_err()
                .to_string()
                .contains("no `label` column")
        );
        std::fs::write(&p, "workload,label\nabc,\x1b[31mmaybe\n").unwrap();
        let e = read_labels(&p).unwrap_err().to_string();
        assert!(e.contains("line 2") && !e.contains('\x1b'), "{e}");
    }
}

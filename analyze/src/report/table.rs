//! The terminal table: rank, score, workload, findings, top features.

use std::io::Write;

use super::escape::terminal;
use super::{Report, ReportError, short_id, top_features};

pub(super) fn write(report: &Report<'_>, out: &mut (dyn Write + Send)) -> Result<(), ReportError> {
    let mut rows = vec![[
        "RANK".to_string(),
        "SCORE".into(),
        "WORKLOAD".into(),
        "NAME".into(),
        "FINDINGS".into(),
        "TOP FEATURES (value / peer median)".into(),
    ]];
    for r in report.ranked {
        let Some(w) = report.table.rows.get(r.row) else {
            continue;
        };
        let name = w
            .context
            .pod
            .as_deref()
            .or(w.context.name.as_deref())
            .unwrap_or("-");
        let findings = if r.findings.is_empty() {
            "-".to_string()
        } else {
            r.findings
                .iter()
                .map(|f| f.kind.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let features = top_features(&r.contributions, 3).join("  ");
        rows.push([
            r.rank.to_string(),
            format!("{:.1}", r.score),
            terminal(short_id(&w.workload), 40),
            terminal(name, 32),
            terminal(&findings, 60),
            if features.is_empty() {
                "-".into()
            } else {
                features
            },
        ]);
    }
    let mut widths = [0usize; 6];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in &rows {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = w - cell.chars().count();
                line.push_str(cell);
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    let i = report.inputs;
    write!(
        out,
        "\n{} of {} workloads shown, {} rows from {} files",
        report.ranked.len(),
        report.table.rows.len(),
        i.rows,
        i.files.len()
    )?;
    if let Some(span) = &i.time_span {
        write!(out, ", {} → {}", span.first, span.last)?;
    }
    writeln!(out)?;
    let suppressed: usize = report.ranked.iter().map(|r| r.suppressed.len()).sum();
    if suppressed > 0 {
        writeln!(
            out,
            "{suppressed} findings silenced by suppression rules (listed per workload in --format json)"
        )?;
    }
    if i.events_lost > 0 {
        writeln!(
            out,
            "warning: the capture lost {} events on these hosts; features may undercount",
            i.events_lost
        )?;
    }
    for s in &i.skipped {
        writeln!(
            out,
            "skipped {}: {}",
            terminal(&s.path, 200),
            terminal(&s.error, 300)
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fmt_value;

    #[test]
    fn short_ids() {
        let id = "ab".repeat(32);
        assert_eq!(short_id(&id), "abababababab");
        assert_eq!(short_id("host:n:cgroup-1"), "host:n:cgroup-1");
        assert_eq!(fmt_value(3.0), "3");
        assert_eq!(fmt_value(0.25), "0.250");
    }
}

//! Development figures on the UNM traces (`../shared/datasets/unm-syscalls`, when present):
//! every raw detector's ROC AUC per program, as the literature scores them (train on the
//! first half of each normal file's processes, test on the rest; an intrusion file is one
//! attack recording scored by its highest process). Run with
//! `cargo test -p analyze --release --lib models::sequence::unm -- --ignored --nocapture`.

use std::path::{Path, PathBuf};

use super::markov::Markov;
use super::{MEMBERS, SequenceModel, THREAD_MEMBERS, choose_order};
use crate::import::parse_pid_calls;
use crate::models::calibrate::{TailCalibration, sidak, surprise};
use crate::models::metrics::roc_auc;

fn unm_dir() -> Option<PathBuf> {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets/unm-syscalls");
    d.is_dir().then_some(d)
}

fn procs(dir: &Path) -> Vec<Vec<Vec<u32>>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "int"))
        .map(|f| {
            let text = std::fs::read(f).unwrap();
            parse_pid_calls(f, &text)
                .unwrap()
                .into_iter()
                .map(|p| p.1)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect()
}

#[test]
#[ignore = "development figures: needs ../shared/datasets/unm-syscalls"]
fn unm_development_figures() {
    let Some(root) = unm_dir() else {
        eprintln!("SKIP: ../shared/datasets/unm-syscalls is absent");
        return;
    };
    let programs = [
        ("sendmail", "sendmail"),
        ("lpr-synthetic", "lpr-synthetic"),
        ("lpr-live", "lpr-synthetic"),
        ("named", "named"),
        ("xlock", "xlock"),
        ("login", "login"),
        ("ps", "ps"),
        ("inetd", "inetd"),
        ("ftp", "ftp"),
    ];
    // Per process: the members scored per thread (UNM traces carry no times, so no start-up).
    let names: Vec<String> = MEMBERS[..THREAD_MEMBERS]
        .iter()
        .map(|m| m.to_string())
        .chain(["sidak".into(), "fisher".into(), "seq-mean-surprise".into()])
        .collect();
    println!("| program | order | {} |", names.join(" | "));
    for (prog, attack_prog) in programs {
        let normal = procs(&root.join(prog).join("normal"));
        let attacks = procs(&root.join(attack_prog).join("intrusion"));
        let (mut train, mut test) = (Vec::new(), Vec::new());
        for f in normal {
            let half = f.len().div_ceil(2);
            let (a, b) = f.split_at(half);
            train.extend(a.iter().cloned());
            test.extend(b.iter().cloned());
        }
        // Cross-fitting as `analyze train` does it: three folds of the training processes by
        // a hash of their place.
        let fold_of = |i: usize| crate::models::rng::hash_str(&format!("{prog}#{i}")) % 3;
        let fold = |f: usize, held: bool| -> Vec<&[u32]> {
            train
                .iter()
                .enumerate()
                .filter(|(i, _)| (fold_of(*i) == f as u64) == held)
                .map(|(_, t)| t.as_slice())
                .collect()
        };
        let fits: Vec<Option<Markov>> = (0..3)
            .map(|f| (!fold(f, false).is_empty()).then(|| Markov::fit(fold(f, false).into_iter())))
            .collect();
        let helds: Vec<Vec<&[u32]>> = (0..3).map(|f| fold(f, true)).collect();
        let order = choose_order(
            &fits
                .iter()
                .zip(&helds)
                .filter_map(|(m, h)| m.as_ref().map(|m| (m, h.as_slice())))
                .collect::<Vec<_>>(),
        );
        let all: Vec<&[u32]> = train.iter().map(Vec::as_slice).collect();
        let model = SequenceModel::fit(&all, order);
        let mut cal_scores: Vec<Vec<f64>> = Vec::new();
        for (f, m) in fits.into_iter().enumerate() {
            let fm = m.map(|mut m| {
                m.set_order(order);
                SequenceModel::with_markov(m, &fold(f, false))
            });
            let m = fm.as_ref().unwrap_or(&model);
            for t in &helds[f] {
                cal_scores.push(m.score_thread(t).0);
            }
        }
        let cals: Vec<TailCalibration> = (0..THREAD_MEMBERS)
            .map(|d| {
                TailCalibration::fit(
                    MEMBERS[d],
                    &cal_scores.iter().map(|s| s[d]).collect::<Vec<_>>(),
                )
            })
            .collect();
        let score = |t: &[u32]| -> Vec<f64> {
            let mut v = model.score_thread(t).0;
            let ps: Vec<f64> = v.iter().zip(&cals).map(|(r, c)| c.p_value(*r)).collect();
            v.push(surprise(sidak(&ps)));
            v.push(ps.iter().map(|p| -p.log10()).sum());
            v.push(ps.iter().map(|p| -p.log10()).sum::<f64>() / ps.len() as f64);
            v
        };
        let mut rows: Vec<(Vec<f64>, bool)> = test.iter().map(|t| (score(t), false)).collect();
        for f in &attacks {
            let per: Vec<Vec<f64>> = f.iter().map(|t| score(t)).collect();
            let max = (0..names.len())
                .map(|d| per.iter().map(|p| p[d]).fold(f64::MIN, f64::max))
                .collect();
            rows.push((max, true));
        }
        let aucs: Vec<String> = (0..names.len())
            .map(|d| {
                let v: Vec<(f64, bool)> = rows.iter().map(|r| (r.0[d], r.1)).collect();
                roc_auc(&v).map_or("-".into(), |a| format!("{a:.3}"))
            })
            .collect();
        println!(
            "| {prog} ({} train, {} normal, {} attack) | {order} | {} |",
            train.len(),
            test.len(),
            attacks.len(),
            aucs.join(" | ")
        );
    }
}

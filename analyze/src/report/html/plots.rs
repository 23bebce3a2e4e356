//! The report's charts as inline SVG, drawn with plotters.
//!
//! Only numbers and names this build defines (event kind names, axis captions) are drawn as
//! text: nothing from a trace reaches a chart unescaped.

use plotters::prelude::*;

use super::evidence::{BUCKETS, KindSeries};

/// Why a chart could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("drawing a chart: {0}")]
pub struct PlotError(String);

fn err(e: impl std::fmt::Display) -> PlotError {
    PlotError(e.to_string())
}

/// Colors of the kinds, in legend order (Tableau 10), then grey for the rest.
const PALETTE: [RGBColor; 10] = [
    RGBColor(0x4e, 0x79, 0xa7),
    RGBColor(0xf2, 0x8e, 0x2b),
    RGBColor(0xe1, 0x57, 0x59),
    RGBColor(0x76, 0xb7, 0xb2),
    RGBColor(0x59, 0xa1, 0x4f),
    RGBColor(0xed, 0xc9, 0x48),
    RGBColor(0xb0, 0x7a, 0xa1),
    RGBColor(0xff, 0x9d, 0xa7),
    RGBColor(0x9c, 0x75, 0x5f),
    RGBColor(0xba, 0xb0, 0xac),
];

/// Kinds drawn as their own line; the rest are summed into `other`.
const MAX_LINES: usize = 8;

/// A histogram of the workloads' model scores with the model's threshold as a red line (when
/// the model has a finite one: a model may never raise the anomaly finding).
pub fn score_histogram(scores: &[f64], threshold: f64) -> Result<String, PlotError> {
    let finite: Vec<f64> = scores.iter().copied().filter(|s| s.is_finite()).collect();
    let threshold = if threshold.is_finite() {
        threshold
    } else {
        f64::INFINITY
    };
    let floor = if threshold.is_finite() {
        threshold.max(1.0)
    } else {
        1.0
    };
    let max = finite.iter().copied().fold(floor, f64::max) * 1.05;
    let bins = 40usize;
    let width = max / bins as f64;
    let mut counts = vec![0u32; bins];
    for s in &finite {
        let b = ((s.max(0.0) / width) as usize).min(bins - 1);
        counts[b] += 1;
    }
    let top = counts.iter().copied().max().unwrap_or(1).max(1);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 260)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(44)
            .build_cartesian_2d(0f64..max, 0u32..top + top / 5 + 1)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("model score (higher = more anomalous)")
            .y_desc("workloads")
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(
                counts
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| **c > 0)
                    .map(|(i, c)| {
                        let x0 = i as f64 * width;
                        let color = if x0 + width > threshold {
                            PALETTE[2]
                        } else {
                            PALETTE[0]
                        };
                        Rectangle::new([(x0, 0), (x0 + width * 0.9, *c)], color.filled())
                    }),
            )
            .map_err(err)?;
        if threshold.is_finite() {
            chart
                .draw_series(LineSeries::new(
                    [(threshold, 0), (threshold, top + top / 5 + 1)],
                    RED.stroke_width(2),
                ))
                .map_err(err)?
                .label(format!("threshold {threshold:.2}"))
                .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], RED.stroke_width(2)));
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK.mix(0.3))
                .label_font(("sans-serif", 12))
                .draw()
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Events per kind over time, one line per frequent kind.
pub fn kind_timeline(series: &KindSeries, width: u32, height: u32) -> Result<String, PlotError> {
    let totals = series.totals();
    let mut lines: Vec<(&str, Vec<u64>)> = totals
        .iter()
        .take(MAX_LINES)
        .filter_map(|(k, _)| Some((*k, series.counts.get(k)?.clone())))
        .collect();
    if totals.len() > MAX_LINES {
        let mut other = vec![0u64; BUCKETS];
        for (k, _) in &totals[MAX_LINES..] {
            if let Some(v) = series.counts.get(k) {
                other.iter_mut().zip(v).for_each(|(a, b)| *a += b);
            }
        }
        lines.push(("other", other));
    }
    let top = lines
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .max()
        .unwrap_or(1)
        .max(1);
    let seconds = (series.end_ns - series.start_ns).max(1) as f64 / 1e9;
    let step = seconds / BUCKETS as f64;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(52)
            .build_cartesian_2d(0f64..seconds, (0.8f64..(top as f64 * 1.5)).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("seconds since the first event")
            .y_desc(format!("events per {step:.1} s"))
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(err)?;
        for (i, (kind, counts)) in lines.iter().enumerate() {
            let color = PALETTE[i.min(PALETTE.len() - 1)];
            let points: Vec<(f64, f64)> = counts
                .iter()
                .enumerate()
                .map(|(b, c)| ((b as f64 + 0.5) * step, (*c as f64).max(0.8)))
                .collect();
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(err)?
                .label(*kind)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 11))
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_svg_with_their_threshold_and_kinds() {
        let h = score_histogram(&[0.1, 0.2, 0.5, 3.0, f64::NAN], 1.5).unwrap();
        assert!(h.starts_with("<svg") && h.contains("threshold 1.50"), "{h}");
        let never = score_histogram(&[0.1, 2.0], f64::INFINITY).unwrap();
        assert!(never.starts_with("<svg") && !never.contains("threshold"));
        let mut s = KindSeries {
            start_ns: 0,
            end_ns: 10_000_000_000,
            ..Default::default()
        };
        s.counts.insert("exec", vec![1; BUCKETS]);
        s.counts.insert("connect", vec![3; BUCKETS]);
        let t = kind_timeline(&s, 600, 200).unwrap();
        for kind in ["exec", "connect"] {
            assert!(t.lines().any(|l| l.trim() == kind), "{kind} in the legend");
        }
    }
}

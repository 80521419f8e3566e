//! Arithmetic the series widgets share, kept apart from drawing so it is tested natively:
//! merging the series one reference matched, a value's change over a range, and the
//! decimation that lets a chart draw 100,000 points in a few hundred pixel columns.

use flowdeck_protocol::metrics::{Agg, SeriesData};

/// The series a reference matched, merged into one line: summed for aggregations that
/// add up (a counter's rate over every pipeline, queues over every stage), the highest for
/// the others (a percentile, a maximum), the lowest for `min`, the mean for `avg`.
pub(crate) fn combine(series: &[SeriesData]) -> Vec<(u64, Option<f64>)> {
    let Some(first) = series.first() else {
        return Vec::new();
    };
    if series.len() == 1 {
        return first.points.clone();
    }
    let agg = first.agg;
    first
        .points
        .iter()
        .enumerate()
        .map(|(i, &(t, _))| {
            let values: Vec<f64> = series
                .iter()
                .filter_map(|s| s.points.get(i).and_then(|p| p.1))
                .collect();
            if values.is_empty() {
                return (t, None);
            }
            let v = match agg {
                Agg::Last | Agg::Sum | Agg::Rate | Agg::Count => values.iter().sum(),
                Agg::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
                Agg::Avg => values.iter().sum::<f64>() / values.len() as f64,
                Agg::Max | Agg::P50 | Agg::P95 | Agg::P99 => {
                    values.iter().copied().fold(f64::NEG_INFINITY, f64::max)
                }
            };
            (t, Some(v))
        })
        .collect()
}

/// What a legend calls each line: the name and only the labels that tell the lines apart
/// (`{outcome=failed}` rather than the pipeline's name repeated on every line).
pub(crate) fn legend_names(lines: &[SeriesData]) -> Vec<String> {
    let same_name = lines.windows(2).all(|w| w[0].key.name == w[1].key.name);
    lines
        .iter()
        .map(|s| {
            let differing: Vec<String> = s
                .key
                .labels
                .iter()
                .filter(|pair| {
                    lines.len() > 1 && !lines.iter().all(|o| o.key.labels.contains(pair))
                })
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            match (same_name && lines.len() > 1, differing.is_empty()) {
                (_, true) => s.key.name.clone(),
                (true, false) => differing.join(", "),
                (false, false) => format!("{} {{{}}}", s.key.name, differing.join(", ")),
            }
        })
        .collect()
}

/// The newest value, and its change against the oldest in the range as a fraction
/// (`None` when there is no base to compare with).
pub(crate) fn latest_and_change(points: &[(u64, Option<f64>)]) -> (Option<f64>, Option<f64>) {
    let mut values = points.iter().filter_map(|p| p.1);
    let first = values.next();
    let last = points.iter().rev().find_map(|p| p.1);
    let change = match (first, last) {
        (Some(a), Some(b)) if a.abs() > f64::EPSILON => Some((b - a) / a.abs()),
        _ => None,
    };
    (last, change)
}

/// One pixel column of a decimated line: the first, lowest, highest and last value the
/// points falling in it had. Drawing those four keeps every spike a full line would show.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub(crate) struct Column {
    pub x: usize,
    pub first: f64,
    pub min: f64,
    pub max: f64,
    pub last: f64,
}

/// Folds points sorted by time into at most `width` columns between `from` and `to`
/// (min-max-first-last decimation, "M4"). Gaps (`None`) are skipped.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub(crate) fn decimate(
    points: &[(u64, Option<f64>)],
    from: u64,
    to: u64,
    width: usize,
) -> Vec<Column> {
    let span = to.saturating_sub(from).max(1) as f64;
    let width = width.max(1);
    let mut out: Vec<Column> = Vec::with_capacity(width.min(points.len()));
    for &(t, v) in points {
        let Some(v) = v else { continue };
        let x = (((t.saturating_sub(from)) as f64 / span) * (width - 1) as f64).round() as usize;
        let x = x.min(width - 1);
        match out.last_mut() {
            Some(c) if c.x == x => {
                c.min = c.min.min(v);
                c.max = c.max.max(v);
                c.last = v;
            }
            _ => out.push(Column {
                x,
                first: v,
                min: v,
                max: v,
                last: v,
            }),
        }
    }
    out
}

/// A round upper bound for an axis: 1, 2 or 5 times a power of ten, at least `max`.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub(crate) fn nice_max(max: f64) -> f64 {
    if !max.is_finite() || max <= 0.0 {
        return 1.0;
    }
    let base = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * base)
        .find(|&v| v >= max)
        .unwrap_or(10.0 * base)
}

#[cfg(test)]
mod tests {
    use flowdeck_protocol::metrics::{Kind, SeriesKey};

    use super::*;

    fn data(agg: Agg, points: &[Option<f64>]) -> SeriesData {
        SeriesData {
            key: SeriesKey::new("x", &[]),
            kind: Kind::Gauge,
            agg,
            step: 1,
            points: points
                .iter()
                .enumerate()
                .map(|(i, v)| (i as u64, *v))
                .collect(),
        }
    }

    #[test]
    fn matched_series_add_up_or_take_the_worst() {
        let a = data(Agg::Rate, &[Some(1.0), None, Some(3.0)]);
        let b = data(Agg::Rate, &[Some(2.0), None, None]);
        assert_eq!(
            combine(&[a, b]),
            vec![(0, Some(3.0)), (1, None), (2, Some(3.0))]
        );
        let a = data(Agg::P99, &[Some(1.0)]);
        let b = data(Agg::P99, &[Some(5.0)]);
        assert_eq!(combine(&[a, b]), vec![(0, Some(5.0))]);
        assert!(combine(&[]).is_empty());
    }

    #[test]
    fn legends_name_what_tells_lines_apart() {
        let line = |name: &str, labels: &[(&str, &str)]| SeriesData {
            key: SeriesKey::new(name, labels),
            ..data(Agg::Rate, &[])
        };
        let p = ("pipeline", "docs");
        let two = [
            line("items", &[("outcome", "completed"), p]),
            line("items", &[("outcome", "failed"), p]),
        ];
        assert_eq!(legend_names(&two), ["outcome=completed", "outcome=failed"]);
        let mixed = [line("items", &[p]), line("tokens", &[p])];
        assert_eq!(legend_names(&mixed), ["items", "tokens"]);
        assert_eq!(legend_names(&[line("items", &[p])]), ["items"]);
        let both = [line("q", &[("stage", "a")]), line("lat", &[("stage", "b")])];
        assert_eq!(legend_names(&both), ["q {stage=a}", "lat {stage=b}"]);
    }

    #[test]
    fn change_compares_the_newest_with_the_oldest_value() {
        let p = [(0, None), (1, Some(10.0)), (2, Some(12.0)), (3, None)];
        let (last, change) = latest_and_change(&p);
        assert_eq!(last, Some(12.0));
        assert!((change.unwrap() - 0.2).abs() < 1e-9);
        assert_eq!(latest_and_change(&[(0, Some(0.0)), (1, Some(5.0))]).1, None);
        assert_eq!(latest_and_change(&[]), (None, None));
    }

    #[test]
    fn decimation_keeps_spikes_and_bounds_the_work() {
        // 100,000 points into 500 columns, with one spike in the middle.
        let mut points: Vec<(u64, Option<f64>)> =
            (0..100_000u64).map(|t| (t, Some((t % 7) as f64))).collect();
        points[50_000].1 = Some(1_000.0);
        points[50_001].1 = None;
        let cols = decimate(&points, 0, 100_000, 500);
        assert_eq!(cols.len(), 500);
        assert!(cols.windows(2).all(|w| w[0].x < w[1].x));
        assert_eq!(cols.iter().map(|c| c.max).fold(0.0, f64::max), 1_000.0);
        assert!(cols.iter().all(|c| c.min == 0.0));
        // Fewer points than pixels: one column each.
        let few = decimate(&[(0, Some(1.0)), (10, Some(2.0))], 0, 10, 500);
        assert_eq!((few[0].x, few[1].x), (0, 499));
    }

    #[test]
    fn axes_end_on_round_numbers() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(130.0), 200.0);
        assert_eq!(nice_max(0.04), 0.05);
    }
}

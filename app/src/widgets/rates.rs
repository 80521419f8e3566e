//! A line chart of rates over time, one polyline per series.

use flowdeck_protocol::stream::Point;
use leptos::prelude::*;

const W: f64 = 600.0;
const H: f64 = 120.0;

/// One series: a label, a CSS class (for its colour) and how to read it from a point.
pub(crate) type Series = (&'static str, &'static str, fn(&Point) -> f64);

/// The points of `values` scaled into the chart box, as an SVG `points` attribute.
fn polyline(values: &[f64], max: f64) -> String {
    let n = values.len().max(2) - 1;
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let x = W * i as f64 / n as f64;
            let y = H - (v / max).clamp(0.0, 1.0) * (H - 4.0) - 2.0;
            format!("{x:.1},{y:.1}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Rates over the last points of the history.
#[component]
pub(crate) fn RateChart(
    points: Vec<Point>,
    series: Vec<Series>,
    label: &'static str,
) -> impl IntoView {
    let max = points
        .iter()
        .flat_map(|p| series.iter().map(move |(_, _, get)| get(p)))
        .fold(1.0_f64, f64::max);
    let lines = series
        .iter()
        .map(|(name, class, get)| {
            let values: Vec<f64> = points.iter().map(get).collect();
            let last = values.last().copied().unwrap_or(0.0);
            (
                name.to_string(),
                class.to_string(),
                polyline(&values, max),
                last,
            )
        })
        .collect::<Vec<_>>();
    let legend = lines
        .iter()
        .map(|(name, class, _, last)| {
            view! {
                <span class=format!("legend {class}")>{name.clone()} ": " {crate::format::rate(*last)}</span>
            }
        })
        .collect_view();
    view! {
        <figure class="chart">
            <svg viewBox=format!("0 0 {W} {H}") preserveAspectRatio="none" role="img" aria-label=label>
                {lines
                    .into_iter()
                    .map(|(_, class, points, _)| view! { <polyline class=format!("line {class}") points=points/> })
                    .collect_view()}
            </svg>
            <figcaption>{legend} <span class="muted">" · max " {crate::format::rate(max)}</span></figcaption>
        </figure>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_scale_into_the_box() {
        assert_eq!(polyline(&[0.0, 10.0], 10.0), "0.0,118.0 600.0,2.0");
        // A single point still draws; values over the max stay inside.
        assert_eq!(polyline(&[20.0], 10.0), "0.0,2.0");
    }
}

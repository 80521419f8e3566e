//! The Metric and Gauge widgets: one number each, from a series.

use flowdeck_protocol::page::{format_value, GaugeSpec, MetricSpec};
use leptos::prelude::*;

use super::{
    poll::{series_resource, settle},
    series::{combine, latest_and_change},
};

/// Points a sparkline carries.
const SPARK_POINTS: u64 = 60;

/// A value with its format, a sparkline of the range and the change across it.
#[component]
pub(crate) fn MetricWidget(spec: MetricSpec) -> impl IntoView {
    let data = series_resource(
        Signal::stored(vec![spec.series.clone()]),
        Signal::stored(spec.agg),
        Signal::stored(spec.range),
        SPARK_POINTS,
    );
    let format = spec.format.clone();
    view! {
        <Transition fallback=|| view! { <p class="muted">"…"</p> }>
            {move || data.get().map(|r| match settle(r) {
                Ok(series) => {
                    let points = combine(&series);
                    let (last, change) = latest_and_change(&points);
                    let value = last.map_or_else(|| "–".to_owned(), |v| format_value(&format, v));
                    let (dir, text) = match change {
                        Some(c) if c > 0.005 => ("up", format!("▲ {:.0}%", c * 100.0)),
                        Some(c) if c < -0.005 => ("down", format!("▼ {:.0}%", -c * 100.0)),
                        Some(_) => ("flat", "= 0%".to_owned()),
                        None => ("flat", String::new()),
                    };
                    view! {
                        <div class="metric-value" data-testid="metric-value">{value}</div>
                        <div class="metric-change" data-dir=dir>{text}</div>
                        <Sparkline points=points.iter().map(|p| p.1).collect()/>
                    }
                    .into_any()
                }
                Err(e) => view! { <p class="error" role="alert">{e}</p> }.into_any(),
            })}
        </Transition>
    }
}

/// A small line without axes, scaled to its own range.
#[component]
fn Sparkline(points: Vec<Option<f64>>) -> impl IntoView {
    let values: Vec<(usize, f64)> = points
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|v| (i, v)))
        .collect();
    let lo = values.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let hi = values.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let span = if hi > lo { hi - lo } else { 1.0 };
    let n = points.len().max(2) - 1;
    let line = values
        .iter()
        .map(|&(i, v)| {
            let x = 100.0 * i as f64 / n as f64;
            let y = 22.0 - (v - lo) / span * 20.0;
            format!("{x:.1},{y:.1}")
        })
        .collect::<Vec<_>>()
        .join(" ");
    view! {
        <svg class="sparkline" viewBox="0 0 100 24" preserveAspectRatio="none" aria-hidden="true">
            <polyline points=line fill="none" vector-effect="non-scaling-stroke"/>
        </svg>
    }
}

/// A half-circle dial coloured by the thresholds.
#[component]
pub(crate) fn GaugeWidget(spec: GaugeSpec) -> impl IntoView {
    let data = series_resource(
        Signal::stored(vec![spec.series.clone()]),
        Signal::stored(spec.agg),
        Signal::stored(300),
        SPARK_POINTS,
    );
    let spec = StoredValue::new(spec);
    view! {
        <Transition fallback=|| view! { <p class="muted">"…"</p> }>
            {move || data.get().map(|r| match settle(r) {
                Ok(series) => {
                    let (last, _) = latest_and_change(&combine(&series));
                    spec.with_value(|g| dial(g, last)).into_any()
                }
                Err(e) => view! { <p class="error" role="alert">{e}</p> }.into_any(),
            })}
        </Transition>
    }
}

fn dial(g: &GaugeSpec, value: Option<f64>) -> impl IntoView {
    let f = value.map_or(0.0, |v| g.fraction(v));
    let health = value.map_or("none", |v| g.health(v).as_str());
    let angle = std::f64::consts::PI * (1.0 - f);
    let (x, y) = (50.0 + 40.0 * angle.cos(), 50.0 - 40.0 * angle.sin());
    let text = value.map_or_else(|| "–".to_owned(), |v| format_value(&g.format, v));
    let scale = format!(
        "{} – {}",
        format_value(&g.format, g.min),
        format_value(&g.format, g.max)
    );
    view! {
        <div class="gauge" data-health=health data-testid="gauge">
            <svg viewBox="0 0 100 56" role="img" aria-label=format!("{}: {text}", g.title)>
                <path class="gauge-track" d="M10,50 A40,40 0 0 1 90,50" fill="none"/>
                <path class="gauge-fill" d=format!("M10,50 A40,40 0 0 1 {x:.2},{y:.2}") fill="none"/>
            </svg>
            <div class="gauge-value" data-testid="gauge-value">{text}</div>
            <div class="gauge-scale muted">{scale}</div>
        </div>
    }
}

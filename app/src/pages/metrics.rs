//! Metrics `/metrics`: every series the store keeps (the pipeline's, the process's, and
//! whatever the user records through the `metrics` crate), charted over a chosen range as
//! lines, areas or bars, and exported as CSV or JSON through the API.

use flowdeck_protocol::{
    metrics::Agg,
    page::{ChartStyle, SeriesRef},
};
use leptos::prelude::*;

use crate::{fetch::fetch_metric_list, widgets::ChartView};

/// The ranges offered: (label, seconds).
const RANGES: [(&str, u64); 6] = [
    ("5m", 300),
    ("15m", 900),
    ("1h", 3600),
    ("6h", 21_600),
    ("12h", 43_200),
    ("24h", 86_400),
];

#[component]
pub fn Metrics() -> impl IntoView {
    view! { <MetricsView run=None/> }
}

/// The live page; with `run` (a stored run's id and how long it ran, in seconds), the
/// same page over that run's kept minutes, with no range to choose and no export.
#[component]
pub(crate) fn MetricsView(run: Option<(i64, u64)>) -> impl IntoView {
    let stored = run.map(|(id, _)| id);
    let list = Resource::new(|| (), move |_| fetch_metric_list(stored));
    let chosen = RwSignal::new(vec!["flowdeck_items_total".to_owned()]);
    // A stored run's whole span, in whole minutes and one more (its last, partial one).
    let range = RwSignal::new(run.map_or(900u64, |(_, secs)| secs.div_ceil(60) * 60 + 60));
    let style = RwSignal::new(ChartStyle::Line);
    let agg = RwSignal::new(None::<Agg>);
    let series = Signal::derive(move || {
        chosen
            .get()
            .iter()
            .filter_map(|n| n.parse::<SeriesRef>().ok())
            .collect::<Vec<_>>()
    });
    let export = move |format: &str| {
        let names = chosen.get().join(",");
        let agg = agg
            .get()
            .map_or_else(String::new, |a| format!("&agg={}", a.name()));
        crate::scope::href(&format!(
            "/api/v1/metrics?names={}&range={}{agg}&format={format}",
            names,
            range.get()
        ))
    };
    let toggle = move |name: String| {
        chosen.update(|c| match c.iter().position(|n| *n == name) {
            Some(i) => {
                c.remove(i);
            }
            None => c.push(name),
        })
    };
    let head = stored.is_none().then(|| view! {
            <div class="page-head">
                <h1>"Metrics"</h1>
                <span>
                    <a class="btn" data-testid="export-csv" href=move || export("csv") download="metrics.csv">"Export CSV"</a>
                    " "
                    <a class="btn" data-testid="export-json" href=move || export("json")>"Export JSON"</a>
                </span>
            </div>
    });
    let ranges = stored.is_none().then(|| view! {
                <label>"Range "
                    <select data-testid="metrics-range" on:change=move |ev| range.set(event_target_value(&ev).parse().unwrap_or(900))>
                        {RANGES.map(|(label, secs)| view! { <option value=secs.to_string() selected=secs == 900>{label}</option> })}
                    </select>
                </label>
    });
    let filters = view! {
            <div class="filters">
                {ranges}
                <label>"Chart "
                    <select data-testid="metrics-style" on:change=move |ev| style.set(match event_target_value(&ev).as_str() {
                        "area" => ChartStyle::Area,
                        "bar" => ChartStyle::Bar,
                        _ => ChartStyle::Line,
                    })>
                        <option value="line">"line"</option>
                        <option value="area">"area"</option>
                        <option value="bar">"bar"</option>
                    </select>
                </label>
                <label>"Aggregation "
                    <select on:change=move |ev| agg.set(event_target_value(&ev).parse().ok())>
                        <option value="">"default"</option>
                        {Agg::ALL.map(|a| view! { <option value=a.name()>{a.name()}</option> })}
                    </select>
                </label>
            </div>
    }
    .into_any();
    view! {
        <section class="metrics-page">
            {head}
            {filters}
            <div class="metrics-layout">
                <fieldset class="metric-list">
                    <legend>"Series"</legend>
                    <Suspense fallback=|| view! { <p class="muted">"…"</p> }>
                        {move || list.get().map(|r| match r {
                            Ok(infos) => {
                                let mut names: Vec<(String, &'static str)> = infos.iter().map(|i| (i.key.name.clone(), i.kind.name())).collect();
                                names.dedup();
                                names.into_iter().map(|(name, kind)| {
                                    let n = name.clone();
                                    let checked = move || chosen.with(|c| c.contains(&n));
                                    let n2 = name.clone();
                                    view! {
                                        <label class="metric-choice">
                                            <input type="checkbox" data-metric=name.clone() prop:checked=checked on:change=move |_| toggle(n2.clone())/>
                                            {name} <span class="muted">{format!(" {kind}")}</span>
                                        </label>
                                    }
                                }).collect_view().into_any()
                            }
                            Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                        })}
                    </Suspense>
                </fieldset>
                <div class="widget metrics-chart" data-testid="widget-chart">
                    <ChartView series style=style.into() range=range.into() agg=agg.into() run=stored/>
                </div>
            </div>
        </section>
    }
}

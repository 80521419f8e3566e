//! Drawing pieces. The built-in pages share rate charts and the pipeline graph (plain SVG
//! computed in Rust, so the server's first paint already shows them); custom pages are
//! made of the six generic widgets, each rendering its spec from the protocol.

mod chart;
mod custom;
mod graph;
mod log;
mod metric;
pub(crate) mod poll;
mod rates;
mod series;
mod status;
mod table;
mod warnings;

pub(crate) use chart::ChartView;
pub(crate) use graph::PipelineGraph;
pub(crate) use log::LogView;
pub(crate) use rates::RateChart;
pub(crate) use warnings::{ItemWarnings, WarningList, WarningsBadge};

use flowdeck_protocol::page::{Placed, Widget};
use leptos::prelude::*;

/// One widget of a custom page, in its grid cell, with its title.
#[component]
pub(crate) fn PlacedWidget(placed: Placed, slug: String) -> impl IntoView {
    let ((col, row), (w, h)) = (placed.at, placed.span);
    let area = format!(
        "grid-column: {} / span {w}; grid-row: {} / span {h}",
        col + 1,
        row + 1
    );
    let kind = placed.widget.kind();
    let title = placed.widget.title().to_owned();
    let body = match placed.widget {
        Widget::Metric(spec) => view! { <metric::MetricWidget spec/> }.into_any(),
        Widget::Chart(spec) => view! { <chart::ChartWidget spec/> }.into_any(),
        Widget::Gauge(spec) => view! { <metric::GaugeWidget spec/> }.into_any(),
        Widget::Table(spec) => view! { <table::TableWidget spec/> }.into_any(),
        Widget::Status(spec) => view! { <status::StatusWidget spec/> }.into_any(),
        Widget::Log(spec) => view! { <log::LogView spec/> }.into_any(),
        Widget::Custom(spec) => view! { <custom::CustomWidget spec slug/> }.into_any(),
    };
    view! {
        <section class="widget" data-kind=kind data-testid=format!("widget-{kind}") style=area>
            <h2>{title}</h2>
            {body}
        </section>
    }
}

//! Overview `/`: the pipeline's health and totals at a glance, throughput over time, the
//! pipeline as a graph with its bottleneck, each stage's numbers, and the recent errors.

use flowdeck_protocol::{stream::LiveState, Snapshot, StageSnapshot};
use leptos::prelude::*;

use crate::{
    format,
    live::use_live,
    pages::{Columns, LivePage},
    widgets::{PipelineGraph, RateChart, WarningList},
};

#[component]
pub fn Overview() -> impl IntoView {
    let live = use_live();
    let freeze = move || {
        view! {
            <button
                class="btn"
                aria-pressed=move || live.frozen.get().to_string()
                on:click=move |_| live.toggle_frozen()
            >
                {move || if live.frozen.get() { "Resume updates" } else { "Pause updates" }}
            </button>
        }
    };
    view! { <LivePage title="Overview" class="overview" content=summary actions=freeze/> }
}

pub(crate) fn summary(state: &LiveState) -> impl IntoView + use<> {
    let snapshot: Snapshot = state.snapshot.clone();
    let (level, reason) = state.health();
    let level = level.as_str();
    let points: Vec<_> = state.recent_history(240).collect();
    let recent: Vec<_> = state.errors.recent.iter().take(5).cloned().collect();
    let totals = snapshot.totals;
    let bottleneck = snapshot.bottleneck();
    let cards = [
        ("Submitted", format::count(totals.submitted)),
        ("Queued", format::count(totals.queued)),
        ("Running", format::count(totals.running)),
        ("Waiting", format::count(totals.waiting)),
        ("Completed", format::count(totals.completed)),
        ("Failed", format::count(totals.failed)),
        ("Throughput", format::rate(totals.throughput)),
    ];
    // Its wire name, not `Debug` lower-cased: no Unicode case tables in the first load.
    let state = snapshot.state.as_str();
    let stage_names: Vec<String> = snapshot.stages.iter().map(|s| s.name.clone()).collect();
    view! {
        <p class="pipeline-line">
            <strong data-testid="pipeline-name">{snapshot.pipeline.clone()}</strong>
            " is "
            <span class="state" data-state=state>{state}</span>
            " · up " {format::uptime(snapshot.uptime_ms)} " · "
            <span class="health" data-level=level data-testid="health">{level} ": " {reason}</span>
        </p>
        {(!snapshot.usage.is_empty()).then(|| view! {
            <p class="muted resources" data-testid="process-usage">"Process: " {snapshot.usage.clone()}</p>
        })}
        <div class="cards">
            {cards
                .into_iter()
                .map(|(label, value)| {
                    let id = label.to_ascii_lowercase();
                    view! {
                        <div class="card" data-testid=format!("total-{id}")>
                            <div class="card-label">{label}</div>
                            <div class="card-value">{value}</div>
                        </div>
                    }
                })
                .collect_view()}
        </div>
        <h2 id="warnings">"Warnings"</h2>
        <WarningList warnings=snapshot.warnings.clone() clock=(snapshot.started_unix_ms, snapshot.uptime_ms)/>
        <h2>"Throughput"</h2>
        <RateChart
            points
            label="Items in and out per second over time"
            series=vec![
                ("in", "in", |p| p.input_rate),
                ("out", "out", |p| p.output_rate),
                ("failed", "failed", |p| p.failed_rate),
            ]
        />
        <h2>"Pipeline"</h2>
        <PipelineGraph snapshot=snapshot.clone()/>
        <h2>"Stages"</h2>
        <table class="grid" data-testid="stages">
            <Columns names=["Stage", "Workers", "Queued", "In flight", "Completed", "Failed", "Retried", "Throughput", "p50 / p99", "Lag"]/>
            <tbody>
                {snapshot
                    .stages
                    .into_iter()
                    .enumerate()
                    .map(|(i, stage)| view! { <StageRow stage bottleneck=bottleneck == Some(i)/> })
                    .collect_view()}
            </tbody>
        </table>
        <h2>"Recent errors"</h2>
        <super::FailureList failures=recent stages=stage_names clock=(snapshot.started_unix_ms, snapshot.uptime_ms)/>
    }
}

#[component]
fn StageRow(stage: StageSnapshot, bottleneck: bool) -> impl IntoView {
    let name = stage.name.clone();
    view! {
        <tr class:bottleneck=bottleneck data-stage=stage.name>
            <th scope="row">
                {name}
                {bottleneck.then(|| view! { <span class="tag">"bottleneck"</span> })}
                {stage.paused.then(|| view! { <span class="tag">"paused"</span> })}
            </th>
            <td>{stage.workers.len()}</td>
            <td>{format::count(stage.queued)}</td>
            <td>{format::count(stage.in_flight)}</td>
            <td>{format::count(stage.completed)}</td>
            <td>{format::count(stage.failed)}</td>
            <td>{format::count(stage.retried)}</td>
            <td>{format::rate(stage.throughput)}</td>
            <td>
                {format::micros(stage.latency.p50_us)} " / " {format::micros(stage.latency.p99_us)}
            </td>
            <td>{format!("{} ms", stage.oldest_queued_ms)}</td>
        </tr>
    }
}

//! Overview `/`: the pipeline's health and totals at a glance, and each stage's numbers.

use flowdeck_protocol::{Snapshot, StageSnapshot};
use leptos::prelude::*;

use crate::{format, live::use_live};

#[component]
pub fn Overview() -> impl IntoView {
    let live = use_live();
    view! {
        <section class="overview">
            <div class="page-head">
                <h1>"Overview"</h1>
                <button
                    class="btn"
                    aria-pressed=move || live.frozen.get().to_string()
                    on:click=move |_| live.toggle_frozen()
                >
                    {move || if live.frozen.get() { "Resume updates" } else { "Pause updates" }}
                </button>
            </div>
            <Suspense fallback=|| view! { <p class="muted">"Loading the pipeline…"</p> }>
                {move || match live.snapshot() {
                    Some(snapshot) => view! { <Summary snapshot/> }.into_any(),
                    None => view! {
                        <p class="error" role="alert">"The server has no pipeline to show."</p>
                    }.into_any(),
                }}
            </Suspense>
        </section>
    }
}

#[component]
fn Summary(snapshot: Snapshot) -> impl IntoView {
    let totals = snapshot.totals;
    let bottleneck = snapshot.bottleneck();
    let cards = [
        ("Submitted", format::count(totals.submitted)),
        ("Queued", format::count(totals.queued)),
        ("Running", format::count(totals.running)),
        ("Completed", format::count(totals.completed)),
        ("Failed", format::count(totals.failed)),
        ("Throughput", format::rate(totals.throughput)),
    ];
    let state = format!("{:?}", snapshot.state).to_lowercase();
    view! {
        <p class="pipeline-line">
            <strong data-testid="pipeline-name">{snapshot.pipeline.clone()}</strong>
            " is "
            <span class="state" data-state=state.clone()>{state.clone()}</span>
            " · up " {format!("{}s", snapshot.uptime_ms / 1000)}
        </p>
        <div class="cards">
            {cards
                .into_iter()
                .map(|(label, value)| {
                    let id = label.to_lowercase();
                    view! {
                        <div class="card" data-testid=format!("total-{id}")>
                            <div class="card-label">{label}</div>
                            <div class="card-value">{value}</div>
                        </div>
                    }
                })
                .collect_view()}
        </div>
        <h2>"Stages"</h2>
        <table class="grid">
            <thead>
                <tr>
                    <th scope="col">"Stage"</th>
                    <th scope="col">"Workers"</th>
                    <th scope="col">"Queued"</th>
                    <th scope="col">"In flight"</th>
                    <th scope="col">"Completed"</th>
                    <th scope="col">"Failed"</th>
                    <th scope="col">"Retried"</th>
                    <th scope="col">"Throughput"</th>
                    <th scope="col">"p50 / p99"</th>
                    <th scope="col">"Lag"</th>
                </tr>
            </thead>
            <tbody>
                {snapshot
                    .stages
                    .into_iter()
                    .enumerate()
                    .map(|(i, stage)| view! { <StageRow stage bottleneck=bottleneck == Some(i)/> })
                    .collect_view()}
            </tbody>
        </table>
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

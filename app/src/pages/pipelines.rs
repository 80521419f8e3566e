//! `/pipelines`: every pipeline the dashboard serves, one row each, filtered and sorted by
//! the server, refreshed every two seconds. `/` leads here when there is more than one.
//! A pipeline's name opens its pages (`/p/{slug}/`), and each count its task list filtered
//! to that status. Links to a pipeline are page loads: see `scope`.

use std::time::Duration;

use flowdeck_protocol::{
    format::rate,
    pipelines::{PipelineQuery, PipelineRow, PipelineSort, Window},
    PipelineState,
};
use leptos::prelude::*;

use super::runs::answered;
use crate::{fetch::fetch_pipelines, format, widgets::poll::ticker};

/// The column headings: (label, the sort they choose).
const COLUMNS: [(&str, PipelineSort); 11] = [
    ("Pipeline", PipelineSort::Name),
    ("State", PipelineSort::State),
    ("Throughput", PipelineSort::Throughput),
    ("Queued", PipelineSort::Queued),
    ("Running", PipelineSort::Running),
    ("Completed", PipelineSort::Completed),
    ("Failed", PipelineSort::Failed),
    ("Cancelled", PipelineSort::Cancelled),
    ("Runs", PipelineSort::Runs),
    ("Last run", PipelineSort::LastRun),
    ("Warnings", PipelineSort::Warnings),
];

#[component]
pub fn Pipelines() -> impl IntoView {
    let window = RwSignal::new(Window::Run);
    let sort = RwSignal::new(PipelineSort::Name);
    let desc = RwSignal::new(false);
    let state = RwSignal::new(None::<PipelineState>);
    let text = RwSignal::new(String::new());
    let warning = RwSignal::new(false);
    let tick = ticker(Duration::from_secs(2));
    let query = move || PipelineQuery {
        window: window.get(),
        sort: sort.get(),
        desc: desc.get(),
        state: state.get(),
        text: text.get(),
        min_failed: None,
        warning: warning.get(),
    };
    let rows = Resource::new(move || (query(), tick.get()), |(q, _)| fetch_pipelines(q));
    // A heading sorts by its column; again, the other way. Counts start largest first.
    let sort_by = move |s: PipelineSort| {
        if sort.get_untracked() == s {
            desc.update(|d| *d = !*d);
        } else {
            sort.set(s);
            desc.set(s.largest_first());
        }
    };
    view! {
        <section class="pipelines">
            <div class="page-head"><h1>"Pipelines"</h1></div>
            <div class="filters">
                <label>
                    "Counting "
                    <select data-testid="window" on:change=move |ev| {
                        let v = event_target_value(&ev);
                        window.set(Window::ALL.into_iter().find(|w| w.as_str() == v).unwrap_or_default());
                    }>
                        <option value="run">"the live run"</option>
                        <option value="hour">"runs of the last hour"</option>
                        <option value="day">"runs of the last day"</option>
                        <option value="week">"runs of the last week"</option>
                    </select>
                </label>
                <label>
                    "State "
                    <select data-testid="state-filter" on:change=move |ev| {
                        let v = event_target_value(&ev);
                        state.set(PipelineState::ALL.into_iter().find(|s| s.as_str() == v));
                    }>
                        <option value="">"any"</option>
                        {PipelineState::ALL.into_iter().map(|s| view! { <option value=s.as_str()>{s.as_str()}</option> }).collect_view()}
                    </select>
                </label>
                <label>
                    "Search "
                    <input type="search" placeholder="name" data-testid="pipeline-filter"
                        on:change=move |ev| text.set(event_target_value(&ev))/>
                </label>
                <label>
                    <input type="checkbox" data-testid="warning-filter"
                        on:change=move |ev| warning.set(event_target_checked(&ev))/>
                    " with warnings"
                </label>
            </div>
            <Transition fallback=|| view! { <p class="muted">"Loading the pipelines…"</p> }>
                {move || rows.get().map(|r| answered(r, move |rows| view! {
                    <table class="grid" data-testid="pipelines">
                        <thead><tr>
                            {COLUMNS.into_iter().map(|(label, s)| view! {
                                <th scope="col" aria-sort=move || match (sort.get() == s, desc.get()) {
                                    (false, _) => "none",
                                    (true, true) => "descending",
                                    (true, false) => "ascending",
                                }>
                                    <button class="sort" data-testid=format!("sort-{}", s.as_str()) on:click=move |_| sort_by(s)>{label}</button>
                                </th>
                            }).collect_view()}
                        </tr></thead>
                        <tbody>
                            {rows.into_iter().map(|r| view! { <Row r/> }).collect_view()}
                        </tbody>
                    </table>
                }.into_any()))}
            </Transition>
        </section>
    }
}

#[component]
fn Row(r: PipelineRow) -> impl IntoView {
    let base = format!("/p/{}", r.slug);
    let count = |n: u64, status: &str| {
        view! { <td><a href=format!("{base}/tasks?status={status}") rel="external" data-testid=format!("count-{status}")>{format::count(n)}</a></td> }
    };
    let last = r.last_run.as_ref().map(|l| {
        let took = l
            .ended_ms
            .map(|e| format::uptime(e.saturating_sub(l.started_ms)))
            .unwrap_or_default();
        view! {
            <a href=format!("{base}/runs/{}", l.id) rel="external">{format!("#{}", l.id)}</a>
            {format!(" {} · {} UTC {took}", l.state.as_str(), format::clock(l.started_ms))}
        }
    });
    view! {
        <tr data-testid="pipeline-row" data-slug=r.slug.clone() data-state=r.state.as_str()>
            <th scope="row"><a href=format!("{base}/") rel="external" data-testid="pipeline-link">{r.name.clone()}</a></th>
            <td><span class="status" data-status=r.state.as_str()>{r.state.as_str()}</span></td>
            <td>{rate(r.throughput)}</td>
            {count(r.queued, "queued")}
            {count(r.running, "running")}
            {count(r.completed, "completed")}
            {count(r.failed, "failed")}
            {count(r.cancelled, "cancelled")}
            <td>{format::count(r.runs)}</td>
            <td>{last}</td>
            <td data-testid="warnings">{r.warnings}</td>
        </tr>
    }
}

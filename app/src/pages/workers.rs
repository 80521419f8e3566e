//! Workers `/workers`: every worker of every stage, what it is doing and how it has done.

use std::time::Duration;

use flowdeck_protocol::{
    page::{ChartStyle, SeriesRef},
    stream::LiveState,
    ProcessSnapshot, WorkerSnapshot, WorkerState,
};
use leptos::prelude::*;

use super::{Columns, LivePage};
use crate::{
    control::{AuditLog, ControlError, RestartWorker, StageControls},
    fetch::fetch_processes,
    format,
    live::use_live,
    widgets::poll::ticker,
};

#[component]
pub fn Workers() -> impl IntoView {
    view! {
        <ControlError/>
        <LivePage title="Workers" class="workers" content=workers/>
        <Processes/>
        <ControlPanel/>
        <Usage/>
        <AuditLog/>
    }
}

/// Pause/resume and scale buttons per stage, for those who may control. Kept out of the
/// per-frame view and keyed by each stage's state, so a button lives until its stage
/// changes: a click is never lost to a re-render between press and release.
#[component]
fn ControlPanel() -> impl IntoView {
    let live = use_live();
    let stages = Memo::new(move |_| {
        live.with(|s| {
            s.snapshot
                .stages
                .iter()
                .map(|st| (st.name.clone(), st.paused, st.workers.len()))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
    });
    // Busy workers, keyed by the item they hold: a row stays while its attempt runs.
    let busy = Memo::new(move |_| {
        live.with(|s| {
            s.snapshot
                .stages
                .iter()
                .flat_map(|st| {
                    st.workers
                        .iter()
                        .filter(|w| w.state == WorkerState::Busy)
                        .filter_map(|w| Some((st.name.clone(), w.id, w.current_item?)))
                })
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
    });
    view! {
        <Suspense fallback=|| ()>
            <Show when=move || !live.readonly()>
                <section class="stage-controls" id="restart">
                    <h2>"Busy workers"</h2>
                    <p class="muted">
                        "Restarting a worker drops its attempt, which fails as restarted by you; \
                         the stage's retry policy decides what follows, and the worker takes its next item."
                    </p>
                    <table class="grid" data-testid="busy-workers">
                        <Columns names=["Worker", "Item", "Actions"]/>
                        <tbody>
                            <For
                                each=move || busy.get()
                                key=|row| row.clone()
                                children=|(stage, worker, item)| {
                                    let (name, label) = (format!("{stage}-{worker}"), format!("{stage}-{worker}"));
                                    view! {
                                    <tr data-worker=name>
                                        <th scope="row">{label}</th>
                                        <td><a href=crate::scope::href(&format!("/tasks/{item}"))>{format!("#{item}")}</a></td>
                                        <td><RestartWorker stage worker/></td>
                                    </tr>
                                    }
                                }
                            />
                        </tbody>
                    </table>
                </section>
                <section class="stage-controls">
                    <div class="page-head">
                        <h2>"Control"</h2>
                        <crate::control::PipelineControls/>
                    </div>
                    <table class="grid" data-testid="stage-controls">
                        <Columns names=["Stage", "State", "Workers", "Actions"]/>
                        <tbody>
                            <For
                                each=move || stages.get()
                                key=|row| row.clone()
                                children=|(name, paused, workers)| {
                                    let (row, label) = (name.clone(), name.clone());
                                    view! {
                                    <tr data-stage=row>
                                        <th scope="row">{label}</th>
                                        <td>{if paused { "paused" } else { "running" }}</td>
                                        <td>{workers}</td>
                                        <td><StageControls stage=name paused workers/></td>
                                    </tr>
                                    }
                                }
                            />
                        </tbody>
                    </table>
                </section>
            </Show>
        </Suspense>
    }
}

/// The process's CPU and its async runtime's busy share over time, and its memory.
#[component]
fn Usage() -> impl IntoView {
    let series = |names: &[&str]| {
        Signal::stored(
            names
                .iter()
                .map(|n| SeriesRef::new(n, &[]))
                .collect::<Vec<_>>(),
        )
    };
    view! {
        <section class="usage" data-testid="usage">
            <h2>"CPU and runtime over time"</h2>
            <crate::widgets::ChartView
                series=series(&["flowdeck_process_cpu_ratio", "flowdeck_runtime_busy_ratio"])
                style=Signal::stored(ChartStyle::Line)
                range=Signal::stored(900)
                agg=Signal::stored(None)
            />
            <h2>"Memory over time"</h2>
            <crate::widgets::ChartView
                series=series(&["flowdeck_process_resident_memory_bytes"])
                style=Signal::stored(ChartStyle::Area)
                range=Signal::stored(900)
                agg=Signal::stored(None)
            />
        </section>
    }
}

fn workers(state: &LiveState) -> impl IntoView {
    let usage = (!state.snapshot.usage.is_empty()).then(|| {
        view! {
            <p class="resources" data-testid="resources">
                <strong>"This process: "</strong>
                {state.snapshot.usage.clone()}
            </p>
        }
    });
    let stages = state
        .snapshot
        .stages
        .iter()
        .map(|stage| {
            let count = |s| stage.workers.iter().filter(|w| w.state == s).count();
            let (busy, blocked) = (count(WorkerState::Busy), count(WorkerState::Blocked));
            let blocked = (blocked > 0).then(|| format!(", {blocked} waiting on downstream"));
            view! {
                <section class="stage-workers" data-stage=stage.name.clone()>
                    <h2>
                        {stage.name.clone()}
                        <span class="muted">{format!(" · {busy} of {} busy{}", stage.workers.len(), blocked.unwrap_or_default())}</span>
                        {stage.paused.then(|| view! { <span class="tag">"paused"</span> })}
                    </h2>
                    {worker_table(&stage.name, &stage.workers)}
                </section>
            }
        })
        .collect_view();
    view! { {usage} {stages} }
}

/// The worker processes of distributed stages, each with its own workers: which machine,
/// which version, when it was last heard from, and whether it is lost. Asked for every
/// second; nothing shows for a pipeline in one process.
#[component]
fn Processes() -> impl IntoView {
    let tick = ticker(Duration::from_secs(1));
    let list = Resource::new(move || tick.get(), |_| fetch_processes());
    view! {
        <Transition fallback=|| ()>
            {move || list.get().and_then(Result::ok).map(|l| processes(&l))}
        </Transition>
    }
}

fn processes(list: &[ProcessSnapshot]) -> AnyView {
    list.iter()
        .flat_map(|p| p.stages.iter().map(move |st| (p, st)))
        .map(|(p, st)| {
            let heard = format!(
                " · v{} · heartbeat {:.1} s ago · {} done, {} failed, {} redelivered",
                p.version,
                p.silent_ms as f64 / 1000.0,
                format::count(st.done),
                format::count(st.failed),
                format::count(st.redelivered),
            );
            view! {
                <section class="stage-workers process" data-process=p.process.clone()>
                    <h2>
                        {format!("{} on {}", st.name, p.process)}
                        <span class="muted">{heard}</span>
                        {p.lost.then(|| view! { <span class="tag">"lost"</span> })}
                        {st.paused.then(|| view! { <span class="tag">"paused"</span> })}
                    </h2>
                    {p.resources.as_ref().map(|r| view! { <p class="resources muted">{r.summary()}</p> })}
                    {worker_table(&st.name, &st.workers)}
                </section>
            }
        })
        .collect_view()
        .into_any()
}

fn worker_table(stage: &str, workers: &[WorkerSnapshot]) -> impl IntoView {
    view! {
        <table class="grid">
            <Columns names=["Worker", "State", "Current item", "Processed", "Failed", "Busy", "Blocked"]/>
            <tbody>
                {workers
                    .iter()
                    .map(|w| {
                        let name = w.state.as_str();
                        let ratio = (w.busy_ratio * 100.0).clamp(0.0, 100.0);
                        let blocked = (w.blocked_ratio * 100.0).clamp(0.0, 100.0);
                        view! {
                            <tr data-state=name>
                                <th scope="row">{format!("{stage}-{}", w.id)}</th>
                                <td><span class="worker-state" data-state=name>{name}</span></td>
                                <td>
                                    {w.current_item.map(|id| view! {
                                        <a href=crate::scope::href(&format!("/tasks/{id}"))>{format!("#{id}")}</a>
                                    })}
                                </td>
                                <td>{format::count(w.processed)}</td>
                                <td>{format::count(w.failed)}</td>
                                <td>
                                    <span class="bar" role="img" aria-label=format!("{ratio:.0}% busy")>
                                        <span style=format!("width:{ratio:.0}%")></span>
                                    </span>
                                    {format!(" {ratio:.0}%")}
                                </td>
                                <td>{format!("{blocked:.0}%")}</td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
}

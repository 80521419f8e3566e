//! Workers `/workers`: every worker of every stage, what it is doing and how it has done.

use std::time::Duration;

use flowdeck_protocol::{stream::LiveState, ProcessSnapshot, WorkerSnapshot, WorkerState};
use leptos::prelude::*;

use super::{Columns, LivePage};
use crate::{
    control::{AuditLog, ControlError, StageControls},
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
    view! {
        <Suspense fallback=|| ()>
            <Show when=move || !live.readonly()>
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

fn workers(state: &LiveState) -> impl IntoView {
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
    view! { {stages} }
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

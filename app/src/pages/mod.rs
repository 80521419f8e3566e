//! One module per page, and the pieces several pages share.

mod alerts;
mod bulk;
mod custom;
mod errors;
mod filters;
mod lazy;
mod logs;
mod metrics;
mod not_found;
mod overview;
mod pipelines;
mod questions;
mod runs;
mod streaming;
mod task;
mod tasks;
mod workers;

pub(crate) use alerts::Alerts;
pub(crate) use bulk::BulkAction;
pub(crate) use custom::Custom;
pub(crate) use errors::Errors;
pub(crate) use filters::FilterBar;
pub(crate) use lazy::*;
pub(crate) use logs::Logs;
pub(crate) use metrics::Metrics;
pub(crate) use not_found::NotFound;
pub(crate) use overview::Overview;
pub(crate) use pipelines::Pipelines;
pub(crate) use questions::{ItemQuestions, Questions};
pub(crate) use runs::{Run, RunErrors, RunMetrics, RunTask, RunTasks, Runs};
pub(crate) use streaming::Streaming;
pub(crate) use task::Task;
pub(crate) use tasks::Tasks;
pub(crate) use workers::Workers;

use flowdeck_protocol::{stream::LiveState, FailedItem};
use leptos::prelude::*;

use crate::format;

/// Shown when the server has no pipeline state to render.
#[component]
pub(crate) fn NoPipeline() -> impl IntoView {
    view! { <p class="error" role="alert">"The server has no pipeline to show."</p> }
}

/// A table's header row: one column heading per name.
#[component]
pub(crate) fn Columns(#[prop(into)] names: Vec<&'static str>) -> impl IntoView {
    view! {
        <thead>
            <tr>{names.into_iter().map(|n| view! { <th scope="col">{n}</th> }).collect_view()}</tr>
        </thead>
    }
}

/// Where a page's links to tasks lead: the live run's pages (`/tasks/42`), or a stored
/// run's (`/runs/3/tasks/42`) when a run's page provides its base.
#[derive(Clone, Debug, Default)]
pub(crate) struct TaskBase(pub String);

/// The page of task `id`, under the base the page was given.
pub(crate) fn task_href(id: u64) -> String {
    let base = use_context::<TaskBase>().unwrap_or_default();
    crate::scope::href(&format!("{}/tasks/{id}", base.0))
}

/// A list of failed items with links to their pages, their times read against the
/// pipeline's clock `(started_unix_ms, now_ms)`.
#[component]
pub(crate) fn FailureList(
    failures: Vec<FailedItem>,
    stages: Vec<String>,
    clock: (u64, u64),
) -> impl IntoView {
    if failures.is_empty() {
        return view! { <p class="muted">"No failures."</p> }.into_any();
    }
    let (started, now) = clock;
    view! {
        <table class="grid failures" data-testid="failures">
            <Columns names=["Item", "Stage", "Error", "Message", "At (UTC)"]/>
            <tbody>
                {failures
                    .into_iter()
                    .map(|f| {
                        let stage = stages.get(usize::from(f.stage)).cloned().unwrap_or_default();
                        view! {
                            <tr>
                                <th scope="row"><a href=task_href(f.id)>{format!("#{}", f.id)}</a></th>
                                <td>{stage}</td>
                                <td><code>{f.error.kind}</code></td>
                                <td class="message">{f.error.message}</td>
                                {
                                    let (at, ago) = format::event_time(started, f.at_us, now);
                                    view! { <td title=ago>{at}</td> }
                                }
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}

/// A page's frame: heading (with the page's own buttons, if any), then the live content
/// once there is a state to show.
#[component]
pub(crate) fn LivePage<F, V>(
    title: &'static str,
    class: &'static str,
    content: F,
    #[prop(optional, into)] actions: ViewFn,
) -> impl IntoView
where
    F: Fn(&LiveState) -> V + Send + Sync + Copy + 'static,
    V: IntoView + 'static,
{
    let live = crate::live::use_live();
    view! {
        <section class=class>
            <div class="page-head"><h1>{title}</h1>{actions.run()}</div>
            <Suspense fallback=|| view! { <p class="muted">"Loading the pipeline…"</p> }>
                {move || live.with(|state| content(state).into_any())
                    .unwrap_or_else(|| view! { <NoPipeline/> }.into_any())}
            </Suspense>
        </section>
    }
}

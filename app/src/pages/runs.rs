//! Runs from the run store `/runs`, and a finished (or interrupted) run's own pages:
//! `/runs/:id` (the Overview's summary of its last picture, its throughput a point a
//! minute, and a slider that replays it: `?at=` shows the picture kept at that moment), `/runs/:id/tasks` (every stored item, filtered, searched, sorted and counted by
//! the server, page by page), `/runs/:id/tasks/:item` (the task page) and
//! `/runs/:id/errors` (the Errors page). The live pages' parts draw them; only the data
//! comes from the store instead of the stream.

use flowdeck_protocol::{
    runs::{ItemSort, RunInfo, RunState, RunTaskQuery, RunView, StoreStatus, Timeline},
    stream::LiveState,
    ItemStatus,
};
use leptos::prelude::*;
use leptos_router::hooks::{use_params_map, use_query_map};

use super::{Columns, TaskBase};
use crate::scope::href;
use crate::{
    fetch::{fetch_run_task, fetch_run_tasks, fetch_run_timeline, fetch_run_view, fetch_runs},
    format,
};

/// The run id in the path.
fn run_id() -> Memo<Option<i64>> {
    let params = use_params_map();
    Memo::new(move |_| params.with(|p| p.get("id").and_then(|s| s.parse().ok())))
}

/// What a store read answered, drawn: `ok`'s view of its value, the reason there is none
/// (no store, an unknown run), or the failed request.
pub(super) fn answered<T>(
    r: Result<Result<T, String>, ServerFnError>,
    ok: impl FnOnce(T) -> AnyView,
) -> AnyView {
    match r {
        Ok(Ok(v)) => ok(v),
        Ok(Err(why)) => view! { <p class="muted" data-testid="no-store">{why}</p> }.into_any(),
        Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
    }
}

fn state_name(s: RunState) -> &'static str {
    s.as_str()
}

/// Duration from start to end, or "running".
fn span(info: &RunInfo) -> String {
    match info.ended_ms {
        Some(end) => format::uptime(end.saturating_sub(info.started_ms)),
        None => "running".to_owned(),
    }
}

#[component]
pub fn Runs() -> impl IntoView {
    let runs = Resource::new(|| (), |_| fetch_runs());
    view! {
        <section class="runs">
            <div class="page-head"><h1>"Runs"</h1></div>
            <Suspense fallback=|| view! { <p class="muted">"Loading the runs…"</p> }>
                {move || runs.get().map(|r| answered(r, |(runs, store)| view! { <RunList runs store/> }.into_any()))}
            </Suspense>
        </section>
    }
}

#[component]
fn RunList(runs: Vec<RunInfo>, store: StoreStatus) -> impl IntoView {
    let live = store.run;
    view! {
        <p class="muted" data-testid="store-status">
            {format!("Kept in {} · {} items written", store.path, format::count(store.items_written))}
            {(store.items_shed > 0).then(|| format!(" · {} shed under load (counted, not kept)", format::count(store.items_shed)))}
            {store.degraded.then(|| view! {
                <span class="tag warn" data-testid="store-degraded">
                    {format!(" degraded: {}", store.problem.clone().unwrap_or_default())}
                </span>
            })}
        </p>
        <table class="grid" data-testid="runs">
            <Columns names=["Run", "Pipeline", "State", "Started (UTC)", "Took", "Completed", "Failed", "Kept", "Not kept"]/>
            <tbody>
                {runs.into_iter().map(|r| {
                    let href = crate::scope::href(&if r.id == live { "/".to_owned() } else { format!("/runs/{}", r.id) });
                    let state = state_name(r.state);
                    view! {
                        <tr data-state=state data-testid="run-row">
                            <th scope="row"><a href=href>{format!("#{}", r.id)}</a>{(r.id == live).then_some(" (live)")}</th>
                            <td>{r.pipeline.clone()}</td>
                            <td><span class="state" data-state=state>{state}</span></td>
                            <td>{format::clock(r.started_ms)}</td>
                            <td>{span(&r)}</td>
                            <td>
                                {format::count(r.totals.completed)}
                                {r.recounted.then(|| view! {
                                    <span class="muted" data-testid="recounted"
                                        title="Counted from the items the store kept, when the run was found interrupted">
                                        " (recounted)"
                                    </span>
                                })}
                            </td>
                            <td>{format::count(r.totals.failed)}</td>
                            <td>{format::count(r.stored)}</td>
                            <td>{format::count(r.not_stored)}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
}

/// The links along the top of a run's pages.
#[component]
fn RunNav(id: i64, info: RunInfo) -> impl IntoView {
    let state = state_name(info.state);
    view! {
        <p class="run-nav">
            <a href=href("/runs")>"← All runs"</a> " · "
            <a href=href(&format!("/runs/{id}"))>"Overview"</a> " · "
            <a href=href(&format!("/runs/{id}/tasks"))>"Tasks"</a> " · "
            <a href=href(&format!("/runs/{id}/errors"))>"Errors"</a> " · "
            <a href=href(&format!("/runs/{id}/metrics"))>"Metrics"</a> " · "
            <span class="state" data-state=state data-testid="run-state">{state}</span>
            {format!(" · started {} UTC · took {}", format::clock(info.started_ms), span(&info))}
            {(info.not_stored > 0).then(|| format!(" · {} items not kept", format::count(info.not_stored)))}
            {info.recounted.then(|| {
                let t = info.totals;
                let lost = t.submitted.saturating_sub(t.completed + t.failed + t.cancelled);
                view! {
                    <span data-testid="recounted">
                        {format!(
                            " · totals recounted from the kept items when it was found interrupted{}",
                            if lost > 0 { format!("; {} items were in progress when it stopped", format::count(lost)) } else { String::new() },
                        )}
                    </span>
                }
            })}
        </p>
    }
}

/// A run's page: loads its view from the store and draws `content` from it as a live
/// page would from the stream. With `replay`, the page has a timeline to scrub, and shows
/// the run as it was at the moment in its `?at=` (ms of the run's uptime).
#[component]
fn StoredRunPage<F, V>(
    title: &'static str,
    class: &'static str,
    content: F,
    #[prop(optional)] replay: bool,
) -> impl IntoView
where
    F: Fn(&LiveState) -> V + Send + Sync + Copy + 'static,
    V: IntoView + 'static,
{
    let id = run_id();
    let query = use_query_map();
    let at = Memo::new(move |_| {
        replay
            .then(|| query.with(|q| q.get("at").and_then(|s| s.parse::<u64>().ok())))
            .flatten()
    });
    // Read once for the page: the slider moves `at`, not the timeline.
    let timeline = replay.then(|| {
        Resource::new(
            move || id.get(),
            |id| async move {
                match id {
                    Some(id) => fetch_run_timeline(id).await,
                    None => Ok(Ok(None)),
                }
            },
        )
    });
    let view = Resource::new(
        move || (id.get(), at.get()),
        |(id, at)| async move {
            match id {
                Some(id) => fetch_run_view(id, at).await,
                None => Ok(Ok(None)),
            }
        },
    );
    view! {
        <section class=class>
            <Transition fallback=|| view! { <p class="muted">"Loading the run…"</p> }>
                {move || view.get().map(|r| answered(r, move |found| match (found, id.get()) {
                    (Some(RunView { run, full }), Some(id)) => {
                        provide_context(TaskBase(format!("/runs/{id}")));
                        let state = LiveState::from_full(full);
                        view! {
                            <div class="page-head"><h1>{format!("{title} · run #{id}")}</h1></div>
                            <RunNav id info=run.info/>
                            {timeline.map(|timeline| view! { <Replay id timeline at=at.get_untracked()/> })}
                            {content(&state)}
                        }.into_any()
                    }
                    _ => view! {
                        <h1>"Run not found"</h1>
                        <p class="muted" data-testid="run-missing">"The store has no such run."</p>
                    }.into_any(),
                }))}
            </Transition>
        </section>
    }
}

/// What the timeline's server function answers.
type TimelineAnswer = Result<Result<Option<Timeline>, String>, ServerFnError>;

/// The run's timeline as a slider over the snapshots the store kept: moving it shows the
/// run as it was then (`?at=`), counts, graph and bottleneck; "end" shows its last picture.
#[component]
fn Replay(id: i64, timeline: Resource<TimelineAnswer>, at: Option<u64>) -> impl IntoView {
    let navigate = leptos_router::hooks::use_navigate();
    view! {
        <Suspense fallback=|| ()>
            {move || timeline.get().map(|r| answered(r, {
                let navigate = navigate.clone();
                move |found| {
                    let resolution = found.as_ref().map_or(0, |t| t.resolution_ms);
                    let points: Vec<u64> = found.map(|t| t.points.iter().map(|p| p.at_ms).collect()).unwrap_or_default();
                    let Some(&last) = points.last() else {
                        return view! { <p class="muted" data-testid="replay-none">"No snapshots kept of this run to replay."</p> }.into_any();
                    };
                    // The point shown: the last at or before `at`, the end without one.
                    let index = at.map_or(points.len() - 1, |at| points.iter().rposition(|&p| p <= at).unwrap_or(0));
                    let label = match at {
                        Some(_) => format!("at {} of {}", format::uptime(points[index]), format::uptime(last)),
                        None => format!("at the end, {}", format::uptime(last)),
                    };
                    let max = points.len() - 1;
                    let count = points.len();
                    let tasks_then = at.map(|_| href(&format!("/runs/{id}/tasks?at={}", points[index])));
                    let go = {
                        let navigate = navigate.clone();
                        move |ev: leptos::ev::Event| {
                            let i: usize = event_target_value(&ev).parse().unwrap_or(max);
                            let to = href(&if i >= max { format!("/runs/{id}") } else { format!("/runs/{id}?at={}", points[i]) });
                            navigate(&to, Default::default());
                        }
                    };
                    view! {
                        <p class="replay" data-testid="replay">
                            <label for="replay-at">"Replay"</label>
                            <input type="range" id="replay-at" data-testid="replay-slider"
                                min="0" max=max.to_string() step="1" value=index.to_string()
                                on:change=go/>
                            <span data-testid="replay-at">{label}</span>
                            {tasks_then.map(|href| view! {
                                " · " <a href=href data-testid="replay-tasks">"its tasks then"</a>
                            })}
                            <span class="muted">{format!(" · {count} snapshots, about one every {}", format::uptime(resolution))}</span>
                        </p>
                    }.into_any()
                }
            }))}
        </Suspense>
    }
}

#[component]
pub fn Run() -> impl IntoView {
    view! { <StoredRunPage title="Overview" class="overview" content=super::overview::summary replay=true/> }
}

#[component]
pub fn RunMetrics() -> impl IntoView {
    let id = run_id();
    view! {
        <StoredRunPage title="Metrics" class="metrics-page" content=move |state: &LiveState| {
            let ran = state.snapshot.uptime_ms / 1000;
            id.get_untracked().map(|id| view! { <super::metrics::MetricsView run=Some((id, ran))/> })
        }/>
    }
}

#[component]
pub fn RunErrors() -> impl IntoView {
    view! { <StoredRunPage title="Errors" class="errors" content=super::errors::errors/> }
}

/// Items per page of a stored run's task list.
const PAGE: u64 = 100;

#[component]
pub fn RunTasks() -> impl IntoView {
    let id = run_id();
    let url = use_query_map();
    let initial = url.with_untracked(|q| {
        q.get("status")
            .and_then(|s| ItemStatus::ALL.into_iter().find(|x| x.as_str() == s))
    });
    // A replayed moment (`?at=`, ms of the run's uptime): the items as they were then.
    let at = Memo::new(move |_| url.with(|q| q.get("at").and_then(|s| s.parse::<u64>().ok())));
    let status = RwSignal::new(initial);
    let stage = RwSignal::new(None::<u16>);
    let text = RwSignal::new(String::new());
    let sort = RwSignal::new(ItemSort::Newest);
    let offset = RwSignal::new(0u64);
    let query = move || RunTaskQuery {
        status: status.get(),
        stage: stage.get(),
        text: text.get(),
        sort: sort.get(),
        offset: offset.get(),
        at_ms: at.get(),
    };
    let view = Resource::new(
        move || id.get(),
        |id| async move {
            match id {
                Some(id) => fetch_run_view(id, None).await,
                None => Ok(Ok(None)),
            }
        },
    );
    let page = Resource::new(
        move || (id.get(), query()),
        |(id, q)| async move {
            match id {
                Some(id) => fetch_run_tasks(id, q).await,
                None => Ok(Err("no such run".into())),
            }
        },
    );
    let stages = move || {
        view.get()
            .and_then(|r| r.ok())
            .and_then(|r| r.ok())
            .flatten()
            .map(|v| v.run.stages)
            .unwrap_or_default()
    };
    let reset = move || offset.set(0);
    // "In progress" has items only at a replayed moment: the store keeps finished items.
    let tabs = move || {
        let mut tabs = vec![
            (None, "All"),
            (Some(ItemStatus::Completed), "Completed"),
            (Some(ItemStatus::Failed), "Failed"),
            (Some(ItemStatus::Cancelled), "Cancelled"),
        ];
        if at.get().is_some() {
            tabs.push((Some(ItemStatus::Running), "In progress"));
        }
        tabs
    };
    view! {
        <section class="tasks">
            <div class="page-head"><h1>{move || format!("Tasks · run #{}", id.get().unwrap_or_default())}</h1></div>
            <Suspense fallback=|| ()>
                {move || view.get().and_then(|r| r.ok()).and_then(|r| r.ok()).flatten().map(|v| {
                    let id = id.get().unwrap_or_default();
                    provide_context(TaskBase(format!("/runs/{id}")));
                    view! { <RunNav id info=v.run.info/> }
                })}
            </Suspense>
            {move || at.get().map(|ms| {
                let id = id.get().unwrap_or_default();
                view! {
                    <p class="replay" data-testid="tasks-at">
                        {format!("As they were at {} of the run: the items created by then, each where it was then. ", format::uptime(ms))}
                        <a href=href(&format!("/runs/{id}?at={ms}"))>"The run then"</a> " · "
                        <a href=href(&format!("/runs/{id}/tasks"))>"At its end"</a>
                    </p>
                }
            })}
            // The counts and the stage names come from resources: read inside a Transition,
            // so the server renders them and hydration finds what it rendered.
            <Transition fallback=|| ()>
                <super::FilterBar
                    tabs=Signal::derive(tabs)
                    selected=status
                    count=Callback::new(move |s: Option<ItemStatus>| {
                        page.get().and_then(|r| r.ok()).and_then(|r| r.ok()).map(|p| {
                            let c = p.counts;
                            format::count(match s {
                                None => c.all,
                                Some(ItemStatus::Completed) => c.completed,
                                Some(ItemStatus::Failed) => c.failed,
                                Some(ItemStatus::Cancelled) => c.cancelled,
                                _ => c.in_progress,
                            })
                        }).unwrap_or_default()
                    })
                    stages=Signal::derive(stages)
                    stage
                    text
                    placeholder="id or error"
                    on_change=Callback::new(move |()| reset())
                >
                    <label>
                        "Sort "
                        <select data-testid="sort" on:change=move |ev| {
                            sort.set(match event_target_value(&ev).as_str() {
                                "oldest" => ItemSort::Oldest,
                                "updated" => ItemSort::Updated,
                                "attempts" => ItemSort::Attempts,
                                _ => ItemSort::Newest,
                            });
                            reset();
                        }>
                            <option value="newest">"newest"</option>
                            <option value="oldest">"oldest"</option>
                            <option value="updated">"last changed"</option>
                            <option value="attempts">"most attempts"</option>
                        </select>
                    </label>
                </super::FilterBar>
            </Transition>
            <Transition fallback=|| view! { <p class="muted">"Loading the tasks…"</p> }>
                {move || page.get().map(|r| answered(r, move |p| {
                        let total = p.page.total;
                        let names = stages();
                        let started = view.get().and_then(|r| r.ok()).and_then(|r| r.ok()).flatten()
                            .map_or(0, |v| v.run.info.started_ms);
                        let run = id.get().unwrap_or_default();
                        let from = offset.get();
                        let to = (from + p.page.items.len() as u64).min(total);
                        view! {
                            <p class="muted" data-testid="match-count">
                                {format!("{} items match · {}–{}", format::count(total), if total == 0 { 0 } else { from + 1 }, to)}
                            </p>
                            <div class="vhead" role="presentation">
                                <span>"Item"</span><span>"Status"</span><span>"Stage"</span>
                                <span>"Attempts"</span><span>"Updated (UTC)"</span><span>"Error"</span>
                            </div>
                            <div data-testid="task-list">
                                {p.page.items.into_iter().map(|r| {
                                    let status = r.status.as_str();
                                    let stage = names.get(usize::from(r.stage)).cloned().unwrap_or_default();
                                    view! {
                                        <a class="vrow" href=href(&format!("/runs/{run}/tasks/{}", r.id)) data-status=status data-testid="task-row">
                                            <span>{format!("#{}", r.id)}</span>
                                            <span class="status" data-status=status>{status}</span>
                                            <span>{stage}</span>
                                            <span>{r.attempts}</span>
                                            <span>{format::clock(started + r.updated_us / 1000)}</span>
                                            <span><code>{r.error.map(|e| e.kind).unwrap_or_default()}</code></span>
                                        </a>
                                    }
                                }).collect_view()}
                            </div>
                            <p class="pager">
                                <button class="btn" disabled=from == 0 on:click=move |_| offset.update(|o| *o = o.saturating_sub(PAGE))>"Previous"</button>
                                " "
                                <button class="btn" disabled=to >= total on:click=move |_| offset.update(|o| *o += PAGE)>"Next"</button>
                            </p>
                        }
                        .into_any()
                }))}
            </Transition>
        </section>
    }
}

#[component]
pub fn RunTask() -> impl IntoView {
    let id = run_id();
    let params = use_params_map();
    let item =
        Memo::new(move |_| params.with(|p| p.get("item").and_then(|s| s.parse::<u64>().ok())));
    let detail = Resource::new(
        move || (id.get(), item.get()),
        |(id, item)| async move {
            match (id, item) {
                (Some(id), Some(item)) => fetch_run_task(id, item).await,
                _ => Ok(Ok(None)),
            }
        },
    );
    view! {
        <section class="task">
            <p><a href=move || href(&format!("/runs/{}/tasks", id.get().unwrap_or_default()))>"← The run's tasks"</a></p>
            <Suspense fallback=|| view! { <p class="muted">"Loading the task…"</p> }>
                {move || detail.get().map(|r| answered(r, move |d| match d {
                    Some(d) => {
                        provide_context(TaskBase(format!("/runs/{}", id.get().unwrap_or_default())));
                        view! { <super::task::Detail d/> }.into_any()
                    }
                    None => view! {
                        <h1>"Task not found"</h1>
                        <p class="muted" data-testid="task-missing">"The store did not keep this task."</p>
                    }.into_any(),
                }))}
            </Suspense>
        </section>
    }
}

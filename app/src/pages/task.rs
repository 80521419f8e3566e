//! One task `/tasks/:id`: its status, each stage visit on a timeline with its attempts and
//! durations, the error, the annotations its workers attached, its history, and the items
//! it came from, with links.

use flowdeck_protocol::{ItemStatus, TaskDetail};
use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

use super::Columns;
use crate::{fetch::fetch_task, format};

/// Previews longer than this many lines start folded.
const OPEN_LINES: usize = 12;

/// What the item carried into each stage that captured it (and what came out of one that
/// captures outputs), the error beside the input that caused it, each with a copy button.
fn inputs(detail: &flowdeck_protocol::ItemDetail, stage: &impl Fn(u16) -> String) -> AnyView {
    let failed_at = (detail.status == ItemStatus::Failed).then_some(detail.stage);
    let kept: Vec<_> = detail
        .visits
        .iter()
        .flat_map(|v| {
            [
                v.input.clone().map(|p| (v.stage, false, p)),
                v.output.clone().map(|p| (v.stage, true, p)),
            ]
        })
        .flatten()
        .collect();
    if kept.is_empty() {
        return view! {
            <p class="muted" data-testid="no-input">
                "No input was kept for this item: its stages do not capture inputs \
                 (Stage::capture), or it was not in their sample."
            </p>
        }
        .into_any();
    }
    kept.into_iter()
        .map(|(at, output, p)| {
            let lines = p.text.lines().count();
            let size = if p.truncated() {
                format!(" · the first {} of {} bytes", format::count(p.text.len() as u64), format::count(p.bytes))
            } else {
                format!(" · {} bytes", format::count(p.bytes))
            };
            let error = (!output && failed_at == Some(at))
                .then(|| detail.error.clone())
                .flatten();
            let heading = if output { format!("Out of {}", stage(at)) } else { format!("Into {}", stage(at)) };
            let text = p.text.clone();
            view! {
                <div class="input" data-testid=if output { "task-output" } else { "task-input" } data-stage=stage(at)>
                    <h3>{heading} <span class="muted">{size}</span></h3>
                    {error.map(|e| view! {
                        <p class="error-box" data-testid="input-error"><code>{e.kind}</code> " " {e.message}</p>
                    })}
                    <details open=lines <= OPEN_LINES>
                        <summary>{format!("{lines} lines of JSON")}</summary>
                        <pre class="json"><code>{p.text}</code></pre>
                    </details>
                    <button class="btn" data-testid="copy-input" on:click=move |_| copy(&text)>"Copy"</button>
                </div>
            }
        })
        .collect_view()
        .into_any()
}

/// Puts `text` on the clipboard.
fn copy(text: &str) {
    #[cfg(feature = "hydrate")]
    {
        let _ = window().navigator().clipboard().write_text(text);
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = text;
}

#[component]
pub fn Task() -> impl IntoView {
    let params = use_params_map();
    let id = move || {
        params.with(|p| {
            p.get("id")
                .and_then(|s| s.trim_start_matches('#').parse::<u64>().ok())
        })
    };
    // Read again every four frames of the stream while the task can still change: it is
    // in the pipeline, or an action from this page (a retry, a cancel) was sent within the
    // last 20 frames. The second keeps the page true when the first read after the action
    // comes before the runtime's tracker has applied it. A finished task is read once, and
    // so is a stored run's.
    let live = crate::live::use_live();
    let stored = use_context::<super::TaskBase>().is_some_and(|b| !b.0.is_empty());
    let shown = RwSignal::new(None::<ItemStatus>);
    let acted = Memo::new(move |prev: Option<&Option<u64>>| {
        crate::control::actions_sent();
        prev.map(|_| live.received.get_untracked())
    });
    let tick = Memo::new(move |prev: Option<&u64>| {
        let frame = live.received.get();
        let moving = !stored
            && (shown.get().is_none_or(|s| !s.is_terminal())
                || acted.get().is_some_and(|at| frame < at + 20));
        match prev {
            Some(p) if !moving => *p,
            _ => frame / 4,
        }
    });
    let detail = Resource::new(
        move || (id(), tick.get()),
        |(id, _)| async move {
            match id {
                Some(id) => fetch_task(id).await.map(|d| d.ok_or(id)),
                None => Ok(Err(0)),
            }
        },
    );
    Effect::new(move || {
        if let Some(Ok(Ok(d))) = detail.get() {
            shown.set(Some(d.detail.status));
        }
    });
    view! {
        <section class="task">
            <p><a href=crate::scope::href("/tasks")>"← All tasks"</a></p>
            // A transition: a re-read keeps the page as it is until the new read arrives.
            <Transition fallback=|| view! { <p class="muted">"Loading the task…"</p> }>
                {move || detail.get().map(|r| match r {
                    Ok(Ok(d)) => view! { <Detail d/> }.into_any(),
                    Ok(Err(id)) => {
                        #[cfg(feature = "ssr")]
                        if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
                            response.set_status(http::StatusCode::NOT_FOUND);
                        }
                        view! {
                        <h1>"Task not found"</h1>
                        <p class="muted" data-testid="task-missing">
                            {if id == 0 { "That is not a task id.".to_owned() } else {
                                format!("Task #{id} is not retained: the server keeps the most recent items only.")
                            }}
                        </p>
                    }.into_any()
                    }
                    Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                })}
            </Transition>
        </section>
    }
}

#[component]
pub(crate) fn Detail(d: TaskDetail) -> impl IntoView {
    let TaskDetail {
        detail,
        provenance,
        stage_names,
        started_unix_ms: epoch,
        now_ms: now,
        retryable,
        from_store,
    } = d;
    let stage = move |i: u16| {
        stage_names
            .get(usize::from(i))
            .cloned()
            .unwrap_or_else(|| format!("stage {i}"))
    };
    let status = detail.status.as_str();
    // The timeline spans from the item's creation to its last change.
    let t0 = detail.created_us;
    let span = detail.updated_us.saturating_sub(t0).max(1) as f64;
    let pct = move |us: u64| (us.saturating_sub(t0) as f64 * 100.0 / span).clamp(0.0, 100.0);
    let visits = detail
        .visits
        .iter()
        .map(|v| {
            let started = v.started_us.unwrap_or(v.queued_us);
            let finished = v.finished_us.unwrap_or(detail.updated_us);
            let wait = started.saturating_sub(v.queued_us);
            let run = finished.saturating_sub(started);
            let outcome = v.outcome.map_or("in progress", ItemStatus::as_str);
            view! {
                <tr>
                    <th scope="row">{stage(v.stage)}</th>
                    <td>{v.worker.map(|w| format!("{}-{w}", stage(v.stage)))}</td>
                    <td>{v.attempts}</td>
                    <td>{format::micros(wait)}</td>
                    <td>{format::micros(run)}</td>
                    <td>{outcome}</td>
                    <td class="timeline-cell">
                        <span class="timeline">
                            <span class="wait" style=format!("left:{:.1}%;width:{:.1}%", pct(v.queued_us), pct(started) - pct(v.queued_us))></span>
                            <span class="run" style=format!("left:{:.1}%;width:{:.1}%", pct(started), (pct(finished) - pct(started)).max(0.5))></span>
                        </span>
                    </td>
                </tr>
            }
        })
        .collect_view();
    let history = detail
        .history
        .iter()
        .map(|e| {
            view! {
                <li>
                    {
                        let (at, ago) = format::event_time(epoch, e.at_us, now);
                        view! { <time class="muted" title=ago>{at}</time> }
                    } " "
                    <strong>{format!("{:?}", e.kind).to_lowercase()}</strong>
                    {format!(" at {}", stage(e.stage))}
                    {(e.attempt > 0).then(|| format!(", attempt {}", e.attempt))}
                    {e.duration_us.map(|d| format!(", took {}", format::micros(d)))}
                    {e.error.as_ref().map(|err| format!(": {} ({})", err.message, err.kind))}
                </li>
            }
        })
        .collect_view();
    let annotations = detail.annotations.clone();
    // A stored run's task page reads the run's questions from the store.
    let stored_run: Option<i64> = use_context::<super::TaskBase>()
        .and_then(|b| b.0.strip_prefix("/runs/").and_then(|r| r.parse().ok()));
    let inputs = inputs(&detail, &stage);
    view! {
        <div class="page-head">
            <h1 data-testid="task-title">{format!("Task #{}", detail.id)}</h1>
            // A stored run's task is history: nothing to retry or cancel.
            {use_context::<super::TaskBase>()
                .is_none_or(|b| b.0.is_empty())
                .then(|| view! { <crate::control::TaskControls id=detail.id status=detail.status retryable/> })}
        </div>
        <crate::control::ControlError/>
        <super::ItemQuestions item=detail.id run=stored_run/>
        {from_store.then(|| view! {
            <p class="muted" data-testid="task-from-store">
                "This item has left the live view's memory (it keeps the most recent items), so \
                 this is the copy the run store kept when it finished."
            </p>
        })}
        {use_context::<super::TaskBase>()
            .is_none_or(|b| b.0.is_empty())
            .then(|| view! { <crate::widgets::ItemWarnings id=detail.id/> })}
        <p>
            <span class="status" data-status=status data-testid="task-status">{status}</span>
            {format!(" at {} · ", stage(detail.stage))}
            {
                let (created, created_ago) = format::event_time(epoch, t0, now);
                let (changed, changed_ago) = format::event_time(epoch, detail.updated_us, now);
                view! {
                    "created " <time title=created_ago.clone()>{created}</time> {format!(" ({created_ago})")}
                    " · last change " <time title=changed_ago.clone()>{changed}</time> {format!(" ({changed_ago}) UTC")}
                }
            }
        </p>
        {detail.error.clone().map(|e| view! {
            <div class="error-box" role="alert" data-testid="task-error">
                <code>{e.kind}</code> " " {e.message}
            </div>
        })}
        <h2>"Stages and attempts"</h2>
        <table class="grid visits">
            <Columns names=["Stage", "Worker", "Attempts", "Waited", "Ran", "Outcome", "Timeline"]/>
            <tbody>{visits}</tbody>
        </table>
        <h2>"Data"</h2>
        {(retryable == Some(false)).then(|| view! {
            <p class="muted" data-testid="input-gone">
                "It can no longer be retried: the stage where it failed keeps the inputs of its \
                 newest failures only (Stage::keep_failed, 10,000 by default), and newer ones \
                 have taken this one's place."
            </p>
        })}
        {inputs}
        <h2>"Annotations"</h2>
        {if annotations.is_empty() {
            view! { <p class="muted">"Nothing was attached to this item."</p> }.into_any()
        } else {
            view! {
                <dl class="annotations" data-testid="annotations">
                    {annotations.into_iter().map(|(k, v)| view! { <dt>{k}</dt><dd>{v.to_string()}</dd> }).collect_view()}
                </dl>
            }.into_any()
        }}
        <h2>"Provenance"</h2>
        <ol class="provenance" data-testid="provenance">
            {provenance.into_iter().map(|a| {
                let label = if a.depth == 0 { "this item".to_owned() } else if a.depth == 1 { "made from".to_owned() } else { format!("{} steps back", a.depth) };
                view! {
                    <li style=format!("margin-left:{}rem", a.depth)>
                        <a href=super::task_href(a.id)>{format!("#{}", a.id)}</a>
                        <span class="muted">{format!(" {label}")}</span>
                        {(!a.retained).then(|| view! { <span class="muted">" (no longer retained)"</span> })}
                    </li>
                }
            }).collect_view()}
        </ol>
        <h2>"History"</h2>
        <ol class="history">{history}</ol>
    }
}

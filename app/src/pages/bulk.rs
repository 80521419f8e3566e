//! A bulk action on what the task list's filters find: retry every failed item, or cancel
//! every unfinished one. A click asks the server how many it would act on (a dry run), a
//! confirmation shows that exact count and the filter, and the answer shows what was done
//! and what was skipped, with why. Admins only; the server audits it as one entry.

use flowdeck_protocol::filter::{BulkOutcome, BulkRequest};
use leptos::prelude::*;

use crate::{format, live::use_live};

/// Where a bulk action is.
#[derive(Clone, Debug, PartialEq)]
enum Phase {
    Idle,
    Counting,
    Confirm(u64),
    Running(u64),
    Done(BulkOutcome),
    Failed(String),
}

/// Retry (`action` "retry") or cancel ("cancel") all that `filter` finds. `start` set
/// opens the confirmation at once (a link from the Errors page asks for it).
#[component]
pub(crate) fn BulkAction(
    action: &'static str,
    #[prop(into)] filter: Signal<BulkRequest>,
    #[prop(optional)] start: bool,
) -> impl IntoView {
    let live = use_live();
    let phase = RwSignal::new(Phase::Idle);
    // Another filter is another question: what was counted no longer holds.
    Effect::new(move |prev: Option<BulkRequest>| {
        let now = filter.get();
        if prev.is_some_and(|p| p != now) {
            phase.set(Phase::Idle);
        }
        now
    });
    let (verb, doing, which) = match action {
        "retry" => ("Retry", "Retrying", "failed"),
        _ => ("Cancel", "Cancelling", "unfinished"),
    };
    let send = move |dry_run: bool| {
        let body = BulkRequest {
            dry_run,
            ..filter.get_untracked()
        };
        let csrf = untrack(|| live.viewer().csrf);
        let path = crate::scope::href(&format!("/api/v1/tasks/{action}"));
        leptos::task::spawn_local(async move {
            let body = serde_json::to_string(&body).unwrap_or_default();
            let answer = crate::control::post(&path, &body, csrf)
                .await
                .and_then(|text| {
                    serde_json::from_str::<BulkOutcome>(&text).map_err(|e| e.to_string())
                });
            phase.set(match answer {
                Ok(o) if o.dry_run && o.matched > 0 => Phase::Confirm(o.matched),
                Ok(o) => Phase::Done(o),
                Err(e) => Phase::Failed(e),
            });
        });
    };
    let count = move || {
        phase.set(Phase::Counting);
        send(true);
    };
    if start {
        Effect::new(move |_| count());
    }
    let described = move || {
        let f = filter.get();
        let mut parts = Vec::new();
        if let Some(s) = f.status {
            parts.push(format!("status {}", s.as_str()));
        }
        if let Some(s) = f.stage {
            parts.push(format!("stage {s}"));
        }
        if let Some(q) = f.q.filter(|q| !q.trim().is_empty()) {
            parts.push(format!("“{}”", q.trim()));
        }
        if parts.is_empty() {
            "no filter: every item".to_owned()
        } else {
            parts.join(", ")
        }
    };
    let body = move || {
        view! {
            <div class="bulk" data-testid=format!("bulk-{action}")>
                {move || match phase.get() {
                    Phase::Idle => view! {
                        <button class="btn" data-testid=format!("bulk-{action}-start") on:click=move |_| count()>
                            {format!("{verb} all {which} that match…")}
                        </button>
                    }.into_any(),
                    Phase::Counting => view! { <span class="muted">"Counting…"</span> }.into_any(),
                    Phase::Confirm(n) => view! {
                        <span role="alertdialog" data-testid="bulk-confirm">
                            {format!("{verb} {} {which} items that match ({})? ", format::count(n), described())}
                            <button class="btn danger" data-testid="bulk-yes" on:click=move |_| {
                                phase.set(Phase::Running(n));
                                send(false);
                            }>{format!("{verb} {}", format::count(n))}</button>
                            " "
                            <button class="btn" data-testid="bulk-no" on:click=move |_| phase.set(Phase::Idle)>"Keep them"</button>
                        </span>
                    }.into_any(),
                    Phase::Running(n) => view! {
                        <span class="muted" role="status" data-testid="bulk-running">
                            {format!("{doing} {} items…", format::count(n))}
                        </span>
                    }.into_any(),
                    Phase::Done(o) => view! { <BulkDone o verb=doing.to_owned() which/> }.into_any(),
                    Phase::Failed(e) => view! {
                        <span class="error" role="alert" data-testid="bulk-error">{e}</span>
                    }.into_any(),
                }}
                {move || matches!(phase.get(), Phase::Done(_) | Phase::Failed(_)).then(|| view! {
                    " " <button class="btn" on:click=move |_| phase.set(Phase::Idle)>"Done"</button>
                })}
            </div>
    }
    .into_any()
    };
    // The body is erased (`into_any`): as one type, the page runs past the compiler's
    // query depth in the browser build.
    view! { <Show when=move || live.viewer().can_control>{body()}</Show> }
}

/// Skipped items shown by name; the count covers the rest.
const SHOWN_SKIPS: usize = 20;

/// What a bulk action did: the counts, and the items skipped with why.
#[component]
fn BulkDone(o: BulkOutcome, verb: String, which: &'static str) -> impl IntoView {
    let said = if o.matched == 0 {
        format!("Nothing {which} matches.")
    } else {
        format!(
            "{} of {} {which} items{}.",
            format::count(o.acted),
            format::count(o.matched),
            if verb.starts_with("Retry") {
                " go back into their queues"
            } else {
                " cancelled"
            },
        )
    };
    let more = o
        .skipped_count
        .saturating_sub(SHOWN_SKIPS.min(o.skipped.len()) as u64);
    view! {
        <span role="status" data-testid="bulk-done" data-acted=o.acted.to_string() data-skipped=o.skipped_count.to_string()>
            {said}
        </span>
        {(o.skipped_count > 0).then(|| view! {
            <details data-testid="bulk-skipped">
                <summary>{format!("{} skipped", format::count(o.skipped_count))}</summary>
                <ul>
                    {o.skipped.into_iter().take(SHOWN_SKIPS).map(|s| view! {
                        <li><a href=super::task_href(s.id)>{format!("#{}", s.id)}</a>{format!(": {}", s.why)}</li>
                    }).collect_view()}
                    {(more > 0).then(|| view! { <li class="muted">{format!("and {} more", format::count(more))}</li> })}
                </ul>
            </details>
        })}
    }
}

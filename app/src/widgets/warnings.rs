//! Health warnings on the pages: the overview's panel (and a stored run's), the badge in
//! the top bar, and the banner on an affected item's page. The rules are the runtime's
//! (`flowdeck_runtime::warnings`); these only show what the snapshot carries.

use flowdeck_protocol::{ItemId, Warning};
use leptos::prelude::*;

use crate::{format, live::use_live, pages::task_href};

/// Warnings firing (oldest first), then recently cleared ones, greyed. `clock` is the
/// run's start (Unix ms) and now (ms of uptime), to show times.
#[component]
pub(crate) fn WarningList(warnings: Vec<Warning>, clock: (u64, u64)) -> impl IntoView {
    if warnings.is_empty() {
        return view! {
            <p class="muted" data-testid="no-warnings">
                "No health warnings: no stuck item, stalled worker, starved stage, retry storm, \
                 growing queue, lost item or blocked runtime."
            </p>
        }
        .into_any();
    }
    let (started, now) = clock;
    view! {
        <ul class="warnings" data-testid="warnings">
            {warnings
                .into_iter()
                .map(|w| {
                    let state = if w.firing() { "firing" } else { "cleared" };
                    let when = match w.cleared_ms {
                        None => format!(
                            "since {} ({})",
                            format::clock(started + w.first_seen_ms),
                            format::ago(now.saturating_sub(w.first_seen_ms))
                        ),
                        Some(c) => format!(
                            "{} to {}, cleared",
                            format::clock(started + w.first_seen_ms),
                            format::clock(started + c)
                        ),
                    };
                    let place = match (&w.stage, w.worker) {
                        (Some(s), Some(n)) => format!(" at {s}-{n}"),
                        (Some(s), None) => format!(" at {s}"),
                        _ => String::new(),
                    };
                    let stalled = w.firing() && w.rule == flowdeck_protocol::Rule::StalledWorker;
                    view! {
                        <li class="warning" data-state=state data-rule=w.rule.name()
                            data-stage=w.stage.clone().unwrap_or_default()>
                            <strong>{w.rule.title()}</strong>
                            {place}
                            " "
                            <span class="muted">{when}</span>
                            <p class="message">{w.message}</p>
                            {stalled.then(|| view! {
                                <p><a href=crate::scope::href("/workers#restart") data-testid="restart-link">"Restart the worker"</a></p>
                            })}
                            {(!w.items.is_empty()).then(|| view! {
                                <p>
                                    "Items: "
                                    {w.items.iter().map(|&id| view! {
                                        <a href=task_href(id)>{format!("#{id}")}</a> " "
                                    }).collect_view()}
                                </p>
                            })}
                        </li>
                    }
                })
                .collect_view()}
        </ul>
    }
    .into_any()
}

/// The number of warnings firing, in the top bar, linking to the overview's panel;
/// nothing while every rule is quiet. Live: it comes with each stream frame.
#[component]
pub(crate) fn WarningsBadge() -> impl IntoView {
    let live = use_live();
    let firing = move || {
        live.with(|s| {
            s.snapshot
                .warnings
                .iter()
                .filter(|w| w.firing())
                .map(|w| w.message.clone())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
    };
    view! {
        <Suspense fallback=|| ()>
            {move || {
                let firing = firing();
                let n = firing.len();
                (n > 0).then(|| view! {
                    <a class="badge" data-state="warning" href=crate::scope::href("/#warnings") data-testid="warnings-badge"
                        title=firing.join("\n")>
                        {if n == 1 { "1 warning".to_owned() } else { format!("{n} warnings") }}
                    </a>
                })
            }}
        </Suspense>
    }
}

/// The warnings firing about item `id`, on its page (a stuck item, a stalled worker's
/// item).
#[component]
pub(crate) fn ItemWarnings(id: ItemId) -> impl IntoView {
    let live = use_live();
    let about = move || {
        live.with(|s| {
            s.snapshot
                .warnings
                .iter()
                .filter(|w| w.firing() && w.items.contains(&id))
                .map(|w| format!("{}: {}", w.rule.title(), w.message))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
    };
    view! {
        <Suspense fallback=|| ()>
            {move || about().into_iter().map(|text| view! {
                <p class="warning-box" role="alert" data-testid="item-warning">{text}</p>
            }).collect_view()}
        </Suspense>
    }
}

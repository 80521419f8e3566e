//! Errors `/errors`: failures grouped by error type and by stage, and the failed items.

use flowdeck_protocol::stream::LiveState;
use leptos::prelude::*;

use super::{Columns, FailureList, LivePage};
use crate::format;

#[component]
pub fn Errors() -> impl IntoView {
    view! { <LivePage title="Errors" class="errors" content=errors/> }
}

/// Failed items listed here; the Tasks page lists them all, virtualized. Rebuilding a table
/// of a thousand rows at every frame made scrolling this page jank.
const SHOWN: usize = 50;

pub(crate) fn errors(state: &LiveState) -> impl IntoView {
    let e = &state.errors;
    let clock = (state.snapshot.started_unix_ms, state.snapshot.uptime_ms);
    let stages: Vec<String> = state
        .snapshot
        .stages
        .iter()
        .map(|s| s.name.clone())
        .collect();
    // Each group links to its failed items on the Tasks page, filtered so, with the
    // retry of all of them asked for (a confirmation shows the exact count first).
    let base = use_context::<super::TaskBase>().unwrap_or_default().0;
    let retry_href = |filter: String| {
        crate::scope::href(&format!("{base}/tasks?status=failed&{filter}&bulk=retry"))
    };
    // A kind the filter grammar cannot spell (a space, a leading `!`) gets no link.
    let by_kind = e
        .by_kind
        .iter()
        .map(|(kind, n)| {
            let href = (!kind.contains(' ') && !kind.starts_with('!') && !kind.is_empty())
                .then(|| retry_href(format!("q=kind:{}", super::filters::encode(kind))));
            (view! { <code>{kind.clone()}</code> }.into_any(), *n, href)
        })
        .collect();
    let by_stage = e
        .by_stage
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let name = stages.get(i).cloned().unwrap_or_default();
            let href = Some(retry_href(format!(
                "stage={}",
                super::filters::encode(&name)
            )));
            (name.into_any(), *n, href)
        })
        .collect();
    view! {
        <p data-testid="errors-total">
            <strong>{format::count(e.total)}</strong> " items failed for good · "
            {format::count(state.snapshot.totals.retried)} " attempts retried"
        </p>
        <div class="two-col">
            <ShareTable heading="By error type" column="Error" testid="errors-by-kind" rows=by_kind total=e.total/>
            <ShareTable heading="By stage" column="Stage" testid="errors-by-stage" rows=by_stage total=e.total/>
        </div>
        <h2>"Latest failed items"</h2>
        <p class="muted">
            {format!("The newest {} of {}; ", SHOWN.min(e.recent.len()), format::count(e.total))}
            <a href=crate::scope::href(&format!("{}/tasks?status=failed", use_context::<super::TaskBase>().unwrap_or_default().0)) data-testid="all-failed">"all failed items on the Tasks page"</a>
            "."
        </p>
        <FailureList failures=e.recent.iter().take(SHOWN).cloned().collect() stages clock/>
    }
}

/// One grouping of the failures: a row per key with its count and its share of the total.
#[component]
fn ShareTable(
    heading: &'static str,
    column: &'static str,
    testid: &'static str,
    rows: Vec<(AnyView, u64, Option<String>)>,
    total: u64,
) -> impl IntoView {
    let share = move |n: u64| {
        if total == 0 {
            0.0
        } else {
            n as f64 * 100.0 / total as f64
        }
    };
    view! {
        <div>
            <h2>{heading}</h2>
            <table class="grid" data-testid=testid>
                <Columns names=[column, "Items", "Share", "Act"]/>
                <tbody>
                    {rows.into_iter().map(|(label, n, href)| view! {
                        <tr>
                            <th scope="row">{label}</th>
                            <td>{format::count(n)}</td>
                            <td>{format!("{:.0}%", share(n))}</td>
                            <td>{href.filter(|_| n > 0).map(|h| view! {
                                <a href=h data-testid="retry-group">"Retry all…"</a>
                            })}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}

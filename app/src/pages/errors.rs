//! Errors `/errors`: failures grouped by error type and by stage, and the failed items.

use flowdeck_protocol::stream::LiveState;
use leptos::prelude::*;

use super::{FailureList, LivePage};
use crate::format;

#[component]
pub fn Errors() -> impl IntoView {
    view! { <LivePage title="Errors" class="errors" content=errors/> }
}

fn errors(state: &LiveState) -> impl IntoView {
    let e = &state.errors;
    let stages: Vec<String> = state
        .snapshot
        .stages
        .iter()
        .map(|s| s.name.clone())
        .collect();
    let share = |n: u64| {
        if e.total == 0 {
            0.0
        } else {
            n as f64 * 100.0 / e.total as f64
        }
    };
    view! {
        <p data-testid="errors-total">
            <strong>{format::count(e.total)}</strong> " items failed for good · "
            {format::count(state.snapshot.totals.retried)} " attempts retried"
        </p>
        <div class="two-col">
            <div>
                <h2>"By error type"</h2>
                <table class="grid" data-testid="errors-by-kind">
                    <thead><tr><th scope="col">"Error"</th><th scope="col">"Items"</th><th scope="col">"Share"</th></tr></thead>
                    <tbody>
                        {e.by_kind.iter().map(|(kind, n)| view! {
                            <tr>
                                <th scope="row"><code>{kind.clone()}</code></th>
                                <td>{format::count(*n)}</td>
                                <td>{format!("{:.0}%", share(*n))}</td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            </div>
            <div>
                <h2>"By stage"</h2>
                <table class="grid" data-testid="errors-by-stage">
                    <thead><tr><th scope="col">"Stage"</th><th scope="col">"Items"</th><th scope="col">"Share"</th></tr></thead>
                    <tbody>
                        {e.by_stage.iter().enumerate().map(|(i, n)| view! {
                            <tr>
                                <th scope="row">{stages.get(i).cloned().unwrap_or_default()}</th>
                                <td>{format::count(*n)}</td>
                                <td>{format!("{:.0}%", share(*n))}</td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            </div>
        </div>
        <h2>"Failed items"</h2>
        <FailureList failures=e.recent.clone() stages/>
    }
}

//! The Status widget: named health checks, each ok, warn or fail with a message, run by
//! the server every five seconds while the widget is on screen.

use std::time::Duration;

use flowdeck_protocol::page::StatusSpec;
use leptos::prelude::*;

use super::poll::ticker;
use crate::fetch::fetch_checks;

#[component]
pub(crate) fn StatusWidget(spec: StatusSpec) -> impl IntoView {
    let tick = ticker(Duration::from_secs(5));
    let names = spec.checks.clone();
    let results = Resource::new(move || tick.get(), move |_| fetch_checks(names.clone()));
    view! {
        <Transition fallback=|| view! { <p class="muted">"…"</p> }>
            {move || results.get().map(|r| match r {
                Ok(checks) => view! {
                    <ul class="checks">
                        {checks.into_iter().map(|c| view! {
                            <li class="check" data-health=c.health.as_str() data-testid="check">
                                <span class="dot" aria-hidden="true"></span>
                                <b>{c.name}</b>
                                <span class="check-health">{c.health.as_str()}</span>
                                <span class="muted">{c.message}</span>
                            </li>
                        }).collect_view()}
                    </ul>
                }.into_any(),
                Err(e) => view! { <p class="error" role="alert">{format!("cannot reach the server: {e}")}</p> }.into_any(),
            })}
        </Transition>
    }
}

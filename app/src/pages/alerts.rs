//! Alerts `/alerts`: each configured alert (what fires it, where it goes by scheme and
//! host only, whether it signs, how it groups and retries), what it has delivered since
//! the process started and dropped from its full queue, and its last deliveries (kept in
//! the run store, so they outlive a restart); for admins, a button that sends it a test
//! event, whose delivery then shows in its list. Read again after an action from this page
//! and about once a second while the stream runs.

use flowdeck_protocol::alerts::{AlertInfo, Delivery, Outcome};
use leptos::prelude::*;

use crate::{control, fetch::fetch_alerts, format, live::use_live, pages::Columns};

#[component]
pub fn Alerts() -> impl IntoView {
    let live = use_live();
    let list = Resource::new(
        move || (control::actions_sent(), live.received.get() / 4),
        |_| fetch_alerts(),
    );
    view! {
        <section class="alerts">
            <div class="page-head"><h1>"Alerts"</h1></div>
            <control::ControlError/>
            <Transition fallback=|| view! { <p class="muted">"Loading the alerts…"</p> }>
                {move || list.get().map(|r| match r {
                    Ok(alerts) if alerts.is_empty() => view! {
                        <p class="muted" data-testid="no-alerts">
                            "No alerts are configured: add "<code>"[[alerts]]"</code>" to the config file, or "
                            <code>"Dashboard::alert"</code>" in Rust (docs/alerts.md)."
                        </p>
                    }
                    .into_any(),
                    Ok(alerts) => alerts.into_iter().map(|a| view! { <AlertCard a/> }).collect_view().into_any(),
                    Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                })}
            </Transition>
        </section>
    }
}

#[component]
fn AlertCard(a: AlertInfo) -> impl IntoView {
    let live = use_live();
    let on: Vec<&str> = a.on.iter().map(|o| o.as_str()).collect();
    // "more than 20 timeout failures at enrich within 5m 00s"
    let threshold = a.failures.map(|f| {
        let kind = f.kind.map(|k| format!("{k} ")).unwrap_or_default();
        let stage = f.stage.map(|s| format!(" at {s}")).unwrap_or_default();
        format!(
            "; failures: more than {} {kind}failures{stage} within {}",
            f.over,
            format::uptime(f.within_secs * 1000)
        )
    });
    let test = format!("/api/v1/alerts/{}/test", a.name);
    let name = a.name.clone();
    let id = format!("alert-{name}");
    view! {
        <article class="card alert" data-testid=id>
            <div class="page-head">
                <h2>{a.name}</h2>
                <Show when=move || live.viewer().can_control>
                    <button class="btn" data-testid=format!("test-{name}")
                        on:click={
                            let test = test.clone();
                            move |_| control::send(test.clone(), "{}".to_owned())
                        }>"Send a test"</button>
                </Show>
            </div>
            <p>
                <code>{a.format.as_str()}</code>" to "<code>{a.to}</code>
                {if a.signed { ", signed" } else { ", not signed" }}
            </p>
            <p class="muted">
                {format!(
                    "On {}{}; repeats within {} grouped into one message; {}.",
                    on.join(", "),
                    threshold.unwrap_or_default(),
                    format::uptime(a.throttle_secs * 1000),
                    if a.tries == 1 { "one try".to_owned() } else { format!("up to {} tries", a.tries) }
                )}
            </p>
            <p data-testid="alert-counts">
                {format!(
                    "Since the dashboard started: {} delivered, {} failed, {} dropped (queue full).",
                    format::count(a.sent.delivered),
                    format::count(a.sent.failed),
                    format::count(a.dropped)
                )}
            </p>
            <Deliveries list=a.last/>
        </article>
    }
}

/// An alert's last deliveries, newest first.
#[component]
fn Deliveries(list: Vec<Delivery>) -> impl IntoView {
    if list.is_empty() {
        return view! { <p class="muted">"Nothing sent yet."</p> }.into_any();
    }
    view! {
        <table class="grid" data-testid="deliveries">
            <Columns names=["When", "Event", "Outcome", "Answer", "Tries"]/>
            <tbody>
                {list.into_iter().map(|d| {
                    let answer = match (d.status, d.error) {
                        (Some(code), _) => code.to_string(),
                        (None, Some(e)) => e,
                        (None, None) => String::new(),
                    };
                    let event = if d.events > 1 {
                        format!("{} (+{} grouped)", d.event, d.events - 1)
                    } else {
                        d.event
                    };
                    view! {
                        <tr data-outcome=d.outcome.as_str()>
                            <td>{format::clock(d.at_unix_ms)}</td>
                            <td>{event}</td>
                            <td class=if d.outcome == Outcome::Delivered { "ok" } else { "error" }>{d.outcome.as_str()}</td>
                            <td>{answer}</td>
                            <td>{d.tries}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}

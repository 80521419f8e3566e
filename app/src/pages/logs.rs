//! Logs `/logs`: the records the server captured from `tracing`, newest first, filtered by
//! level, source (a glob such as `enrich-*`) and text. While following, the page asks for
//! the newest records every second; paused, it holds still.

use flowdeck_protocol::logs::{LogFilter, LogRecord};
use leptos::prelude::*;

use crate::{format, live::fetch_logs};

/// Lines the page may show.
const MAX_LINES: [usize; 4] = [100, 200, 500, 1000];

#[component]
pub fn Logs() -> impl IntoView {
    let level = RwSignal::new(String::from("info"));
    let source = RwSignal::new(String::new());
    let text = RwSignal::new(String::new());
    let lines = RwSignal::new(200usize);
    let follow = RwSignal::new(true);
    let tick = RwSignal::new(0u64);
    // Once a second while following (effects run in the browser only).
    Effect::new(move |_| {
        let _ = set_interval_with_handle(
            move || {
                if follow.get_untracked() {
                    tick.update(|t| *t += 1);
                }
            },
            std::time::Duration::from_secs(1),
        );
    });
    let records = Resource::new(
        move || {
            (
                level.get(),
                source.get(),
                text.get(),
                lines.get(),
                tick.get(),
            )
        },
        |(level, source, text, lines, _)| {
            let some = |s: String| (!s.trim().is_empty()).then(|| s.trim().to_owned());
            fetch_logs(LogFilter {
                level: Some(level),
                source: some(source),
                q: some(text),
                since: None,
                limit: Some(lines),
            })
        },
    );
    let input = |signal: RwSignal<String>| move |ev| signal.set(event_target_value(&ev));
    view! {
        <section class="logs">
            <div class="page-head">
                <h1>"Logs"</h1>
                <button
                    class="btn"
                    data-testid="log-follow"
                    aria-pressed=move || (!follow.get()).to_string()
                    on:click=move |_| follow.update(|f| *f = !*f)
                >
                    {move || if follow.get() { "Pause" } else { "Follow" }}
                </button>
            </div>
            <div class="filters">
                <label>"Level "
                    <select data-testid="log-level" on:change=input(level) prop:value=move || level.get()>
                        {["error", "warn", "info", "debug", "trace"].map(|l| view! { <option value=l>{l}</option> })}
                    </select>
                </label>
                <label>"Source "
                    <input data-testid="log-source" placeholder="enrich-*" on:input=input(source) prop:value=move || source.get()/>
                </label>
                <label>"Search "
                    <input data-testid="log-text" type="search" on:input=input(text) prop:value=move || text.get()/>
                </label>
                <label>"Lines "
                    <select on:change=move |ev| lines.set(event_target_value(&ev).parse().unwrap_or(200))>
                        {MAX_LINES.map(|n| view! { <option value=n.to_string() selected=n == 200>{n.to_string()}</option> })}
                    </select>
                </label>
            </div>
            <Transition fallback=|| view! { <p class="muted">"Loading the logs…"</p> }>
                {move || records.get().map(|r| match r.map_err(|e| e.to_string()).and_then(|inner| inner) {
                    Ok(page) if page.records.is_empty() => view! { <p class="muted">"No records match."</p> }.into_any(),
                    Ok(page) => view! { <LogLines records=page.records/> }.into_any(),
                    Err(e) => view! { <p class="error" role="alert" data-testid="log-error">{e}</p> }.into_any(),
                })}
            </Transition>
        </section>
    }
}

#[component]
fn LogLines(records: Vec<LogRecord>) -> impl IntoView {
    view! {
        <ol class="log-lines" data-testid="log-lines">
            {records.into_iter().rev().map(|r| {
                let level = r.level.clone();
                let fields = r.fields.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
                view! {
                    <li class="log-line" data-level=level data-testid="log-row">
                        <time>{format::clock(r.at_unix_ms)}</time>
                        <span class="level">{r.level}</span>
                        <span class="source">{r.source}</span>
                        <span class="message">{r.message}</span>
                        <span class="fields muted">{fields}</span>
                    </li>
                }
            }).collect_view()}
        </ol>
    }
}

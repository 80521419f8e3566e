//! Captured log records, newest last, filtered by level, source (a glob such as
//! `enrich-*`) and text. While following, the view asks for the newest records every
//! second; paused, it holds still. The Logs page and the Log widget are both this view.

use std::time::Duration;

use flowdeck_protocol::{
    logs::{LogFilter, LogRecord},
    page::{LogSpec, LEVELS},
};
use leptos::prelude::*;

use super::poll::ticker;
use crate::{format, live::fetch_logs};

/// Lines the view may show.
const MAX_LINES: [usize; 5] = [50, 100, 200, 500, 1000];

/// The filters start from `spec`; `heading` puts the title in an `<h1>` (the Logs page).
#[component]
pub(crate) fn LogView(spec: LogSpec, #[prop(optional)] heading: bool) -> impl IntoView {
    let level = RwSignal::new(spec.level.clone());
    let source = RwSignal::new(spec.source.clone().unwrap_or_default());
    let text = RwSignal::new(spec.text.clone().unwrap_or_default());
    let lines = RwSignal::new(spec.lines);
    let follow = RwSignal::new(true);
    let tick = ticker(Duration::from_secs(1));
    // Paused, the tick stops counting for this view: the records stay as they are.
    let refresh = Memo::new(move |prev: Option<&u64>| {
        let now = tick.get();
        if follow.get() {
            now
        } else {
            prev.copied().unwrap_or(now)
        }
    });
    let records = Resource::new(
        move || {
            (
                level.get(),
                source.get(),
                text.get(),
                lines.get(),
                refresh.get(),
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
    let mut choices: Vec<usize> = MAX_LINES.to_vec();
    if !choices.contains(&spec.lines) {
        choices.push(spec.lines);
        choices.sort_unstable();
    }
    let title = spec.title.clone();
    view! {
        <div class="page-head">
            {heading.then(|| view! { <h1>{title}</h1> })}
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
                    {LEVELS.map(|l| view! { <option value=l selected=l == spec.level>{l}</option> })}
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
                    {choices.into_iter().map(|n| view! { <option value=n.to_string() selected=n == spec.lines>{n.to_string()}</option> }).collect_view()}
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
    }
}

#[component]
fn LogLines(records: Vec<LogRecord>) -> impl IntoView {
    view! {
        <ol class="log-lines" data-testid="log-lines" tabindex="0" aria-label="Log records">
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

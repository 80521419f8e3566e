//! Captured log records, newest last, filtered by level, source (a glob such as
//! `enrich-*`) and text. The server renders the newest records; in the browser, while
//! following, the view rides `/api/v1/logs/stream`, which pushes each record as it is
//! captured; paused, it closes the stream and holds still. Changing a filter reads the
//! matching records again, paused or not. The Logs page and the Log widget are both this
//! view.

use flowdeck_protocol::{
    logs::{LogFilter, LogRecord},
    page::{LogSpec, LEVELS},
};
use leptos::prelude::*;

use crate::{fetch::fetch_logs, format};

/// Lines the view may show.
const MAX_LINES: [usize; 5] = [50, 100, 200, 500, 1000];

/// The filters as the view holds them.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Filters {
    level: String,
    source: String,
    text: String,
    lines: usize,
}

impl Filters {
    fn to_filter(&self) -> LogFilter {
        let some = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
        LogFilter {
            level: Some(self.level.clone()),
            source: some(&self.source),
            q: some(&self.text),
            since: None,
            limit: Some(self.lines),
        }
    }
}

/// Joins records that arrived to the ones shown: only those newer than the newest shown
/// (a reconnected stream starts over with records the view has), keeping the last `lines`.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
fn join(shown: &mut Vec<LogRecord>, arrived: Vec<LogRecord>, lines: usize) {
    let newest = shown.last().map_or(0, |r| r.seq);
    shown.extend(arrived.into_iter().filter(|r| r.seq > newest));
    let extra = shown.len().saturating_sub(lines);
    shown.drain(..extra);
}

/// The filters start from `spec`; `heading` puts the title in an `<h1>` (the Logs page).
#[component]
pub(crate) fn LogView(spec: LogSpec, #[prop(optional)] heading: bool) -> impl IntoView {
    let level = RwSignal::new(spec.level.clone());
    let source = RwSignal::new(spec.source.clone().unwrap_or_default());
    let text = RwSignal::new(spec.text.clone().unwrap_or_default());
    let lines = RwSignal::new(spec.lines);
    let follow = RwSignal::new(true);
    let filters = Memo::new(move |_| Filters {
        level: level.get(),
        source: source.get(),
        text: text.get(),
        lines: lines.get(),
    });
    // What the server renders, and what a filter change reads again (with the filters it
    // was read for).
    let first = Resource::new(
        move || filters.get(),
        |f| async move {
            let answer = fetch_logs(f.to_filter())
                .await
                .map_err(|e| e.to_string())
                .and_then(|inner| inner)
                .map(|page| page.records);
            (f, answer)
        },
    );
    // What the stream has brought since; `None` until it says anything.
    let streamed = RwSignal::new(None::<Result<Vec<LogRecord>, String>>);
    // While following, the stream's first event replaces the list (a read answered late
    // must not undo what the stream has joined since); paused, a filter change does, and
    // so does a filter's error.
    Effect::new(move |_| {
        if let Some((_, r)) = first.get() {
            if r.is_ok() && follow.get_untracked() && streamed.with_untracked(Option::is_some) {
                return;
            }
            streamed.set(Some(r));
        }
    });
    // The stream opens once the server has taken the filters (a refused filter would
    // make the browser log a failed request), and closes when they change or on pause.
    Effect::new(move |_| {
        if let (Some((f, Ok(_))), true) = (first.get(), follow.get()) {
            stream::follow(&f, streamed);
        }
    });
    let records = move || streamed.get().or_else(|| first.get().map(|(_, r)| r));
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
            {move || records().map(|r| match r {
                Ok(records) if records.is_empty() => view! { <p class="muted">"No records match."</p> }.into_any(),
                Ok(records) => view! { <LogLines records/> }.into_any(),
                Err(e) => view! { <p class="error" role="alert" data-testid="log-error">{e}</p> }.into_any(),
            })}
        </Transition>
    }
}

#[cfg(feature = "hydrate")]
mod stream {
    //! The browser's side of `/api/v1/logs/stream`: one EventSource per view while it
    //! follows, closed when the filters change, the view pauses or goes away.

    use flowdeck_protocol::logs::{LogPage, LogRecord};
    use leptos::prelude::*;
    use send_wrapper::SendWrapper;
    use wasm_bindgen::{closure::Closure, JsCast};
    use web_sys::{EventSource, MessageEvent};

    use super::{join, Filters};

    fn url(f: &Filters) -> String {
        let filter = f.to_filter();
        let mut params = vec![format!("limit={}", f.lines)];
        for (key, value) in [
            ("level", filter.level),
            ("source", filter.source),
            ("q", filter.q),
        ] {
            if let Some(v) = value {
                params.push(format!("{key}={}", js_sys::encode_uri_component(&v)));
            }
        }
        crate::scope::href(&format!("/api/v1/logs/stream?{}", params.join("&")))
    }

    /// Opens the stream for `f`; its first event replaces what is shown, later ones join it.
    /// Runs inside an effect, whose next run (or disposal) closes it.
    pub(super) fn follow(f: &Filters, shown: RwSignal<Option<Result<Vec<LogRecord>, String>>>) {
        let Ok(source) = EventSource::new(&url(f)) else {
            return;
        };
        let lines = f.lines;
        let mut first = true;
        let on_logs = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
            let data = e.data().as_string().unwrap_or_default();
            let Ok(page) = serde_json::from_str::<LogPage>(&data) else {
                return;
            };
            if std::mem::take(&mut first) {
                shown.set(Some(Ok(page.records)));
            } else {
                shown.update(|s| match s {
                    Some(Ok(records)) => join(records, page.records, lines),
                    other => *other = Some(Ok(page.records)),
                });
            }
        });
        let _ = source.add_event_listener_with_callback("logs", on_logs.as_ref().unchecked_ref());
        let open = SendWrapper::new((source, on_logs));
        on_cleanup(move || open.0.close());
    }
}

#[cfg(not(feature = "hydrate"))]
mod stream {
    //! The server renders once; it follows nothing.

    use flowdeck_protocol::logs::LogRecord;
    use leptos::prelude::*;

    use super::Filters;

    pub(super) fn follow(_f: &Filters, _shown: RwSignal<Option<Result<Vec<LogRecord>, String>>>) {}
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64) -> LogRecord {
        LogRecord {
            seq,
            at_unix_ms: 0,
            level: "info".into(),
            source: "s".into(),
            message: format!("m{seq}"),
            fields: vec![],
        }
    }

    #[test]
    fn joined_records_skip_what_is_shown_and_keep_the_newest() {
        let mut shown = vec![record(1), record(2)];
        // A reconnected stream sends 2 again.
        join(&mut shown, vec![record(2), record(3), record(4)], 3);
        let seqs: Vec<u64> = shown.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [2, 3, 4]);
    }
}

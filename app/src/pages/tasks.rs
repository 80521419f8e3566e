//! Tasks `/tasks`: every retained item, filtered by status, stage and text, newest first.
//!
//! Only the rows in view are in the DOM: the list is a tall empty box with the visible
//! slice positioned inside it, so 100,000 items cost the same to draw as 30. And only the
//! rows around them come over the stream: the page subscribes to a window of the list
//! (`flowdeck_protocol::window`), moved as it scrolls or filters.

use flowdeck_protocol::{
    filter::{BulkRequest, TaskFilter},
    window::{Tab, Window, WindowQuery},
    ItemStatus,
};
use leptos::prelude::*;

use crate::{format, live::use_live};

/// Row height in pixels; the CSS gives `.vrow` the same.
const ROW_H: f64 = 32.0;
/// Height of the scrolling box, in pixels.
const VIEW_H: f64 = 576.0;
/// Rows drawn beyond the visible ones, so fast scrolling shows no gaps.
const OVERSCAN: usize = 8;
/// Rows subscribed to beyond the drawn ones on each side: the window moves (a new
/// subscription) only after scrolling this far.
const MARGIN: u64 = 60;

/// The bulk action's filter for what the page lists: the tab as a status (Active is
/// running or retrying: neither queued nor waiting), the stage, the search box.
fn bulk_request(tab: Tab, stage: Option<&str>, text: &str) -> BulkRequest {
    let (status, extra) = match tab {
        Tab::Queued => (Some(ItemStatus::Queued), ""),
        Tab::Waiting => (Some(ItemStatus::Waiting), ""),
        Tab::Completed => (Some(ItemStatus::Completed), ""),
        Tab::Active => (None, " -status:queued -status:waiting"),
        // A retry takes failed items, a cancel unfinished ones: both within these.
        Tab::All | Tab::Failed => (None, ""),
    };
    let q = format!("{}{extra}", text.trim());
    BulkRequest {
        status,
        stage: stage.map(str::to_owned),
        q: (!q.trim().is_empty()).then(|| q.trim().to_owned()),
        dry_run: false,
    }
}

/// The filters in the address bar, so that a filtered list can be shared and reloaded:
/// `?status=failed&stage=enrich&q=kind:timeout`. Replaced, not pushed: Back leaves the
/// page rather than stepping through every key typed.
#[cfg(feature = "hydrate")]
fn show_in_address(tab: Tab, stage: Option<&str>, text: &str) {
    let mut query = Vec::new();
    if tab != Tab::All {
        query.push(format!("status={}", tab.label().to_lowercase()));
    }
    if let Some(s) = stage {
        query.push(format!("stage={}", super::filters::encode(s)));
    }
    if !text.is_empty() {
        query.push(format!("q={}", super::filters::encode(text)));
    }
    let window = web_sys::window();
    let Some(path) = window.as_ref().and_then(|w| w.location().pathname().ok()) else {
        return;
    };
    let url = if query.is_empty() {
        path
    } else {
        format!("{path}?{}", query.join("&"))
    };
    if let Some(history) = window.and_then(|w| w.history().ok()) {
        let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&url));
    }
}

#[component]
pub fn Tasks() -> impl IntoView {
    let live = use_live();
    // `/tasks?status=failed&stage=enrich&q=kind:timeout` opens filtered so (the Errors
    // page links there); `bulk=retry` opens that action's confirmation too.
    let query = leptos_router::hooks::use_query_map();
    let param = |name: &str| query.with_untracked(|q| q.get(name));
    let initial = param("status")
        .and_then(|s| Tab::named(&s))
        .unwrap_or(Tab::All);
    let tab = RwSignal::new(initial);
    let stage = RwSignal::new(None::<u16>);
    let text = RwSignal::new(param("q").unwrap_or_default());
    let wanted_stage = param("stage");
    let start = RwSignal::new(param("bulk"));
    let scroll = RwSignal::new(0.0_f64);

    // The pipeline's start and its clock now, for event times and their "ago".
    let clock = Memo::new(move |_| {
        live.with(|s| (s.snapshot.started_unix_ms, s.snapshot.uptime_ms))
            .unwrap_or_default()
    });
    let stages = Memo::new(move |_| {
        live.with(|s| {
            s.snapshot
                .stages
                .iter()
                .map(|s| s.name.clone())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
    });
    // The stage the address names, once the stream has said which stages there are.
    if let Some(name) = wanted_stage {
        Effect::new(move |done: Option<bool>| {
            if done == Some(true) {
                return true;
            }
            let found = stages.with(|s| s.iter().position(|n| *n == name));
            if let Some(i) = found {
                stage.set(u16::try_from(i).ok());
            }
            found.is_some()
        });
    }
    let stage_name = move || {
        stage
            .get()
            .and_then(|i| stages.with(|s| s.get(usize::from(i)).cloned()))
    };
    let filter = Memo::new(move |_| {
        stages.with(|names| TaskFilter::parse(&text.get(), names).map_err(|e| e.to_string()))
    });
    let filter_ok = Memo::new(move |_| filter.with(Result::is_ok));
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| show_in_address(tab.get(), stage_name().as_deref(), &text.get()));
    let bulk =
        Signal::derive(move || bulk_request(tab.get(), stage_name().as_deref(), &text.get()));
    // The window in view: rows `first .. first + n` of the filtered list.
    let in_view = move || {
        let first = ((scroll.get() / ROW_H) as usize).saturating_sub(OVERSCAN) as u64;
        (first, ((VIEW_H / ROW_H) as usize + 2 * OVERSCAN) as u64)
    };
    // What the filters ask for, wherever the window lies (`None` while the search box does
    // not parse: the list keeps the last one).
    let asked = Memo::new(move |_| {
        filter_ok.get().then(|| WindowQuery {
            tab: tab.get(),
            stage: stage_name(),
            q: text.get().trim().to_owned(),
            from: 0,
            count: 1,
        })
    });
    // The newest window the stream sent; until the stream is open (rendered on the server
    // and hydrated), the one the first picture's rows give, computed the same way.
    // Parsed once per window the stream sends, not at every frame (4 a second, most of
    // them without a new window): the text last parsed is kept beside what it gave.
    let parsed = StoredValue::new((String::new(), None::<Window>));
    let window = Memo::new(move |_| {
        let sent = live.with_window(|json| {
            let json = json?;
            parsed.update_value(|(text, w)| {
                if text != json {
                    *w = serde_json::from_str::<Window>(json).ok();
                    json.clone_into(text);
                }
            });
            parsed.with_value(|(_, w)| w.clone())
        });
        let streaming = live.connection.get_untracked() != crate::live::Connection::Static;
        sent.or_else(|| {
            if streaming {
                return None;
            }
            let q = asked.get_untracked().unwrap_or_default();
            let (first, n) = untrack(in_view);
            let q = WindowQuery {
                from: first,
                count: n as u32,
                ..q
            };
            live.with(|s| s.window(&q).ok()).flatten()
        })
    });
    // The window for the filters now: `None` until the stream answers a change of them,
    // and an empty one while the search box does not parse (it finds nothing).
    let current = move || match asked.get() {
        None => Some(Window::default()),
        Some(a) => window.get().filter(|w| a.same_filter(&w.query)),
    };
    // Moves the subscription when the filters change or the rows in view leave it.
    Effect::new(move |subscribed: Option<Option<WindowQuery>>| {
        let subscribed = subscribed.flatten();
        let Some(q) = asked.get() else {
            return subscribed;
        };
        let (first, n) = in_view();
        let matched = window.with_untracked(|w| w.as_ref().map_or(0, |w| w.matched));
        if subscribed
            .as_ref()
            .is_some_and(|s| s.same_filter(&q) && s.covers(first, n, matched))
        {
            return subscribed;
        }
        let q = WindowQuery {
            from: first.saturating_sub(MARGIN),
            count: (n + 2 * MARGIN) as u32,
            ..q
        };
        crate::live::want_window(Some(q.to_query()));
        Some(q)
    });
    on_cleanup(|| crate::live::want_window(None));
    let total = move || current().map(|w| w.matched);
    // Per tab, from the window's counts of every retained item.
    let counts = Memo::new(move |_| {
        window.with(|w| {
            w.as_ref()
                .map(|w| Tab::ALL.map(|t| w.tab_count(t)))
                .unwrap_or_default()
        })
    });

    let visible = move || {
        let (first, n) = in_view();
        let Some(w) = current() else {
            return (first, Vec::new());
        };
        // Scrolled past what the window holds: its rows from where it starts, until the
        // next one comes.
        let start = first.max(w.query.from);
        let rows = w.rows_at(start, (first + n).saturating_sub(start)).to_vec();
        (start, rows)
    };

    // Erased (`into_any`): as one type with the rest, the page runs past the compiler's
    // query depth in the browser build.
    let actions = view! {
            {move || filter.get().err().map(|why| view! {
            <p class="error" role="alert" data-testid="filter-error">{why}</p>
        }.into_any())}
        // Built again only when the tab changes or the filter starts or stops parsing;
        // a bulk action forgets its count by itself when the filter changes.
        {move || filter_ok.get().then(|| {
            let tab = tab.get();
            // The address's `bulk=` opens its confirmation once, on arrival.
            let opened = untrack(|| start.get());
            if opened.is_some() {
                start.set(None);
            }
            let start = opened;
            view! {
                <div class="bulk-actions">
                    {matches!(tab, Tab::All | Tab::Failed).then(|| view! {
                        <super::BulkAction action="retry" filter=bulk start=start.as_deref() == Some("retry")/>
                    }.into_any())}
                    {matches!(tab, Tab::All | Tab::Queued | Tab::Active | Tab::Waiting).then(|| view! {
                        <super::BulkAction action="cancel" filter=bulk start=start.as_deref() == Some("cancel")/>
                    }.into_any())}
                </div>
            }
            .into_any()
        })}
    }
    .into_any();
    view! {
        <section class="tasks">
            <div class="page-head"><h1>"Tasks"</h1></div>
            <super::FilterBar
                tabs=Signal::stored(Tab::ALL.iter().map(|&t| (t, t.label())).collect::<Vec<_>>())
                selected=tab
                count=Callback::new(move |t: Tab| {
                    let i = Tab::ALL.iter().position(|&x| x == t).unwrap_or_default();
                    format::count(counts.get()[i])
                })
                stages=stages
                stage
                text
                placeholder="words, kind:timeout, -stage:enrich"
                live_search=true
                on_change=Callback::new(move |()| scroll.set(0.0))
            >
                <span class="muted" data-testid="match-count">
                    {move || total().map_or_else(|| "…".to_owned(), |n| format!("{} items", format::count(n)))}
                </span>
            </super::FilterBar>
            {actions}
            <div class="vhead" role="presentation">
                <span>"Item"</span><span>"Status"</span><span>"Stage"</span>
                <span>"Attempts"</span><span>"Updated (UTC)"</span><span>"Error"</span>
            </div>
            <div
                class="vlist"
                data-testid="task-list"
                style=format!("height:{VIEW_H}px")
                on:scroll=move |ev| {
                    let el = event_target::<web_sys::HtmlElement>(&ev);
                    scroll.set(f64::from(el.scroll_top()));
                }
            >
                <div class="vspace" style=move || format!("height:{}px", total().unwrap_or_default() as f64 * ROW_H)>
                    {move || {
                        let (first, rows) = visible();
                        let names = stages.get();
                        let (started, now) = clock.get();
                        view! {
                            <div class="vslice" style=format!("transform:translateY({}px)", first as f64 * ROW_H)>
                                {rows.into_iter().map(|r| {
                                    let status = r.status().as_str();
                                    let stage = names.get(usize::from(r.stage())).cloned().unwrap_or_default();
                                    view! {
                                        <a class="vrow" href=crate::scope::href(&format!("/tasks/{}", r.id())) data-status=status data-testid="task-row">
                                            <span>{format!("#{}", r.id())}</span>
                                            <span class="status" data-status=status>{status}</span>
                                            <span>{stage}</span>
                                            <span>{r.attempts()}</span>
                                            {
                                                let (at, ago) = format::event_time(started, r.updated_us(), now);
                                                view! { <span title=ago>{at}</span> }
                                            }
                                            <span><code>{r.error_kind().unwrap_or_default().to_owned()}</code></span>
                                        </a>
                                    }
                                }).collect_view()}
                            </div>
                        }
                    }}
                </div>
            </div>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bulk_action_takes_what_the_page_lists() {
        let active = bulk_request(Tab::Active, Some("enrich"), " kind:x ");
        assert_eq!(active.status, None);
        assert_eq!(active.stage.as_deref(), Some("enrich"));
        assert_eq!(
            active.q.as_deref(),
            Some("kind:x -status:queued -status:waiting")
        );
        let queued = bulk_request(Tab::Queued, None, "");
        assert_eq!((queued.status, queued.q), (Some(ItemStatus::Queued), None));
    }
}

//! Tasks `/tasks`: every retained item, filtered by status, stage and text, newest first.
//!
//! Only the rows in view are in the DOM: the list is a tall empty box with the visible
//! slice positioned inside it, so 100,000 items cost the same to draw as 30.

use flowdeck_protocol::{stream::ItemRow, ItemStatus};
use leptos::prelude::*;

use crate::{format, live::use_live};

/// Row height in pixels; the CSS gives `.vrow` the same.
const ROW_H: f64 = 32.0;
/// Height of the scrolling box, in pixels.
const VIEW_H: f64 = 576.0;
/// Rows drawn beyond the visible ones, so fast scrolling shows no gaps.
const OVERSCAN: usize = 8;

/// The status tabs: Active groups running and retrying items.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tab {
    All,
    Queued,
    Active,
    Waiting,
    Completed,
    Failed,
}

impl Tab {
    const ALL: [Tab; 6] = [
        Tab::All,
        Tab::Queued,
        Tab::Active,
        Tab::Waiting,
        Tab::Completed,
        Tab::Failed,
    ];

    fn label(self) -> &'static str {
        match self {
            Tab::All => "All",
            Tab::Queued => "Queued",
            Tab::Active => "Active",
            Tab::Waiting => "Waiting",
            Tab::Completed => "Completed",
            Tab::Failed => "Failed",
        }
    }

    fn admits(self, s: ItemStatus) -> bool {
        match self {
            Tab::All => true,
            Tab::Queued => s == ItemStatus::Queued,
            Tab::Active => matches!(s, ItemStatus::Running | ItemStatus::Retrying),
            Tab::Waiting => s == ItemStatus::Waiting,
            Tab::Completed => s == ItemStatus::Completed,
            Tab::Failed => matches!(s, ItemStatus::Failed | ItemStatus::Cancelled),
        }
    }
}

/// Whether a row matches the filters. Text matches the id, the stage name or the error kind.
fn matches(row: &ItemRow, tab: Tab, stage: Option<u16>, text: &str, stages: &[String]) -> bool {
    if !tab.admits(row.status()) || stage.is_some_and(|s| s != row.stage()) {
        return false;
    }
    if text.is_empty() {
        return true;
    }
    let stage_name = stages
        .get(usize::from(row.stage()))
        .map_or("", String::as_str);
    row.id().to_string().contains(text)
        || stage_name.to_lowercase().contains(text)
        || row
            .error_kind()
            .is_some_and(|k| k.to_lowercase().contains(text))
}

#[component]
pub fn Tasks() -> impl IntoView {
    let live = use_live();
    // `/tasks?status=failed` opens on that tab (the Errors page links there).
    let initial = leptos_router::hooks::use_query_map()
        .with_untracked(|q| q.get("status"))
        .and_then(|s| {
            Tab::ALL
                .into_iter()
                .find(|t| t.label().eq_ignore_ascii_case(&s))
        })
        .unwrap_or(Tab::All);
    let tab = RwSignal::new(initial);
    let stage = RwSignal::new(None::<u16>);
    let text = RwSignal::new(String::new());
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
    // The matching ids, newest first (ids only: the rows stay in the store), or `None`
    // when nothing is filtered: then the store itself is the list, and no frame has to
    // copy 100,000 ids.
    let matching = Memo::new(move |_| {
        let (tab, stage, text) = (tab.get(), stage.get(), text.get().to_lowercase());
        if tab == Tab::All && stage.is_none() && text.is_empty() {
            return None;
        }
        let names = stages.get();
        live.with(|s| {
            s.items
                .values()
                .rev()
                .filter(|r| matches(r, tab, stage, &text, &names))
                .map(ItemRow::id)
                .collect::<Vec<_>>()
        })
    });
    let total = move || match matching.get() {
        Some(ids) => ids.len(),
        None => live.with(|s| s.items.len()).unwrap_or_default(),
    };
    // Per tab, from the store's running counts: no pass over the items.
    let counts = Memo::new(move |_| {
        live.with(|s| {
            Tab::ALL.map(|t| {
                ItemStatus::ALL
                    .iter()
                    .filter(|&&st| t.admits(st))
                    .map(|&st| s.count(st))
                    .sum::<usize>()
            })
        })
        .unwrap_or_default()
    });

    let visible = move || {
        let len = total();
        let first = ((scroll.get() / ROW_H) as usize)
            .saturating_sub(OVERSCAN)
            .min(len);
        let n = ((VIEW_H / ROW_H) as usize + 2 * OVERSCAN).min(len - first);
        let rows: Vec<ItemRow> = matching.with(|m| {
            live.with(|s| match m {
                Some(ids) => ids[first..first + n]
                    .iter()
                    .filter_map(|id| s.items.get(id).cloned())
                    .collect(),
                None => s
                    .items
                    .values()
                    .rev()
                    .skip(first)
                    .take(n)
                    .cloned()
                    .collect(),
            })
            .unwrap_or_default()
        });
        (first, rows)
    };

    view! {
        <section class="tasks">
            <div class="page-head"><h1>"Tasks"</h1></div>
            <super::FilterBar
                tabs=Signal::stored(Tab::ALL.iter().map(|&t| (t, t.label())).collect::<Vec<_>>())
                selected=tab
                count=Callback::new(move |t: Tab| {
                    let i = Tab::ALL.iter().position(|&x| x == t).unwrap_or_default();
                    format::count(counts.get()[i] as u64)
                })
                stages=stages
                stage
                text
                placeholder="id, stage or error"
                live_search=true
                on_change=Callback::new(move |()| scroll.set(0.0))
            >
                <span class="muted" data-testid="match-count">
                    {move || format!("{} items", format::count(total() as u64))}
                </span>
            </super::FilterBar>
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
                <div class="vspace" style=move || format!("height:{}px", total() as f64 * ROW_H)>
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
    fn filters_combine_status_stage_and_text() {
        let stages = vec!["parse".to_string(), "enrich".to_string()];
        let failed = ItemRow(42, ItemStatus::Failed, 1, 2, 0, Some("ModelTimeout".into()));
        let running = ItemRow(7, ItemStatus::Retrying, 0, 1, 0, None);
        assert!(matches(&failed, Tab::Failed, Some(1), "timeout", &stages));
        assert!(matches(&failed, Tab::All, None, "enr", &stages));
        assert!(matches(&failed, Tab::All, None, "42", &stages));
        assert!(!matches(&failed, Tab::Active, None, "", &stages));
        assert!(!matches(&failed, Tab::Failed, Some(0), "", &stages));
        assert!(
            matches(&running, Tab::Active, None, "", &stages),
            "retrying is active"
        );
    }
}

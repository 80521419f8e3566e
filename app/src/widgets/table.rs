//! The Table widget: rows from a data source, sorted by a clicked column, filtered by text
//! and paged. A built-in source is read from the live store, so it changes with every
//! frame; a user's source is fetched every two seconds.

use std::time::Duration;

use flowdeck_protocol::page::{TableData, TableSpec, BUILTIN_SOURCES};
use leptos::prelude::*;

use super::poll::ticker;
use crate::{fetch::fetch_table, live::use_live};

#[component]
pub(crate) fn TableWidget(spec: TableSpec) -> impl IntoView {
    let source = spec.source.clone();
    let data: Signal<Option<Result<TableData, String>>> =
        if BUILTIN_SOURCES.contains(&source.as_str()) {
            let live = use_live();
            Signal::derive(move || {
                live.with(|s| {
                    flowdeck_protocol::sources::builtin(s, &source)
                        .ok_or_else(|| format!("no source {source:?}"))
                })
            })
        } else {
            let tick = ticker(Duration::from_secs(2));
            let rows = Resource::new(move || tick.get(), move |_| fetch_table(source.clone()));
            Signal::derive(move || {
                rows.get().map(|r| {
                    r.map_err(|e| format!("cannot reach the server: {e}"))
                        .and_then(|inner| inner)
                })
            })
        };
    let sort = RwSignal::new(None::<(usize, bool)>);
    let filter = RwSignal::new(String::new());
    let page = RwSignal::new(0usize);
    let page_size = spec.page_size.max(1);
    let wanted = spec.columns.clone();
    let body = move || {
        let table = data.get()?;
        let table = match table {
            Ok(t) => t,
            Err(e) => return Some(view! { <p class="error" role="alert">{e}</p> }.into_any()),
        };
        // The columns to show, as indices into the source's.
        let shown: Result<Vec<usize>, String> = if wanted.is_empty() {
            Ok((0..table.columns.len()).collect())
        } else {
            wanted
                .iter()
                .map(|w| {
                    table.columns.iter().position(|c| c == w).ok_or_else(|| {
                        format!(
                            "no column {w:?}; the source has {}",
                            table.columns.join(", ")
                        )
                    })
                })
                .collect()
        };
        let shown = match shown {
            Ok(s) => s,
            Err(e) => return Some(view! { <p class="error" role="alert">{e}</p> }.into_any()),
        };
        let needle = filter.get().to_lowercase();
        let mut rows: Vec<_> = table
            .rows
            .into_iter()
            .filter(|r| {
                needle.is_empty() || r.iter().any(|c| c.text().to_lowercase().contains(&needle))
            })
            .collect();
        if let Some((col, asc)) = sort.get() {
            if let Some(&i) = shown.get(col) {
                rows.sort_by(|a, b| {
                    let o = a
                        .get(i)
                        .zip(b.get(i))
                        .map_or(std::cmp::Ordering::Equal, |(x, y)| x.compare(y));
                    if asc {
                        o
                    } else {
                        o.reverse()
                    }
                });
            }
        }
        let total = rows.len();
        let pages = total.div_ceil(page_size).max(1);
        let current = page.get().min(pages - 1);
        let start = current * page_size;
        let headers = shown
            .iter()
            .enumerate()
            .map(|(pos, &i)| {
                let name = table.columns[i].clone();
                let state = move || match sort.get() {
                    Some((c, true)) if c == pos => "ascending",
                    Some((c, false)) if c == pos => "descending",
                    _ => "none",
                };
                view! {
                    <th aria-sort=state>
                        <button class="sort" on:click=move |_| sort.update(|s| {
                            *s = match *s {
                                Some((c, true)) if c == pos => Some((pos, false)),
                                _ => Some((pos, true)),
                            }
                        })>{name}</button>
                    </th>
                }
            })
            .collect_view();
        let body_rows = rows
            .iter()
            .skip(start)
            .take(page_size)
            .map(|r| {
                let cells = shown
                    .iter()
                    .map(|&i| view! { <td>{r.get(i).map(|c| c.text()).unwrap_or_default()}</td> })
                    .collect_view();
                view! { <tr data-testid="table-row">{cells}</tr> }
            })
            .collect_view();
        let range = if total == 0 {
            "no rows".to_owned()
        } else {
            format!(
                "{}–{} of {total}",
                start + 1,
                (start + page_size).min(total)
            )
        };
        Some(
            view! {
                <table class="grid widget-table">
                    <thead><tr>{headers}</tr></thead>
                    <tbody>{body_rows}</tbody>
                </table>
                <div class="pager">
                    <button class="btn" disabled={current == 0} on:click=move |_| page.set(current.saturating_sub(1))>"Previous"</button>
                    <span class="muted" data-testid="table-range">{range}</span>
                    <button class="btn" disabled={current + 1 >= pages} on:click=move |_| page.set(current + 1)>"Next"</button>
                </div>
            }
            .into_any(),
        )
    };
    view! {
        <input
            class="table-filter"
            type="search"
            placeholder="Filter"
            aria-label="Filter rows"
            on:input=move |ev| {
                filter.set(event_target_value(&ev));
                page.set(0);
            }
        />
        <Transition fallback=|| view! { <p class="muted">"…"</p> }>{body}</Transition>
    }
}

//! The filter bar a task list shares, live or stored: status tabs with their counts, the
//! stage, a search box, and whatever else the list is ordered by.

use leptos::prelude::*;

/// A task list's filter bar. `tabs` are the status filters with their labels (a tab's
/// test id is `tab-` and its label in lower case, dashed), `count` the number shown beside
/// each. The live tasks page filters its retained items as the user types (`live_search`);
/// a stored run's list asks the server once the search is sent. `on_change` runs after any
/// filter changes (the list goes back to its top); `children` add controls (a sort).
#[component]
pub(crate) fn FilterBar<T>(
    #[prop(into)] tabs: Signal<Vec<(T, &'static str)>>,
    selected: RwSignal<T>,
    count: Callback<T, String>,
    #[prop(into)] stages: Signal<Vec<String>>,
    stage: RwSignal<Option<u16>>,
    text: RwSignal<String>,
    placeholder: &'static str,
    #[prop(optional)] live_search: bool,
    on_change: Callback<()>,
    #[prop(optional)] children: Option<Children>,
) -> impl IntoView
where
    T: Copy + PartialEq + Send + Sync + 'static,
{
    let search = move |ev: leptos::ev::Event| {
        text.set(event_target_value(&ev));
        on_change.run(());
    };
    view! {
        <div class="filters">
            <div role="tablist" aria-label="Status">
                {move || tabs.get().into_iter().map(|(t, label)| view! {
                    <button
                        role="tab"
                        class="tab"
                        aria-selected=move || (selected.get() == t).to_string()
                        data-testid=format!("tab-{}", label.to_lowercase().replace(' ', "-"))
                        on:click=move |_| { selected.set(t); on_change.run(()); }
                    >
                        {label} " "
                        <span class="count">{move || count.run(t)}</span>
                    </button>
                }).collect_view()}
            </div>
            <label>
                "Stage "
                <select
                    data-testid="stage-filter"
                    on:change=move |ev| { stage.set(event_target_value(&ev).parse().ok()); on_change.run(()); }
                >
                    <option value="">"all"</option>
                    {move || stages.get().into_iter().enumerate().map(|(i, name)| view! {
                        <option value=i.to_string() prop:selected=move || stage.get() == u16::try_from(i).ok()>{name}</option>
                    }).collect_view()}
                </select>
            </label>
            <label>
                "Search "
                {if live_search {
                    view! {
                        <input type="search" placeholder=placeholder data-testid="text-filter"
                            prop:value=move || text.get() on:input=search/>
                    }.into_any()
                } else {
                    view! {
                        <input type="search" placeholder=placeholder data-testid="text-filter"
                            prop:value=move || text.get() on:change=search/>
                    }.into_any()
                }}
            </label>
            {children.map(|c| c())}
        </div>
    }
}

/// `s` for a URL's query, as the browser's `encodeURIComponent` writes it (the server's
/// first render and the browser's must agree).
pub(crate) fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => char::from(b).to_string(),
            b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')' => {
                char::from(b).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

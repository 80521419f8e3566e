//! The top bar's badges, on every page: the stream's state, the run store's trouble, and
//! who is signed in.

use leptos::prelude::*;

use crate::live::{use_live, Connection};

/// The header's indicator of the stream's state.
#[component]
pub fn ConnectionBadge() -> impl IntoView {
    let live = use_live();
    let label = move || match live.connection.get() {
        Connection::Static => "connecting",
        Connection::Live => "live",
        Connection::Reconnecting => "reconnecting",
    };
    view! {
        <span class="badge" data-state=label role="status" aria-live="polite">
            {label}
        </span>
    }
}

/// A warning in the top bar while the run store is degraded (writes failing, such as on a
/// full disk: the pipeline runs on, history is not kept) or shedding finished items under
/// load; nothing while it keeps up. Rendered by the server with the page, then asked again
/// every 10 s, since neither state comes down the stream.
#[component]
pub fn StoreBadge() -> impl IntoView {
    let tick = crate::widgets::poll::ticker(std::time::Duration::from_secs(10));
    let status = Resource::new(move || tick.get(), |_| crate::fetch::fetch_store_status());
    view! {
        <Transition fallback=|| ()>
            {move || status.get().and_then(Result::ok).flatten().and_then(|s| {
                if s.degraded {
                    let why = s.problem.unwrap_or_default();
                    Some(view! {
                        <a class="badge" data-state="degraded" href=crate::scope::href("/runs") data-testid="store-degraded" title=why>
                            "store degraded"
                        </a>
                    }.into_any())
                } else if s.items_shed > 0 {
                    let n = s.items_shed;
                    Some(view! {
                        <a class="badge" data-state="shedding" href=crate::scope::href("/runs") data-testid="store-shedding"
                            title=format!("{n} finished items were counted but not kept: the store's writer was behind")>
                            {format!("store: {} shed", crate::format::count(n))}
                        </a>
                    }.into_any())
                } else {
                    None
                }
            })}
        </Transition>
    }
}

/// The signed-in user and a logout button; nothing when sign-in is off. The logout form
/// posts the session's CSRF token, so it works before (and without) the wasm.
#[component]
pub fn Account() -> impl IntoView {
    let live = use_live();
    view! {
        <Suspense fallback=|| ()>
            {move || {
                let v = live.viewer.get().and_then(Result::ok)?;
                let name = v.name?;
                Some(view! {
                    <span class="account" data-testid="account">
                        <span>{name}</span>
                        <span class="muted">{format!(" · {}", v.role)}</span>
                        <form method="post" action="/logout">
                            <input type="hidden" name="csrf" value=v.csrf.unwrap_or_default()/>
                            <button class="btn link" type="submit">"Log out"</button>
                        </form>
                    </span>
                })
            }}
        </Suspense>
    }
}

/// How many questions wait for a person, linking to them; nothing while none do. Counted
/// by the pipeline and carried in every frame's snapshot, so it counts up live.
#[component]
pub fn QuestionsBadge() -> impl IntoView {
    let live = use_live();
    let pending = move || {
        live.with(|s| s.snapshot.questions_pending)
            .unwrap_or_default()
    };
    view! {
        <Suspense fallback=|| ()>
            {move || {
                let n = pending();
                (n > 0).then(|| view! {
                    <a class="badge" data-state="question" href=crate::scope::href("/questions") data-testid="questions-badge">
                        {if n == 1 { "1 question".to_owned() } else { format!("{} questions", crate::format::count(n)) }}
                    </a>
                })
            }}
        </Suspense>
    }
}

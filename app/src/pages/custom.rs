//! A custom page `/pages/{slug}`: the user's widgets on a grid, from the spec the server
//! holds. The wasm is the same for every page; only the spec differs.

use flowdeck_protocol::page::GRID_COLUMNS;
use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

use crate::{fetch::fetch_page, widgets::PlacedWidget};

#[component]
pub fn Custom() -> impl IntoView {
    let params = use_params_map();
    let slug = move || params.with(|p| p.get("slug").unwrap_or_default());
    let spec = Resource::new(slug, fetch_page);
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading the page…"</p> }>
            {move || spec.get().map(|r| match r {
                Ok(Some(page)) => {
                    let slug = page.slug.clone();
                    let widgets = page.widgets.into_iter().map(|placed| view! { <PlacedWidget placed slug=slug.clone()/> }).collect_view();
                    view! {
                        <section class="custom-page" data-testid="custom-page">
                            <h1>{page.title}</h1>
                            <div class="widgets" style=format!("--columns: {GRID_COLUMNS}")>{widgets}</div>
                        </section>
                    }.into_any()
                }
                Ok(None) => view! { <super::NotFound/> }.into_any(),
                Err(e) => view! { <p class="error" role="alert">{format!("cannot load the page: {e}")}</p> }.into_any(),
            })}
        </Suspense>
    }
}

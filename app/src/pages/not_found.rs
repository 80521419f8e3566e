//! The page for any path no route matches; it also sets the HTTP status to 404.

use leptos::prelude::*;

#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <section class="not-found">
            <h1>"Page not found"</h1>
            <p>"Nothing lives at this address. " <a href=crate::scope::href("/")>"Back to the overview"</a></p>
        </section>
    }
}

//! The HTML document, the navigation and the routes.

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes, A},
    path, SsrMode,
};

use crate::{live, pages};

/// The pages in the navigation, in order: (path, title). The API lists them too.
pub const PAGES: &[(&str, &str)] = &[
    ("/", "Overview"),
    ("/workers", "Workers"),
    ("/tasks", "Tasks"),
    ("/errors", "Errors"),
    ("/streaming", "Streaming"),
    ("/logs", "Logs"),
];

/// The whole document, rendered by the server for every page.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en" data-theme=crate::theme::current().as_str()>
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <link rel="icon" type="image/svg+xml" href="/favicon.svg"/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    live::provide();
    crate::control::provide();

    view! {
        <Stylesheet id="flowdeck" href="/pkg/flowdeck.css"/>
        <Title text="flowdeck"/>
        <Router>
            <header class="topbar">
                <a class="brand" href="/">"flowdeck"</a>
                <nav aria-label="Main">
                    {PAGES.iter().map(|&(path, title)| view! { <A href=path>{title}</A> }).collect_view()}
                </nav>
                <live::ConnectionBadge/>
                <crate::theme::ThemeToggle/>
                <live::Account/>
            </header>
            <main>
                <Routes fallback=pages::NotFound>
                    <Route path=path!("/") view=pages::Overview ssr=SsrMode::Async/>
                    <Route path=path!("/workers") view=pages::Workers ssr=SsrMode::Async/>
                    <Route path=path!("/tasks") view=pages::Tasks ssr=SsrMode::Async/>
                    <Route path=path!("/tasks/:id") view=pages::Task ssr=SsrMode::Async/>
                    <Route path=path!("/errors") view=pages::Errors ssr=SsrMode::Async/>
                    <Route path=path!("/streaming") view=pages::Streaming ssr=SsrMode::Async/>
                    <Route path=path!("/logs") view=pages::Logs ssr=SsrMode::Async/>
                </Routes>
            </main>
        </Router>
    }
}

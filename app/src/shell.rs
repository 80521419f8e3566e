//! The HTML document, the navigation and the routes.

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Title};
use leptos_router::{
    components::{Route, Router, Routes, A},
    path, Lazy, SsrMode,
};

use crate::{badges, live, pages};

/// The pages in the navigation, in order: (path, title). The API lists them too.
pub const PAGES: &[(&str, &str)] = &[
    ("/", "Overview"),
    ("/workers", "Workers"),
    ("/tasks", "Tasks"),
    ("/questions", "Questions"),
    ("/errors", "Errors"),
    ("/streaming", "Streaming"),
    ("/metrics", "Metrics"),
    ("/logs", "Logs"),
    ("/runs", "Runs"),
    ("/alerts", "Alerts"),
];

/// The path of custom page `slug`.
pub fn custom_path(slug: &str) -> String {
    format!("/pages/{slug}")
}

/// Where the built site's files are served: their names carry a hash of their content, so
/// browsers may cache them for good and a new build is never mixed with an old one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteAssets {
    /// The wasm-bindgen loader, such as `/pkg/1a2b3c4d5e6f7a8b/flowdeck.js`.
    pub js: String,
    pub wasm: String,
    pub css: String,
}

/// The whole document, rendered by the server for every page.
pub fn shell(assets: SiteAssets) -> impl IntoView {
    let SiteAssets { js, wasm, css } = assets;
    let nonce = leptos::nonce::use_nonce();
    // What leptos' HydrationScripts does, with the hashed file names, and one change:
    // hydration starts in a task of its own (`setTimeout`), not in the one that finishes
    // instantiating the module. Both ran in one microtask checkpoint, 50 to 90 ms on a
    // loaded 2-core machine; apart, each stays under the 50 ms of a long task.
    let boot = format!(
        "import({js:?}).then(m => m.default({{module_or_path: {wasm:?}}}).then(() => setTimeout(m.hydrate)));"
    );
    view! {
        <!DOCTYPE html>
        <html lang="en" data-theme=crate::theme::current().as_str()>
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <link rel="icon" type="image/svg+xml" href="/favicon.svg"/>
                <link rel="stylesheet" href=css/>
                <link rel="modulepreload" href=js.clone() crossorigin="anonymous"/>
                <link rel="preload" href=wasm r#as="fetch" r#type="application/wasm" crossorigin="anonymous"/>
                <script type="module" nonce=nonce>{boot}</script>
                <MetaTags/>
                {custom_css().then(|| view! { <link rel="stylesheet" href="/custom.css"/> })}
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// Whether the server has a custom stylesheet; linked after the built-in one, it wins.
fn custom_css() -> bool {
    use_context::<crate::BackendRef>().is_some_and(|b| b.0.site().custom_css)
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    live::provide();
    crate::control::provide();
    crate::theme::provide();
    let site = Resource::new(|| (), |_| crate::fetch::fetch_site());
    let title = move || {
        site.get()
            .and_then(Result::ok)
            .map_or_else(|| "flowdeck".to_owned(), |s| s.title)
    };

    // With several pipelines, the brand leads to their list: a page load, since each
    // pipeline's pages talk to it alone (see `scope`).
    let many = move || {
        site.get()
            .and_then(Result::ok)
            .is_some_and(|s| s.pipelines.len() > 1)
    };
    let home = move || {
        if many() {
            "/pipelines".to_owned()
        } else {
            crate::scope::href("/")
        }
    };
    view! {
        <Router base=crate::scope::base()>
            <header class="topbar">
                <Suspense fallback=|| view! { <a class="brand" href="/">"flowdeck"</a> }>
                    <Title text=title/>
                    <a class="brand" href=home rel=move || many().then_some("external") data-testid="brand">
                        {move || site.get().and_then(Result::ok).filter(|s| s.logo).map(|_| view! { <img class="logo" src="/logo" alt=""/> })}
                        {title}
                    </a>
                </Suspense>
                <nav aria-label="Main">
                    {PAGES.iter().map(|&(path, title)| view! { <A href=crate::scope::href(path)>{title}</A> }).collect_view()}
                    <Suspense fallback=|| ()>
                        {move || site.get().and_then(Result::ok).map(|s| {
                            let many = s.pipelines.len() > 1;
                            (
                                s.pages.into_iter().map(|p| view! { <A href=crate::scope::href(&custom_path(&p.slug))>{p.title}</A> }).collect_view(),
                                many.then(|| view! { <a href="/pipelines" rel="external" data-testid="all-pipelines">"All pipelines"</a> }),
                            )
                        })}
                    </Suspense>
                </nav>
                <badges::ConnectionBadge/>
                <crate::widgets::WarningsBadge/>
                <badges::QuestionsBadge/>
                <badges::StoreBadge/>
                <crate::theme::ThemeToggle/>
                <badges::Account/>
            </header>
            <main>
                <Routes fallback=pages::NotFound>
                    <Route path=path!("/") view=pages::Overview ssr=SsrMode::Async/>
                    <Route path=path!("/pipelines") view={Lazy::<pages::PipelinesRoute>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/workers") view={Lazy::<pages::WorkersRoute>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/tasks") view={Lazy::<pages::TasksRoute>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/tasks/:id") view={Lazy::<pages::TaskRoute>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/alerts") view={Lazy::<pages::AlertsRoute>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/questions") view={Lazy::<pages::QuestionsRoute>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/errors") view={Lazy::<pages::ErrorsRoute>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/streaming") view={Lazy::<pages::StreamingRoute>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/logs") view={Lazy::<pages::LogsRoute>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/metrics") view={Lazy::<pages::MetricsRoute>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/pages/:slug") view={Lazy::<pages::CustomRoute>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/runs") view={Lazy::<pages::RunsRoute>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/runs/:id") view={Lazy::<pages::RunRoute>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/runs/:id/tasks") view={Lazy::<pages::RunTasksRoute>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/runs/:id/tasks/:item") view={Lazy::<pages::RunTaskRoute>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/runs/:id/errors") view={Lazy::<pages::RunErrorsRoute>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/runs/:id/metrics") view={Lazy::<pages::RunMetricsRoute>::new()} ssr=SsrMode::Async/>
                </Routes>
            </main>
        </Router>
    }
}

//! The built-in pages as lazy routes: in the browser each page's view is a separate wasm
//! chunk (split out by `scripts/build-site.sh`), fetched the first time the page is shown,
//! so the first load carries the shell and the overview only, not every page of the site.
//!
//! The overview stays eager: it is the page most visits start on, and its widgets are the
//! ones custom pages share, so splitting it would only add a round trip. Each page loads its
//! own data in its view, as it did before; on the first load that data comes inline with
//! the server-rendered HTML, and on later navigations the chunk is cached for good (its name
//! carries a hash), so only the data is fetched.
//!
//! On the server nothing is lazy: `Lazy<T>` renders the view in place.

use leptos::prelude::*;
use leptos_router::{lazy_route, LazyRoute};

use super::*;

/// The route of one built-in page: `data` does nothing (the page's component creates its
/// own resources), `view` is the lazily loaded component.
macro_rules! doc_route {
    ($route:ident, $page:literal) => {
        #[doc = concat!("The ", $page, " page, loaded when first visited.")]
        pub(crate) struct $route;
    };
}

doc_route!(PipelinesRoute, "pipelines");
#[lazy_route]
impl LazyRoute for PipelinesRoute {
    fn data() -> Self {
        Self
    }
    fn view(_this: Self) -> AnyView {
        view! { <Pipelines/> }.into_any()
    }
}

doc_route!(WorkersRoute, "workers");
#[lazy_route]
impl LazyRoute for WorkersRoute {
    fn data() -> Self {
        Self
    }
    fn view(_this: Self) -> AnyView {
        view! { <Workers/> }.into_any()
    }
}

doc_route!(TasksRoute, "task list");
#[lazy_route]
impl LazyRoute for TasksRoute {
    fn data() -> Self {
        Self
    }
    fn view(_this: Self) -> AnyView {
        view! { <Tasks/> }.into_any()
    }
}

doc_route!(TaskRoute, "task");
#[lazy_route]
impl LazyRoute for TaskRoute {
    fn data() -> Self {
        Self
    }
    fn view(_this: Self) -> AnyView {
        view! { <Task/> }.into_any()
    }
}

doc_route!(AlertsRoute, "alerts");
#[lazy_route]
impl LazyRoute for AlertsRoute {
    fn data() -> Self {
        Self
    }
    fn view(_this: Self) -> AnyView {
        view! { <Alerts/> }.into_any()
    }
}

doc_route!(QuestionsRoute, "questions");
#[lazy_route]
impl LazyRoute for QuestionsRoute {
    fn data() -> Self {
        Self
    }
    fn view(_this: Self) -> AnyView {
        view! { <Questions/> }.into_any()
    }
}

doc_route!(ErrorsRoute, "errors");
#[lazy_route]
impl LazyRoute for ErrorsRoute {
    fn data() -> Self {
        Self
    }
    fn view(_this: Self) -> AnyView {
        view! { <Errors/> }.into_any()
    }
}

doc_route!(StreamingRoute, "streaming");
#[lazy_route]
impl LazyRoute for StreamingRoute {
    fn data() -> Self {
        Self
    }
    fn view(_this: Self) -> AnyView {
        view! { <Streaming/> }.into_any()
    }
}

doc_route!(LogsRoute, "logs");
#[lazy_route]
impl LazyRoute for LogsRoute {
    fn data() -> Self {
        Self
    }
    fn view(_this: Self) -> AnyView {
        view! { <Logs/> }.into_any()
    }
}

doc_route!(MetricsRoute, "metrics");
#[lazy_route]
impl LazyRoute for MetricsRoute {
    fn data() -> Self {
        Self
    }
    fn view(_this: Self) -> AnyView {
        view! { <Metrics/> }.into_any()
    }
}

doc_route!(CustomRoute, "custom");
#[lazy_route]
impl LazyRoute for CustomRoute {
    fn data() -> Self {
        Self
    }
    fn view(_this: Self) -> AnyView {
        view! { <Custom/> }.into_any()
    }
}

doc_route!(RunsRoute, "stored runs");
#[lazy_route]
impl LazyRoute for RunsRoute {
    fn data() -> Self {
        Self
    }
    fn view(_this: Self) -> AnyView {
        view! { <Runs/> }.into_any()
    }
}

doc_route!(RunRoute, "stored run");
#[lazy_route]
impl LazyRoute for RunRoute {
    fn data() -> Self {
        Self
    }
    fn view(_this: Self) -> AnyView {
        view! { <Run/> }.into_any()
    }
}

doc_route!(RunTasksRoute, "stored run's task list");
#[lazy_route]
impl LazyRoute for RunTasksRoute {
    fn data() -> Self {
        Self
    }
    fn view(_this: Self) -> AnyView {
        view! { <RunTasks/> }.into_any()
    }
}

doc_route!(RunTaskRoute, "stored task");
#[lazy_route]
impl LazyRoute for RunTaskRoute {
    fn data() -> Self {
        Self
    }
    fn view(_this: Self) -> AnyView {
        view! { <RunTask/> }.into_any()
    }
}

doc_route!(RunErrorsRoute, "stored run's errors");
#[lazy_route]
impl LazyRoute for RunErrorsRoute {
    fn data() -> Self {
        Self
    }
    fn view(_this: Self) -> AnyView {
        view! { <RunErrors/> }.into_any()
    }
}

doc_route!(RunMetricsRoute, "stored run's metrics");
#[lazy_route]
impl LazyRoute for RunMetricsRoute {
    fn data() -> Self {
        Self
    }
    fn view(_this: Self) -> AnyView {
        view! { <RunMetrics/> }.into_any()
    }
}

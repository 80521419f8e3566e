//! Which pipeline a page is about, when a dashboard serves several.
//!
//! Each pipeline's pages are under `/p/{slug}` (its base), and the dashboard's first
//! pipeline also answers at the root, where `/` is then the list of them all. Links, the
//! live stream, control requests and server functions of a page all go under its base,
//! so a page only ever talks to its own pipeline. The server says the base in context; the
//! browser reads it from its address. Both give the same, so hydration finds the links
//! the server drew. Moving to another pipeline is a page load, not a client-side route
//! change (server functions' base is set once per page load).

use flowdeck_protocol::pipelines::is_slug;

/// The base of the page being rendered on the server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Base(pub String);

/// `/p/{slug}` when `path` is under a pipeline's base, else "" (the root).
pub fn of_path(path: &str) -> String {
    let mut parts = path.splitn(4, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(""), Some("p"), Some(slug)) if is_slug(slug) => format!("/p/{slug}"),
        _ => String::new(),
    }
}

/// This page's base: "" at the root.
pub fn base() -> String {
    #[cfg(feature = "hydrate")]
    {
        of_path(
            &leptos::prelude::window()
                .location()
                .pathname()
                .unwrap_or_default(),
        )
    }
    #[cfg(not(feature = "hydrate"))]
    {
        leptos::prelude::use_context::<Base>()
            .map(|b| b.0)
            .unwrap_or_default()
    }
}

/// `path` (absolute, as on the root) on this page's pipeline.
pub fn href(path: &str) -> String {
    format!("{}{path}", base())
}

/// Sends this page's server functions to its pipeline: called once, before hydration.
#[cfg(feature = "hydrate")]
pub fn init() {
    let base = base();
    if !base.is_empty() {
        let _ = leptos::server_fn::client::try_set_server_url(Box::leak(base.into_boxed_str()));
    }
}

#[cfg(test)]
mod tests {
    use super::of_path;

    #[test]
    fn a_base_is_the_pipeline_prefix_of_a_path() {
        assert_eq!(of_path("/p/orders"), "/p/orders");
        assert_eq!(of_path("/p/orders/"), "/p/orders");
        assert_eq!(of_path("/p/orders/tasks/12"), "/p/orders");
        for root in ["/", "/tasks", "/p", "/p/", "/p/Orders/x", "/pages/p/x", ""] {
            assert_eq!(of_path(root), "", "{root}");
        }
    }
}

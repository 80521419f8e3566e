//! The Content-Security-Policy. Pages get one with a fresh nonce per response: Leptos puts
//! it on the inline scripts it writes (the hydration loader, resolved resources); the
//! loader imports the wasm glue from this origin ('self'), and 'wasm-unsafe-eval' lets it
//! compile the wasm. No other script runs: no inline script without the nonce, nothing
//! from another origin. ('strict-dynamic' would drop 'self', and Leptos does not put the
//! nonce on its modulepreload link, so the preload would be refused.) Every other
//! response (API, static files, the login page) gets a policy that allows no script.

use axum::http::{header, HeaderValue};
use leptos::prelude::use_context;
use leptos_axum::ResponseOptions;

/// For responses that are not pages: no scripts, nothing framed, forms only to here.
pub const NO_SCRIPT: &str = "default-src 'self'; script-src 'none'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// A page's policy, trusting only scripts that carry `nonce`. Styles allow inline
/// attributes: charts and the task timeline position elements with them.
pub fn for_page(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// Inside a Leptos render: sets the page's policy with the nonce of this response.
pub fn provide() {
    let (Some(nonce), Some(response)) =
        (leptos::nonce::use_nonce(), use_context::<ResponseOptions>())
    else {
        return;
    };
    if let Ok(value) = HeaderValue::from_str(&for_page(&nonce.to_string())) {
        response.insert_header(header::CONTENT_SECURITY_POLICY, value);
    }
}

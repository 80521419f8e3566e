//! What every request handler can reach.

use axum::extract::FromRef;
use leptos::config::LeptosOptions;

use crate::{api::Audit, hub::Hub};

#[derive(Clone)]
pub struct AppState {
    pub leptos: LeptosOptions,
    pub hub: Hub,
    /// When set, control actions answer 403.
    pub readonly: bool,
    pub audit: Audit,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos.clone()
    }
}

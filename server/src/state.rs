//! What every request handler can reach.

use axum::extract::FromRef;
use leptos::config::LeptosOptions;

use crate::hub::Hub;

#[derive(Clone)]
pub struct AppState {
    pub leptos: LeptosOptions,
    pub hub: Hub,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos.clone()
    }
}

//! Logs `/logs`: the records the server captured from `tracing`, with every filter.

use flowdeck_protocol::page::LogSpec;
use leptos::prelude::*;

use crate::widgets::LogView;

#[component]
pub fn Logs() -> impl IntoView {
    let spec = LogSpec {
        title: "Logs".into(),
        lines: 200,
        level: "info".into(),
        source: None,
        text: None,
    };
    view! {
        <section class="logs">
            <LogView spec heading=true/>
        </section>
    }
}

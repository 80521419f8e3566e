//! A custom widget: content the server made from the user's closure or data source,
//! fetched every `every` seconds. It arrives as HTML, a template's sanitized or a view's
//! drawn in the theme's classes (server/src/view.rs), and goes in as is. An error (the
//! closure's, a panic, a time-out, a template failure) shows in the widget's own frame;
//! the rest of the page goes on updating.

use std::time::Duration;

use flowdeck_protocol::page::{CustomSpec, WidgetData};
use leptos::prelude::*;

use super::poll::ticker;
use crate::fetch::fetch_widget;

#[component]
pub(crate) fn CustomWidget(spec: CustomSpec, slug: String) -> impl IntoView {
    let tick = ticker(Duration::from_secs(spec.every.max(1)));
    let id = spec.id();
    let content = Resource::new(
        move || tick.get(),
        move |_| fetch_widget(slug.clone(), id.clone()),
    );
    view! {
        <Transition fallback=|| view! { <p class="muted">"…"</p> }>
            {move || content.get().map(|r| match r {
                Ok(Some(data)) => shown(data),
                Ok(None) => failed("the server has no such widget".to_owned()),
                Err(e) => failed(format!("cannot reach the server: {e}")),
            })}
        </Transition>
    }
}

fn failed(message: String) -> AnyView {
    view! { <p class="error" role="alert" data-testid="custom-error">{message}</p> }.into_any()
}

fn shown(data: WidgetData) -> AnyView {
    match (data.error, data.html) {
        (Some(e), _) => failed(e),
        (None, Some(html)) => {
            view! { <div class="custom-html" data-testid="custom-html" inner_html=html></div> }
                .into_any()
        }
        (None, None) => view! { <p class="muted">"Nothing to show."</p> }.into_any(),
    }
}

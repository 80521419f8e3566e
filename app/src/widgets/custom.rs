//! A custom widget: content the server made from the user's closure or data source,
//! fetched every `every` seconds. Template output arrives as sanitized HTML and goes in
//! as is; a view's blocks are drawn here, in the theme, like the built-in widgets. An
//! error (the closure's, a panic, a time-out, a template failure) shows in the widget's
//! own frame; the rest of the page goes on updating.

use std::time::Duration;

use flowdeck_protocol::page::{Block, CustomSpec, WidgetData};
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
    if let Some(e) = data.error {
        return failed(e);
    }
    match (data.html, data.view) {
        (Some(html), _) => {
            view! { <div class="custom-html" data-testid="custom-html" inner_html=html></div> }
                .into_any()
        }
        (None, Some(blocks)) => view! {
            <div class="custom-view" data-testid="custom-view">
                {blocks.into_iter().map(block).collect_view()}
            </div>
        }
        .into_any(),
        (None, None) => view! { <p class="muted">"Nothing to show."</p> }.into_any(),
    }
}

/// A share of `max` as a CSS width, 0 to 100 per cent.
fn width(value: f64, max: f64) -> String {
    let share = if max > 0.0 {
        (value / max).clamp(0.0, 1.0)
    } else {
        0.0
    };
    format!("width: {:.1}%", share * 100.0)
}

fn number(v: f64) -> String {
    flowdeck_protocol::page::Cell::Num(v).text()
}

fn block(b: Block) -> AnyView {
    match b {
        Block::Stat {
            label,
            value,
            hint,
            health,
        } => view! {
            <div class="block-stat" data-health=health.map(|h| h.as_str())>
                <div class="card-label">{label}</div>
                <div class="card-value">{value}</div>
                {hint.map(|h| view! { <div class="muted">{h}</div> })}
            </div>
        }
        .into_any(),
        Block::Bar { label, value, max } => view! {
            <div class="block-bar">
                <span>{label}</span>
                <span class="meter"><span class="meter-fill" style=width(value, max)></span></span>
                <span class="num">{number(value)}</span>
            </div>
        }
        .into_any(),
        Block::Progress { label, done, total } => view! {
            <div class="block-bar">
                <span>{label}</span>
                <span class="meter"><span class="meter-fill" style=width(done, total)></span></span>
                <span class="num">{format!("{} of {}", number(done), number(total))}</span>
            </div>
        }
        .into_any(),
        Block::Sparkline { label, points } => {
            let (lo, hi) = points
                .iter()
                .fold((f64::MAX, f64::MIN), |(lo, hi), &p| (lo.min(p), hi.max(p)));
            let span = if hi > lo { hi - lo } else { 1.0 };
            let step = 100.0 / (points.len().max(2) - 1) as f64;
            let line: Vec<String> = points
                .iter()
                .enumerate()
                .map(|(i, p)| format!("{:.1},{:.1}", i as f64 * step, 28.0 - (p - lo) / span * 26.0))
                .collect();
            view! {
                <div class="block-spark">
                    <span>{label}</span>
                    <svg viewBox="0 0 100 30" preserveAspectRatio="none" aria-hidden="true">
                        <polyline points=line.join(" ")></polyline>
                    </svg>
                </div>
            }
            .into_any()
        }
        Block::Table { columns, rows } => view! {
            <table class="grid">
                <thead><tr>{columns.into_iter().map(|c| view! { <th>{c}</th> }).collect_view()}</tr></thead>
                <tbody>
                    {rows.into_iter().map(|r| view! {
                        <tr>{r.into_iter().map(|c| view! { <td>{c.text()}</td> }).collect_view()}</tr>
                    }).collect_view()}
                </tbody>
            </table>
        }
        .into_any(),
        Block::List { items } => view! {
            <ul class="block-list">{items.into_iter().map(|i| view! { <li>{i}</li> }).collect_view()}</ul>
        }
        .into_any(),
        Block::KeyValue { pairs } => view! {
            <dl class="block-kv">
                {pairs.into_iter().map(|(k, v)| view! { <dt>{k}</dt><dd>{v}</dd> }).collect_view()}
            </dl>
        }
        .into_any(),
        Block::Badge { text, health } => view! {
            <span class="badge" data-health=health.as_str()>{text}</span>
        }
        .into_any(),
        Block::Text { html } => view! { <div class="block-text" inner_html=html></div> }.into_any(),
    }
}

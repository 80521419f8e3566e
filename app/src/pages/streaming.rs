//! Streaming `/streaming`, for always-on pipelines: the rate in and out, and each stage's
//! lag (the age of its oldest queued item) and queue.

use flowdeck_protocol::stream::LiveState;
use leptos::prelude::*;

use super::{Columns, LivePage};
use crate::{format, widgets::RateChart};

#[component]
pub fn Streaming() -> impl IntoView {
    view! { <LivePage title="Streaming" class="streaming" content=streaming/> }
}

fn streaming(state: &LiveState) -> impl IntoView {
    let last = state.history.back().copied().unwrap_or_default();
    let points: Vec<_> = state.history.iter().copied().collect();
    view! {
        <div class="cards">
            <div class="card" data-testid="input-rate">
                <div class="card-label">"Input rate"</div>
                <div class="card-value">{format::rate(last.input_rate)}</div>
            </div>
            <div class="card" data-testid="output-rate">
                <div class="card-label">"Output rate"</div>
                <div class="card-value">{format::rate(last.output_rate)}</div>
            </div>
            <div class="card" data-testid="queued-now">
                <div class="card-label">"Queued"</div>
                <div class="card-value">{format::count(last.queued)}</div>
            </div>
        </div>
        <h2>"In and out"</h2>
        <RateChart
            points
            label="Input and output rate over time"
            series=vec![("in", "in", |p| p.input_rate), ("out", "out", |p| p.output_rate)]
        />
        <h2>"Lag per stage"</h2>
        <table class="grid" data-testid="lag">
            <Columns names=["Stage", "Lag (oldest queued)", "Queued", "Queue full", "Throughput"]/>
            <tbody>
                {state.snapshot.stages.iter().map(|s| {
                    let fill = if s.capacity == 0 { 0.0 } else { s.queued as f64 * 100.0 / s.capacity as f64 };
                    view! {
                        <tr data-stage=s.name.clone()>
                            <th scope="row">{s.name.clone()}</th>
                            <td>{format::millis(s.oldest_queued_ms)}</td>
                            <td>{format::count(s.queued)}</td>
                            <td>{format!("{fill:.0}%")}</td>
                            <td>{format::rate(s.throughput)}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
}

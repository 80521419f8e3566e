//! How widgets keep their data fresh: one ticker per widget, counting in the browser only
//! (the server renders once) and stopped when the widget goes away, and the series fetch
//! the Metric, Chart and Gauge widgets share.

use std::time::Duration;

use flowdeck_protocol::{
    metrics::{Agg, SeriesData, SeriesQuery},
    page::SeriesRef,
};
use leptos::prelude::*;

use crate::fetch::fetch_series;

/// A signal that counts up every `period` while the component lives.
pub(crate) fn ticker(period: Duration) -> RwSignal<u64> {
    let tick = RwSignal::new(0u64);
    // Effects run only in the browser, after hydration.
    Effect::new(move |_| {
        if let Ok(handle) = set_interval_with_handle(move || tick.update(|t| *t += 1), period) {
            on_cleanup(move || handle.clear());
        }
    });
    tick
}

/// What a series fetch answers: the series, or the user's mistake (a bad range) as text.
pub(crate) type Fetched = Result<Result<Vec<SeriesData>, String>, ServerFnError>;

/// Points a chart asks for across its range: about one per two pixels of a wide widget.
pub(crate) const CHART_POINTS: u64 = 600;

/// Series refetched every second (the store files a second at a time).
pub(crate) fn series_resource(
    series: Signal<Vec<SeriesRef>>,
    agg: Signal<Option<Agg>>,
    range: Signal<u64>,
    points: u64,
) -> Resource<Fetched> {
    let tick = ticker(Duration::from_secs(1));
    Resource::new(
        move || (series.get(), agg.get(), range.get(), tick.get()),
        move |(series, agg, range, _)| async move {
            if series.is_empty() {
                return Ok(Ok(Vec::new()));
            }
            fetch_series(
                SeriesQuery {
                    series,
                    agg,
                    range,
                    step: Some((range / points).max(1)),
                    since: None,
                },
                None,
            )
            .await
        },
    )
}

/// A fetch's outcome as the widget shows it: the series, or one line saying what failed.
pub(crate) fn settle(r: Fetched) -> Result<Vec<SeriesData>, String> {
    r.map_err(|e| format!("cannot reach the server: {e}"))
        .and_then(|inner| inner)
}

//! Metrics and logs over the API: `GET /api/v1/metrics` (the series there are, or some of
//! them over a time range, as JSON or CSV) and `GET /api/v1/logs`.

use std::{convert::Infallible, time::Duration};

use axum::{
    extract::State,
    http::header,
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Response,
    },
    Json,
};
use flowdeck_protocol::{metrics::SeriesQuery, page::SeriesRef};
use flowdeck_runtime::{
    logs::{LogPage, LogQuery},
    metrics::{unix_now, Agg, MetricsStore, SeriesData, SeriesInfo},
};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};

use super::{query::Strict, ApiError};
use crate::state::AppState;

/// The longest range kept (the coarsest resolution's reach).
const MAX_RANGE: u64 = 24 * 3600;

/// `GET /api/v1/metrics` parameters.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct MetricsQuery {
    /// Comma-separated series names; without it, the list of series.
    names: Option<String>,
    /// How far back: `90s`, `15m`, `6h`, `24h` or seconds (default 15m, at most 24h).
    range: Option<String>,
    /// Seconds per point, same syntax (default: range / 300, at least 1 s).
    step: Option<String>,
    /// last, sum, rate, avg, min, max, count, p50, p95, p99 (default: rate for counters,
    /// last for gauges, p95 for histograms).
    agg: Option<String>,
    /// json (default) or csv.
    format: Option<String>,
}

/// Parses `90`, `90s`, `15m`, `6h`, `1d` into seconds; the error names the parameter.
pub fn duration(name: &str, raw: &str) -> Result<u64, ApiError> {
    super::grammar::duration(raw).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "{name}: expected a duration from 1s to 24h such as 90s, 15m, 6h or 1d; got {raw:?}"
        ))
    })
}

/// Why series could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// A range or step out of bounds.
    Bad(String),
    /// A series nobody records.
    Unknown(String),
}

impl From<ReadError> for ApiError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Bad(m) => ApiError::BadRequest(m),
            ReadError::Unknown(m) => ApiError::NotFound(m),
        }
    }
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Bad(m) | ReadError::Unknown(m) => f.write_str(m),
        }
    }
}

/// Reads the series a query names over its range, ending now. A built-in series that has
/// no value yet (the first second after start) reads as nothing rather than unknown.
pub fn read_series(
    store: &MetricsStore,
    q: &SeriesQuery,
) -> Result<(u64, u64, Vec<SeriesData>), ReadError> {
    let range = q.range;
    if !(1..=MAX_RANGE).contains(&range) {
        return Err(ReadError::Bad(format!(
            "range must be between 1s and 24h, got {range}s"
        )));
    }
    // A step longer than the range is one point for the whole range.
    let step = q.step.unwrap_or((range / 300).max(1)).min(range);
    if step == 0 {
        return Err(ReadError::Bad("step must be at least 1s".into()));
    }
    // The second under way and the one just ended may not be filed yet: reading them
    // would show a dip to zero at the right edge of every chart.
    let to = unix_now().saturating_sub(1);
    let from = to.saturating_sub(range);
    let known = store.list();
    let mut series = Vec::new();
    for s in &q.series {
        let Some(kind) = known.iter().find(|i| i.key.name == s.name).map(|i| i.kind) else {
            if crate::dashboard::BUILTIN_SERIES.contains(&s.name.as_str()) {
                continue;
            }
            return Err(ReadError::Unknown(format!("no metric named {:?}", s.name)));
        };
        let labels: Vec<(&str, &str)> = s
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let agg = q.agg.unwrap_or(kind.default_agg());
        series.extend(
            store
                .read(&s.name, &labels, from, to, step, agg)
                .unwrap_or_default(),
        );
    }
    if let Some(since) = q.since {
        for s in &mut series {
            s.points.retain(|p| p.0 >= since);
        }
    }
    Ok((from, to, series))
}

/// Splits `a,b{x=1,y=2},c` at the commas outside braces.
fn split_names(raw: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in raw.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(raw[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(raw[start..].trim());
    out.retain(|s| !s.is_empty());
    out
}

#[derive(Serialize)]
pub struct Range {
    from: u64,
    to: u64,
    series: Vec<SeriesData>,
}

#[derive(Serialize)]
pub struct Listing {
    series: Vec<SeriesInfo>,
}

pub async fn metrics(
    State(s): State<AppState>,
    Strict(q): Strict<MetricsQuery>,
) -> Result<Response, ApiError> {
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "format must be json or csv, got {other:?}"
            )))
        }
    };
    // Every parameter given is checked, also where the answer does not use it (a listing
    // takes no range): a typo should not pass for a while and fail later.
    let range = q
        .range
        .as_deref()
        .map_or(Ok(900), |r| duration("range", r))?;
    let step = q.step.as_deref().map(|r| duration("step", r)).transpose()?;
    let agg = q
        .agg
        .as_deref()
        .map(|a| a.parse::<Agg>().map_err(ApiError::BadRequest))
        .transpose()?;
    if let Some(names) = q
        .names
        .as_deref()
        .filter(|n| !super::grammar::series_names(n))
    {
        return Err(ApiError::BadRequest(format!(
            "names: expected series such as a,b{{stage=enrich}} (names, label keys and values of letters, digits and _ . : -); got {names:?}"
        )));
    }
    let Some(names) = q.names.as_deref() else {
        return Ok(Json(Listing {
            series: s.metrics.list(),
        })
        .into_response());
    };
    let refs = split_names(names)
        .into_iter()
        .map(|n| n.parse::<SeriesRef>().map_err(ApiError::BadRequest))
        .collect::<Result<Vec<_>, _>>()?;
    let query = SeriesQuery {
        series: refs,
        agg,
        range,
        step,
        since: None,
    };
    let (from, to, series) = read_series(&s.metrics, &query)?;
    if csv {
        return Ok(to_csv(&series).into_response());
    }
    Ok(Json(Range { from, to, series }).into_response())
}

/// One row per point: time, series (name and labels), aggregation, value (empty when the
/// window held nothing).
fn to_csv(series: &[SeriesData]) -> impl IntoResponse {
    let mut out = String::from("unix_seconds,series,agg,value\n");
    for s in series {
        let name = format!("\"{}\"", s.key.display().replace('"', "\"\""));
        for (t, v) in &s.points {
            let v = v.map(|v| v.to_string()).unwrap_or_default();
            out.push_str(&format!("{t},{name},{},{v}\n", s.agg.name()));
        }
    }
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"metrics.csv\"",
            ),
        ],
        out,
    )
}

/// `GET /api/v1/logs` parameters.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    /// The least severe level to include: trace, debug, info, warn, error.
    level: Option<String>,
    /// A glob over the source, such as `worker-*`.
    source: Option<String>,
    /// Text in the message or a field.
    q: Option<String>,
    /// Only records after this sequence number (the `latest` of a previous answer).
    since: Option<u64>,
    /// At most this many, the newest (1 to 10,000; default 500).
    limit: Option<usize>,
}

/// The query a `/api/v1/logs` request asks, checked.
fn log_query(q: &LogsQuery) -> Result<LogQuery, ApiError> {
    if let Some(level) = q.level.as_deref() {
        if !["trace", "debug", "info", "warn", "error"].contains(&level) {
            return Err(ApiError::BadRequest(format!(
                "level must be one of trace, debug, info, warn, error; got {level:?}"
            )));
        }
    }
    if let Some(source) = q
        .source
        .as_deref()
        .filter(|s| !super::grammar::source_glob(s))
    {
        return Err(ApiError::BadRequest(format!(
            "source: a glob of * and ? (no **, [ or ]), such as enrich-*; got {source:?}"
        )));
    }
    let limit = q.limit.unwrap_or(500);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and 10000, got {limit}"
        )));
    }
    LogQuery::parse(
        q.level.as_deref(),
        q.source.as_deref(),
        q.q.as_deref(),
        q.since,
        Some(limit),
    )
    .map_err(ApiError::BadRequest)
}

pub async fn logs(
    State(s): State<AppState>,
    Strict(q): Strict<LogsQuery>,
) -> Result<Json<LogPage>, ApiError> {
    Ok(Json(s.logs.page(&log_query(&q)?)))
}

/// How long the log stream waits after a record arrives before it sends, so that a burst
/// of records goes out as one event.
const LOG_COALESCE: Duration = Duration::from_millis(200);

/// `GET /api/v1/logs/stream`: server-sent events named `logs`, each a [`LogPage`]. The
/// first holds the newest records matching the filter (as `/api/v1/logs` would answer),
/// each later one the records captured since, as they come. The Log widget and the Logs
/// page follow this.
pub async fn logs_stream(
    State(s): State<AppState>,
    Strict(q): Strict<LogsQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let query = log_query(&q)?;
    let logs = s.logs.clone();
    let changed = logs.subscribe();
    let mut shutdown = s.shutdown.subscribe();
    let pages = futures::stream::unfold(
        (logs, query, changed, true),
        |(logs, mut query, mut changed, first)| async move {
            loop {
                if !first {
                    changed.changed().await.ok()?;
                    tokio::time::sleep(LOG_COALESCE).await;
                }
                changed.borrow_and_update();
                let page = logs.page(&query);
                query.since = Some(page.latest);
                if first || !page.records.is_empty() {
                    let event = Event::default()
                        .event("logs")
                        .json_data(&page)
                        .unwrap_or_default();
                    return Some((Ok(event), (logs, query, changed, false)));
                }
            }
        },
    )
    // A server shutting down waits for open connections; a stream never ends alone.
    .take_until(async move {
        let _ = shutdown.wait_for(|&stop| stop).await;
    });
    Ok(Sse::new(pages).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_refuse_garbage() {
        assert_eq!(duration("range", "90").unwrap(), 90);
        assert_eq!(duration("range", "15m").unwrap(), 900);
        assert_eq!(duration("range", "24h").unwrap(), 86_400);
        assert_eq!(duration("range", "1d").unwrap(), 86_400);
        assert!(duration("range", "5 minutes")
            .unwrap_err()
            .to_string()
            .contains("range"));
        assert!(duration("step", "m").is_err());
        assert!(duration("step", "-5s").is_err());
        assert_eq!(
            split_names("a, b{x=1,y=2},,c"),
            vec!["a", "b{x=1,y=2}", "c"]
        );
    }
}

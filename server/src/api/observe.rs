//! Metrics and logs over the API: `GET /api/v1/metrics` (the series there are, or some of
//! them over a time range, as JSON or CSV) and `GET /api/v1/logs`.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::{
    extract::State,
    http::header,
    response::{IntoResponse, Response},
    Json,
};
use flowdeck_runtime::{
    logs::{LogPage, LogQuery},
    metrics::{Agg, SeriesData, SeriesInfo},
};
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

/// Parses `90`, `90s`, `15m`, `6h`, `1d` into seconds.
pub fn duration(name: &str, raw: &str) -> Result<u64, ApiError> {
    let raw = raw.trim();
    let (digits, unit) = raw.split_at(raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len()));
    let n: u64 = digits.parse().map_err(|_| {
        ApiError::BadRequest(format!(
            "{name} must look like 90s, 15m, 6h or 1d; got {raw:?}"
        ))
    })?;
    let unit = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(ApiError::BadRequest(format!(
                "{name} must look like 90s, 15m, 6h or 1d; got {raw:?}"
            )))
        }
    };
    Ok(n.saturating_mul(unit))
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
    let Some(names) = q.names.as_deref() else {
        return Ok(Json(Listing {
            series: s.metrics.list(),
        })
        .into_response());
    };
    let range = q
        .range
        .as_deref()
        .map_or(Ok(900), |r| duration("range", r))?;
    if !(1..=MAX_RANGE).contains(&range) {
        return Err(ApiError::BadRequest(format!(
            "range must be between 1s and 24h, got {range}s"
        )));
    }
    let step = q
        .step
        .as_deref()
        .map_or(Ok((range / 300).max(1)), |r| duration("step", r))?;
    if !(1..=range).contains(&step) {
        return Err(ApiError::BadRequest(format!(
            "step must be between 1s and the range ({range}s), got {step}s"
        )));
    }
    let agg = q
        .agg
        .as_deref()
        .map(|a| a.parse::<Agg>().map_err(ApiError::BadRequest))
        .transpose()?;
    let to = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let from = to - range;
    let known = s.metrics.list();
    let mut series = Vec::new();
    for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let kind = known
            .iter()
            .find(|i| i.key.name == name)
            .map(|i| i.kind)
            .ok_or_else(|| ApiError::NotFound(format!("no metric named {name:?}")))?;
        let agg = agg.unwrap_or(kind.default_agg());
        series.extend(
            s.metrics
                .read(name, &[], from, to, step, agg)
                .unwrap_or_default(),
        );
    }
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
        let labels: Vec<String> = s
            .key
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let name = if labels.is_empty() {
            s.key.name.clone()
        } else {
            format!("{}{{{}}}", s.key.name, labels.join(","))
        };
        let name = format!("\"{}\"", name.replace('"', "\"\""));
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

pub async fn logs(
    State(s): State<AppState>,
    Strict(q): Strict<LogsQuery>,
) -> Result<Json<LogPage>, ApiError> {
    let limit = q.limit.unwrap_or(500);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and 10000, got {limit}"
        )));
    }
    let query = LogQuery::parse(
        q.level.as_deref(),
        q.source.as_deref(),
        q.q.as_deref(),
        q.since,
        Some(limit),
    )
    .map_err(ApiError::BadRequest)?;
    Ok(Json(s.logs.page(&query)))
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
    }
}

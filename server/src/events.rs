//! `GET /api/events`: one pipeline's live stream, read from its hub's frame log (see
//! [`crate::hub`] for how frames are made, numbered and kept), compressed per connection
//! when the client accepts it ([`crate::compress`]).

use std::{convert::Infallible, time::Duration};

use axum::{
    body::{Body, Bytes},
    extract::{RawQuery, State},
    http::{header, HeaderMap, HeaderValue},
    response::{IntoResponse, Response},
};
use futures::StreamExt;

use crate::{compress::Encoder, error::ApiError, hub::Published, state::AppState};

/// How long the stream may stay silent before a comment keeps proxies from closing it.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// A frame larger than this is compressed off the async workers (a full frame of a big
/// retention can take milliseconds).
const BLOCKING_FRAME: usize = 64 * 1024;

/// The SSE message id a reconnecting browser sends back.
fn last_event_id(headers: &HeaderMap) -> Option<u64> {
    headers
        .get("last-event-id")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether the client takes task rows: `?rows=all` (the default) or `?rows=none`.
fn takes_rows(query: Option<&str>) -> Result<bool, ApiError> {
    let mut rows = true;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        match pair.split_once('=') {
            Some(("rows", "all")) => rows = true,
            Some(("rows", "none")) => rows = false,
            Some(("rows", other)) => {
                return Err(ApiError::BadRequest(format!(
                    "rows must be all or none, not {other:?}"
                )))
            }
            _ => {}
        }
    }
    Ok(rows)
}

/// One frame as an SSE message: its event name, its id (the frame's), its JSON (whole, or
/// without the task rows).
fn message(p: &Published, rows: bool) -> Vec<u8> {
    let json = if rows { &p.json } else { &p.without_rows };
    let mut out = Vec::with_capacity(json.len() + 48);
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(p.event.as_bytes());
    out.extend_from_slice(format!("\nid: {}\n", p.id).as_bytes());
    // Compact JSON has no line breaks; were there any, each line is a data line of its own.
    for line in json.split('\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
    out
}

/// `GET /api/events`: the live stream. A full frame first (or, with `Last-Event-ID`, the
/// frames missed), then a delta every refresh; keep-alive comments keep proxies from
/// closing an idle connection. Brotli or gzip when the client accepts it, with one
/// compression context for the connection and every frame flushed as it is sent.
///
/// `?rows=none` leaves the task rows out of every frame, for a page that shows none: the
/// same frames and ids otherwise, so its resume is as exact.
pub async fn events(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let rows = match takes_rows(query.as_deref()) {
        Ok(rows) => rows,
        Err(e) => return e.into_response(),
    };
    let mut shutdown = state.shutdown.subscribe();
    let frames = state
        .hub
        .frames(last_event_id(&headers))
        // A server shutting down waits for open connections; a stream never ends alone.
        .take_until(async move {
            let _ = shutdown.wait_for(|&stop| stop).await;
        })
        .boxed();
    let (encoder, coding) = Encoder::for_request(&headers);
    let body = futures::stream::unfold(
        (frames, encoder),
        move |(mut frames, mut encoder)| async move {
            let text = match tokio::time::timeout(KEEP_ALIVE, frames.next()).await {
                Ok(Some(p)) => message(&p, rows),
                Ok(None) => return None,
                Err(_) => b":\n\n".to_vec(),
            };
            let bytes = if text.len() > BLOCKING_FRAME && !matches!(encoder, Encoder::Identity) {
                let (encoder_back, bytes) = tokio::task::spawn_blocking(move || {
                    let bytes = encoder.frame(text);
                    (encoder, bytes)
                })
                .await
                .ok()?;
                encoder = encoder_back;
                bytes
            } else {
                encoder.frame(text)
            };
            Some((Ok::<_, Infallible>(Bytes::from(bytes)), (frames, encoder)))
        },
    );
    let mut res = Body::from_stream(body).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if let Some(coding) = coding {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding));
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_all_or_none() {
        assert!(takes_rows(None).unwrap());
        assert!(takes_rows(Some("rows=all")).unwrap());
        assert!(!takes_rows(Some("rows=none")).unwrap());
        assert!(!takes_rows(Some("x=1&rows=none&")).unwrap());
        let err = takes_rows(Some("rows=some")).unwrap_err().to_string();
        assert!(err.contains("all or none"), "{err}");
    }

    #[test]
    fn last_event_id_ignores_garbage() {
        let mut h = HeaderMap::new();
        assert_eq!(last_event_id(&h), None);
        h.insert("last-event-id", "42".parse().unwrap());
        assert_eq!(last_event_id(&h), Some(42));
        h.insert("last-event-id", "forty".parse().unwrap());
        assert_eq!(last_event_id(&h), None);
    }
}

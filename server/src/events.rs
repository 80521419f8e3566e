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

use flowdeck_protocol::stream::ROWS_EVENT;

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

/// Which task rows a client takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rows {
    /// In every frame (`?rows=all`, the default).
    All,
    /// None (`?rows=none`).
    None,
    /// In every frame, a full frame's after it in chunks (`?rows=chunked`).
    Chunked,
}

fn takes_rows(query: Option<&str>) -> Result<Rows, ApiError> {
    let mut rows = Rows::All;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        rows = match pair.split_once('=') {
            Some(("rows", "all")) => Rows::All,
            Some(("rows", "none")) => Rows::None,
            Some(("rows", "chunked")) => Rows::Chunked,
            Some(("rows", other)) => {
                return Err(ApiError::BadRequest(format!(
                    "rows must be all, none or chunked, not {other:?}"
                )))
            }
            _ => rows,
        }
    }
    Ok(rows)
}

/// One frame as SSE: its event name, its id (the frame's), its JSON (whole, or without
/// the task rows). For a chunked client, a full frame without rows, then its rows in
/// `rows` events, the last of which carries the frame's id instead.
fn message(p: &Published, rows: Rows) -> Vec<u8> {
    let chunked = rows == Rows::Chunked && !p.chunks.is_empty();
    let json = match rows {
        Rows::None => &p.without_rows,
        Rows::Chunked if chunked => &p.without_rows,
        Rows::All | Rows::Chunked => &p.json,
    };
    let bytes = json.len() + p.chunks.iter().map(|c| c.len() + 32).sum::<usize>();
    let mut out = Vec::with_capacity(bytes + 48);
    sse(&mut out, p.event, (!chunked).then_some(p.id), json);
    if chunked {
        let last = p.chunks.len() - 1;
        for (i, chunk) in p.chunks.iter().enumerate() {
            sse(&mut out, ROWS_EVENT, (i == last).then_some(p.id), chunk);
        }
    }
    out
}

/// Appends one SSE message.
fn sse(out: &mut Vec<u8>, event: &str, id: Option<u64>, json: &str) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(event.as_bytes());
    out.push(b'\n');
    if let Some(id) = id {
        out.extend_from_slice(format!("id: {id}\n").as_bytes());
    }
    // Compact JSON has no line breaks; were there any, each line is a data line of its own.
    for line in json.split('\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
}

/// `GET /api/events`: the live stream. A full frame first (or, with `Last-Event-ID`, the
/// frames missed), then a delta every refresh; keep-alive comments keep proxies from
/// closing an idle connection. Brotli or gzip when the client accepts it, with one
/// compression context for the connection and every frame flushed as it is sent.
///
/// `?rows=none` leaves the task rows out of every frame, for a page that shows none: the
/// same frames and ids otherwise, so its resume is as exact. `?rows=chunked` sends a full
/// frame's rows after it in chunks, each parsed by a browser in a task of its own.
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
    fn rows_are_all_none_or_chunked() {
        assert_eq!(takes_rows(None).unwrap(), Rows::All);
        assert_eq!(takes_rows(Some("rows=all")).unwrap(), Rows::All);
        assert_eq!(takes_rows(Some("rows=none")).unwrap(), Rows::None);
        assert_eq!(takes_rows(Some("x=1&rows=none&")).unwrap(), Rows::None);
        assert_eq!(takes_rows(Some("rows=chunked")).unwrap(), Rows::Chunked);
        let err = takes_rows(Some("rows=some")).unwrap_err().to_string();
        assert!(err.contains("all, none or chunked"), "{err}");
    }

    /// A chunked client gets the full frame without rows and no id, then the rows in order,
    /// the last chunk with the frame's id; a delta goes whole.
    #[test]
    fn a_full_frames_rows_follow_it_and_the_last_chunk_has_its_id() {
        let full = Published {
            id: 7,
            event: "full",
            json: r#"{"id":7,"items":[[1],[2],[3]]}"#.into(),
            without_rows: r#"{"id":7,"items":[]}"#.into(),
            chunks: vec!["[[1],[2]]".into(), "[[3]]".into()],
        };
        let text = String::from_utf8(message(&full, Rows::Chunked)).unwrap();
        assert_eq!(
            text,
            "event: full\ndata: {\"id\":7,\"items\":[]}\n\n\
             event: rows\ndata: [[1],[2]]\n\n\
             event: rows\nid: 7\ndata: [[3]]\n\n"
        );
        let whole = String::from_utf8(message(&full, Rows::All)).unwrap();
        assert!(whole.starts_with("event: full\nid: 7\ndata: {\"id\":7,\"items\":[[1],[2],[3]]}"));
        let delta = Published {
            id: 8,
            event: "delta",
            json: r#"{"items":[[4]]}"#.into(),
            without_rows: r#"{"items":[]}"#.into(),
            chunks: Vec::new(),
        };
        let text = String::from_utf8(message(&delta, Rows::Chunked)).unwrap();
        assert_eq!(text, "event: delta\nid: 8\ndata: {\"items\":[[4]]}\n\n");
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

//! The errors every endpoint answers with (the API's, the sign-in's, the Host guard's, the
//! ingest's): a status and a JSON body naming the problem, never a bare 500.

use axum::{
    extract::Request,
    http::{header, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A parameter is missing, malformed or out of range.
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// No credentials, or ones this server does not know.
    #[error("{0}")]
    Unauthorized(String),
    /// Not allowed here (a readonly dashboard, a viewer, a missing CSRF token).
    #[error("{0}")]
    Forbidden(String),
    /// Valid, but not in the pipeline's current state (retrying an item that has not failed).
    #[error("{0}")]
    Conflict(String),
    /// Something the request depends on failed: a user's table source or check.
    #[error("{0}")]
    Unavailable(String),
    /// One field of the body is wrong: a 400 whose body names it (`field`).
    #[error("{message}")]
    BadField { field: String, message: String },
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, error) = match &self {
            ApiError::BadRequest(_) | ApiError::BadField { .. } => {
                (StatusCode::BAD_REQUEST, "bad_request")
            }
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Unavailable(_) => (StatusCode::BAD_GATEWAY, "source_failed"),
        };
        (
            status,
            Json(ErrorBody {
                error,
                message: self.to_string(),
                field: match self {
                    ApiError::BadField { field, .. } => Some(field),
                    _ => None,
                },
            }),
        )
            .into_response()
    }
}

/// The `error` field for a status no handler chose itself.
fn slug(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "bad_request",
        StatusCode::TOO_MANY_REQUESTS => "too_many_requests",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    }
}

/// Error bodies longer than this are cut when rewrapped: they are messages, not data.
const MAX_MESSAGE: usize = 4 * 1024;

/// Makes every error under `/api/` JSON of the one shape (`{"error", "message"}`),
/// whoever produced it: axum's extractors (a path segment that is not UTF-8, a body that is
/// not JSON), the body-size limit (413), a wrong method (405). The handlers' own errors
/// already are. Server functions (`/api/view`, ...) keep their own encoding, which their
/// client decodes.
pub async fn json_errors(
    server_fns: std::sync::Arc<std::collections::HashSet<&'static str>>,
    req: Request,
    next: Next,
) -> Response {
    let path = crate::pipelines::unscoped(req.uri().path());
    if !path.starts_with("/api/") || server_fns.contains(path) {
        return next.run(req).await;
    }
    let response = next.run(req).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, MAX_MESSAGE).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        Err(_) => String::new(),
    };
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    } else {
        text
    };
    let body = serde_json::to_vec(&ErrorBody {
        error: slug(status),
        message,
        field: None,
    })
    .unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, axum::body::Body::from(body))
}

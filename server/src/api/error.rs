//! The API's errors: a status and a JSON body naming the problem, never a bare 500.

use axum::{
    http::StatusCode,
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
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, error) = match &self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Unavailable(_) => (StatusCode::BAD_GATEWAY, "source_failed"),
        };
        (
            status,
            Json(Body {
                error,
                message: self.to_string(),
            }),
        )
            .into_response()
    }
}

//! Query strings, parsed strictly: an unknown parameter, a malformed value or one out of
//! range is a 400 that names it, where axum's own `Query` would answer in plain text.

use axum::{extract::FromRequestParts, http::request::Parts};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A query string deserialized into `T` (which should deny unknown fields).
pub struct Strict<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Strict<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse(parts.uri.query().unwrap_or_default()).map(Strict)
    }
}

/// A query string deserialized into `T`, a bad value a 400 naming its parameter.
pub(crate) fn parse<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    // serde_path_to_error names the parameter a bad value belongs to.
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            ApiError::BadRequest(format!("bad query string: {}", e.inner()))
        } else {
            ApiError::BadRequest(format!("bad value for {path}: {}", e.inner()))
        }
    })
}

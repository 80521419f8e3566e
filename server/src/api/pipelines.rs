//! `GET /api/v1/pipelines`: the pipelines a dashboard serves, for scripts: the rows the
//! list page shows, filtered and sorted by the server.

use axum::{extract::State, Json};
use flowdeck_protocol::{
    pipelines::{PipelineQuery, PipelineRow, PipelineSort, Window},
    PipelineState,
};
use serde::Deserialize;

use super::{query::Strict, ApiError};
use crate::state::AppState;

/// `GET /api/v1/pipelines` parameters.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// The runs counted: the live one, or those started in the last hour, day or week.
    window: Option<Window>,
    sort: Option<PipelineSort>,
    /// `asc` or `desc`; by default names ascend and numbers descend.
    order: Option<Order>,
    state: Option<PipelineState>,
    /// Part of a name or slug.
    q: Option<String>,
    /// Only pipelines with at least this many failures in the window.
    min_failed: Option<u64>,
    /// `true`: only pipelines with warnings firing.
    warning: Option<bool>,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Order {
    Asc,
    Desc,
}

impl ListQuery {
    fn query(self) -> PipelineQuery {
        let sort = self.sort.unwrap_or_default();
        PipelineQuery {
            window: self.window.unwrap_or_default(),
            sort,
            desc: self
                .order
                .map_or(sort.largest_first(), |o| o == Order::Desc),
            state: self.state,
            text: self.q.unwrap_or_default(),
            min_failed: self.min_failed,
            warning: self.warning.unwrap_or(false),
        }
    }
}

/// The list, for scripts: the same rows the list page shows.
pub(super) async fn list(
    State(state): State<AppState>,
    Strict(q): Strict<ListQuery>,
) -> Result<Json<Vec<PipelineRow>>, ApiError> {
    state
        .listed()
        .read(q.query())
        .await
        .map(Json)
        .map_err(ApiError::Unavailable)
}

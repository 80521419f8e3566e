//! A window onto the task list: the rows a page shows, and no others.
//!
//! The Tasks page lists every retained item, filtered and newest first, but draws only the
//! thirty or so rows in view. Rather than take every changed row of 100,000 and filter them
//! in the browser, it subscribes to a [`WindowQuery`] (its tab, stage and search, and the
//! positions around what is in view) named in the stream's URL; the server sends the
//! [`Window`] at that query whenever it changes, beside frames that carry no rows. Moving
//! the window (scrolling, filtering) reopens the stream at the frame the page last applied,
//! so it costs a window and no full frame.
//!
//! The server and the page compute a window with the same function
//! ([`LiveState::window`]): the server from its mirror, the page (when rendered on the
//! server and hydrated) from the rows of its first picture.

use serde::{Deserialize, Serialize};

use crate::{
    filter::{Facts, FilterError, TaskFilter},
    stream::{ItemRow, LiveState},
    ItemStatus,
};

/// The SSE event carrying a [`Window`], sent before the frame it belongs with.
pub const WINDOW_EVENT: &str = "window";

/// The most rows a window may span.
pub const WINDOW_MAX: u32 = 1_000;

/// The task list's status tabs. Active groups running and retrying items; Failed, failed
/// and cancelled ones.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tab {
    #[default]
    All,
    Queued,
    Active,
    Waiting,
    Completed,
    Failed,
}

impl Tab {
    pub const ALL: [Tab; 6] = [
        Tab::All,
        Tab::Queued,
        Tab::Active,
        Tab::Waiting,
        Tab::Completed,
        Tab::Failed,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Tab::All => "All",
            Tab::Queued => "Queued",
            Tab::Active => "Active",
            Tab::Waiting => "Waiting",
            Tab::Completed => "Completed",
            Tab::Failed => "Failed",
        }
    }

    /// The tab named (as in an address: `failed`), whatever its case.
    pub fn named(name: &str) -> Option<Tab> {
        Tab::ALL
            .into_iter()
            .find(|t| t.label().eq_ignore_ascii_case(name))
    }

    pub fn admits(self, s: ItemStatus) -> bool {
        match self {
            Tab::All => true,
            Tab::Queued => s == ItemStatus::Queued,
            Tab::Active => matches!(s, ItemStatus::Running | ItemStatus::Retrying),
            Tab::Waiting => s == ItemStatus::Waiting,
            Tab::Completed => s == ItemStatus::Completed,
            Tab::Failed => matches!(s, ItemStatus::Failed | ItemStatus::Cancelled),
        }
    }
}

/// Which rows a client shows: those its tab, stage and search find, newest first, at
/// positions `from .. from + count`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WindowQuery {
    #[serde(default)]
    pub tab: Tab,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub q: String,
    #[serde(default)]
    pub from: u64,
    pub count: u32,
}

impl WindowQuery {
    /// The query string of the stream's URL (after `rows=window&`).
    pub fn to_query(&self) -> String {
        let mut out = format!("tab={}", self.tab.label().to_ascii_lowercase());
        let mut pair = |k: &str, v: &str| {
            out.push('&');
            out.push_str(k);
            out.push('=');
            for b in v.bytes() {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    out.push(b as char);
                } else {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
        };
        if let Some(s) = &self.stage {
            pair("stage", s);
        }
        if !self.q.is_empty() {
            pair("q", &self.q);
        }
        pair("from", &self.from.to_string());
        pair("count", &self.count.to_string());
        out
    }

    /// Whether `other` asks for the same rows, wherever its window lies.
    pub fn same_filter(&self, other: &WindowQuery) -> bool {
        (self.tab, &self.stage, self.q.trim()) == (other.tab, &other.stage, other.q.trim())
    }

    /// Whether positions `first .. first + n` (clamped to `matched`) lie in the window.
    pub fn covers(&self, first: u64, n: u64, matched: u64) -> bool {
        let end = first.saturating_add(n).min(matched);
        first >= self.from && end <= self.from.saturating_add(u64::from(self.count))
    }
}

/// What a window shows: the query it answers, its rows (newest first) from position
/// `query.from`, how many rows its filter finds in all (the list's length), and how many
/// retained items have each status (in [`ItemStatus::ALL`]'s order: the tabs' counts).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub query: WindowQuery,
    pub matched: u64,
    pub counts: Vec<u64>,
    pub rows: Vec<ItemRow>,
}

impl Window {
    /// How many retained items a tab lists, filters aside.
    pub fn tab_count(&self, tab: Tab) -> u64 {
        ItemStatus::ALL
            .iter()
            .zip(&self.counts)
            .filter(|(s, _)| tab.admits(**s))
            .map(|(_, n)| n)
            .sum()
    }

    /// The rows at positions `first .. first + n` that the window holds.
    pub fn rows_at(&self, first: u64, n: u64) -> &[ItemRow] {
        let len = self.rows.len() as u64;
        let from = self.query.from;
        let start = first.saturating_sub(from).min(len);
        let end = first.saturating_add(n).saturating_sub(from).min(len);
        &self.rows[start as usize..end.max(start) as usize]
    }
}

impl LiveState {
    /// The window `q` shows of this state: one pass over the retained rows, newest first.
    /// A stage the pipeline does not have, or a search that does not parse, is an error.
    pub fn window(&self, q: &WindowQuery) -> Result<Window, FilterError> {
        let names: Vec<String> = self
            .snapshot
            .stages
            .iter()
            .map(|s| s.name.clone())
            .collect();
        let stage = match &q.stage {
            Some(name) => Some(names.iter().position(|n| n == name).ok_or_else(|| {
                FilterError::UnknownStage {
                    term: format!("stage={name}"),
                    value: name.clone(),
                    stages: names.clone(),
                }
            })?),
            None => None,
        };
        let filter = TaskFilter::parse(&q.q, &names)?;
        let admits = |r: &ItemRow| {
            q.tab.admits(r.status())
                && stage.is_none_or(|s| s == usize::from(r.stage()))
                && (filter.is_empty()
                    || filter.matches(
                        &Facts {
                            id: r.id(),
                            status: r.status(),
                            stage: r.stage(),
                            kind: r.error_kind(),
                            message: None,
                        },
                        &names,
                    ))
        };
        let from = usize::try_from(q.from).unwrap_or(usize::MAX);
        let count = q.count.min(WINDOW_MAX) as usize;
        let counts = ItemStatus::ALL.map(|s| self.count(s) as u64).to_vec();
        let unfiltered = q.tab == Tab::All && stage.is_none() && filter.is_empty();
        let (matched, rows) = if unfiltered {
            let rows = self
                .items
                .values()
                .rev()
                .skip(from)
                .take(count)
                .cloned()
                .collect();
            (self.items.len() as u64, rows)
        } else {
            let mut matched = 0u64;
            let mut rows = Vec::with_capacity(count.min(self.items.len()));
            for r in self.items.values().rev().filter(|r| admits(r)) {
                let at = matched as usize;
                if at >= from && at < from.saturating_add(count) {
                    rows.push(r.clone());
                }
                matched += 1;
            }
            (matched, rows)
        };
        Ok(Window {
            query: q.clone(),
            matched,
            counts,
            rows,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::Full;

    fn state() -> LiveState {
        let mut full = Full {
            retention: 100,
            ..Full::default()
        };
        for name in ["parse", "enrich"] {
            full.snapshot.stages.push(crate::StageSnapshot {
                name: name.into(),
                ..Default::default()
            });
        }
        full.items = (1..=10)
            .map(|id| {
                let failed = id % 3 == 0;
                ItemRow(
                    id,
                    if failed {
                        ItemStatus::Failed
                    } else {
                        ItemStatus::Completed
                    },
                    (id % 2) as u16,
                    1,
                    id,
                    failed.then(|| "Timeout".into()),
                )
            })
            .collect();
        LiveState::from_full(full)
    }

    fn ids(w: &Window) -> Vec<u64> {
        w.rows.iter().map(ItemRow::id).collect()
    }

    #[test]
    fn a_window_is_its_filters_rows_newest_first_from_a_position() {
        let s = state();
        let all = s
            .window(&WindowQuery {
                from: 2,
                count: 3,
                ..Default::default()
            })
            .unwrap();
        assert_eq!((all.matched, ids(&all)), (10, vec![8, 7, 6]));
        assert_eq!(all.tab_count(Tab::Failed), 3);
        assert_eq!(all.tab_count(Tab::Completed), 7);
        let failed = s
            .window(&WindowQuery {
                tab: Tab::Failed,
                count: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!((failed.matched, ids(&failed)), (3, vec![9, 6, 3]));
        let searched = s
            .window(&WindowQuery {
                stage: Some("enrich".into()),
                q: "-kind:timeout".into(),
                from: 1,
                count: 2,
                ..Default::default()
            })
            .unwrap();
        // Odd ids are at enrich; 3 and 9 failed with a timeout: 7, 5, 1 remain.
        assert_eq!((searched.matched, ids(&searched)), (3, vec![5, 1]));
        assert_eq!(searched.rows_at(2, 5).len(), 1);
        let far = WindowQuery {
            tab: Tab::Failed,
            from: u64::MAX,
            count: 1_000,
            ..Default::default()
        };
        let nothing = s.window(&far).unwrap();
        assert_eq!(
            (nothing.matched, nothing.rows.len()),
            (3, 0),
            "past the end"
        );
        assert!(nothing.rows_at(u64::MAX, 5).is_empty() && !far.covers(0, 5, 3));
        assert!(s
            .window(&WindowQuery {
                stage: Some("nope".into()),
                count: 1,
                ..Default::default()
            })
            .is_err());
        assert!(s
            .window(&WindowQuery {
                q: "colour:red".into(),
                count: 1,
                ..Default::default()
            })
            .is_err());
    }

    #[test]
    fn the_query_string_round_trips() {
        let q = WindowQuery {
            tab: Tab::Active,
            stage: Some("en rich".into()),
            q: "kind:a&b -x".into(),
            from: 40,
            count: 120,
        };
        let text = q.to_query();
        assert_eq!(
            text,
            "tab=active&stage=en%20rich&q=kind%3Aa%26b%20-x&from=40&count=120"
        );
        let back: WindowQuery = serde_json::from_value(serde_json::json!({
            "tab": "active", "stage": "en rich", "q": "kind:a&b -x", "from": 40, "count": 120
        }))
        .unwrap();
        assert_eq!(back, q);
        assert!(q.covers(40, 120, 1_000) && q.covers(150, 50, 155) && !q.covers(39, 5, 1_000));
    }
}

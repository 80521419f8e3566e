//! The pipelines a dashboard serves, as its list page and `/api/v1/pipelines` show them.

use serde::{Deserialize, Serialize};

use crate::{runs::RunState, PipelineState};

/// One pipeline's row: its live state, and counts over a window of its runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PipelineRow {
    /// Its name in paths: its pages are under `/p/{slug}/`, its API under
    /// `/p/{slug}/api/v1/`.
    pub slug: String,
    pub name: String,
    /// The live run's state.
    pub state: PipelineState,
    /// Items that left the live run per second, over the last refresh.
    pub throughput: f64,
    /// Items waiting in the live run's queues and being worked on now.
    pub queued: u64,
    pub running: u64,
    /// Items that finished in the runs of the window, by how they finished. Exact: a run's
    /// counts come from its totals (the live run's from its snapshot), not from the items
    /// the store kept.
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
    /// The runs those counts cover, the live one included.
    pub runs: u64,
    /// The run before the live one, when the store has one.
    pub last_run: Option<LastRun>,
    /// Health warnings firing now.
    pub warnings: u32,
}

/// A pipeline's previous run, in its list row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LastRun {
    pub id: i64,
    pub state: RunState,
    pub started_ms: u64,
    pub ended_ms: Option<u64>,
    pub failed: u64,
}

/// The runs a row counts: the live one only, or every run started within the last hour,
/// day or week (the live one included).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Window {
    #[default]
    Run,
    Hour,
    Day,
    Week,
}

impl Window {
    pub const ALL: [Window; 4] = [Window::Run, Window::Hour, Window::Day, Window::Week];

    pub fn as_str(self) -> &'static str {
        match self {
            Window::Run => "run",
            Window::Hour => "hour",
            Window::Day => "day",
            Window::Week => "week",
        }
    }

    /// How far back it reaches, in ms; `None` for the live run alone.
    pub fn span_ms(self) -> Option<u64> {
        match self {
            Window::Run => None,
            Window::Hour => Some(3_600_000),
            Window::Day => Some(86_400_000),
            Window::Week => Some(7 * 86_400_000),
        }
    }
}

/// The column a pipeline list is sorted by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PipelineSort {
    #[default]
    Name,
    State,
    Throughput,
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
    Runs,
    LastRun,
    Warnings,
}

impl PipelineSort {
    pub const ALL: [PipelineSort; 11] = [
        PipelineSort::Name,
        PipelineSort::State,
        PipelineSort::Throughput,
        PipelineSort::Queued,
        PipelineSort::Running,
        PipelineSort::Completed,
        PipelineSort::Failed,
        PipelineSort::Cancelled,
        PipelineSort::Runs,
        PipelineSort::LastRun,
        PipelineSort::Warnings,
    ];

    /// Whether a list sorted by this column starts from its largest value unless told
    /// otherwise: counts and rates do, names and states read in their order.
    pub fn largest_first(self) -> bool {
        !matches!(self, PipelineSort::Name | PipelineSort::State)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PipelineSort::Name => "name",
            PipelineSort::State => "state",
            PipelineSort::Throughput => "throughput",
            PipelineSort::Queued => "queued",
            PipelineSort::Running => "running",
            PipelineSort::Completed => "completed",
            PipelineSort::Failed => "failed",
            PipelineSort::Cancelled => "cancelled",
            PipelineSort::Runs => "runs",
            PipelineSort::LastRun => "last_run",
            PipelineSort::Warnings => "warnings",
        }
    }
}

/// Which pipelines a list shows, and in what order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PipelineQuery {
    pub window: Window,
    pub sort: PipelineSort,
    /// Largest first (the default for counts is the caller's to choose).
    pub desc: bool,
    /// Only pipelines in this state.
    pub state: Option<PipelineState>,
    /// Only pipelines whose name or slug contains this (case-insensitive).
    pub text: String,
    /// Only pipelines with this many failures or more in the window.
    pub min_failed: Option<u64>,
    /// Only pipelines with warnings firing.
    pub warning: bool,
}

impl PipelineQuery {
    /// Whether `row` passes the filters.
    pub fn keeps(&self, row: &PipelineRow) -> bool {
        let text = self.text.trim().to_lowercase();
        self.state.is_none_or(|s| row.state == s)
            && (text.is_empty()
                || row.name.to_lowercase().contains(&text)
                || row.slug.contains(&text))
            && self.min_failed.is_none_or(|n| row.failed >= n)
            && (!self.warning || row.warnings > 0)
    }

    /// Filters and sorts `rows` in place; ties go by name, then slug.
    pub fn apply(&self, rows: &mut Vec<PipelineRow>) {
        rows.retain(|r| self.keeps(r));
        let key = |r: &PipelineRow| -> f64 {
            match self.sort {
                PipelineSort::Name => 0.0,
                PipelineSort::State => f64::from(r.state as u8),
                PipelineSort::Throughput => r.throughput,
                PipelineSort::Queued => r.queued as f64,
                PipelineSort::Running => r.running as f64,
                PipelineSort::Completed => r.completed as f64,
                PipelineSort::Failed => r.failed as f64,
                PipelineSort::Cancelled => r.cancelled as f64,
                PipelineSort::Runs => r.runs as f64,
                PipelineSort::LastRun => r.last_run.as_ref().map_or(-1.0, |l| l.started_ms as f64),
                PipelineSort::Warnings => f64::from(r.warnings),
            }
        };
        rows.sort_by(|a, b| {
            let by_key = key(a).total_cmp(&key(b));
            let by_key = if self.desc { by_key.reverse() } else { by_key };
            let by_name = a.name.to_lowercase().cmp(&b.name.to_lowercase());
            let by_name = if self.desc && self.sort == PipelineSort::Name {
                by_name.reverse()
            } else {
                by_name
            };
            by_key.then(by_name).then_with(|| a.slug.cmp(&b.slug))
        });
    }
}

/// The name `name` gets in paths: lowercase ASCII letters and digits, other runs of
/// characters as one `-`; "pipeline" when nothing is left.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-');
    if out.is_empty() {
        "pipeline".to_owned()
    } else {
        out.to_owned()
    }
}

/// Whether `s` could be a slug [`slug`] made.
pub fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_path_safe() {
        assert_eq!(slug("Data Processing Pipeline"), "data-processing-pipeline");
        assert_eq!(slug("  orders/EU (v2) "), "orders-eu-v2");
        assert_eq!(slug("ßü"), "pipeline");
        for s in ["orders", "a-1", "data-processing-pipeline"] {
            assert!(is_slug(s), "{s}");
        }
        for s in ["", "-a", "a-", "A", "a b", "a/b", "..", &"a".repeat(65)] {
            assert!(!is_slug(s), "{s:?}");
        }
    }

    fn row(name: &str, failed: u64, state: PipelineState) -> PipelineRow {
        PipelineRow {
            slug: slug(name),
            name: name.into(),
            state,
            throughput: 0.0,
            queued: 0,
            running: 0,
            completed: 0,
            failed,
            cancelled: 0,
            runs: 1,
            last_run: None,
            warnings: u32::from(failed > 5),
        }
    }

    #[test]
    fn a_list_is_filtered_then_sorted_with_ties_by_name() {
        let mut rows = vec![
            row("billing", 3, PipelineState::Running),
            row("Audit", 9, PipelineState::Finished),
            row("crawl", 3, PipelineState::Running),
            row("docs", 0, PipelineState::Draining),
        ];
        let names = |rows: &[PipelineRow]| rows.iter().map(|r| r.name.clone()).collect::<Vec<_>>();
        let mut by_failed = rows.clone();
        PipelineQuery {
            sort: PipelineSort::Failed,
            desc: true,
            ..Default::default()
        }
        .apply(&mut by_failed);
        assert_eq!(names(&by_failed), ["Audit", "billing", "crawl", "docs"]);

        let mut running = rows.clone();
        PipelineQuery {
            state: Some(PipelineState::Running),
            sort: PipelineSort::Name,
            desc: true,
            ..Default::default()
        }
        .apply(&mut running);
        assert_eq!(names(&running), ["crawl", "billing"]);

        PipelineQuery {
            text: "AU".into(),
            ..Default::default()
        }
        .apply(&mut rows);
        assert_eq!(names(&rows), ["Audit"]);
    }
}

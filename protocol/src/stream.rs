//! The live stream's messages and the state a client rebuilds from them.
//!
//! The server sends one [`Frame`] per message: a [`Full`] picture first, then one
//! [`Delta`] per refresh interval with everything that changed since the previous frame.
//! Frame ids are consecutive, so a client can tell a gap from a repeat, and a reconnecting
//! client names the last id it applied (SSE `Last-Event-ID`) to get exactly the frames it
//! missed. [`LiveState::apply`] is the one way a client changes its state: the server's own
//! mirror uses it too, which is what lets a test compare the two.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::{ErrorSummary, ErrorsDelta, ItemId, ItemStatus, ItemSummary, Snapshot, StageIndex};

/// How many points of rate history a client keeps (5 minutes at the default 250 ms refresh).
pub const HISTORY_POINTS: usize = 1200;

/// One row of the tasks table. Serialized as a JSON array, not an object: a full frame can
/// hold 100,000 of them, and field names would triple its size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemRow(
    pub ItemId,
    pub ItemStatus,
    pub StageIndex,
    /// Attempts at the current stage.
    pub u32,
    /// Last change, microseconds since the pipeline started.
    pub u64,
    /// The error kind, for failed and retrying items.
    pub Option<String>,
);

impl ItemRow {
    pub fn id(&self) -> ItemId {
        self.0
    }
    pub fn status(&self) -> ItemStatus {
        self.1
    }
    pub fn stage(&self) -> StageIndex {
        self.2
    }
    pub fn attempts(&self) -> u32 {
        self.3
    }
    pub fn updated_us(&self) -> u64 {
        self.4
    }
    pub fn error_kind(&self) -> Option<&str> {
        self.5.as_deref()
    }
}

impl From<&ItemSummary> for ItemRow {
    fn from(s: &ItemSummary) -> Self {
        ItemRow(
            s.id,
            s.status,
            s.stage,
            s.attempts,
            s.updated_us,
            s.error.as_ref().map(|e| e.kind.clone()),
        )
    }
}

/// Rates at one refresh, for the charts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Pipeline uptime at this point, in milliseconds.
    pub at_ms: u64,
    /// Items entering the pipeline per second.
    pub input_rate: f64,
    /// Items leaving it (completed, failed or cancelled) per second.
    pub output_rate: f64,
    /// Items failing for good per second.
    pub failed_rate: f64,
    pub queued: u64,
    pub running: u64,
}

/// Everything a client shows, at frame `id`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Full {
    pub id: u64,
    pub snapshot: Snapshot,
    /// How many of the most recent items the server keeps: the client keeps as many.
    pub retention: u64,
    /// Retained items, ordered by id.
    pub items: Vec<ItemRow>,
    pub history: Vec<Point>,
    pub errors: ErrorSummary,
    /// The pipeline's questions for people: the pending ones, then the most recent closed
    /// ones ([`QUESTIONS_KEPT`]). Not in the browser's build, whose pages ask for them
    /// (`snapshot.questions_seq` says when): the first load's wasm carries no code to
    /// decode, keep or drop them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg(not(target_arch = "wasm32"))]
    pub questions: Vec<crate::question::QuestionInfo>,
}

/// Closed questions a client keeps besides the pending ones.
pub const QUESTIONS_KEPT: usize = 100;

/// What changed between frame `id - 1` and frame `id`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    pub id: u64,
    /// The aggregates: a few hundred bytes per stage, cheaper to resend than to diff.
    pub snapshot: Snapshot,
    /// Items whose row changed, each once with its latest row.
    pub items: Vec<ItemRow>,
    pub point: Point,
    /// What changed in the error summary, when anything did.
    pub errors: Option<ErrorsDelta>,
    /// When the oldest change this frame carries happened (µs since the pipeline started):
    /// how late the frame is, at worst. Pages measure their lag from it.
    #[serde(default)]
    pub oldest_change_us: Option<u64>,
    /// Questions asked and closed since the last frame, in order (not read in the browser;
    /// see [`Full::questions`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg(not(target_arch = "wasm32"))]
    pub questions: Vec<crate::question::QuestionChange>,
}

/// One stream message. The SSE event name is [`Frame::event`]; the SSE id is [`Frame::id`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Frame {
    Full(Full),
    Delta(Delta),
}

impl Frame {
    pub fn id(&self) -> u64 {
        match self {
            Frame::Full(f) => f.id,
            Frame::Delta(d) => d.id,
        }
    }

    /// The SSE event name the frame travels under.
    pub fn event(&self) -> &'static str {
        match self {
            Frame::Full(_) => FULL_EVENT,
            Frame::Delta(_) => DELTA_EVENT,
        }
    }
}

pub const FULL_EVENT: &str = "full";
/// The path a pipeline's stream is served on (under its base, `/p/{slug}`, on a dashboard
/// of several): browsers, `flowdeck top` and the server name it here.
pub const EVENTS_PATH: &str = "/api/events";

/// The stream's query for a client that shows no task rows (every page but the task
/// list): the same frames, with the same ids, without their `items`, so that such a client
/// resumes by `Last-Event-ID` exactly as one that takes them.
pub const WITHOUT_ROWS: &str = "rows=none";
/// The stream's query for the task list: rows, with a full frame's rows sent after it in
/// [`ROWS_EVENT`]s of at most [`ROWS_CHUNK`] rows. A browser parses each message in a task
/// of its own, and 100,000 rows parsed at once took one task of 73 to 104 ms.
pub const CHUNKED_ROWS: &str = "rows=chunked";
/// Rows of the full frame just sent, to add to it ([`LiveState::add_rows`]). The last one
/// carries the frame's id: a client cut off before it has no id to resume from, and gets
/// a whole full frame again.
pub const ROWS_EVENT: &str = "rows";
/// The most rows a [`ROWS_EVENT`] carries.
pub const ROWS_CHUNK: usize = 10_000;
pub const DELTA_EVENT: &str = "delta";

/// A delta that does not follow the state it was applied to: the client must resync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gap {
    pub have: u64,
    pub got: u64,
}

impl std::fmt::Display for Gap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "frame {} does not follow frame {}", self.got, self.have)
    }
}

impl std::error::Error for Gap {}

/// The picture a client keeps, rebuilt from frames.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LiveState {
    /// The last frame applied.
    pub id: u64,
    pub snapshot: Snapshot,
    pub retention: u64,
    pub items: BTreeMap<ItemId, ItemRow>,
    pub history: VecDeque<Point>,
    pub errors: ErrorSummary,
    /// Questions by id: every pending one, and the [`QUESTIONS_KEPT`] most recent closed
    /// ones (not in the browser's build, which asks for them).
    #[cfg(not(target_arch = "wasm32"))]
    pub questions: BTreeMap<crate::question::QuestionId, crate::question::QuestionInfo>,
    /// Retained items per status, indexed like [`ItemStatus::ALL`], kept as rows change
    /// so that a page showing them does not count 100,000 items every frame.
    counts: [usize; 7],
}

fn slot(s: ItemStatus) -> usize {
    ItemStatus::ALL.iter().position(|&x| x == s).unwrap_or(0)
}

impl LiveState {
    pub fn from_full(full: Full) -> Self {
        let mut state = LiveState {
            id: full.id,
            snapshot: full.snapshot,
            retention: full.retention,
            items: full.items.into_iter().map(|r| (r.id(), r)).collect(),
            history: full.history.into_iter().collect(),
            errors: full.errors,
            #[cfg(not(target_arch = "wasm32"))]
            questions: full.questions.into_iter().map(|q| (q.id, q)).collect(),
            counts: [0; 7],
        };
        for row in state.items.values() {
            state.counts[slot(row.status())] += 1;
        }
        state.trim();
        state
    }

    /// Adds rows of the full frame applied last, sent after it ([`ROWS_EVENT`]).
    pub fn add_rows(&mut self, rows: Vec<ItemRow>) {
        self.put_rows(rows);
        self.trim();
    }

    fn put_rows(&mut self, rows: Vec<ItemRow>) {
        for row in rows {
            self.counts[slot(row.status())] += 1;
            if let Some(old) = self.items.insert(row.id(), row) {
                self.counts[slot(old.status())] -= 1;
            }
        }
    }

    /// The last `n` points of the rate history, oldest first.
    pub fn recent_history(&self, n: usize) -> impl Iterator<Item = Point> + '_ {
        self.history
            .range(self.history.len().saturating_sub(n)..)
            .copied()
    }

    /// Applies a frame: a full one replaces the state, a delta must be the next frame.
    pub fn apply(&mut self, frame: Frame) -> Result<(), Gap> {
        match frame {
            Frame::Full(full) => {
                *self = LiveState::from_full(full);
                Ok(())
            }
            Frame::Delta(delta) => self.apply_delta(delta),
        }
    }

    pub fn apply_delta(&mut self, delta: Delta) -> Result<(), Gap> {
        if delta.id != self.id + 1 {
            return Err(Gap {
                have: self.id,
                got: delta.id,
            });
        }
        self.id = delta.id;
        self.snapshot = delta.snapshot;
        self.put_rows(delta.items);
        self.history.push_back(delta.point);
        if let Some(errors) = delta.errors {
            self.errors.apply(errors);
        }
        #[cfg(not(target_arch = "wasm32"))]
        for change in delta.questions {
            let q = match change {
                crate::question::QuestionChange::Asked(q)
                | crate::question::QuestionChange::Closed(q) => q,
            };
            self.questions.insert(q.id, q);
        }
        self.trim();
        Ok(())
    }

    /// The pending questions, oldest first.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn pending_questions(&self) -> impl Iterator<Item = &crate::question::QuestionInfo> {
        self.questions.values().filter(|q| q.state.is_pending())
    }

    /// The state as a full frame, for a client that connects now.
    pub fn to_full(&self) -> Full {
        Full {
            id: self.id,
            snapshot: self.snapshot.clone(),
            retention: self.retention,
            items: self.items.values().cloned().collect(),
            history: self.history.iter().copied().collect(),
            errors: self.errors.clone(),
            #[cfg(not(target_arch = "wasm32"))]
            questions: self.questions.values().cloned().collect(),
        }
    }

    /// Drops what the server no longer keeps: items more than `retention` ids older than the
    /// newest (the server's ring keeps one item per `id % retention` slot), and old points.
    fn trim(&mut self) {
        if let Some(&newest) = self.items.keys().next_back() {
            let keep_from = (newest + 1).saturating_sub(self.retention);
            if keep_from > 0 && self.items.keys().next().is_some_and(|&k| k < keep_from) {
                let kept = self.items.split_off(&keep_from);
                for row in self.items.values() {
                    self.counts[slot(row.status())] -= 1;
                }
                self.items = kept;
            }
        }
        while self.history.len() > HISTORY_POINTS {
            self.history.pop_front();
        }
        // Closed questions beyond the most recent QUESTIONS_KEPT go, oldest first.
        #[cfg(not(target_arch = "wasm32"))]
        self.trim_questions();
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn trim_questions(&mut self) {
        let closed = self
            .questions
            .values()
            .filter(|q| !q.state.is_pending())
            .count();
        if closed > QUESTIONS_KEPT {
            let old: Vec<_> = self
                .questions
                .values()
                .filter(|q| !q.state.is_pending())
                .map(|q| q.id)
                .take(closed - QUESTIONS_KEPT)
                .collect();
            for id in old {
                self.questions.remove(&id);
            }
        }
    }

    /// The pipeline's health in one word and why, decided by one rule set: `fail` when the
    /// run was aborted, `warn` while a health warning fires (the first one named: it names
    /// the culprit), `ok` otherwise. The warnings engine waits out a grace period before a
    /// warning fires, so a page never says "warn" while its Warnings section says there
    /// are none. Figures that are not verdicts (items failing now, the bottleneck's lag)
    /// follow `ok` as plain facts. The Overview, `flowdeck top` and the built-in `pipeline`
    /// health check all show this.
    pub fn health(&self) -> (crate::page::Health, String) {
        use crate::{format, page::Health, PipelineState};
        let s = &self.snapshot;
        if s.state == PipelineState::Aborted {
            return (Health::Fail, "the pipeline was aborted".into());
        }
        let mut firing = s.warnings.iter().filter(|w| w.firing());
        if let Some(w) = firing.next() {
            let more = firing.count();
            let place = w
                .stage
                .as_deref()
                .map(|s| format!(" at {s}"))
                .unwrap_or_default();
            let more = match more {
                0 => String::new(),
                1 => " and 1 more warning".to_owned(),
                n => format!(" and {n} more warnings"),
            };
            return (
                Health::Warn,
                format!("{}{place}{more}", w.rule.title().to_ascii_lowercase()),
            );
        }
        let mut facts = vec!["no health warnings".to_owned()];
        let failing = self.history.back().map_or(0.0, |p| p.failed_rate);
        if failing > 0.0 {
            facts.push(format!("{} failing", format::rate(failing)));
        }
        if let Some(stage) = s.bottleneck().and_then(|b| s.stages.get(b)) {
            if stage.oldest_queued_ms > 5_000 {
                facts.push(format!(
                    "{} waits {} to start",
                    stage.name,
                    format::millis(stage.oldest_queued_ms)
                ));
            }
        }
        (Health::Ok, facts.join(" · "))
    }

    /// Retained items in one status.
    pub fn count(&self, status: ItemStatus) -> usize {
        self.counts[slot(status)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: ItemId, status: ItemStatus) -> ItemRow {
        ItemRow(id, status, 0, 1, id * 10, None)
    }

    fn full(id: u64, retention: u64, ids: std::ops::RangeInclusive<u64>) -> Full {
        Full {
            id,
            retention,
            items: ids.map(|i| row(i, ItemStatus::Queued)).collect(),
            ..Full::default()
        }
    }

    #[test]
    fn a_delta_updates_items_and_keeps_only_the_retained_window() {
        let mut s = LiveState::from_full(full(7, 3, 1..=3));
        let delta = Delta {
            id: 8,
            items: vec![row(2, ItemStatus::Completed), row(4, ItemStatus::Queued)],
            ..Delta::default()
        };
        s.apply(Frame::Delta(delta)).unwrap();
        assert_eq!(s.id, 8);
        assert_eq!(s.items.keys().copied().collect::<Vec<_>>(), [2, 3, 4]);
        assert_eq!(s.items[&2].status(), ItemStatus::Completed);
        assert_eq!(s.history.len(), 1);
        // Counts follow: 1 was dropped, 2 moved to completed, 4 arrived.
        assert_eq!(s.count(ItemStatus::Queued), 2);
        assert_eq!(s.count(ItemStatus::Completed), 1);
    }

    /// One verdict per page: items failing with no warning firing is a figure, not a
    /// warning (the overview said "warn: items are failing" beside "No health warnings").
    #[test]
    fn health_is_the_warnings_engines_verdict_and_failures_are_a_figure() {
        use crate::{page::Health, warning::Rule, Warning};
        let mut s = LiveState::from_full(full(1, 10, 1..=3));
        s.history.push_back(Point {
            failed_rate: 16.0,
            ..Point::default()
        });
        let (level, reason) = s.health();
        assert_eq!(level, Health::Ok, "{reason}");
        assert!(reason.contains("no health warnings"), "{reason}");
        assert!(reason.contains("16.0/s failing"), "{reason}");

        let warning = |cleared_ms| Warning {
            rule: Rule::RetryStorm,
            stage: Some("enrich".into()),
            worker: None,
            items: vec![],
            message: "a storm".into(),
            first_seen_ms: 1,
            last_seen_ms: 2,
            cleared_ms,
        };
        s.snapshot.warnings = vec![warning(Some(3))];
        assert_eq!(s.health().0, Health::Ok, "a cleared warning is no verdict");
        s.snapshot.warnings = vec![warning(None)];
        let (level, reason) = s.health();
        assert_eq!(level, Health::Warn);
        assert!(reason.contains("at enrich"), "{reason}");
    }

    #[test]
    fn a_delta_that_skips_a_frame_is_refused() {
        let mut s = LiveState::from_full(full(7, 10, 1..=3));
        let before = s.clone();
        let err = s.apply_delta(Delta {
            id: 9,
            ..Delta::default()
        });
        assert_eq!(err, Err(Gap { have: 7, got: 9 }));
        assert_eq!(s, before, "a refused delta changes nothing");
    }

    #[test]
    fn rows_travel_as_arrays_and_frames_round_trip() {
        let json = serde_json::to_string(&row(5, ItemStatus::Failed)).unwrap();
        assert_eq!(json, r#"[5,"failed",0,1,50,null]"#);
        let frame = Frame::Full(full(3, 5, 1..=2));
        let back: Frame = serde_json::from_str(&serde_json::to_string(&frame).unwrap()).unwrap();
        assert_eq!(back, frame);
        let delta = Frame::Delta(Delta {
            id: 4,
            ..Delta::default()
        });
        let back: Frame = serde_json::from_str(&serde_json::to_string(&delta).unwrap()).unwrap();
        assert_eq!(back.event(), DELTA_EVENT);
    }

    #[test]
    fn to_full_then_from_full_is_the_same_state() {
        let mut s = LiveState::from_full(full(1, 100, 1..=50));
        s.apply_delta(Delta {
            id: 2,
            items: vec![row(51, ItemStatus::Running)],
            ..Delta::default()
        })
        .unwrap();
        assert_eq!(LiveState::from_full(s.to_full()), s);
    }
}

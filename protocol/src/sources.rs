//! The built-in table sources, read off the live state. Both sides have that state (the
//! server's hub mirrors the stream, the browser applies it), so a Table widget on a
//! built-in source updates with every frame instead of polling, and the API answers the
//! same rows.

use crate::{
    page::{Cell, TableData},
    stream::LiveState,
};

/// Rows the `tasks` source carries at most: the newest retained items.
pub const TASK_ROWS: usize = 1_000;

/// The rows of built-in source `name`, or `None` when there is no such source.
pub fn builtin(state: &LiveState, name: &str) -> Option<TableData> {
    let s = &state.snapshot;
    let stage = |i: u16| {
        s.stages
            .get(usize::from(i))
            .map_or_else(|| format!("#{i}"), |st| st.name.clone())
    };
    let table = |columns: &[&str], rows: Vec<Vec<Cell>>| TableData {
        columns: columns.iter().map(|c| (*c).to_owned()).collect(),
        rows,
    };
    Some(match name {
        "stages" => table(
            &[
                "stage",
                "workers",
                "queued",
                "running",
                "completed",
                "failed",
                "per_second",
                "p50_ms",
                "p99_ms",
            ],
            s.stages
                .iter()
                .map(|st| {
                    vec![
                        st.name.as_str().into(),
                        (st.workers.len() as u64).into(),
                        st.queued.into(),
                        st.in_flight.into(),
                        st.completed.into(),
                        st.failed.into(),
                        ((st.throughput * 10.0).round() / 10.0).into(),
                        (st.latency.p50_us as f64 / 1000.0).into(),
                        (st.latency.p99_us as f64 / 1000.0).into(),
                    ]
                })
                .collect(),
        ),
        "workers" => table(
            &[
                "stage",
                "worker",
                "state",
                "item",
                "processed",
                "failed",
                "busy",
                "blocked",
            ],
            s.stages
                .iter()
                .flat_map(|st| {
                    st.workers.iter().map(move |w| {
                        let state = w.state.as_str();
                        vec![
                            st.name.as_str().into(),
                            u64::from(w.id).into(),
                            state.into(),
                            w.current_item
                                .map_or(Cell::from(""), |i| format!("#{i}").into()),
                            w.processed.into(),
                            w.failed.into(),
                            ((w.busy_ratio * 100.0).round() / 100.0).into(),
                            ((w.blocked_ratio * 100.0).round() / 100.0).into(),
                        ]
                    })
                })
                .collect(),
        ),
        "tasks" => table(
            &["id", "status", "stage", "attempts", "error"],
            state
                .items
                .values()
                .rev()
                .take(TASK_ROWS)
                .map(|r| {
                    vec![
                        r.id().into(),
                        r.status().as_str().into(),
                        stage(r.stage()).into(),
                        u64::from(r.attempts()).into(),
                        r.error_kind().unwrap_or("").into(),
                    ]
                })
                .collect(),
        ),
        "errors" => table(
            &["kind", "count"],
            state
                .errors
                .by_kind
                .iter()
                .map(|(kind, n)| vec![kind.as_str().into(), (*n).into()])
                .collect(),
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        page::BUILTIN_SOURCES,
        stream::{Full, ItemRow},
        ItemStatus, Snapshot, StageSnapshot, WorkerSnapshot,
    };

    #[test]
    fn every_builtin_source_answers_and_others_do_not() {
        let snapshot = Snapshot {
            stages: vec![StageSnapshot {
                name: "parse".into(),
                completed: 7,
                workers: vec![WorkerSnapshot::default(); 2],
                ..Default::default()
            }],
            ..Default::default()
        };
        let state = LiveState::from_full(Full {
            id: 1,
            snapshot,
            retention: 10,
            items: vec![
                ItemRow(1, ItemStatus::Completed, 0, 1, 5, None),
                ItemRow(2, ItemStatus::Failed, 0, 3, 6, Some("Timeout".into())),
            ],
            history: vec![],
            ..Full::default()
        });
        for name in BUILTIN_SOURCES {
            let t = builtin(&state, name).unwrap();
            assert!(t.rows.iter().all(|r| r.len() == t.columns.len()), "{name}");
        }
        let stages = builtin(&state, "stages").unwrap();
        assert_eq!(stages.rows[0][0], Cell::from("parse"));
        assert_eq!(stages.rows[0][1], Cell::Num(2.0));
        let tasks = builtin(&state, "tasks").unwrap();
        assert_eq!(tasks.rows[0][0], Cell::Num(2.0), "newest first");
        assert_eq!(tasks.rows[0][4], Cell::from("Timeout"));
        assert_eq!(builtin(&state, "workers").unwrap().rows.len(), 2);
        assert!(builtin(&state, "nope").is_none());
    }
}

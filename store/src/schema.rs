//! The database's layout and how it moves from one version to the next. The version is
//! SQLite's `user_version`; each migration takes the schema one step and runs in the same
//! transaction as the version bump, so a crash mid-migration leaves the old version whole.

use rusqlite::{Connection, Transaction};

use crate::StoreError;

/// The version this build writes. A file at a higher version was written by a newer
/// flowdeck and is refused rather than misread.
pub const VERSION: i64 = 7;

/// Migration `n` takes the schema from version `n` to `n + 1`.
const MIGRATIONS: [&str; 7] = [
    r#"
CREATE TABLE runs (
    id           INTEGER PRIMARY KEY,
    pipeline     TEXT    NOT NULL,
    started_ms   INTEGER NOT NULL,
    ended_ms     INTEGER,
    -- running, finished, aborted or interrupted (the process died while it ran)
    state        TEXT    NOT NULL,
    -- JSON: the stage names and the edges between them
    graph        TEXT    NOT NULL,
    -- JSON: the latest Snapshot: totals, stages, workers
    snapshot     TEXT,
    -- when the run was last heard of, for an interrupted run's end
    seen_ms      INTEGER NOT NULL,
    -- finished items the store did not keep (shed under load), counted
    not_stored   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_started ON runs (started_ms);
CREATE INDEX runs_pipeline ON runs (pipeline, started_ms);

CREATE TABLE items (
    run           INTEGER NOT NULL,
    id            INTEGER NOT NULL,
    status        TEXT    NOT NULL,
    stage         INTEGER NOT NULL,
    attempts      INTEGER NOT NULL,
    created_us    INTEGER NOT NULL,
    updated_us    INTEGER NOT NULL,
    error_kind    TEXT,
    error_message TEXT,
    -- JSON: the ItemDetail the task page shows (visits, parents, annotations, history)
    detail        TEXT    NOT NULL,
    PRIMARY KEY (run, id)
) WITHOUT ROWID;
CREATE INDEX items_status ON items (run, status, id);
CREATE INDEX items_stage ON items (run, stage, id);
CREATE INDEX items_error ON items (run, error_kind) WHERE error_kind IS NOT NULL;

-- One point a minute per series: count, sum, min, max and last of that minute.
CREATE TABLE metrics (
    series TEXT    NOT NULL,
    minute INTEGER NOT NULL,
    count  INTEGER NOT NULL,
    sum    REAL    NOT NULL,
    min    REAL    NOT NULL,
    max    REAL    NOT NULL,
    last   REAL    NOT NULL,
    PRIMARY KEY (series, minute)
) WITHOUT ROWID;

-- Log records at warn and above.
CREATE TABLE logs (
    seq     INTEGER PRIMARY KEY,
    at_ms   INTEGER NOT NULL,
    level   TEXT    NOT NULL,
    source  TEXT    NOT NULL,
    message TEXT    NOT NULL,
    fields  TEXT    NOT NULL
);
CREATE INDEX logs_at ON logs (at_ms);

CREATE TABLE audit (
    seq     INTEGER PRIMARY KEY,
    at_ms   INTEGER NOT NULL,
    user    TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    target  TEXT    NOT NULL,
    outcome TEXT    NOT NULL
);
CREATE INDEX audit_at ON audit (at_ms);
"#,
    r#"
-- 2: the task list of a run of a million items in well under 300 ms. Counting a run's
-- items by stage and status is a lookup here instead of a scan. The writer keeps the
-- counts, a few rows per commit (triggers, a row each, cost it three quarters of its speed).
CREATE TABLE item_counts (
    run    INTEGER NOT NULL,
    stage  INTEGER NOT NULL,
    status TEXT    NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (run, stage, status)
) WITHOUT ROWID;
INSERT INTO item_counts (run, stage, status, n)
    SELECT run, stage, status, COUNT(*) FROM items GROUP BY run, stage, status;
-- A search reads only the failures' index (a few per cent of the items), not the items.
DROP INDEX items_error;
CREATE INDEX items_error ON items (run, error_kind, error_message, stage, status)
    WHERE error_kind IS NOT NULL;
-- The sorts by attempts and by last change, read in index order with no sort.
CREATE INDEX items_attempts ON items (run, attempts);
CREATE INDEX items_updated ON items (run, updated_us);
"#,
    r#"
-- 3: a run's health warnings, firing and cleared. The key has no NULLs (a warning about
-- the whole pipeline has stage '' and worker -1), so that a warning written again as it
-- goes on replaces its row.
CREATE TABLE warnings (
    run           INTEGER NOT NULL,
    rule          TEXT    NOT NULL,
    stage         TEXT    NOT NULL,
    worker        INTEGER NOT NULL,
    -- ms of the run's uptime
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms  INTEGER NOT NULL,
    cleared_ms    INTEGER,
    message       TEXT    NOT NULL,
    -- JSON: the item ids it names
    items         TEXT    NOT NULL,
    PRIMARY KEY (run, rule, stage, worker, first_seen_ms)
) WITHOUT ROWID;
"#,
    r#"
-- 4: replay. Each snapshot the server writes of a running run (every 5 s) and its last are
-- kept, not only the latest, so that a finished run's counts, graph and bottleneck can be
-- shown as they were at any moment. The totals are a column of their own: the timeline
-- reads them for every point without parsing the whole snapshots.
CREATE TABLE snapshots (
    run      INTEGER NOT NULL,
    -- ms of the run's uptime
    at_ms    INTEGER NOT NULL,
    -- JSON: the Snapshot's totals
    totals   TEXT    NOT NULL,
    -- JSON: the Snapshot
    snapshot TEXT    NOT NULL,
    PRIMARY KEY (run, at_ms)
) WITHOUT ROWID;
"#,
    r#"
-- 5: an interrupted run's totals are recounted from its kept items when it is found (its
-- last snapshot was up to 5 s older than its last committed items); this says they were.
ALTER TABLE runs ADD COLUMN recounted INTEGER NOT NULL DEFAULT 0;
"#,
    r#"
-- 6: the questions a run's stages asked people, pending and closed, each as its latest
-- change left it (a pending one is written again when it closes).
CREATE TABLE questions (
    run      INTEGER NOT NULL,
    id       INTEGER NOT NULL,
    item     INTEGER NOT NULL,
    -- pending, answered, defaulted, timed_out or cancelled
    state    TEXT    NOT NULL,
    asked_ms INTEGER NOT NULL,
    -- JSON: the QuestionInfo
    info     TEXT    NOT NULL,
    PRIMARY KEY (run, id)
) WITHOUT ROWID;
CREATE INDEX questions_state ON questions (run, state, id);
CREATE INDEX questions_item ON questions (run, item);
"#,
    r#"
-- 7: what each alert delivered, so that the Alerts page's record outlives a restart.
CREATE TABLE alert_deliveries (
    seq     INTEGER PRIMARY KEY,
    at_ms   INTEGER NOT NULL,
    alert   TEXT    NOT NULL,
    -- the first event's name; events counts what the message grouped
    event   TEXT    NOT NULL,
    events  INTEGER NOT NULL,
    -- delivered or failed
    outcome TEXT    NOT NULL,
    status  INTEGER,
    error   TEXT,
    tries   INTEGER NOT NULL
);
CREATE INDEX alert_deliveries_alert ON alert_deliveries (alert, seq);
CREATE INDEX alert_deliveries_at ON alert_deliveries (at_ms);
"#,
];

/// Brings the database at `conn` to [`VERSION`], or refuses a newer one.
pub(crate) fn migrate(conn: &mut Connection, path: &str) -> Result<(), StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > VERSION {
        return Err(StoreError::Newer {
            path: path.to_owned(),
            found: version,
            known: VERSION,
        });
    }
    if version == 0 {
        // Only for a new file: deleted runs then give their pages back, a little at a
        // time, instead of the file keeping its largest size for ever.
        conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;")?;
    }
    for (n, step) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx: Transaction = conn.transaction()?;
        tx.execute_batch(step)?;
        tx.pragma_update(None, "user_version", n as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

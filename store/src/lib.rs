//! The run store: what a pipeline did, kept after the process ends or dies. Runs (their
//! pipeline, start, end, state, the graph and the final totals), every finished item with
//! its error, annotations, visits and parents, minute rollups of the metrics, log records
//! at warn and above, the audit log and what the alerts delivered, in one SQLite file.
//!
//! One thread writes, in transactions of up to 100 ms or 10,000 rows (group commit, WAL,
//! `synchronous=NORMAL`): a process killed mid-run loses at most the last window, and
//! "database is locked" cannot happen, since nothing else writes. Reads use connections of
//! their own, which WAL lets run beside the writer. Writes never wait: the queue is
//! bounded, and when it fills, completed items are shed (counted per run and shown) while
//! failures, run records, the audit log and alert deliveries keep their room. Retention (30 days and 1 GiB by
//! default) is enforced by the same thread between commits, a batch at a time.
//!
//! ```
//! use flowdeck_store::{RunStart, Store, StoreConfig};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = Store::open(StoreConfig::new(dir.path().join("runs.db"))).unwrap();
//! let run = store.begin_run(RunStart {
//!     pipeline: "demo".into(),
//!     started_ms: 1_700_000_000_000,
//!     stages: vec!["parse".into()],
//!     edges: vec![],
//! });
//! store.flush();
//! assert_eq!(store.runs(&Default::default()).unwrap()[0].id, run);
//! ```

mod read;
mod retention;
mod schema;
mod writer;

use std::{
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use flowdeck_protocol::{AuditEntry, Edge, ItemDetail, ItemStatus, Snapshot};
use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags};

pub use read::{
    ItemPage, ItemQuery, ItemSort, MetricPoint, Moment, PipelineRuns, QuestionsIn, RunInfo,
    RunQuery, RunState, StoredRun, Timeline, TimelinePoint,
};
pub use retention::Retention;
pub use schema::VERSION as SCHEMA_VERSION;

/// Where the store is and how it behaves.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub path: PathBuf,
    /// How long and how big: see [`Retention`].
    pub retention: Retention,
    /// A transaction commits after this long at the latest...
    pub commit_every: Duration,
    /// ...or after this many rows, whichever comes first.
    pub commit_rows: usize,
    /// Writes waiting for the writer. Completed items are shed past half of it.
    pub queue: usize,
    /// A hard cap on the file's size: writes past it fail as on a full disk (the store
    /// then reports itself degraded). `None`: as large as the disk allows.
    pub hard_limit_bytes: Option<u64>,
}

impl StoreConfig {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StoreConfig {
            path: path.into(),
            retention: Retention::default(),
            commit_every: Duration::from_millis(100),
            commit_rows: 10_000,
            queue: 200_000,
            hard_limit_bytes: None,
        }
    }

    /// `flowdeck.db` under the platform's data directory (`$XDG_DATA_HOME/flowdeck`, else
    /// `~/.local/share/flowdeck`), or `None` when there is no home to put it in.
    pub fn default_path() -> Option<PathBuf> {
        let data = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))?;
        Some(data.join("flowdeck").join("flowdeck.db"))
    }
}

/// Why the store cannot be used. Each names the file and what to do; none ever deletes
/// data.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the run store {path}: {reason}. Check the path and its permissions, or run with --db none to keep runs in memory only")]
    Open { path: String, reason: String },
    #[error("the run store {path} is not a flowdeck database or is damaged ({reason}). Move it aside (it is left untouched) to start a new one, or run with --db none")]
    Corrupt { path: String, reason: String },
    #[error("the run store {path} was written by a newer flowdeck (schema {found}; this one knows up to {known}). Upgrade flowdeck, or give another file with --db")]
    Newer {
        path: String,
        found: i64,
        known: i64,
    },
    #[error("the run store {path} is in use by another flowdeck process. Stop it, give this one another file with --db, or run with --db none")]
    InUse { path: String },
    #[error("the run store failed: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// A run's id in the store.
pub type RunId = i64;

/// A run as it starts.
#[derive(Clone, Debug)]
pub struct RunStart {
    pub pipeline: String,
    pub started_ms: u64,
    pub stages: Vec<String>,
    pub edges: Vec<Edge>,
}

/// What the store has done so far, for the dashboard (and its "degraded" badge).
#[derive(Debug, Default)]
pub struct StoreStats {
    /// Items written.
    pub items: AtomicU64,
    /// Completed items shed because the writer was behind.
    pub shed: AtomicU64,
    /// Commits made.
    pub commits: AtomicU64,
    /// Set while writes fail (a full disk, a file gone read-only); the pipeline runs on.
    pub degraded: AtomicBool,
    /// Commits that failed (their records are lost).
    pub failures: AtomicU64,
    /// The last failure's reason.
    pub problem: Mutex<Option<String>>,
}

/// The store: cheap to clone, every clone writes to the same writer.
#[derive(Clone)]
pub struct Store(Arc<Inner>);

struct Inner {
    path: PathBuf,
    tx: crossbeam_channel::Sender<writer::Write>,
    queue: usize,
    retention: Retention,
    next_run: AtomicI64,
    stats: Arc<StoreStats>,
    shed: Arc<writer::Shed>,
    readers: Mutex<Vec<Connection>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Held for the store's life: one process writes a store (others report to it).
    _lock: std::fs::File,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.tx.send(writer::Write::Stop);
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}

fn path_text(p: &Path) -> String {
    p.display().to_string()
}

/// Opens a connection with the settings every one of ours has.
fn connect(path: &Path, flags: OpenFlags) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(path, flags).map_err(|e| StoreError::Open {
        path: path_text(path),
        reason: e.to_string(),
    })?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

impl Store {
    /// Opens (or creates) the store: checks the file, brings its schema up to date, marks
    /// runs a dead process left "running" as interrupted, and starts the writer.
    pub fn open(config: StoreConfig) -> Result<Store, StoreError> {
        let path = config.path.clone();
        let text = path_text(&path);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                path: text.clone(),
                reason: format!("cannot create {}: {e}", dir.display()),
            })?;
        }
        // One writing process per file: a second one would mark the first's runs as
        // interrupted and race it for the writer's lock.
        let lock_path = PathBuf::from(format!("{}.lock", path.display()));
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StoreError::Open {
                path: text.clone(),
                reason: format!("cannot open {}: {e}", lock_path.display()),
            })?;
        if lock.try_lock().is_err() {
            return Err(StoreError::InUse { path: text });
        }
        let mut conn = connect(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        )?;
        // A file that is not SQLite (or whose header is damaged) fails here, before
        // anything is written to it. (A full integrity check would read the whole file:
        // seconds for a large store, at every start.)
        if let Err(e) = conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        }) {
            return Err(StoreError::Corrupt {
                path: text,
                reason: e.to_string(),
            });
        }
        schema::migrate(&mut conn, &text)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        if let Some(bytes) = config.hard_limit_bytes {
            let page: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
            conn.pragma_update(None, "max_page_count", (bytes as i64 / page).max(1))?;
        }
        read::mark_interrupted(&mut conn)?;
        let next_run = read::next_run_id(&conn)?;
        let stats = Arc::new(StoreStats::default());
        let (tx, rx) = crossbeam_channel::bounded(config.queue.max(16));
        let shed = Arc::new(writer::Shed::default());
        let thread = writer::spawn(conn, rx, config.clone(), stats.clone(), shed.clone())?;
        Ok(Store(Arc::new(Inner {
            path,
            tx,
            queue: config.queue.max(16),
            retention: config.retention,
            next_run: AtomicI64::new(next_run),
            stats,
            shed,
            readers: Mutex::new(Vec::new()),
            thread: Mutex::new(Some(thread)),
            _lock: lock,
        })))
    }

    pub fn path(&self) -> &Path {
        &self.0.path
    }

    pub fn stats(&self) -> &StoreStats {
        &self.0.stats
    }

    /// The store's state for the dashboard, with `run` as the live run.
    pub fn status(&self, run: RunId) -> flowdeck_protocol::runs::StoreStatus {
        let s = &self.0.stats;
        flowdeck_protocol::runs::StoreStatus {
            path: self.0.path.display().to_string(),
            run,
            degraded: s.degraded.load(Ordering::Relaxed),
            problem: s.problem.lock().clone(),
            items_written: s.items.load(Ordering::Relaxed),
            items_shed: s.shed.load(Ordering::Relaxed),
            commits: s.commits.load(Ordering::Relaxed),
        }
    }

    /// Records a run's start; its id is known at once.
    pub fn begin_run(&self, run: RunStart) -> RunId {
        let id = self.0.next_run.fetch_add(1, Ordering::Relaxed);
        // A run record is never shed: wait for room (the writer drains thousands of rows a
        // millisecond, and this happens once a run).
        let _ = self.0.tx.send(writer::Write::Begin { id, run });
        id
    }

    /// Whether a finished item with `status` would be kept now. Asked before its record is
    /// built, so that shedding costs nothing: completed items are shed once the queue is
    /// half full, failed and cancelled ones only when it is full.
    pub fn wants(&self, status: ItemStatus) -> bool {
        let len = self.0.tx.len();
        match status {
            ItemStatus::Completed => len < self.0.queue / 2,
            _ => len < self.0.queue,
        }
    }

    /// Keeps a finished item, unless the writer is too far behind (then it is counted as
    /// shed against its run). Never waits.
    pub fn keep_item(&self, run: RunId, item: ItemDetail) {
        let write = writer::Write::Item {
            run,
            item: Box::new(item),
        };
        if self.0.tx.try_send(write).is_err() {
            self.shed(run, 1);
        }
    }

    /// Updates a kept item's detail (events of it that arrived after it finished); an
    /// item the store did not keep is not added. Never waits: with the writer that far
    /// behind, the item keeps the detail it was first written with.
    pub fn amend_item(&self, run: RunId, item: ItemDetail) {
        let _ = self.0.tx.try_send(writer::Write::Amend {
            run,
            item: Box::new(item),
        });
    }

    /// Counts items not kept (the caller decided so through [`Store::wants`]).
    pub fn shed(&self, run: RunId, n: u64) {
        self.0.stats.shed.fetch_add(n, Ordering::Relaxed);
        *self.0.shed.lock().entry(run).or_default() += n;
    }

    /// Records where a run stands (its latest snapshot), and that it is alive.
    pub fn progress(&self, run: RunId, snapshot: Snapshot, at_ms: u64) {
        let _ = self.0.tx.try_send(writer::Write::Progress {
            run,
            snapshot: Box::new(snapshot),
            at_ms,
        });
    }

    /// Records a run's end with its final snapshot. Waits for room: the end of a run must
    /// not be lost.
    pub fn end_run(&self, run: RunId, state: RunState, snapshot: Snapshot, ended_ms: u64) {
        let _ = self.0.tx.send(writer::Write::End {
            run,
            state,
            snapshot: Box::new(snapshot),
            ended_ms,
        });
    }

    /// One minute of metric series: (series, minute in Unix seconds, count, sum, min, max,
    /// last).
    pub fn metrics(&self, points: Vec<read::MetricPoint>) {
        if !points.is_empty() {
            let _ = self.0.tx.try_send(writer::Write::Metrics(points));
        }
    }

    /// A run's health warnings, new or changed (each replaces its earlier row).
    pub fn keep_warnings(&self, run: RunId, warnings: Vec<flowdeck_protocol::Warning>) {
        if !warnings.is_empty() {
            let _ = self
                .0
                .tx
                .try_send(writer::Write::Warnings { run, warnings });
        }
    }

    /// Log records (the caller passes warn and above).
    pub fn logs(&self, records: Vec<flowdeck_protocol::logs::LogRecord>) {
        if !records.is_empty() {
            let _ = self.0.tx.try_send(writer::Write::Logs(records));
        }
    }

    /// A control action. Waits for room: the audit log is not shed.
    pub fn audit(&self, entry: AuditEntry) {
        let _ = self.0.tx.send(writer::Write::Audit(entry));
    }

    /// An alert's delivery. Waits for room, as the audit log does: it is not shed.
    pub fn alert_delivery(&self, delivery: flowdeck_protocol::alerts::Delivery) {
        let _ = self.0.tx.send(writer::Write::AlertDelivery(delivery));
    }

    /// A question of `run` as its latest change left it (asked, or closed). Waits for
    /// room: questions are not shed.
    pub fn keep_question(&self, run: RunId, info: flowdeck_protocol::question::QuestionInfo) {
        let _ = self.0.tx.send(writer::Write::Question {
            run,
            info: Box::new(info),
        });
    }

    /// Applies the retention now (the writer also does every minute), on a connection of
    /// its own; returns how many runs were deleted.
    pub fn enforce_retention(&self) -> Result<usize, StoreError> {
        let mut conn = connect(&self.0.path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        Ok(retention::enforce(&mut conn, &self.0.retention)?)
    }

    /// Waits until everything sent so far is committed.
    pub fn flush(&self) {
        let (done, wait) = crossbeam_channel::bounded(1);
        if self.0.tx.send(writer::Write::Flush(done)).is_ok() {
            let _ = wait.recv_timeout(Duration::from_secs(30));
        }
    }

    /// Runs `f` on a read connection (reused; WAL lets it read beside the writer).
    fn read<R>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let conn = match self.0.readers.lock().pop() {
            Some(c) => c,
            None => connect(
                &self.0.path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?,
        };
        let out = f(&conn);
        let mut pool = self.0.readers.lock();
        if pool.len() < 8 {
            pool.push(conn);
        }
        out
    }
}

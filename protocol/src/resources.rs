//! What a process uses: CPU, memory, threads, open files, and what its async runtime
//! reports. The dashboard's own process samples this every second; a cluster's worker
//! processes send it in their heartbeats and a reporting process with its batches, so the
//! workers page can show each process beside the others.

use serde::{Deserialize, Serialize};

/// One sample of a process's resource use. Figures the platform does not give are `None`
/// (open files outside Linux, for one).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Resources {
    /// CPU seconds per second over the last interval: 1.0 is one core busy.
    pub cpu_ratio: Option<f64>,
    /// CPU time used since the process started, user and system, in seconds.
    pub cpu_seconds: Option<f64>,
    /// Logical cores of the machine, to read `cpu_ratio` as a share of all of it.
    pub cores: u32,
    pub resident_bytes: Option<u64>,
    pub threads: Option<u32>,
    pub open_files: Option<u32>,
    /// The tokio runtime's worker threads.
    pub runtime_workers: u32,
    /// Share of the last interval the runtime's workers spent running tasks, 0.0 to 1.0
    /// (the mean over its workers).
    pub runtime_busy_ratio: Option<f64>,
    /// Tasks waiting in the runtime's global queue: a deep one means its workers cannot
    /// keep up.
    pub runtime_global_queue: u64,
    /// Tasks alive in the runtime (running, waiting or idle).
    pub runtime_tasks: u64,
}

impl Resources {
    /// CPU as a share of the whole machine, 0.0 to 1.0.
    pub fn machine_cpu(&self) -> Option<f64> {
        let cores = f64::from(self.cores.max(1));
        self.cpu_ratio.map(|r| r / cores)
    }
}

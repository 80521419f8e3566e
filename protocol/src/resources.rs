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
    /// One line in words: "CPU 23% of a core (12% of 2) · memory 94 MiB · 14 threads ·
    /// 31 open files · runtime: 2 workers, 35% busy, 0 queued, 120 tasks".
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let (Some(cpu), Some(machine)) = (self.cpu_ratio, self.machine_cpu()) {
            parts.push(format!(
                "CPU {:.0}% of a core ({:.0}% of {})",
                cpu * 100.0,
                machine * 100.0,
                self.cores
            ));
        }
        if let Some(b) = self.resident_bytes {
            parts.push(format!(
                "memory {}",
                crate::page::format_value("{value:bytes}", b as f64)
            ));
        }
        if let Some(t) = self.threads {
            parts.push(format!("{t} threads"));
        }
        if let Some(f) = self.open_files {
            parts.push(format!("{f} open files"));
        }
        if self.runtime_workers > 0 {
            let busy = self
                .runtime_busy_ratio
                .map(|b| format!(", {:.0}% busy", b * 100.0))
                .unwrap_or_default();
            parts.push(format!(
                "runtime: {} workers{busy}, {} queued, {} tasks",
                self.runtime_workers, self.runtime_global_queue, self.runtime_tasks
            ));
        }
        parts.join(" · ")
    }

    /// CPU as a share of the whole machine, 0.0 to 1.0.
    pub fn machine_cpu(&self) -> Option<f64> {
        let cores = f64::from(self.cores.max(1));
        self.cpu_ratio.map(|r| r / cores)
    }
}

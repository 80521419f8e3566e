//! Reads what this process uses, through sysinfo (portable: Linux, macOS, Windows) and
//! tokio's runtime metrics, for the dashboard's process, a cluster's worker processes and
//! a reporting process alike. One reader for all of them, where three hand-written
//! `/proc` parsers used to be.

use std::time::{Duration, Instant};

use flowdeck_protocol::Resources;
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// Samples the process's resources; CPU and runtime busy shares are measured between two
/// samples, so the first gives none. Keep one and call [`Sampler::sample`] at an interval.
pub struct Sampler {
    system: System,
    pid: Option<Pid>,
    cores: u32,
    last: Option<Last>,
}

struct Last {
    at: Instant,
    cpu_seconds: Option<f64>,
    busy: Duration,
}

impl Default for Sampler {
    fn default() -> Self {
        Self::new()
    }
}

impl Sampler {
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Sampler {
            system: System::new(),
            pid: sysinfo::get_current_pid().ok(),
            cores: u32::try_from(cores).unwrap_or(u32::MAX),
            last: None,
        }
    }

    /// What the process uses now; the runtime's figures are those of the tokio runtime
    /// the caller runs on (none outside one).
    pub fn sample(&mut self) -> Resources {
        let now = Instant::now();
        let mut r = Resources {
            cores: self.cores,
            ..Resources::default()
        };
        if let Some(pid) = self.pid {
            // Tasks (threads) are listed for their count only.
            let what = ProcessRefreshKind::nothing()
                .with_cpu()
                .with_memory()
                .with_tasks();
            self.system
                .refresh_processes_specifics(ProcessesToUpdate::Some(&[pid]), true, what);
            if let Some(p) = self.system.process(pid) {
                r.resident_bytes = Some(p.memory());
                r.cpu_seconds = Some(p.accumulated_cpu_time() as f64 / 1000.0);
                r.threads = p
                    .tasks()
                    .map(|t| u32::try_from(t.len()).unwrap_or(u32::MAX));
                r.open_files = p.open_files().map(|n| u32::try_from(n).unwrap_or(u32::MAX));
            }
        }
        let mut busy = Duration::ZERO;
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let m = rt.metrics();
            r.runtime_workers = u32::try_from(m.num_workers()).unwrap_or(u32::MAX);
            r.runtime_global_queue = m.global_queue_depth() as u64;
            r.runtime_tasks = m.num_alive_tasks() as u64;
            busy = (0..m.num_workers())
                .map(|w| m.worker_total_busy_duration(w))
                .sum();
        }
        if let Some(last) = &self.last {
            let secs = now.duration_since(last.at).as_secs_f64();
            if secs > 0.0 {
                if let (Some(a), Some(b)) = (last.cpu_seconds, r.cpu_seconds) {
                    r.cpu_ratio = Some(((b - a) / secs).max(0.0));
                }
                if r.runtime_workers > 0 {
                    let spent = busy.saturating_sub(last.busy).as_secs_f64();
                    let share = spent / secs / f64::from(r.runtime_workers);
                    r.runtime_busy_ratio = Some(share.clamp(0.0, 1.0));
                }
            }
        }
        self.last = Some(Last {
            at: now,
            cpu_seconds: r.cpu_seconds,
            busy,
        });
        r
    }
}

/// This machine's name, as processes are named (`host:pid`) on the workers page.
pub fn host_name() -> String {
    System::host_name().unwrap_or_else(|| "localhost".to_owned())
}

/// The resident memory of process `pid` (this one by default) in bytes, for benchmarks
/// that report what a run kept.
pub fn resident_bytes(pid: Option<u32>) -> Option<u64> {
    let pid = pid
        .map(Pid::from_u32)
        .or_else(|| sysinfo::get_current_pid().ok())?;
    read(pid, ProcessRefreshKind::nothing().with_memory(), |p| {
        p.memory()
    })
}

/// The CPU seconds process `pid` used so far, for benchmarks that compare processes.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    read(
        Pid::from_u32(pid),
        ProcessRefreshKind::nothing().with_cpu(),
        |p| p.accumulated_cpu_time() as f64 / 1000.0,
    )
}

/// One look at process `pid`, refreshed for `what`.
fn read<T>(
    pid: Pid,
    what: ProcessRefreshKind,
    f: impl FnOnce(&sysinfo::Process) -> T,
) -> Option<T> {
    let mut system = System::new();
    system.refresh_processes_specifics(ProcessesToUpdate::Some(&[pid]), true, what);
    system.process(pid).map(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_busy_process_reads_as_busy() {
        let mut s = Sampler::new();
        let first = s.sample();
        assert_eq!(
            first.cpu_ratio, None,
            "the first sample has nothing to compare"
        );
        assert_eq!(first.runtime_workers, 2);
        // Spin one thread for a while: the next sample must see about a core's work.
        let spin = std::thread::spawn(|| {
            let until = Instant::now() + Duration::from_millis(300);
            let mut x = 0u64;
            while Instant::now() < until {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        });
        let _ = spin.join();
        let r = s.sample();
        let cpu = r.cpu_ratio.expect("a second sample measures CPU");
        assert!(cpu > 0.2, "spinning read as {cpu} cores");
        assert!(r.resident_bytes.is_some_and(|b| b > 1 << 20), "{r:?}");
        if cfg!(target_os = "linux") {
            assert!(r.threads.is_some_and(|t| t >= 3), "{r:?}");
            assert!(r.open_files.is_some_and(|f| f >= 3), "{r:?}");
        }
        assert!(r.cores >= 1);
        assert_eq!(resident_bytes(None).map(|b| b > 1 << 20), Some(true));
        assert!(cpu_seconds(std::process::id()).is_some_and(|s| s > 0.2));
    }
}

//! What this process uses (memory, CPU time), read from `/proc` where there is one: for
//! `/prometheus` and the metrics sampled every second.

/// What the process uses, read from /proc where there is one.
#[derive(Default)]
pub struct Process {
    pub resident_bytes: Option<u64>,
    pub cpu_seconds: Option<f64>,
}

pub fn process() -> Process {
    let page = 4096u64;
    let ticks = 100.0; // USER_HZ on Linux
    let resident_bytes = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|pages| pages * page);
    let cpu_seconds = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the command name (which may hold spaces) start after its ')'.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = f.get(11)?.parse().ok()?;
            let stime: f64 = f.get(12)?.parse().ok()?;
            Some((utime + stime) / ticks)
        });
    Process {
        resident_bytes,
        cpu_seconds,
    }
}

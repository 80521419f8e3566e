//! Time as the tracker keeps it: microseconds since the pipeline started. A `u64` of
//! microseconds is small, ordered and serializable, where `Instant` is none of these.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    start: Instant,
    /// The wall-clock time of `start`, in Unix milliseconds: lets a dashboard turn event
    /// times into dates, and measure how long an event took to reach it.
    started_unix_ms: u64,
}

impl Clock {
    pub(crate) fn new() -> Self {
        let started_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0));
        Clock {
            start: Instant::now(),
            started_unix_ms,
        }
    }

    pub(crate) fn started_unix_ms(&self) -> u64 {
        self.started_unix_ms
    }

    pub(crate) fn now_us(&self) -> u64 {
        micros(self.start.elapsed())
    }

    pub(crate) fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

//! Number formatting for the pages: protocol's (so the server's first paint, the browser's
//! updates and the terminal print the same text; a mismatch would break hydration), and
//! the event times only the pages show.

pub(crate) use flowdeck_protocol::format::{ago, clock, count, micros, millis, rate, uptime};

/// A pipeline event's time (µs since the pipeline started at `started_unix_ms`) read two
/// ways: the UTC clock time shown, and how long before `now_ms` (ms since the start) it
/// was, for the tooltip. Every page shows event times so.
pub(crate) fn event_time(started_unix_ms: u64, at_us: u64, now_ms: u64) -> (String, String) {
    let at_ms = at_us / 1000;
    (
        clock(started_unix_ms + at_ms),
        ago(now_ms.saturating_sub(at_ms)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_times_read_as_clock_time_and_ago() {
        // Started at 12:00:00 UTC; the event at 90 s, now 5 min in.
        let start = 1_700_000_000_000 - 1_700_000_000_000 % 86_400_000 + 12 * 3_600_000;
        assert_eq!(
            event_time(start, 90_000_000, 300_000),
            ("12:01:30".to_owned(), "3m 30s ago".to_owned())
        );
        assert_eq!(ago(400), "just now");
    }
}

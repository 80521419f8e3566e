//! Number formatting shared by the pages, so the server's first paint and the browser's
//! updates print the same text (a mismatch would break hydration).

pub(crate) use flowdeck_protocol::format::{millis, rate};

/// `1234567` as `1,234,567`.
pub(crate) fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Microseconds as the most readable unit.
pub(crate) fn micros(us: u64) -> String {
    if us >= 1_000_000 {
        format!("{:.2}s", us as f64 / 1_000_000.0)
    } else if us >= 1_000 {
        format!("{:.1}ms", us as f64 / 1_000.0)
    } else {
        format!("{us}µs")
    }
}

/// Time since the pipeline started, as `1h 02m 03s`, `2m 05s` or `7s`.
pub(crate) fn uptime(ms: u64) -> String {
    let s = ms / 1000;
    let (h, m, s) = (s / 3600, (s / 60) % 60, s % 60);
    if h > 0 {
        format!("{h}h {m:02}m {s:02}s")
    } else if m > 0 {
        format!("{m}m {s:02}s")
    } else {
        format!("{s}s")
    }
}

/// How long ago, from a duration in milliseconds: `just now`, `12s ago`, `3m 05s ago`.
pub(crate) fn ago(ms: u64) -> String {
    if ms < 1000 {
        "just now".to_owned()
    } else {
        format!("{} ago", uptime(ms))
    }
}

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

/// A Unix time in milliseconds as a UTC wall-clock time, `HH:MM:SS`.
pub(crate) fn clock(unix_ms: u64) -> String {
    let secs = unix_ms / 1000 % 86_400;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_get_thousands_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1234567), "1,234,567");
    }

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

    #[test]
    fn uptimes_read_naturally() {
        assert_eq!(uptime(7_000), "7s");
        assert_eq!(uptime(125_000), "2m 05s");
        assert_eq!(uptime(3_723_000), "1h 02m 03s");
    }

    #[test]
    fn micros_pick_a_unit() {
        assert_eq!(micros(15), "15µs");
        assert_eq!(micros(2_500), "2.5ms");
        assert_eq!(micros(3_000_000), "3.00s");
    }

    #[test]
    fn clock_times_are_utc() {
        assert_eq!(clock(0), "00:00:00");
        assert_eq!(clock(1_795_397_500_123), "01:31:40");
    }
}

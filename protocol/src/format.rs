//! Numbers as the dashboard writes them, here so that the server (health checks, the
//! first paint), the browser and the terminal print the same text.

/// A rate with a unit fitting its size: `12.3/s`, `4.5k/s`, `1.2M/s`.
pub fn rate(per_sec: f64) -> String {
    if per_sec >= 1_000_000.0 {
        format!("{:.1}M/s", per_sec / 1_000_000.0)
    } else if per_sec >= 1_000.0 {
        format!("{:.1}k/s", per_sec / 1_000.0)
    } else {
        format!("{per_sec:.1}/s")
    }
}

/// Milliseconds as the most readable unit: `850 ms`, `4.2 s`, `3 min`.
pub fn millis(ms: u64) -> String {
    if ms >= 120_000 {
        format!("{} min", ms / 60_000)
    } else if ms >= 1_000 {
        format!("{:.1} s", ms as f64 / 1_000.0)
    } else {
        format!("{ms} ms")
    }
}

/// `1234567` as `1,234,567`.
pub fn count(n: u64) -> String {
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
pub fn micros(us: u64) -> String {
    if us >= 1_000_000 {
        format!("{:.2}s", us as f64 / 1_000_000.0)
    } else if us >= 1_000 {
        format!("{:.1}ms", us as f64 / 1_000.0)
    } else {
        format!("{us}µs")
    }
}

/// Time since the pipeline started, as `1h 02m 03s`, `2m 05s` or `7s`.
pub fn uptime(ms: u64) -> String {
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
pub fn ago(ms: u64) -> String {
    if ms < 1000 {
        "just now".to_owned()
    } else {
        format!("{} ago", uptime(ms))
    }
}

/// A Unix time in milliseconds as a UTC wall-clock time, `HH:MM:SS`.
pub fn clock(unix_ms: u64) -> String {
    let secs = unix_ms / 1000 % 86_400;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_pick_a_unit() {
        assert_eq!(rate(12.34), "12.3/s");
        assert_eq!(rate(4_500.0), "4.5k/s");
        assert_eq!(rate(1_250_000.0), "1.2M/s");
    }

    #[test]
    fn millis_read_naturally() {
        assert_eq!(millis(850), "850 ms");
        assert_eq!(millis(4_200), "4.2 s");
        assert_eq!(millis(180_000), "3 min");
    }

    #[test]
    fn counts_get_thousands_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1234567), "1,234,567");
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

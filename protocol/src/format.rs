//! Numbers as the dashboard writes them, here so that the server (health checks, the
//! first paint) and the browser print the same text.

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
}

//! Percentiles of arbitrary positive values in little space: values fall into logarithmic
//! buckets 2% wide, so a quantile is within 2% of the true one whatever the range, and two
//! sketches merge by adding counts (which is how a 10-second bucket is built from ten
//! 1-second ones).

use std::collections::BTreeMap;

/// Relative width of a bucket.
const GAMMA: f64 = 1.02;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sketch {
    /// Values at or below zero, kept apart (the logarithm needs positive values).
    nonpositive: u64,
    buckets: BTreeMap<i32, u64>,
}

fn index(v: f64) -> i32 {
    (v.ln() / GAMMA.ln()).ceil() as i32
}

impl Sketch {
    pub fn add(&mut self, v: f64) {
        if v > 0.0 && v.is_finite() {
            *self.buckets.entry(index(v)).or_default() += 1;
        } else if v <= 0.0 {
            self.nonpositive += 1;
        }
    }

    pub fn merge(&mut self, other: &Sketch) {
        self.nonpositive += other.nonpositive;
        for (&k, &n) in &other.buckets {
            *self.buckets.entry(k).or_default() += n;
        }
    }

    pub fn count(&self) -> u64 {
        self.nonpositive + self.buckets.values().sum::<u64>()
    }

    /// The value at quantile `q` (0 to 1): the middle of its bucket; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        if rank <= self.nonpositive {
            return Some(0.0);
        }
        let mut seen = self.nonpositive;
        for (&k, &n) in &self.buckets {
            seen += n;
            if seen >= rank {
                // Bucket k holds (GAMMA^(k-1), GAMMA^k]; answer its midpoint.
                let hi = GAMMA.powi(k);
                return Some(hi * (1.0 + 1.0 / GAMMA) / 2.0);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_two_percent_and_merge() {
        let mut a = Sketch::default();
        let mut b = Sketch::default();
        for v in 1..=1000 {
            if v % 2 == 0 {
                a.add(v as f64)
            } else {
                b.add(v as f64)
            }
        }
        a.merge(&b);
        assert_eq!(a.count(), 1000);
        for (q, want) in [(0.5, 500.0), (0.95, 950.0), (0.99, 990.0), (1.0, 1000.0)] {
            let got = a.quantile(q).unwrap();
            assert!((got - want).abs() / want < 0.02, "q{q}: {got} vs {want}");
        }
        let mut z = Sketch::default();
        assert_eq!(z.quantile(0.5), None);
        z.add(0.0);
        z.add(-3.0);
        z.add(1e-9);
        assert_eq!(z.quantile(0.5), Some(0.0));
        assert!(z.quantile(1.0).unwrap() > 0.0);
    }
}

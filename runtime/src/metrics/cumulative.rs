//! A histogram's observations since the start, for export: counts in buckets bounded by
//! powers of two (..., 0.25, 0.5, 1, 2, 4, ...), plus the count and the sum. This is what
//! the Prometheus text format calls a histogram; unlike percentiles, the same series from
//! several processes add up bucket by bucket, because every process uses these bounds.

use std::collections::BTreeMap;

/// Exponents kept apart: bounds from 2^-64 to 2^64 cover any unit in use.
const MIN_EXP: i32 = -64;
const MAX_EXP: i32 = 64;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cumulative {
    /// Observations per exponent `e`: those in (2^(e-1), 2^e]; zero and negative values
    /// sit at `MIN_EXP - 1`.
    by_exp: BTreeMap<i32, u64>,
    /// Every observation, those above the largest bound (or infinite) included.
    pub count: u64,
    pub sum: f64,
}

/// The exponent of the smallest power of two at or above `v`.
fn exponent(v: f64) -> i32 {
    if v <= 0.0 {
        return MIN_EXP - 1;
    }
    let mut e = v.log2().ceil() as i32;
    // log2 may round across a power of two; settle on the exact bound.
    if 2f64.powi(e) < v {
        e += 1;
    } else if 2f64.powi(e - 1) >= v {
        e -= 1;
    }
    e.clamp(MIN_EXP, MAX_EXP + 1)
}

impl Cumulative {
    pub fn add(&mut self, v: f64) {
        if v.is_nan() {
            return;
        }
        self.count += 1;
        if v.is_finite() {
            self.sum += v;
            let e = exponent(v);
            if e <= MAX_EXP {
                *self.by_exp.entry(e).or_default() += 1;
            }
        } else {
            self.sum += v;
        }
    }

    /// (bound, observations at or below it), bounds ascending: from the smallest bound
    /// that holds an observation to the largest. Observations above the last bound count
    /// only in [`Cumulative::count`] (the `+Inf` bucket).
    pub fn below(&self) -> Vec<(f64, u64)> {
        let (Some(&lo), Some(&hi)) = (self.by_exp.keys().next(), self.by_exp.keys().last()) else {
            return Vec::new();
        };
        let mut seen = 0;
        (lo..=hi)
            .map(|e| {
                seen += self.by_exp.get(&e).copied().unwrap_or(0);
                let bound = if e < MIN_EXP { 0.0 } else { 2f64.powi(e) };
                (bound, seen)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_count_at_the_first_power_of_two_at_or_above_them() {
        assert_eq!(exponent(1.0), 0);
        assert_eq!(exponent(1.0000001), 1);
        assert_eq!(exponent(8.0), 3);
        assert_eq!(exponent(0.3), -1);
        assert_eq!(exponent(0.25), -2);
        let mut c = Cumulative::default();
        for v in [0.3, 0.25, 1.0, 3.0, 8.0, f64::INFINITY, f64::NAN] {
            c.add(v);
        }
        assert_eq!(c.count, 6, "NaN is no observation; infinity is one");
        assert_eq!(
            c.below(),
            [(0.25, 1), (0.5, 2), (1.0, 3), (2.0, 3), (4.0, 4), (8.0, 5)]
        );
    }

    #[test]
    fn zero_and_negatives_sit_below_every_power() {
        let mut c = Cumulative::default();
        c.add(-2.0);
        c.add(0.0);
        c.add(1e-30);
        let below = c.below();
        assert_eq!(below[0], (0.0, 2));
        assert_eq!(below.last().map(|b| b.1), Some(3));
        assert!(below
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
    }
}

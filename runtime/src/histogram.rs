//! A latency histogram a worker writes without locks and a snapshot reads at any time.
//!
//! Buckets are log-linear: each power of two split into 8 sub-buckets, so any recorded value
//! lands in a bucket whose bounds are within 12.5% of it, over 1 µs to hours, in 2 KiB per
//! worker. Counts only grow, so the difference of two reads is the histogram of the window
//! between them: that is how a snapshot shows recent latency, not all-time latency.

use std::sync::atomic::{AtomicU64, Ordering};

const SUB: u32 = 8;
const SUB_BITS: u32 = 3;
const BUCKETS: usize = 64 * SUB as usize;

pub(crate) struct AtomicHistogram {
    counts: Box<[AtomicU64]>,
}

impl AtomicHistogram {
    pub(crate) fn new() -> Self {
        AtomicHistogram {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub(crate) fn record(&self, micros: u64) {
        self.counts[bucket(micros)].fetch_add(1, Ordering::Relaxed);
    }

    /// Adds this histogram's counts into `into`.
    pub(crate) fn add_to(&self, into: &mut Counts) {
        for (acc, c) in into.0.iter_mut().zip(self.counts.iter()) {
            *acc += c.load(Ordering::Relaxed);
        }
    }
}

/// A plain copy of bucket counts.
#[derive(Clone)]
pub(crate) struct Counts(Vec<u64>);

impl Default for Counts {
    fn default() -> Self {
        Counts(vec![0; BUCKETS])
    }
}

impl Counts {
    /// The counts recorded since `earlier` was taken.
    pub(crate) fn since(&self, earlier: &Counts) -> Counts {
        Counts(
            self.0
                .iter()
                .zip(&earlier.0)
                .map(|(a, b)| a.saturating_sub(*b))
                .collect(),
        )
    }

    pub(crate) fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// The value at quantile `q` (0.0 to 1.0): the upper bound of the bucket it falls in.
    pub(crate) fn quantile(&self, q: f64) -> u64 {
        let total = self.total();
        if total == 0 {
            return 0;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, c) in self.0.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return upper_bound(i);
            }
        }
        upper_bound(BUCKETS - 1)
    }
}

/// The bounds a latency histogram is exported with, in microseconds: 2^7 (128 µs) to 2^26
/// (67 s). Every internal bucket lies wholly below or above each of them, so the export is
/// exact, and every process exports the same bounds, so histograms add up across them.
pub const EXPORT_BOUNDS_US: [u64; 20] = {
    let mut b = [0u64; 20];
    let mut i = 0;
    while i < 20 {
        b[i] = 1u64 << (i + 7);
        i += 1;
    }
    b
};

impl Counts {
    /// Cumulative counts at [`EXPORT_BOUNDS_US`]: how many values were below each bound.
    /// The total (the `+Inf` bucket) is [`Counts::total`].
    pub(crate) fn cumulative(&self) -> [u64; 20] {
        let mut out = [0u64; 20];
        for (i, &c) in self.0.iter().enumerate() {
            if c == 0 {
                continue;
            }
            let ub = upper_bound(i);
            for (slot, &bound) in out.iter_mut().zip(EXPORT_BOUNDS_US.iter()) {
                if ub < bound {
                    *slot += c;
                }
            }
        }
        out
    }
}

fn bucket(v: u64) -> usize {
    if v < SUB as u64 {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros(); // >= SUB_BITS
    let sub = (v >> (exp - SUB_BITS)) & (SUB as u64 - 1);
    ((exp - SUB_BITS + 1) * SUB) as usize + sub as usize
}

fn upper_bound(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB as u64 {
        return i;
    }
    let group = i / SUB as u64; // >= 1
    let sub = i % SUB as u64;
    let exp = group + SUB_BITS as u64 - 1;
    let width = 1u64 << (exp - SUB_BITS as u64);
    ((SUB as u64 + sub) << (exp - SUB_BITS as u64)) + width - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_lands_in_a_bucket_that_bounds_it_closely() {
        for v in [
            0u64,
            1,
            7,
            8,
            9,
            15,
            16,
            100,
            1_000,
            12_345,
            1_000_000,
            u32::MAX as u64,
        ] {
            let ub = upper_bound(bucket(v));
            assert!(ub >= v, "{v} -> {ub}");
            assert!((ub - v) as f64 <= v as f64 * 0.125 + 1.0, "{v} -> {ub}");
        }
    }

    #[test]
    fn quantiles_of_a_uniform_spread() {
        let h = AtomicHistogram::new();
        for v in 1..=1000 {
            h.record(v);
        }
        let mut c = Counts::default();
        h.add_to(&mut c);
        let p50 = c.quantile(0.5);
        let p99 = c.quantile(0.99);
        assert!((470..=570).contains(&p50), "{p50}");
        assert!((960..=1130).contains(&p99), "{p99}");
    }

    #[test]
    fn export_bounds_never_split_a_bucket() {
        for bound in EXPORT_BOUNDS_US {
            // The values just below and at a bound land in different buckets.
            assert_ne!(bucket(bound - 1), bucket(bound));
            assert_eq!(upper_bound(bucket(bound - 1)), bound - 1);
        }
        let h = AtomicHistogram::new();
        for v in [100, 127, 128, 1_000, 70_000_000] {
            h.record(v);
        }
        let mut c = Counts::default();
        h.add_to(&mut c);
        let cum = c.cumulative();
        assert_eq!(cum[0], 2, "below 128 µs: 100 and 127");
        assert_eq!(cum[1], 3, "below 256 µs");
        assert_eq!(cum[3], 4, "below 1024 µs");
        assert_eq!(cum[19], 4, "below 67 s; 70 s only in +Inf");
        assert_eq!(c.total(), 5);
    }

    #[test]
    fn since_gives_the_window() {
        let h = AtomicHistogram::new();
        h.record(10);
        let mut before = Counts::default();
        h.add_to(&mut before);
        h.record(5000);
        let mut after = Counts::default();
        h.add_to(&mut after);
        let window = after.since(&before);
        assert_eq!(window.total(), 1);
        assert!(window.quantile(0.5) >= 5000);
    }
}

//! One metric series kept at several resolutions: the last 15 minutes by the second, the
//! last 3 hours by 10 seconds, the last 24 hours by the minute. Each second's bucket is
//! added to all three, so a 24-hour chart reads 1,440 buckets, never 86,400.

use std::collections::VecDeque;

use super::sketch::Sketch;

/// (bucket width in seconds, buckets kept).
pub const RESOLUTIONS: [(u64, usize); 3] = [(1, 900), (10, 1080), (60, 1440)];

/// What was observed during one bucket.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Bucket {
    /// Unix seconds at the bucket's start.
    pub start: u64,
    /// Observations (gauge sets, histogram records, counter increments).
    pub count: u64,
    /// Their sum (a counter's increments).
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    /// The last value (a counter's running total, a gauge's value).
    pub last: f64,
    /// Histograms only.
    pub sketch: Option<Box<Sketch>>,
}

impl Bucket {
    /// Adds a later bucket's observations into this one.
    pub fn merge(&mut self, later: &Bucket) {
        if later.count == 0 {
            self.last = later.last;
            return;
        }
        if self.count == 0 {
            self.min = later.min;
            self.max = later.max;
        } else {
            self.min = self.min.min(later.min);
            self.max = self.max.max(later.max);
        }
        self.count += later.count;
        self.sum += later.sum;
        self.last = later.last;
        if let Some(s) = &later.sketch {
            self.sketch.get_or_insert_with(Default::default).merge(s);
        }
    }
}

/// A bounded run of buckets of one width, oldest first.
#[derive(Debug)]
pub struct Ring {
    pub width: u64,
    cap: usize,
    pub buckets: VecDeque<Bucket>,
}

impl Ring {
    pub fn new(width: u64, cap: usize) -> Self {
        Ring {
            width,
            cap,
            buckets: VecDeque::new(),
        }
    }

    /// How far back this ring reaches, in seconds.
    pub fn span(&self) -> u64 {
        self.width * self.cap as u64
    }

    /// Files one second's bucket (its `start` is that second).
    pub fn add(&mut self, second: &Bucket) {
        let start = second.start - second.start % self.width;
        match self.buckets.back_mut() {
            Some(b) if b.start == start => b.merge(second),
            _ => {
                let mut b = Bucket {
                    start,
                    last: second.last,
                    ..Bucket::default()
                };
                b.merge(second);
                if self.buckets.len() == self.cap {
                    self.buckets.pop_front();
                }
                self.buckets.push_back(b);
            }
        }
    }
}

pub use flowdeck_protocol::metrics::Agg;

/// The value of a merged window `seconds` long; `None` when it says nothing (no
/// observation, for aggregations that need one).
pub fn value(agg: Agg, b: &Bucket, seconds: u64) -> Option<f64> {
    let observed = b.count > 0;
    match agg {
        Agg::Last => Some(b.last),
        Agg::Sum => Some(b.sum),
        Agg::Rate => Some(b.sum / seconds.max(1) as f64),
        Agg::Count => Some(b.count as f64),
        Agg::Avg => observed.then(|| b.sum / b.count as f64),
        Agg::Min => observed.then_some(b.min),
        Agg::Max => observed.then_some(b.max),
        Agg::P50 => b.sketch.as_ref()?.quantile(0.5),
        Agg::P95 => b.sketch.as_ref()?.quantile(0.95),
        Agg::P99 => b.sketch.as_ref()?.quantile(0.99),
    }
}

/// Reads `[from, to)` from the finest ring that reaches back to `from`, in windows of
/// `step` seconds (at least that ring's width); one point per window start, `None` where
/// the window holds nothing.
pub fn read(
    rings: &[Ring],
    now: u64,
    from: u64,
    to: u64,
    step: u64,
    agg: Agg,
) -> (u64, Vec<(u64, Option<f64>)>) {
    let ring = rings
        .iter()
        .find(|r| now.saturating_sub(r.span()) <= from)
        .unwrap_or(&rings[rings.len() - 1]);
    let step = step.max(ring.width).div_ceil(ring.width) * ring.width;
    let first = from - from % step;
    let mut points = Vec::new();
    let mut at = first;
    let mut buckets = ring.buckets.iter().peekable();
    // The last value carries across empty windows (a gauge or total keeps its value).
    let mut last = None;
    while at < to {
        let mut window: Option<Bucket> = None;
        while let Some(b) = buckets.next_if(|b| b.start < at + step) {
            if b.start >= at {
                window
                    .get_or_insert_with(|| Bucket {
                        start: at,
                        ..Bucket::default()
                    })
                    .merge(b);
            }
            last = Some(b.last);
        }
        let value = match (&window, agg) {
            (Some(w), _) => value(agg, w, step),
            (None, Agg::Last) => last,
            (None, Agg::Sum | Agg::Rate | Agg::Count) if at < now => {
                // A counter that did not move: zero, once it exists.
                last.map(|_| 0.0)
            }
            (None, _) => None,
        };
        points.push((at, value));
        at += step;
    }
    (step, points)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn second(start: u64, values: &[f64]) -> Bucket {
        let mut b = Bucket {
            start,
            ..Bucket::default()
        };
        for &v in values {
            let one = Bucket {
                start,
                count: 1,
                sum: v,
                min: v,
                max: v,
                last: v,
                sketch: None,
            };
            b.merge(&one);
        }
        b
    }

    #[test]
    fn coarser_rings_merge_seconds_and_stay_bounded() {
        let mut fine = Ring::new(1, 5);
        let mut coarse = Ring::new(10, 3);
        for t in 100..140 {
            let b = second(t, &[t as f64, 1.0]);
            fine.add(&b);
            coarse.add(&b);
        }
        assert_eq!(fine.buckets.len(), 5);
        assert_eq!(fine.buckets[0].start, 135);
        assert_eq!(coarse.buckets.len(), 3);
        let b = &coarse.buckets[2];
        assert_eq!((b.start, b.count), (130, 20));
        assert_eq!((b.min, b.max, b.last), (1.0, 139.0, 1.0));
        assert_eq!(b.sum, (130..140).sum::<u64>() as f64 + 10.0);
    }

    #[test]
    fn reading_picks_the_finest_ring_that_reaches_and_aggregates_windows() {
        let mut rings: Vec<Ring> = RESOLUTIONS.iter().map(|&(w, c)| Ring::new(w, c)).collect();
        // A counter going up by 2 a second for 20 minutes.
        let start = 999_960; // a whole minute, so windows line up
        let mut total = 0.0;
        for t in start..start + 1200 {
            total += 2.0;
            let b = Bucket {
                start: t,
                count: 1,
                sum: 2.0,
                min: 2.0,
                max: 2.0,
                last: total,
                sketch: None,
            };
            for r in &mut rings {
                r.add(&b);
            }
        }
        let now = start + 1200;
        // The last 5 minutes by the second ring, in 60 s windows.
        let (step, pts) = read(&rings, now, now - 300, now, 60, Agg::Rate);
        assert_eq!(step, 60);
        assert_eq!(pts.len(), 5);
        assert!(pts.iter().all(|(_, v)| *v == Some(2.0)), "{pts:?}");
        // 20 minutes ago is beyond the 1 s ring (15 min): the 10 s ring answers.
        let (step, pts) = read(&rings, now, now - 1200, now, 1, Agg::Sum);
        assert_eq!(step, 10);
        assert_eq!(pts[1].1, Some(20.0));
        let (_, pts) = read(&rings, now, now - 60, now, 60, Agg::Last);
        assert_eq!(pts[0].1, Some(total));
        // Before the series existed there is nothing.
        let (_, pts) = read(&rings, now, start - 100, start - 50, 10, Agg::Rate);
        assert!(pts.iter().all(|(_, v)| v.is_none()));
        assert_eq!("p95".parse::<Agg>(), Ok(Agg::P95));
        assert!("median".parse::<Agg>().unwrap_err().contains("p50"));
    }
}

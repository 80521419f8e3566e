//! The names a distributed stage uses on NATS. Users name pipelines and stages freely
//! ("Billing EU", "call model"), and NATS subjects and stream names take a narrower set, so
//! the names here are built from a run token the caller checks (lowercase letters, digits
//! and dashes: a pipeline's slug and its start time) and the stage's index, never its name.

use crate::ClusterError;

/// One distributed stage of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageQueue {
    run: String,
    stage: u16,
}

impl StageQueue {
    /// `run` is the run's token: 1 to 64 lowercase letters, digits and dashes (such as
    /// `billing-eu-1764470000000`); `stage` the stage's index in the pipeline.
    pub fn new(run: &str, stage: u16) -> Result<Self, ClusterError> {
        let ok = !run.is_empty()
            && run.len() <= 64
            && run
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return Err(ClusterError::Name(format!(
                "a run token is 1 to 64 lowercase letters, digits and dashes, not {run:?}"
            )));
        }
        Ok(StageQueue {
            run: run.to_owned(),
            stage,
        })
    }

    /// The work-queue stream holding the stage's input.
    pub fn stream(&self) -> String {
        format!("flowdeck-{}-s{}", self.run, self.stage)
    }

    /// The subject items for the stage are published on.
    pub fn subject(&self) -> String {
        format!("flowdeck.{}.s{}.in", self.run, self.stage)
    }

    /// The durable pull consumer every worker process of the stage shares.
    pub fn consumer(&self) -> String {
        format!("s{}-workers", self.stage)
    }

    pub fn run(&self) -> &str {
        &self.run
    }

    pub fn stage(&self) -> u16 {
        self.stage
    }
}

/// The `Nats-Msg-Id` of output `output` (0 for a map; the index for a flat map) that stage
/// `stage` made of item `item` in run `run`. The same however many times the item is
/// delivered: a worker that crashed after publishing and before acking leaves the item to
/// be delivered again, and the second worker's outputs carry the same ids, so JetStream
/// keeps one copy. (A JetStream delivery count in the id would defeat that; a retry after
/// a failure publishes nothing before it succeeds, so it needs no number of its own.)
pub fn msg_id(run: &str, stage: u16, item: u64, output: u32) -> String {
    format!("{run}.s{stage}.{item}.{output}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_nats_safe_and_a_bad_token_is_refused() {
        let q = StageQueue::new("billing-eu-1764470000000", 2).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(q.stream(), "flowdeck-billing-eu-1764470000000-s2");
        assert_eq!(q.subject(), "flowdeck.billing-eu-1764470000000.s2.in");
        assert_eq!(q.consumer(), "s2-workers");
        for bad in ["", "Billing", "a.b", "a b", "a*", "a>", &"x".repeat(65)] {
            assert!(StageQueue::new(bad, 0).is_err(), "{bad:?}");
        }
        assert_eq!(msg_id("r-1", 3, 42, 2), "r-1.s3.42.2");
    }
}

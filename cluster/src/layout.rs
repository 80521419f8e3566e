//! The names a distributed stage uses on NATS. Users name pipelines and stages freely
//! ("Billing EU", "call model"), and NATS subjects and stream names take a narrower set, so
//! the names here are built from a pipeline token the caller checks (lowercase letters,
//! digits and dashes) and the stage's distributed index (the first stage handed to
//! [`crate::Cluster::distribute`] is 0), never from a stage's name.
//!
//! For pipeline `docs` and its first distributed stage:
//!
//! | what | name |
//! |---|---|
//! | the stage's input, a work-queue stream | `flowdeck-docs-d0` on `flowdeck.docs.d0.in` |
//! | its workers' durable pull consumer | `d0-workers` |
//! | the workers' replies, a work-queue stream | `flowdeck-docs-d0-out` on `flowdeck.docs.d0.out` |
//! | the driver's consumer of the replies | `d0-driver` |
//! | failed attempts sent back to retry, core NATS | `flowdeck.docs.d0.retries` |
//! | controls (pause), core NATS | `flowdeck.docs.control` |
//! | worker processes' heartbeats, core NATS | `flowdeck.docs.processes` |

use crate::ClusterError;

/// Checks a pipeline's or run's token: 1 to 64 lowercase letters, digits and dashes.
pub fn check_token(token: &str) -> Result<(), ClusterError> {
    let ok = !token.is_empty()
        && token.len() <= 64
        && token
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ClusterError::Name(format!(
            "a pipeline token is 1 to 64 lowercase letters, digits and dashes, not {token:?}"
        )))
    }
}

/// One distributed stage of one pipeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageQueue {
    pipeline: String,
    stage: u16,
}

impl StageQueue {
    /// `pipeline` is the pipeline's token ([`check_token`]); `stage` the stage's
    /// distributed index.
    pub fn new(pipeline: &str, stage: u16) -> Result<Self, ClusterError> {
        check_token(pipeline)?;
        Ok(StageQueue {
            pipeline: pipeline.to_owned(),
            stage,
        })
    }

    /// For a pipeline token already checked.
    pub(crate) fn checked(pipeline: &str, stage: u16) -> Self {
        StageQueue {
            pipeline: pipeline.to_owned(),
            stage,
        }
    }

    /// The work-queue stream holding the stage's input.
    pub fn stream(&self) -> String {
        format!("flowdeck-{}-d{}", self.pipeline, self.stage)
    }

    /// The subject items for the stage are published on.
    pub fn subject(&self) -> String {
        format!("flowdeck.{}.d{}.in", self.pipeline, self.stage)
    }

    /// The durable pull consumer every worker process of the stage shares.
    pub fn consumer(&self) -> String {
        format!("d{}-workers", self.stage)
    }

    /// The work-queue stream of the workers' replies (outputs and failures).
    pub fn replies_stream(&self) -> String {
        format!("flowdeck-{}-d{}-out", self.pipeline, self.stage)
    }

    pub fn replies_subject(&self) -> String {
        format!("flowdeck.{}.d{}.out", self.pipeline, self.stage)
    }

    /// Where workers announce a failed attempt they send back to be retried (core NATS):
    /// the driver shows the item as retrying, with the error, at once.
    pub fn retries_subject(&self) -> String {
        format!("flowdeck.{}.d{}.retries", self.pipeline, self.stage)
    }

    /// Where worker processes tell of the questions their tasks ask (core NATS).
    pub fn questions_subject(&self) -> String {
        format!("flowdeck.{}.d{}.questions", self.pipeline, self.stage)
    }

    /// Where the answers to one worker process's questions go (core NATS).
    pub fn answers_subject(&self, process: &str) -> String {
        let token: String = process
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("flowdeck.{}.d{}.answers.{token}", self.pipeline, self.stage)
    }

    /// The driver's durable consumer of the replies.
    pub fn replies_consumer(&self) -> String {
        format!("d{}-driver", self.stage)
    }

    pub fn pipeline(&self) -> &str {
        &self.pipeline
    }

    pub fn stage(&self) -> u16 {
        self.stage
    }
}

/// The subject the driver publishes controls (pause) on.
pub fn control_subject(pipeline: &str) -> String {
    format!("flowdeck.{pipeline}.control")
}

/// The subject worker processes publish their heartbeats on.
pub fn processes_subject(pipeline: &str) -> String {
    format!("flowdeck.{pipeline}.processes")
}

/// The `Nats-Msg-Id` of dispatch `dispatch` of item `item` to distributed stage `stage` in
/// run `run`. The driver numbers every dispatch, so a failed item retried by hand is a new
/// message, while a publish the driver repeats (NATS did not confirm it) is the same one.
pub fn msg_id(run: &str, stage: u16, item: u64, dispatch: u64) -> String {
    format!("{run}.d{stage}.{item}.{dispatch}")
}

/// The `Nats-Msg-Id` of the reply to a dispatch: the same however many times the item is
/// delivered. A worker that crashed after replying and before acking leaves the item to
/// be delivered again, and the second worker's reply carries the same id, so JetStream
/// keeps one copy. (A delivery count in the id would defeat that.)
pub fn reply_id(run: &str, stage: u16, dispatch: u64) -> String {
    format!("{run}.d{stage}.{dispatch}.reply")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_nats_safe_and_a_bad_token_is_refused() {
        let q = StageQueue::new("billing-eu", 2).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(q.stream(), "flowdeck-billing-eu-d2");
        assert_eq!(q.subject(), "flowdeck.billing-eu.d2.in");
        assert_eq!(q.consumer(), "d2-workers");
        assert_eq!(q.replies_stream(), "flowdeck-billing-eu-d2-out");
        assert_eq!(q.replies_subject(), "flowdeck.billing-eu.d2.out");
        assert_eq!(control_subject("b"), "flowdeck.b.control");
        for bad in ["", "Billing", "a.b", "a b", "a*", "a>", &"x".repeat(65)] {
            assert!(StageQueue::new(bad, 0).is_err(), "{bad:?}");
        }
        assert_eq!(msg_id("r-1", 3, 42, 7), "r-1.d3.42.7");
        assert_eq!(reply_id("r-1", 3, 7), "r-1.d3.7.reply");
    }
}

//! What a worker of a distributed stage does with one item it pulled: decode it, run the
//! stage's function on it (a panic fails the item, never the worker), publish its output
//! to the next stage's queue under its deterministic id, and only then ack. A failure is
//! retried with `Nak` and the stage's backoff until the last allowed delivery, then
//! terminated; a message that is not an item is terminated at once. While the function
//! runs, `Progress` keeps the item's claim, so an item may take longer than `ack_wait`.

use std::{future::Future, panic::AssertUnwindSafe, time::Duration};

use async_nats::jetstream::{self, AckKind, Message};
use futures::FutureExt;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::{msg_id, publish, QueueOptions, StageQueue};

/// An item as it travels between stages: its id in the run (kept from stage to stage),
/// the items it was made from, and its value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub item: u64,
    #[serde(default)]
    pub parents: Vec<u64>,
    pub value: T,
}

/// What became of one delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done here, its output published (or it was the last stage) and acked.
    Done { item: u64 },
    /// Failed on delivery `delivered`; it comes back after the backoff.
    Retry {
        item: u64,
        delivered: i64,
        error: String,
    },
    /// Failed on its last allowed delivery: terminated, a failed item.
    Failed {
        item: u64,
        delivered: i64,
        error: String,
    },
    /// Not an item of this stage (it does not decode): terminated, a failed item with a
    /// decode error. `item` is `None` when not even its id could be read.
    Malformed { item: Option<u64>, error: String },
    /// NATS did not take the output or the ack: the item will be delivered again.
    Lost { item: u64, error: String },
}

/// Handles one pulled message of stage `q` with `f`, sending outputs to `next` (none for
/// the last stage).
pub async fn handle<I, O, F, Fut>(
    js: &jetstream::Context,
    q: &StageQueue,
    next: Option<&StageQueue>,
    options: &QueueOptions,
    msg: Message,
    f: &F,
) -> Outcome
where
    I: DeserializeOwned,
    O: Serialize,
    F: Fn(I) -> Fut,
    Fut: Future<Output = Result<O, String>>,
{
    let envelope: Envelope<I> = match serde_json::from_slice(&msg.payload) {
        Ok(e) => e,
        Err(e) => {
            let item = serde_json::from_slice::<serde_json::Value>(&msg.payload)
                .ok()
                .and_then(|v| v.get("item").and_then(serde_json::Value::as_u64));
            let _ = msg.ack_with(AckKind::Term).await;
            return Outcome::Malformed {
                item,
                error: format!("not an item of this stage: {e}"),
            };
        }
    };
    let item = envelope.item;
    let delivered = msg.info().map_or(1, |i| i.delivered);
    let result = with_progress(&msg, options.ack_wait, async {
        AssertUnwindSafe(f(envelope.value))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| Err(panic_message(&panic)))
    })
    .await;
    match result {
        Ok(out) => {
            if let Some(next) = next {
                let body = Envelope {
                    item,
                    parents: envelope.parents,
                    value: out,
                };
                let sent = match serde_json::to_vec(&body) {
                    Ok(bytes) => {
                        publish(js, next, &msg_id(q.run(), q.stage(), item, 0), bytes.into())
                            .await
                            .map(|_| ())
                            .map_err(|e| e.to_string())
                    }
                    Err(e) => Err(format!("the output does not encode: {e}")),
                };
                if let Err(error) = sent {
                    return Outcome::Lost { item, error };
                }
            }
            // Confirmed by the server: an ack lost on the way would leave the item to be
            // delivered again, which the output's id makes harmless, but counted wrong.
            match msg.double_ack().await {
                Ok(()) => Outcome::Done { item },
                Err(e) => Outcome::Lost {
                    item,
                    error: e.to_string(),
                },
            }
        }
        Err(error) if delivered < options.max_deliver => {
            let wait = usize::try_from(delivered - 1)
                .ok()
                .and_then(|i| options.backoff.get(i).copied());
            let _ = msg.ack_with(AckKind::Nak(wait)).await;
            Outcome::Retry {
                item,
                delivered,
                error,
            }
        }
        Err(error) => {
            let _ = msg.ack_with(AckKind::Term).await;
            Outcome::Failed {
                item,
                delivered,
                error,
            }
        }
    }
}

/// Runs `work`, telling the server every third of `ack_wait` that the item is still being
/// worked on.
async fn with_progress<T>(msg: &Message, ack_wait: Duration, work: impl Future<Output = T>) -> T {
    let every = (ack_wait / 3).max(Duration::from_millis(10));
    let mut work = std::pin::pin!(work);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = tick.tick() => { let _ = msg.ack_with(AckKind::Progress).await; }
        }
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned());
    format!("panicked: {text}")
}

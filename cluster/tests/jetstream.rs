//! A stage's queue on a real NATS server: ids deduplicate, an item not acked in time is
//! delivered again, `Nak` with a delay and `Term` do what the stage's retry policy needs,
//! and an ack that comes after `ack_wait` is still taken (nats-server #4786, which the
//! design must survive).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind};
use common::nats_server;
use flowdeck_cluster::{msg_id, publish, stage_queue, QueueOptions, StageQueue};
use futures::StreamExt;

/// Up to `n` messages, waiting at most `wait` for them.
async fn pull(
    consumer: &jetstream::consumer::PullConsumer,
    n: usize,
    wait: Duration,
) -> Vec<jetstream::Message> {
    let mut batch = consumer
        .fetch()
        .max_messages(n)
        .expires(wait)
        .messages()
        .await
        .unwrap();
    let mut out = Vec::new();
    while let Some(m) = batch.next().await {
        out.push(m.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_queue_deduplicates_redelivers_and_retries() {
    let server = nats_server().await;
    let client = async_nats::connect(&server.url).await.unwrap();
    let js = jetstream::new(client);
    let q = StageQueue::new("test-pipe", 1).unwrap();
    let options = QueueOptions {
        ack_wait: Duration::from_millis(500),
        ..QueueOptions::default()
    };
    let consumer = stage_queue(&js, &q, &options).await.unwrap();
    // Opening it again (another worker process) finds the same stream and consumer.
    stage_queue(&js, &q, &options).await.unwrap();

    // Three items, the second published twice (a crash between publishing and acking).
    for (item, expect_dup) in [(1u64, false), (2, false), (2, true), (3, false)] {
        let dup = publish(
            &js,
            q.subject(),
            &msg_id("run-1", 1, item, 0),
            item.to_string().into(),
        )
        .await
        .unwrap();
        assert_eq!(dup, expect_dup, "item {item}");
    }
    let mut stream = js.get_stream(q.stream()).await.unwrap();
    assert_eq!(
        stream.info().await.unwrap().state.messages,
        3,
        "one copy of item 2"
    );

    // Taken and not acked: delivered again after ack_wait, counted.
    let first = pull(&consumer, 3, Duration::from_secs(2)).await;
    assert_eq!(first.len(), 3);
    assert!(first.iter().all(|m| m.info().unwrap().delivered == 1));
    let again = pull(&consumer, 3, Duration::from_secs(3)).await;
    assert_eq!(again.len(), 3, "redelivered after ack_wait");
    assert!(again.iter().all(|m| m.info().unwrap().delivered == 2));

    // Item 1 acked; item 2 failed for good (Term); item 3 retried after a delay (Nak).
    let by_item = |ms: &[jetstream::Message], item: &str| {
        ms.iter()
            .position(|m| m.payload.as_ref() == item.as_bytes())
            .unwrap()
    };
    again[by_item(&again, "1")].ack().await.unwrap();
    again[by_item(&again, "2")]
        .ack_with(AckKind::Term)
        .await
        .unwrap();
    let nak_at = Instant::now();
    again[by_item(&again, "3")]
        .ack_with(AckKind::Nak(Some(Duration::from_millis(300))))
        .await
        .unwrap();
    let third = pull(&consumer, 3, Duration::from_secs(2)).await;
    assert_eq!(third.len(), 1, "only the nak'd item comes back");
    assert!(
        nak_at.elapsed() >= Duration::from_millis(250),
        "after its delay"
    );
    assert_eq!(third[0].payload.as_ref(), b"3");
    assert_eq!(third[0].info().unwrap().delivered, 3);

    // A late ack (nats-server #4786): delivery 3 held past ack_wait goes to another worker
    // as delivery 4; the first worker's ack then still removes the item, while the second
    // is working on it. Replies are deduplicated by id for this reason.
    let fourth = pull(&consumer, 1, Duration::from_secs(3)).await;
    assert_eq!(fourth.len(), 1);
    assert_eq!(fourth[0].info().unwrap().delivered, 4);
    third[0].ack().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let info = stream.info().await.unwrap();
    assert_eq!(info.state.messages, 0, "the late ack was taken");
    fourth[0].ack().await.unwrap();
    assert!(pull(&consumer, 1, Duration::from_millis(800))
        .await
        .is_empty());
}

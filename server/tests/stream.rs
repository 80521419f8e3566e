//! The live stream over real HTTP: a client that keeps dropping its connection still ends
//! with exactly the runtime's state; a client too far behind gets a full frame; a client
//! that stops reading slows nobody.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns, too

use std::time::Duration;

mod common;

use common::{pipeline, serve};
use eventsource_stream::Eventsource;
use flowdeck_protocol::stream::{Delta, Frame, Full, ItemRow, LiveState};
use flowdeck_runtime::PipelineHandle;
use flowdeck_server::hub::LogLimits;
use futures::{Stream, StreamExt};
use rand::Rng;

/// A stream client keeping its state the way the browser does.
#[derive(Default)]
struct Client {
    state: Option<LiveState>,
    fulls: usize,
    deltas: usize,
}

impl Client {
    async fn connect(
        &self,
        base: &str,
    ) -> impl Stream<Item = eventsource_stream::Event> + Unpin + use<> {
        let mut req = reqwest::Client::new().get(format!("{base}/api/events"));
        if let Some(s) = &self.state {
            req = req.header("Last-Event-ID", s.id.to_string());
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(
            res.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        res.bytes_stream()
            .eventsource()
            .map(|e| e.unwrap())
            .filter(|e| std::future::ready(!e.event.is_empty()))
            .boxed()
    }

    fn apply(&mut self, event: eventsource_stream::Event) {
        let frame = match event.event.as_str() {
            "full" => {
                self.fulls += 1;
                Frame::Full(serde_json::from_str::<Full>(&event.data).unwrap())
            }
            "delta" => {
                self.deltas += 1;
                Frame::Delta(serde_json::from_str::<Delta>(&event.data).unwrap())
            }
            other => panic!("unexpected event {other:?}"),
        };
        assert_eq!(
            event.id,
            frame.id().to_string(),
            "the SSE id is the frame id"
        );
        match (&mut self.state, frame) {
            (_, Frame::Full(full)) => self.state = Some(LiveState::from_full(full)),
            (Some(state), Frame::Delta(delta)) => state.apply_delta(delta).unwrap(),
            (None, Frame::Delta(_)) => panic!("a delta before any full frame"),
        }
    }

    fn id(&self) -> u64 {
        self.state.as_ref().map_or(0, |s| s.id)
    }

    /// Reads until the state has applied frame `id`.
    async fn catch_up(&mut self, base: &str, id: u64) {
        let mut events = self.connect(base).await;
        while self.id() < id {
            let e = tokio::time::timeout(Duration::from_secs(10), events.next())
                .await
                .expect("a frame within 10 s")
                .expect("the stream stays open");
            self.apply(e);
        }
    }
}

/// The runtime's own view, as the stream carries it.
fn runtime_rows(handle: &PipelineHandle) -> Vec<ItemRow> {
    let mut rows: Vec<ItemRow> = handle
        .tracker()
        .items(None, None, usize::MAX)
        .iter()
        .map(ItemRow::from)
        .collect();
    rows.sort_unstable_by_key(ItemRow::id);
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_keeps_reconnecting_ends_with_the_runtimes_state() {
    let running = pipeline(3_000); // fewer than the items: the window moves
    let handle = running.handle.clone();
    let base = serve(handle.clone(), 20, LogLimits::default()).await;
    let outputs = running.outputs;
    tokio::spawn(async move { while outputs.recv().await.is_ok() {} });
    let input = running.input;
    let feeder = tokio::spawn(async move {
        for n in 0..4_000u64 {
            input.send(n).await.unwrap();
            if n % 200 == 0 {
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        }
        drop(input);
    });

    let mut client = Client::default();
    let mut reconnects = 0;
    while !feeder.is_finished() {
        let mut events = client.connect(&base).await;
        let take = rand::rng().random_range(1..8);
        for _ in 0..take {
            match tokio::time::timeout(Duration::from_secs(5), events.next()).await {
                Ok(Some(e)) => client.apply(e),
                _ => break,
            }
        }
        drop(events); // the connection drops mid-run
        reconnects += 1;
        tokio::time::sleep(Duration::from_millis(rand::rng().random_range(0..60))).await;
    }
    feeder.await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), handle.wait())
        .await
        .unwrap();
    // Let the hub publish the final state, then catch up to it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let final_id = {
        let probe = Client::default();
        let mut events = probe.connect(&base).await;
        events.next().await.unwrap().id.parse::<u64>().unwrap()
    };
    client.catch_up(&base, final_id).await;

    assert!(
        reconnects >= 5,
        "the test dropped the stream {reconnects} times"
    );
    assert_eq!(client.fulls, 1, "every reconnect resumed from the log");
    assert!(client.deltas > 10);
    let state = client.state.unwrap();
    let runtime = handle.snapshot();
    assert_eq!(state.snapshot.totals.submitted, runtime.totals.submitted);
    assert_eq!(state.snapshot.totals.completed, runtime.totals.completed);
    assert_eq!(state.snapshot.totals.failed, runtime.totals.failed);
    assert_eq!(state.snapshot.totals.retried, runtime.totals.retried);
    assert!(runtime.totals.failed > 0 && runtime.totals.retried > 0);
    let rows: Vec<ItemRow> = state.items.values().cloned().collect();
    assert_eq!(
        rows.len(),
        3_000,
        "the client keeps what the runtime retains"
    );
    assert_eq!(
        rows,
        runtime_rows(&handle),
        "the client's items are the runtime's"
    );
    assert_eq!(state.errors, handle.tracker().errors());
}

#[tokio::test]
async fn a_client_older_than_the_log_gets_a_full_frame() {
    let running = pipeline(100);
    let base = serve(
        running.handle.clone(),
        20,
        LogLimits {
            frames: 5,
            bytes: 1 << 20,
        },
    )
    .await;
    let mut client = Client::default();
    let mut events = client.connect(&base).await;
    client.apply(events.next().await.unwrap());
    drop(events);
    assert_eq!(client.fulls, 1);
    let old = client.id();
    tokio::time::sleep(Duration::from_millis(400)).await; // ~20 frames: past the log
    let mut events = client.connect(&base).await;
    client.apply(events.next().await.unwrap());
    assert_eq!(client.fulls, 2, "resynced with a full frame");
    assert!(client.id() > old + 5);
    // Nonsense ids get a full frame too, never an error.
    for bad in ["banana", "-1", "99999999999999999999999"] {
        let res = reqwest::Client::new()
            .get(format!("{base}/api/events"))
            .header("Last-Event-ID", bad)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let first = res
            .bytes_stream()
            .eventsource()
            .next()
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.event, "full", "Last-Event-ID {bad}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_slows_neither_the_runtime_nor_other_clients() {
    let running = pipeline(50_000);
    let handle = running.handle.clone();
    let base = serve(
        handle.clone(),
        20,
        LogLimits {
            frames: 50,
            bytes: 4 << 20,
        },
    )
    .await;
    // Connects, reads one frame, then stops reading with the socket open.
    let mut woke = Client::default();
    let mut stalled_events = woke.connect(&base).await;
    woke.apply(stalled_events.next().await.unwrap());

    let mut reader = Client::default();
    let outputs = running.outputs;
    tokio::spawn(async move { while outputs.recv().await.is_ok() {} });
    let input = running.input;
    tokio::spawn(async move {
        input.send_all(0..30_000u64).await;
    });
    tokio::time::timeout(Duration::from_secs(60), handle.wait())
        .await
        .expect("the runtime finished while a client stalled");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let latest = {
        let mut e = Client::default().connect(&base).await;
        e.next().await.unwrap().id.parse::<u64>().unwrap()
    };
    reader.catch_up(&base, latest).await;
    assert_eq!(
        reader.state.as_ref().unwrap().items.len(),
        runtime_rows(&handle).len()
    );

    // The stalled client wakes up: it resumes and converges (from a full frame if it fell
    // out of the log).
    while woke.id() < latest {
        let e = tokio::time::timeout(Duration::from_secs(10), stalled_events.next())
            .await
            .unwrap()
            .unwrap();
        woke.apply(e);
    }
    let woke = woke.state.unwrap();
    assert_eq!(
        woke.snapshot.totals.completed,
        handle.snapshot().totals.completed
    );
    assert_eq!(
        woke.items.values().cloned().collect::<Vec<_>>(),
        runtime_rows(&handle)
    );
}

//! The live stream over real HTTP: a client that keeps dropping its connection still ends
//! with exactly the runtime's state; a client too far behind gets a full frame; a client
//! that stops reading slows nobody.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns, too

use std::time::Duration;

mod common;

use async_compression::tokio::bufread::{BrotliDecoder, GzipDecoder};
use bytes::Bytes;
use common::{pipeline, serve};
use eventsource_stream::Eventsource;
use flowdeck_protocol::{
    stream::{Delta, Frame, Full, ItemRow, LiveState},
    window::{Tab, Window, WindowQuery},
};
use flowdeck_runtime::PipelineHandle;
use flowdeck_server::hub::LogLimits;
use futures::{stream::BoxStream, Stream, StreamExt, TryStreamExt};
use rand::Rng;
use tokio_util::io::{ReaderStream, StreamReader};

/// A stream client keeping its state the way the browser does; with `accept`, it asks
/// for a compressed stream (and checks it got one) and decodes it as it comes.
#[derive(Default)]
struct Client {
    state: Option<LiveState>,
    fulls: usize,
    deltas: usize,
    accept: Option<&'static str>,
    /// Asks for frames without task rows (`?rows=none`).
    without_rows: bool,
    /// Asks for a full frame's rows after it, in chunks (`?rows=chunked`), as the browser's
    /// task list does.
    chunked: bool,
    /// The last SSE id seen, sent back as `Last-Event-ID` as a browser's EventSource does:
    /// a chunked client cut before the last of a full frame's rows has none of it.
    last_id: Option<String>,
    /// A chunked full frame whose rows have not all come.
    rows_pending: bool,
    /// Connections dropped while rows were pending.
    cut_mid_rows: usize,
    /// Asks for one window of the task list (`?rows=window&…`), as the browser's task
    /// list does, moving it at each reconnect and resuming by `?last=`.
    window: Option<WindowQuery>,
    /// The window last received, and whether one came on this connection.
    got: Option<Window>,
    window_here: bool,
}

impl Client {
    fn accepting(coding: &'static str) -> Self {
        Client {
            accept: Some(coding),
            ..Client::default()
        }
    }

    async fn connect(
        &self,
        base: &str,
    ) -> impl Stream<Item = eventsource_stream::Event> + Unpin + use<> {
        // It decodes the stream itself, as it comes (reqwest could, built beside `flowdeck
        // top`, which asks it to; this test reads what the server sends).
        let http = reqwest::Client::builder()
            .no_gzip()
            .no_brotli()
            .build()
            .unwrap();
        let query = match (self.without_rows, self.chunked, &self.window) {
            (_, _, Some(w)) => format!(
                "?rows=window&{}{}",
                w.to_query(),
                self.last_id
                    .as_ref()
                    .map(|id| format!("&last={id}"))
                    .unwrap_or_default()
            ),
            (true, _, _) => "?rows=none".into(),
            (false, true, _) => "?rows=chunked".into(),
            (false, false, _) => String::new(),
        };
        let mut req = http.get(format!("{base}/api/events{query}"));
        if let (Some(id), None) = (&self.last_id, &self.window) {
            req = req.header("Last-Event-ID", id);
        }
        if let Some(coding) = self.accept {
            req = req.header("accept-encoding", coding);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(
            res.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        let coding = res
            .headers()
            .get("content-encoding")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(coding.as_deref(), self.accept, "the stream's encoding");
        let bytes = res.bytes_stream().map_err(std::io::Error::other);
        let body: BoxStream<'static, std::io::Result<Bytes>> = match self.accept {
            Some("br") => ReaderStream::new(BrotliDecoder::new(StreamReader::new(bytes))).boxed(),
            Some("gzip") => ReaderStream::new(GzipDecoder::new(StreamReader::new(bytes))).boxed(),
            _ => bytes.boxed(),
        };
        body.eventsource()
            .map(|e| e.unwrap())
            .filter(|e| std::future::ready(!e.event.is_empty()))
            .boxed()
    }

    fn apply(&mut self, event: eventsource_stream::Event) {
        if event.event == "window" {
            let w: Window = serde_json::from_str(&event.data).unwrap();
            assert_eq!(Some(&w.query), self.window.as_ref(), "the window asked for");
            self.got = Some(w);
            self.window_here = true;
            return;
        }
        if !event.id.is_empty() {
            self.last_id = Some(event.id.clone());
        }
        if event.event == "rows" {
            assert!(self.chunked, "rows in chunks only when asked");
            let rows: Vec<ItemRow> = serde_json::from_str(&event.data).unwrap();
            assert!(rows.len() <= flowdeck_protocol::stream::ROWS_CHUNK);
            let state = self.state.as_mut().expect("rows after a full frame");
            state.add_rows(rows);
            // The last chunk carries the frame's id.
            if event.id == state.id.to_string() {
                self.rows_pending = false;
            }
            return;
        }
        assert!(
            !self.rows_pending,
            "a frame before the rows of the full one"
        );
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
        let chunked_full = self.chunked && matches!(&frame, Frame::Full(f) if f.items.is_empty());
        if chunked_full {
            // Its rows follow, the last chunk with its id (none when it has no rows).
            self.rows_pending = event.id != frame.id().to_string();
        } else {
            assert_eq!(
                event.id,
                frame.id().to_string(),
                "the SSE id is the frame id"
            );
        }
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
        self.window_here = false;
        while self.id() < id || self.rows_pending || (self.window.is_some() && !self.window_here) {
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

/// Connects, reads a few frames, drops the connection mid-run, again and again until
/// `done`; answers how many times it reconnected.
async fn keep_reconnecting(
    client: &mut Client,
    base: &str,
    done: &tokio::task::JoinHandle<()>,
) -> usize {
    let mut reconnects = 0;
    while !done.is_finished() {
        // The task list scrolled: another window of the same list.
        if let Some(w) = &mut client.window {
            w.from = rand::rng().random_range(0..2_000);
        }
        let mut events = client.connect(base).await;
        let take = rand::rng().random_range(1..8);
        for _ in 0..take {
            match tokio::time::timeout(Duration::from_secs(5), events.next()).await {
                Ok(Some(e)) => client.apply(e),
                _ => break,
            }
        }
        drop(events); // the connection drops mid-run
        reconnects += 1;
        if client.rows_pending {
            client.cut_mid_rows += 1;
            client.rows_pending = false;
        }
        let pause = Duration::from_millis(rand::rng().random_range(0..60));
        tokio::time::sleep(pause).await;
    }
    reconnects
}

/// A plain client, a brotli one, a gzip one and a gzip one without task rows, side by
/// side, each cut and resumed by `Last-Event-ID` again and again: each ends with exactly
/// the runtime's state (the rowless one with its totals and errors, and no rows), which is
/// also what a fresh full frame says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_keep_reconnecting_end_with_the_runtimes_state_compressed_or_not() {
    let running = pipeline(3_000); // fewer than the items: the window moves
    let handle = running.handle.clone();
    let base = serve(handle.clone(), 20, LogLimits::default()).await;
    let outputs = running.outputs;
    tokio::spawn(async move { while outputs.recv().await.is_ok() {} });
    let input = running.input;
    let feeder = std::sync::Arc::new(tokio::spawn(async move {
        for n in 0..4_000u64 {
            input.send(n).await.unwrap();
            if n % 200 == 0 {
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        }
        drop(input);
    }));

    // The fourth shows no task rows, as every page but the task list; the fifth takes a
    // full frame's rows after it; the last two a window of the task list (all items, and
    // the failed ones of a stage), moved at every reconnect.
    let failed = WindowQuery {
        tab: Tab::Failed,
        stage: Some("b".into()),
        count: 100,
        ..WindowQuery::default()
    };
    let all = WindowQuery {
        q: "-status:running".into(),
        count: 300,
        ..WindowQuery::default()
    };
    let clients = [
        (None, false, false, None),
        (Some("br"), false, false, None),
        (Some("gzip"), false, false, None),
        (Some("gzip"), true, false, None),
        (Some("gzip"), false, true, None),
        (None, false, false, Some(failed)),
        (Some("gzip"), false, false, Some(all)),
    ]
    .map(|(accept, without_rows, chunked, window)| {
        let (base, feeder) = (base.clone(), feeder.clone());
        tokio::spawn(async move {
            let mut client = accept.map_or_else(Client::default, Client::accepting);
            client.without_rows = without_rows;
            client.chunked = chunked;
            client.window = window;
            let reconnects = keep_reconnecting(&mut client, &base, &feeder).await;
            (client, reconnects)
        })
    });
    let mut done = Vec::new();
    for c in clients {
        done.push(c.await.unwrap());
    }
    tokio::time::timeout(Duration::from_secs(60), handle.wait())
        .await
        .unwrap();
    // Let the hub publish the final state, then catch up to it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fresh = Client::default();
    let final_id = {
        let mut events = fresh.connect(&base).await;
        let e = events.next().await.unwrap();
        fresh.apply(e);
        fresh.id()
    };
    let fresh = fresh.state.unwrap();
    let runtime = handle.snapshot();
    assert!(runtime.totals.failed > 0 && runtime.totals.retried > 0);
    for (mut client, reconnects) in done {
        let who = format!(
            "the client accepting {:?}{}",
            client.accept,
            match (client.without_rows, client.chunked, &client.window) {
                (_, _, Some(w)) => format!(" with the window {}", w.to_query()),
                (true, _, _) => " without rows".into(),
                (false, true, _) => " with rows in chunks".into(),
                (false, false, _) => String::new(),
            }
        );
        // Scrolled last to where the list has rows: the top of the failures, and the
        // middle of the 3,000 retained items.
        if let Some(w) = &mut client.window {
            w.from = if w.tab == Tab::Failed { 0 } else { 1_000 };
        }
        let without_rows = client.without_rows;
        let window = client.window.clone();
        client.catch_up(&base, final_id).await;
        assert!(
            reconnects >= 5,
            "{who} dropped the stream {reconnects} times"
        );
        // A chunked client cut before its full frame's last rows had no id to resume
        // from, and got a full frame again; every other reconnect resumed from the log.
        assert_eq!(
            client.fulls,
            1 + client.cut_mid_rows,
            "{who}: every reconnect resumed from the log"
        );
        assert!(client.deltas > 10, "{who}");
        let state = client.state.unwrap();
        assert_eq!(
            state.snapshot.totals.submitted, runtime.totals.submitted,
            "{who}"
        );
        assert_eq!(
            state.snapshot.totals.completed, runtime.totals.completed,
            "{who}"
        );
        assert_eq!(state.snapshot.totals.failed, runtime.totals.failed, "{who}");
        assert_eq!(
            state.snapshot.totals.retried, runtime.totals.retried,
            "{who}"
        );
        assert_eq!(state.errors, handle.tracker().errors(), "{who}");
        // What a fresh full frame says, exactly.
        assert_eq!(state.snapshot.totals, fresh.snapshot.totals, "{who}");
        assert_eq!(state.errors, fresh.errors, "{who}");
        if let Some(q) = window {
            assert!(state.items.is_empty(), "{who} got rows in its frames");
            let got = client.got.unwrap();
            let want = fresh.window(&q).unwrap();
            assert!(!want.rows.is_empty() && want.matched > 0, "{who}: {want:?}");
            assert_eq!(got, want, "{who}: the window a fresh full frame gives");
            continue;
        }
        if without_rows {
            assert!(state.items.is_empty(), "{who} got rows");
            continue;
        }
        let rows: Vec<ItemRow> = state.items.values().cloned().collect();
        assert_eq!(rows.len(), 3_000, "{who} keeps what the runtime retains");
        assert_eq!(
            rows,
            runtime_rows(&handle),
            "{who}: the items are the runtime's"
        );
        assert_eq!(state.items, fresh.items, "{who}");
    }
}

/// 25,000 retained rows reach a chunked client in three `rows` events after the full
/// frame, the last with its id: the same rows as a whole full frame carries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_frames_rows_come_in_chunks_after_it() {
    let running = pipeline(30_000);
    let handle = running.handle.clone();
    let outputs = running.outputs;
    tokio::spawn(async move { while outputs.recv().await.is_ok() {} });
    running.input.send_all(0..25_000u64).await;
    running.input.close();
    tokio::time::timeout(Duration::from_secs(120), handle.wait())
        .await
        .unwrap();
    let base = serve(handle.clone(), 20, LogLimits::default()).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    let mut chunked = Client::accepting("gzip");
    chunked.chunked = true;
    let mut events = chunked.connect(&base).await;
    let first = events.next().await.unwrap();
    assert_eq!((first.event.as_str(), first.id.as_str()), ("full", ""));
    chunked.apply(first);
    assert!(chunked.state.as_ref().unwrap().items.is_empty());
    let mut sizes = Vec::new();
    while chunked.rows_pending {
        let e = events.next().await.unwrap();
        assert_eq!(e.event, "rows");
        sizes.push(serde_json::from_str::<Vec<ItemRow>>(&e.data).unwrap().len());
        chunked.apply(e);
    }
    assert_eq!(sizes, [10_000, 10_000, 5_000]);
    assert_eq!(chunked.last_id, Some(chunked.id().to_string()));

    let mut whole = Client::default();
    let mut events = whole.connect(&base).await;
    whole.apply(events.next().await.unwrap());
    let (chunked, whole) = (chunked.state.unwrap(), whole.state.unwrap());
    assert_eq!(chunked.items.len(), 25_000);
    assert_eq!(chunked.items, whole.items);
    assert_eq!(
        chunked.items.values().cloned().collect::<Vec<_>>(),
        runtime_rows(&handle)
    );
    assert_eq!(
        chunked.count(flowdeck_protocol::ItemStatus::Completed),
        whole.count(flowdeck_protocol::ItemStatus::Completed)
    );
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

//! The demo pipeline `flowdeck` runs when started with no arguments: documents are ingested,
//! parsed, enriched by a simulated model call (latency, token counts, random failures and
//! retries) and stored, continuously, so every page of the dashboard has something to show.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use flowdeck_runtime::{Capture, Ctx, Line, PipelineHandle, Question, RetryPolicy, Stage};

use crate::dashboard::{
    builtin, Agg, Chart, Check, Dashboard, Gauge, Log, Metric, Outcome, Page, Source, Status,
    Table, MINUTE,
};
use rand::Rng;

/// Where a document's result is reported: each document carries its webhook and that
/// webhook's token, which the task page must never show (the capture masks `token`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Callback {
    pub url: String,
    pub token: String,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Document {
    pub title: String,
    pub source: &'static str,
    pub body: String,
    pub callback: Callback,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Parsed {
    pub title: String,
    pub section: usize,
    pub source: &'static str,
    pub words: usize,
    pub callback: Callback,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Enriched {
    pub title: String,
    pub words: usize,
    pub tokens: u32,
    pub label: &'static str,
    pub callback: Callback,
}

/// What each stage keeps of its inputs for the task page: every failure's, one in a
/// hundred of the rest, 2 KiB at most, secrets masked.
fn capture() -> Capture {
    Capture::failures().sample(0.01)
}

/// The demo's failures: a model that sometimes times out or rate-limits (retried), and a
/// store that sometimes refuses a write (not retried).
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("model call timed out after {0} ms")]
    ModelTimeout(u64),
    #[error("model rate limit hit, retry later")]
    RateLimited,
    #[error("document is empty")]
    Empty,
    #[error("store rejected the write: disk quota")]
    StoreRejected,
}

impl DemoError {
    fn kind(&self) -> String {
        match self {
            DemoError::ModelTimeout(_) => "ModelTimeout",
            DemoError::RateLimited => "RateLimited",
            DemoError::Empty => "Empty",
            DemoError::StoreRejected => "StoreRejected",
        }
        .to_owned()
    }
}

const SOURCES: [&str; 4] = ["rss", "s3", "crawler", "upload"];
const LABELS: [&str; 5] = ["news", "finance", "sports", "science", "other"];

/// Records a demo pipeline sends to a reviewer at once, at most.
const REVIEWS: usize = 100;

/// Counts a review done when dropped (answered, defaulted or cancelled).
struct Decrement(Arc<AtomicUsize>);

impl Drop for Decrement {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A simulated wait between `from_ms` and `to_ms`, times `scale` (0 skips the wait).
async fn pause(from_ms: u64, to_ms: u64, scale: f64) {
    let ms = rand::rng().random_range(from_ms..=to_ms) as f64 * scale;
    if ms > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(ms / 1000.0)).await;
    }
}

/// Starts the demo: a pipeline and a producer feeding it about `rate` documents a second.
/// `latency` scales the simulated work (1.0 is realistic; 0.0 makes every task instant,
/// which is how the benchmark pushes tens of thousands of events a second through it).
pub fn start(rate: u32, latency: f64) -> PipelineHandle {
    start_with(NAME, rate, latency, Review::default())
}

/// The demo pipeline's name.
pub const NAME: &str = "document-enrichment";

/// The demo under another name: a dashboard of several pipelines serves several of them.
pub fn start_named(name: &str, rate: u32, latency: f64) -> PipelineHandle {
    start_with(name, rate, latency, Review::default())
}

/// How the demo asks a reviewer about a record before storing it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Review {
    /// One record in `every` is reviewed; 0 reviews none.
    pub every: u32,
    /// Nobody answering within this publishes the record.
    pub after: Duration,
}

impl Default for Review {
    fn default() -> Self {
        Review {
            every: 300,
            after: Duration::from_secs(120),
        }
    }
}

/// What a reviewer may add to a record: the demo's question's form.
#[derive(serde::Deserialize, schemars::JsonSchema)]
struct ReviewNote {
    /// A note for whoever reads the record later.
    #[schemars(extend("format" = "textarea"))]
    note: Option<String>,
    /// Topics to file it under.
    #[serde(default)]
    tags: Vec<String>,
}

/// The demo with reviews as `review` says.
pub fn start_with(name: &str, rate: u32, latency: f64, review: Review) -> PipelineHandle {
    let scale = latency.max(0.0);
    let reviews = Arc::new(AtomicUsize::new(0));
    let running = Line::<Document>::new(name)
        .stage(
            Stage::map("ingest", move |doc: Document, cx: Ctx| async move {
                pause(1, 4, scale).await;
                tracing::debug!(source = "ingest", title = %doc.title, "ingested a document");
                cx.annotate("input", doc.title.clone());
                cx.annotate("source", doc.source);
                cx.annotate("bytes", doc.body.len());
                Ok::<_, DemoError>(doc)
            })
            .workers(2)
            // Short queues: backpressure reaches the producer soon, and a Ctrl-C drains
            // in seconds rather than minutes.
            .queue(64)
            .capture(capture()),
        )
        .stage(
            // Long documents are split into sections: each section is an item of its own
            // whose provenance names the document.
            Stage::flat_map("parse", move |doc: Document, cx: Ctx| async move {
                pause(2, 8, scale).await;
                let words = doc.body.split_whitespace().count();
                if words == 0 {
                    return Err(DemoError::Empty);
                }
                let sections = words.div_ceil(150);
                cx.annotate("sections", sections);
                Ok((0..sections)
                    .map(|i| Parsed {
                        title: doc.title.clone(),
                        section: i + 1,
                        source: doc.source,
                        words: (words - i * 150).min(150),
                        callback: doc.callback.clone(),
                    })
                    .collect::<Vec<_>>())
            })
            .workers(4)
            .queue(64)
            .classify(DemoError::kind)
            .capture(capture()),
        )
        .stage(
            Stage::map("enrich", move |p: Parsed, cx: Ctx| async move {
                let (latency, roll, label) = {
                    let mut rng = rand::rng();
                    (
                        rng.random_range(20..=180),
                        rng.random_range(0..100),
                        LABELS[rng.random_range(0..LABELS.len())],
                    )
                };
                pause(latency, latency, scale).await;
                cx.annotate("model", "demo-small-v2");
                let source = format!("enrich-{}", cx.worker());
                match roll {
                    0..=5 => {
                        tracing::warn!(
                            source,
                            latency_ms = latency,
                            attempt = cx.attempt(),
                            "model call timed out"
                        );
                        return Err(DemoError::ModelTimeout(latency));
                    }
                    6..=8 => {
                        tracing::info!(source, attempt = cx.attempt(), "rate limited by the model");
                        return Err(DemoError::RateLimited);
                    }
                    _ => {}
                }
                let tokens = (p.words as u32) * 4 / 3;
                cx.annotate("tokens", tokens);
                // Plain `metrics` calls, as any user code would make: they show up on the
                // dashboard and in /prometheus with no flowdeck code here.
                metrics::counter!("demo_tokens_total", "model" => "demo-small-v2")
                    .increment(u64::from(tokens));
                metrics::histogram!("demo_model_latency_seconds").record(latency as f64 / 1000.0);
                Ok(Enriched {
                    title: format!("{} §{}", p.title, p.section),
                    words: p.words,
                    tokens,
                    label,
                    callback: p.callback,
                })
            })
            .workers(8)
            .queue(128)
            .timeout(Duration::from_secs(2))
            .retry(RetryPolicy::attempts(3).backoff(
                Duration::from_secs_f64(0.05 * scale),
                Duration::from_secs_f64(0.4 * scale),
            ))
            .classify(DemoError::kind)
            .capture(capture()),
        )
        .stage(
            Stage::map("store", move |e: Enriched, cx: Ctx| {
                let reviews = reviews.clone();
                async move {
                    pause(2, 10, scale).await;
                    // One record in 300 goes to a reviewer first; nobody answering within two
                    // minutes publishes it. The item waits without holding one of the two
                    // workers. At most REVIEWS wait at once, whatever the demo's rate.
                    let reviewing = review.every > 0 && reviews.load(Ordering::Relaxed) < REVIEWS;
                    if reviewing && rand::rng().random_range(0..review.every) == 0 {
                        reviews.fetch_add(1, Ordering::Relaxed);
                        let _done = Decrement(reviews.clone());
                        let question = Question::new(format!("Publish “{}”?", e.title))
                            .body(format!(
                                "The model labelled this record **{}**: {} words, {} tokens.\n\n\
                             Publish it, or hold it back for a closer look?",
                                e.label, e.words, e.tokens
                            ))
                            .options(["publish", "hold"])
                            .form::<ReviewNote>()
                            .default_after(review.after, "publish");
                        // Cancelled (the demo stopped) or not askable: stored as it is.
                        if let Ok(answer) = cx.ask(question).await {
                            cx.annotate("review", answer.choice.as_str());
                            if let Some(n) = answer.data {
                                if let Some(note) = n.note.filter(|n| !n.trim().is_empty()) {
                                    cx.annotate("review_note", note);
                                }
                                if !n.tags.is_empty() {
                                    cx.annotate("review_tags", n.tags.join(", "));
                                }
                            }
                        }
                    }
                    if rand::rng().random_range(0..100) == 0 {
                        tracing::warn!(
                            source = format!("store-{}", cx.worker()),
                            "the store rejected a record"
                        );
                        return Err(DemoError::StoreRejected);
                    }
                    cx.annotate("label", e.label);
                    Ok((e.words, e.tokens))
                }
            })
            .workers(2)
            .queue(64)
            .classify(DemoError::kind)
            .capture(capture())
            // What the pipeline produced, for the same sample.
            .capture_output(capture()),
        )
        .retention(100_000)
        .build();
    // The demo's graph is fixed and valid; a build error here is a bug in this file.
    let running = match running {
        Ok(pipeline) => pipeline.start(),
        Err(e) => unreachable!("the demo pipeline is invalid: {e}"),
    };
    let handle = running.handle.clone();
    let input = running.input;
    drop(running.outputs);
    tokio::spawn(async move {
        // Ticks of 10 ms, each sending its share of the rate: timers cannot tick faster
        // than a millisecond, and the demo can be asked for 100,000 documents a second.
        let mut n: u64 = 0;
        let mut due = 0.0_f64;
        let per_tick = f64::from(rate.max(1)) / 100.0;
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            if due < 1.0 {
                tick.tick().await;
                due += per_tick;
                continue;
            }
            due -= 1.0;
            n += 1;
            let doc = {
                let mut rng = rand::rng();
                let words = if rng.random_range(0..200) == 0 {
                    0
                } else {
                    rng.random_range(20..400)
                };
                let source = SOURCES[(n % SOURCES.len() as u64) as usize];
                Document {
                    title: format!("{source}-{n:06}.txt"),
                    source,
                    body: "lorem ipsum ".repeat(words / 2),
                    callback: Callback {
                        url: format!("https://hooks.example.com/{source}/{n}"),
                        token: format!("whk_{:016x}", rng.random::<u64>()),
                    },
                }
            };
            if input.send(doc).await.is_err() {
                break;
            }
        }
    });
    handle
}

/// The demo's custom page, "Model health", using all six widgets: the tokens the model
/// used (declared here, recorded by the enrich stage through `metrics::counter!`), the
/// throughput of completed and failed items, the process's memory on a gauge, the workers
/// table, health checks (the pipeline's and a simulated model endpoint), and the model's
/// warnings as they are logged.
pub fn page(dash: &mut Dashboard) -> Page {
    let tokens = dash.counter("demo_tokens_total");
    let latency = dash.histogram("demo_model_latency_seconds");
    let model = dash.check("model-endpoint", || async {
        // A stand-in for pinging a model API: a real check would time a request.
        let ms = rand::rng().random_range(15..120);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        if ms > 100 {
            Outcome::warn(format!("slow: answered in {ms} ms"))
        } else {
            Outcome::ok(format!("answered in {ms} ms"))
        }
    });
    Page::new("model", "Model health")
        .widget(
            Metric::new("Tokens per second", &tokens).format("{value:.0}/s"),
            (0, 0),
        )
        .widget(
            Chart::new("Items per second")
                .series(&builtin::tasks_completed())
                .series(&builtin::tasks_failed())
                .area()
                .range(15 * MINUTE),
            (1, 0),
        )
        .widget(
            Gauge::new("Memory", &builtin::memory())
                .scale(0.0, 2e9)
                .thresholds(1e9, 1.6e9)
                .format("{value:bytes}"),
            (3, 0),
        )
        .widget(
            Table::new("Workers", &Source::workers())
                .columns(&["stage", "worker", "state", "processed", "failed"])
                .page_size(8),
            (0, 1),
        )
        .widget(
            Status::new("Health")
                .check(&Check::pipeline())
                .check(&model),
            (2, 1),
        )
        .widget(
            Metric::new("Model latency p95", &latency)
                .agg(Agg::P95)
                .format("{value:.3} s"),
            (3, 1),
        )
        .widget(
            Log::new("Model warnings")
                .level("warn")
                .source("enrich-*")
                .lines(50)
                .span(4, 1),
            (0, 2),
        )
}

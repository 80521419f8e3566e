//! A stage as the user declares it: a name, an async task function, how many workers run
//! it, how deep its queue is, and how it handles faults.

use std::{
    fmt::Display, future::Future, marker::PhantomData, num::NonZeroU32, sync::Arc, time::Duration,
};

use crate::{
    capture::{Capture, Capturer},
    error::short_type_name,
    retry::RetryPolicy,
    worker::Ctx,
};

/// The function a stage's workers run, one call per attempt. Implemented for closures by
/// [`Stage::map`] and [`Stage::flat_map`]; you rarely name it.
pub trait TaskFn<I, O>: Send + Sync + 'static {
    type Error: Display + Send + 'static;
    type Outputs: IntoIterator<Item = O, IntoIter: Send> + Send;
    /// Whether each output is a new item (fan-out) rather than the input moving on.
    const FAN_OUT: bool;
    fn call(
        &self,
        input: I,
        cx: Ctx,
    ) -> impl Future<Output = Result<Self::Outputs, Self::Error>> + Send + 'static;
}

/// One input gives one output, which keeps the input's item id.
pub struct MapFn<F>(F);
/// One input gives any number of outputs, each a new item whose parent is the input.
pub struct FlatMapFn<F>(F);

impl<I, O, E, F, Fut> TaskFn<I, O> for MapFn<F>
where
    F: Fn(I, Ctx) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, E>> + Send + 'static,
    E: Display + Send + 'static,
    O: Send + 'static,
{
    type Error = E;
    type Outputs = Option<O>;
    const FAN_OUT: bool = false;

    fn call(
        &self,
        input: I,
        cx: Ctx,
    ) -> impl Future<Output = Result<Option<O>, E>> + Send + 'static {
        let fut = (self.0)(input, cx);
        async move { fut.await.map(Some) }
    }
}

impl<I, O, E, F, Fut, It> TaskFn<I, O> for FlatMapFn<F>
where
    F: Fn(I, Ctx) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<It, E>> + Send + 'static,
    It: IntoIterator<Item = O, IntoIter: Send> + Send,
    E: Display + Send + 'static,
    O: Send + 'static,
{
    type Error = E;
    type Outputs = It;
    const FAN_OUT: bool = true;

    fn call(&self, input: I, cx: Ctx) -> impl Future<Output = Result<It, E>> + Send + 'static {
        (self.0)(input, cx)
    }
}

/// Names the kind of a task error for the error summary (by default its type name).
pub type Classify<E> = Arc<dyn Fn(&E) -> String + Send + Sync>;

/// A stage declaration. Add it to a [`crate::Graph`] or a [`crate::Pipeline`] builder.
///
/// ```
/// use std::time::Duration;
/// use flowdeck_runtime::{RetryPolicy, Stage};
///
/// let fetch = Stage::map("fetch", |url: String, _cx| async move {
///     Ok::<_, std::io::Error>(url.len())
/// })
/// .workers(8)
/// .queue(256)
/// .timeout(Duration::from_secs(5))
/// .retry(RetryPolicy::attempts(3))
/// .rate_limit(100);
/// assert_eq!(fetch.name(), "fetch");
/// ```
pub struct Stage<I, O, T: TaskFn<I, O>> {
    pub(crate) name: String,
    pub(crate) workers: usize,
    pub(crate) capacity: usize,
    pub(crate) retry: RetryPolicy<T::Error>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) rate: Option<NonZeroU32>,
    pub(crate) classify: Classify<T::Error>,
    pub(crate) keep_failed: usize,
    pub(crate) max_waiting: usize,
    pub(crate) capture: Option<Capturer<I>>,
    pub(crate) capture_output: Option<Capturer<O>>,
    pub(crate) task: T,
    _types: PhantomData<fn(I) -> O>,
}

impl<I, O, F> Stage<I, O, MapFn<F>>
where
    MapFn<F>: TaskFn<I, O>,
{
    /// A stage whose task turns each input into one output, which keeps the input's id.
    pub fn map(name: impl Into<String>, f: F) -> Self {
        Stage::with_task(name, MapFn(f))
    }
}

impl<I, O, F> Stage<I, O, FlatMapFn<F>>
where
    FlatMapFn<F>: TaskFn<I, O>,
{
    /// A stage whose task turns each input into any number of outputs (none filters the
    /// item out). Each output is a new item whose provenance names the input.
    pub fn flat_map(name: impl Into<String>, f: F) -> Self {
        Stage::with_task(name, FlatMapFn(f))
    }
}

/// A stage taken apart into its settings and its task ([`Stage::into_parts`]).
pub struct StageParts<E> {
    pub name: String,
    pub workers: usize,
    pub capacity: usize,
    pub retry: RetryPolicy<E>,
    pub timeout: Option<Duration>,
    /// Attempts per second across the stage's workers; `None`: no limit.
    pub rate_limit: Option<NonZeroU32>,
    /// Names an error's kind for the error summary.
    pub classify: Classify<E>,
}

impl<I, O, T: TaskFn<I, O>> Stage<I, O, T> {
    /// A stage whose task is `task`, a [`TaskFn`] of its own rather than a closure: how a
    /// crate that runs a task somewhere else (flowdeck-cluster's distributed stages) puts
    /// its stand-in in the pipeline.
    pub fn with_task(name: impl Into<String>, task: T) -> Self {
        let name = name.into();
        let kind = short_type_name::<T::Error>();
        Stage {
            name,
            workers: 1,
            capacity: 1024,
            retry: RetryPolicy::default(),
            timeout: None,
            rate: None,
            classify: Arc::new(move |_| kind.clone()),
            keep_failed: 10_000,
            max_waiting: crate::ask::MAX_WAITING,
            capture: None,
            capture_output: None,
            task,
            _types: PhantomData,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The stage's settings and its task, for running the task somewhere else: a worker
    /// process of a distributed stage applies the retry policy and timeout itself. What
    /// only makes sense inside one process (captures, kept failed inputs) is left behind.
    pub fn into_parts(self) -> (StageParts<T::Error>, T) {
        (
            StageParts {
                name: self.name,
                workers: self.workers,
                capacity: self.capacity,
                retry: self.retry,
                timeout: self.timeout,
                rate_limit: self.rate,
                classify: self.classify,
            },
            self.task,
        )
    }

    /// How many workers run this stage's task concurrently (default 1).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// The bound of the stage's input queue (default 1024). A full queue makes the stages
    /// feeding it wait: that is the backpressure that keeps memory bounded behind a slow
    /// stage.
    pub fn queue(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    pub fn retry(mut self, policy: RetryPolicy<T::Error>) -> Self {
        self.retry = policy;
        self
    }

    /// Each attempt gets at most `limit`; a slower one fails with a `Timeout` error (and is
    /// retried if the policy allows).
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// At most `per_second` attempts start per second, across all the stage's workers.
    /// Zero means no limit.
    pub fn rate_limit(mut self, per_second: u32) -> Self {
        self.rate = NonZeroU32::new(per_second);
        self
    }

    /// Names an error's kind for the error summary. By default the kind is the error's
    /// type name; an enum error usually wants its variant instead.
    pub fn classify(mut self, f: impl Fn(&T::Error) -> String + Send + Sync + 'static) -> Self {
        self.classify = Arc::new(f);
        self
    }

    /// How many of the stage's items may wait for a person's answer at once
    /// ([`Ctx::ask`](crate::Ctx::ask); default 1,000). A waiting item holds no worker but
    /// keeps its task's state in memory; past the cap, an asker waits for a place on its
    /// worker.
    pub fn max_waiting(mut self, n: usize) -> Self {
        self.max_waiting = n.max(1);
        self
    }

    /// How many failed items' inputs the stage keeps, so they can be retried later from the
    /// control handle (default 10,000; the oldest are let go first).
    pub fn keep_failed(mut self, n: usize) -> Self {
        self.keep_failed = n;
        self
    }

    /// Shows what `f` makes of each captured input on the item's page: for an input that
    /// is not `Serialize`, or too large to show whole (`|doc| json!({"title": doc.title,
    /// "bytes": doc.body.len()})`). See [`Capture`] for which items and how.
    pub fn preview<P: serde::Serialize>(
        mut self,
        capture: Capture,
        f: impl Fn(&I) -> P + Send + Sync + 'static,
    ) -> Self {
        self.capture = Some(Capturer::with(capture, f));
        self
    }
}

impl<I, O: serde::Serialize, T: TaskFn<I, O>> Stage<I, O, T> {
    /// Keeps what the stage makes of a sample of its items ([`Capture::sample`]; outputs
    /// have no failures), redacted and capped like inputs: typically on the last stage,
    /// to see what the pipeline produced.
    pub fn capture_output(mut self, capture: Capture) -> Self {
        self.capture_output = Some(Capturer::serialized(capture));
        self
    }
}

impl<I: serde::Serialize, O, T: TaskFn<I, O>> Stage<I, O, T> {
    /// Keeps each failed item's input (and a sample of the others), redacted and capped,
    /// for its page, the API and the run store: "why did this fail?" answered by the input
    /// that failed. Off by default, and free when off.
    pub fn capture(mut self, capture: Capture) -> Self {
        self.capture = Some(Capturer::serialized(capture));
        self
    }
}

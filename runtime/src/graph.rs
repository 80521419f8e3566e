//! Declaring a pipeline: stages joined by typed edges. An edge from a stage producing `A`
//! to a stage taking `B` compiles only when `A` is `B`.

use std::{any::Any, collections::HashSet, marker::PhantomData, sync::Arc, time::Duration};

use flowdeck_protocol::{Edge, Event, StageIndex};

use crate::{
    error::BuildError,
    join::{Begin, Collector, Deposit, Gather, Gathered, Join, JoinFn, JoinHooks},
    node::{Env, StageNode, StageRuntime},
    pipeline::{Options, Pipeline},
    port::{Dest, Envelope, Filter, Port, Route},
    stage::{Stage, TaskFn},
    watch::Monitor,
};

/// A stage in a [`Graph`]: the handle edges are drawn with. `I` and `O` are the stage's
/// input and output types.
pub struct StageRef<I, O> {
    index: StageIndex,
    /// Which of a join's kinds of parts edges to it carry (0 for other stages).
    port: u8,
    _types: PhantomData<fn(I) -> O>,
}

impl<I, O> Clone for StageRef<I, O> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<I, O> Copy for StageRef<I, O> {}

impl<I, O> StageRef<I, O> {
    pub(crate) fn new(index: StageIndex, port: u8) -> Self {
        StageRef {
            index,
            port,
            _types: PhantomData,
        }
    }

    pub fn index(&self) -> StageIndex {
        self.index
    }

    /// The stage and port an edge to it leads to.
    fn at(&self) -> (StageIndex, u8) {
        (self.index, self.port)
    }
}

pub(crate) type Build = Box<
    dyn FnOnce(Arc<Env>, Box<dyn Any + Send>, Box<dyn Any + Send>, Joins) -> Arc<dyn StageRuntime>
        + Send,
>;

/// Starts a join with its pipeline; gives what reports its groups.
type StartJoin = Box<dyn FnOnce(&Arc<Env>) -> JoinHooks + Send>;

/// What joins add to a stage's declaration.
pub(crate) struct Joins {
    /// `Vec<Arc<dyn Begin<I>>>`: the joins this stage is the origin of.
    origins: Box<dyn Any + Send>,
    /// Their queues, held open by this stage's port.
    keep: Vec<Box<dyn Any + Send + Sync>>,
}

struct Decl {
    name: String,
    workers: usize,
    capacity: usize,
    /// `Port<O>`, filled by edges.
    port: Box<dyn Any + Send>,
    /// `(Sender<Envelope<I>>, Receiver<Envelope<I>>)`, the stage's queue.
    queue: Box<dyn Any + Send>,
    joins: Joins,
    /// A join's arrival points, one per kind of part: `Arc<dyn Deposit<X>>`.
    deposits: Vec<Box<dyn Any + Send>>,
    /// A join's origin stage.
    join_of: Option<StageIndex>,
    build: Build,
}

/// A pipeline as a DAG of stages.
///
/// ```
/// use flowdeck_runtime::{Graph, Stage};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let mut g = Graph::<u32, String>::new("numbers");
/// let parse = g.add(Stage::map("double", |n: u32, _cx| async move { Ok::<_, String>(n * 2) }));
/// let small = g.add(Stage::map("small", |n: u32, _cx| async move { Ok::<_, String>(format!("small {n}")) }));
/// let big = g.add(Stage::map("big", |n: u32, _cx| async move { Ok::<_, String>(format!("big {n}")) }));
/// g.input(parse);
/// g.connect_if(parse, small, |n| *n < 10); // routes: the first edge that accepts wins
/// g.connect(parse, big);
/// g.output(small);
/// g.output(big);
///
/// let report = g.build().unwrap().run(1..=6).await;
/// let mut out = report.outputs;
/// out.sort();
/// assert_eq!(out, ["big 10", "big 12", "small 2", "small 4", "small 6", "small 8"]);
/// assert_eq!(report.summary.snapshot.totals.completed, 6);
/// # });
/// ```
pub struct Graph<In, Out> {
    name: String,
    decls: Vec<Decl>,
    edges: Vec<Edge>,
    input: Port<In>,
    sink: (async_channel::Sender<Out>, async_channel::Receiver<Out>),
    options: Options,
}

impl<In: Send + 'static, Out: Send + 'static> Graph<In, Out> {
    pub fn new(name: impl Into<String>) -> Self {
        Graph {
            name: name.into(),
            decls: Vec::new(),
            edges: Vec::new(),
            input: Port::empty(),
            sink: async_channel::bounded(1024),
            options: Options::default(),
        }
    }

    /// Adds a stage; draw its edges with the returned handle.
    pub fn add<I, O, T>(&mut self, stage: Stage<I, O, T>) -> StageRef<I, O>
    where
        I: Clone + Send + Sync + 'static,
        O: Send + 'static,
        T: TaskFn<I, O>,
    {
        let index = self.next_index();
        let queue = crate::queue::bounded::<Envelope<I>>(stage.capacity.max(1));
        let decl = Self::decl(index, stage, queue, None, Vec::new(), None);
        self.decls.push(decl);
        StageRef::new(index, 0)
    }

    /// Adds a join ([`Stage::join`]); draw the edges of its parts to the returned handle
    /// (one per kind of part: a pair for [`crate::Joined2`]).
    pub fn add_join<K, J, O, F>(&mut self, join: Join<K, J::Part, O, JoinFn<F, J>>) -> J::Refs<O>
    where
        K: Clone + Send + Sync + 'static,
        J: Gather,
        O: Send + 'static,
        JoinFn<F, J>: TaskFn<Gathered<K, J::Part>, O>,
    {
        let index = self.next_index();
        let Join {
            stage,
            origin,
            timeout,
        } = join;
        let queue = crate::queue::bounded::<Envelope<Gathered<K, J::Part>>>(stage.capacity.max(1));
        let collector =
            Collector::<K, J::Part>::new(index, origin, &stage.name, timeout, queue.0.downgrade());
        if let Some(d) = self.decls.get_mut(usize::from(origin)) {
            if let Some(origins) = d.joins.origins.downcast_mut::<Vec<Arc<dyn Begin<K>>>>() {
                origins.push(Arc::new(collector.clone()));
            }
            d.joins.keep.push(Box::new(queue.0.clone()));
        }
        let deposits = J::ports(&collector);
        let started: StartJoin = Box::new(move |env: &Arc<Env>| {
            collector.start(env.clone());
            let c = collector.clone();
            JoinHooks {
                stats: Box::new(move || c.stats()),
                group_of: Box::new(move |id| collector.group_of(id)),
            }
        });
        let decl = Self::decl(index, stage, queue, Some(started), deposits, Some(origin));
        self.decls.push(decl);
        J::refs(index)
    }

    fn next_index(&self) -> StageIndex {
        StageIndex::try_from(self.decls.len()).unwrap_or(StageIndex::MAX)
    }

    /// A stage's declaration: its queue, its port for the edges to fill, and how it is
    /// built at start.
    fn decl<I, O, T>(
        index: StageIndex,
        stage: Stage<I, O, T>,
        queue: (
            crate::queue::Sender<Envelope<I>>,
            crate::queue::Receiver<Envelope<I>>,
        ),
        started: Option<StartJoin>,
        deposits: Vec<Box<dyn Any + Send>>,
        join_of: Option<StageIndex>,
    ) -> Decl
    where
        I: Clone + Send + Sync + 'static,
        O: Send + 'static,
        T: TaskFn<I, O>,
    {
        Decl {
            name: stage.name.clone(),
            workers: stage.workers,
            capacity: stage.capacity,
            port: Box::new(Port::<O>::empty()),
            queue: Box::new(queue),
            joins: Joins {
                origins: Box::new(Vec::<Arc<dyn Begin<I>>>::new()),
                keep: Vec::new(),
            },
            deposits,
            join_of,
            build: Box::new(move |env, port, queue, joins| {
                let mut port = port
                    .downcast::<Port<O>>()
                    .map(|p| *p)
                    .unwrap_or_else(|_| Port::empty());
                port.keep = joins.keep;
                let origins = joins
                    .origins
                    .downcast::<Vec<Arc<dyn Begin<I>>>>()
                    .map(|o| *o)
                    .unwrap_or_default();
                let (tx, rx) = match queue.downcast::<(
                    crate::queue::Sender<Envelope<I>>,
                    crate::queue::Receiver<Envelope<I>>,
                )>() {
                    Ok(q) => *q,
                    Err(_) => crate::queue::bounded(1),
                };
                let weak = tx.downgrade();
                drop(tx);
                let stats = started.map(|f| f(&env));
                StageNode::new(index, stage, env, rx, weak, port, origins, stats)
            }),
        }
    }

    /// Where an edge of `T`s to port `port` of stage `to` leads.
    fn dest<T: Send + 'static>(&self, to: StageIndex, port: u8) -> Option<Dest<T>> {
        let decl = self.decls.get(usize::from(to))?;
        if decl.join_of.is_some() {
            let deposit = decl.deposits.get(usize::from(port))?;
            let deposit = deposit.downcast_ref::<Arc<dyn Deposit<T>>>()?;
            return Some(Dest::Join(deposit.clone()));
        }
        let (tx, _) = decl.queue.downcast_ref::<(
            crate::queue::Sender<Envelope<T>>,
            crate::queue::Receiver<Envelope<T>>,
        )>()?;
        Some(Dest::Queue(tx.clone()))
    }

    fn route<T: Send + 'static>(
        &mut self,
        from: Option<StageIndex>,
        to: (StageIndex, u8),
        filter: Option<Filter<T>>,
    ) {
        self.add_route(from, to, filter, None);
    }

    /// Adds an edge; `copy` makes it a broadcast edge (see [`Graph::broadcast`]).
    fn add_route<T: Send + 'static>(
        &mut self,
        from: Option<StageIndex>,
        (to, port): (StageIndex, u8),
        filter: Option<Filter<T>>,
        copy: Option<fn(&T) -> T>,
    ) {
        let Some(dest) = self.dest::<T>(to, port) else {
            return;
        };
        let route = Route { to, dest, filter };
        let port = match from {
            None => (&mut self.input as &mut dyn Any).downcast_mut::<Port<T>>(),
            Some(i) => self
                .decls
                .get_mut(usize::from(i))
                .and_then(|d| d.port.downcast_mut::<Port<T>>()),
        };
        if let Some(port) = port {
            let broadcast = copy.is_some();
            match copy {
                Some(copy) => {
                    port.copies.push(route);
                    port.copy = Some(copy);
                }
                None => port.routes.push(route),
            }
            self.edges.push(Edge {
                from,
                to,
                broadcast,
            });
        }
    }

    /// Feeds the pipeline's input to `stage`.
    pub fn input<O>(&mut self, stage: StageRef<In, O>) -> &mut Self {
        self.route::<In>(None, stage.at(), None);
        self
    }

    /// Feeds the input items for which `filter` is true to `stage`. Edges are tried in the
    /// order they were drawn; the first that accepts an item gets it.
    pub fn input_if<O>(
        &mut self,
        stage: StageRef<In, O>,
        filter: impl Fn(&In) -> bool + Send + Sync + 'static,
    ) -> &mut Self {
        self.route::<In>(None, stage.at(), Some(Arc::new(filter)));
        self
    }

    /// Sends `from`'s outputs to `to`.
    pub fn connect<A, T: Send + 'static, B>(
        &mut self,
        from: StageRef<A, T>,
        to: StageRef<T, B>,
    ) -> &mut Self {
        self.route::<T>(Some(from.index), to.at(), None);
        self
    }

    /// Sends `from`'s outputs for which `filter` is true to `to`: how a stage routes items
    /// to different next stages.
    pub fn connect_if<A, T: Send + 'static, B>(
        &mut self,
        from: StageRef<A, T>,
        to: StageRef<T, B>,
        filter: impl Fn(&T) -> bool + Send + Sync + 'static,
    ) -> &mut Self {
        self.route::<T>(Some(from.index), to.at(), Some(Arc::new(filter)));
        self
    }

    /// A broadcast edge: every output of `from` also goes to `to`, as a copy, whatever the
    /// routing edges (`connect`, `connect_if`) do with it. Draw one per stage of the group:
    /// `g.broadcast(fetch, embed).broadcast(fetch, summarize)` gives each document to both.
    /// Each copy is a new item whose parent is the item copied, so the provenance of what
    /// `embed` and `summarize` make leads back to the same document; the item itself goes
    /// where the routing edges send it, or leaves the pipeline when none takes it (and
    /// `from` is an output), or is done.
    ///
    /// ```
    /// use flowdeck_runtime::{Graph, Stage};
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let mut g = Graph::<u32, String>::new("documents");
    /// let fetch = g.add(Stage::map("fetch", |n: u32, _cx| async move { Ok::<_, String>(n) }));
    /// let embed = g.add(Stage::map("embed", |n: u32, _cx| async move { Ok::<_, String>(format!("embedded {n}")) }));
    /// let summarize = g.add(Stage::map("summarize", |n: u32, _cx| async move { Ok::<_, String>(format!("summary of {n}")) }));
    /// g.input(fetch);
    /// g.broadcast(fetch, embed).broadcast(fetch, summarize);
    /// g.output(embed).output(summarize);
    ///
    /// let report = g.build().unwrap().run(1..=2).await;
    /// let mut out = report.outputs;
    /// out.sort();
    /// assert_eq!(out, ["embedded 1", "embedded 2", "summary of 1", "summary of 2"]);
    /// // Two documents, and two copies of each.
    /// assert_eq!(report.summary.snapshot.totals.submitted, 6);
    /// # });
    /// ```
    pub fn broadcast<A, T: Clone + Send + 'static, B>(
        &mut self,
        from: StageRef<A, T>,
        to: StageRef<T, B>,
    ) -> &mut Self {
        self.add_route::<T>(Some(from.index), to.at(), None, Some(T::clone));
        self
    }

    /// Makes `stage`'s outputs that no edge takes the pipeline's outputs. Outputs of stages
    /// not marked so are dropped when no edge takes them: the item is complete.
    pub fn output<I>(&mut self, stage: StageRef<I, Out>) -> &mut Self {
        if let Some(port) = self
            .decls
            .get_mut(usize::from(stage.index))
            .and_then(|d| d.port.downcast_mut::<Port<Out>>())
        {
            port.sink = Some(self.sink.0.clone());
        }
        self
    }

    /// Turns per-item tracking off: counts, throughput and latency stay; item detail,
    /// history, the error summary, callbacks and the change feed go. For the last few
    /// percent of throughput.
    pub fn tracking(&mut self, on: bool) -> &mut Self {
        self.options.tracking = on;
        self
    }

    /// How many of the most recent items keep their detail (default 100,000).
    pub fn retention(&mut self, items: usize) -> &mut Self {
        self.options.retention = items;
        self
    }

    /// Calls `f` on every status change (on the tracker's task, in feed order).
    pub fn on_status_change(&mut self, f: impl Fn(&Event) + Send + Sync + 'static) -> &mut Self {
        self.options.callbacks.push((None, Box::new(f)));
        self
    }

    /// Calls `f` for events of one kind only (`Started`, `Completed`, `Retrying`, `Failed`…).
    pub fn on(
        &mut self,
        kind: flowdeck_protocol::EventKind,
        f: impl Fn(&Event) + Send + Sync + 'static,
    ) -> &mut Self {
        self.options.callbacks.push((Some(kind), Box::new(f)));
        self
    }

    /// Attaches a monitor, called every `interval` while the pipeline runs.
    pub fn monitor(&mut self, d: impl Monitor, interval: Duration) -> &mut Self {
        self.options.monitors.push((Box::new(d), interval));
        self
    }

    /// The health warnings' rules and thresholds (on by default with
    /// [`crate::warnings::Thresholds::default`]); `None` turns them off.
    pub fn warnings(&mut self, t: Option<crate::warnings::Thresholds>) -> &mut Self {
        self.options.warnings = t;
        self
    }

    /// Shows the run's progress in the terminal: `Progress::compact()` (a bar),
    /// `detailed()` (per stage) or `full()` (and the failures). Plain lines when standard
    /// error is not a terminal.
    #[cfg(feature = "progress")]
    pub fn progress(&mut self, p: crate::progress::Progress) -> &mut Self {
        self.options.progress = Some(p);
        self
    }

    /// Calls `f` once when a health warning fires and once when it clears: for paging
    /// someone. A panic in `f` is logged and costs nothing else.
    pub fn on_warning(
        &mut self,
        f: impl Fn(&crate::warnings::Change) + Send + Sync + 'static,
    ) -> &mut Self {
        self.options.on_warning.push(Box::new(f));
        self
    }

    /// Calls `f` when a stage asks a person a question and when the question closes
    /// (answered, defaulted, timed out or cancelled): for a notification of your own. A
    /// panic in `f` is logged and costs nothing else.
    pub fn on_question(
        &mut self,
        f: impl Fn(&crate::ask::QuestionChange) + Send + Sync + 'static,
    ) -> &mut Self {
        self.options.on_question.push(Box::new(f));
        self
    }

    /// Checks the graph and makes it a pipeline, ready to start.
    pub fn build(self) -> Result<Pipeline<In, Out>, BuildError> {
        self.validate()?;
        let Graph {
            name,
            decls,
            edges,
            input,
            sink,
            options,
        } = self;
        let names = decls.iter().map(|d| d.name.clone()).collect();
        let workers: Vec<usize> = decls.iter().map(|d| d.workers).collect();
        let mut parts = Vec::with_capacity(decls.len());
        for d in decls {
            parts.push((d.build, d.port, d.queue, d.joins));
        }
        Ok(Pipeline::assemble(
            name, names, workers, edges, input, sink, options, parts,
        ))
    }

    fn validate(&self) -> Result<(), BuildError> {
        if self.decls.is_empty() {
            return Err(BuildError::Empty);
        }
        let mut seen = HashSet::new();
        for d in &self.decls {
            if !seen.insert(d.name.as_str()) {
                return Err(BuildError::DuplicateStage(d.name.clone()));
            }
            if d.workers == 0 {
                return Err(BuildError::NoWorkers(d.name.clone()));
            }
            if d.capacity == 0 {
                return Err(BuildError::NoCapacity(d.name.clone()));
            }
        }
        if !self.edges.iter().any(|e| e.from.is_none()) {
            return Err(BuildError::NoInput);
        }
        let n = self.decls.len();
        let next = |i: Option<u16>| {
            self.edges
                .iter()
                .filter(move |e| e.from == i)
                .map(|e| usize::from(e.to))
        };
        let mut reached = vec![false; n];
        let mut stack: Vec<usize> = next(None).collect();
        while let Some(i) = stack.pop() {
            if !std::mem::replace(&mut reached[i], true) {
                stack.extend(next(Some(i as u16)));
            }
        }
        if let Some(i) = reached.iter().position(|r| !r) {
            return Err(BuildError::Unreachable(self.decls[i].name.clone()));
        }
        // A join's parts must all descend from its origin: no path may reach the join
        // around it.
        for (j, d) in self.decls.iter().enumerate() {
            let Some(origin) = d.join_of else { continue };
            let origin = usize::from(origin);
            let mut seen = vec![false; n];
            let mut stack: Vec<usize> = next(None).collect();
            while let Some(i) = stack.pop() {
                if i != origin && !std::mem::replace(&mut seen[i], true) {
                    stack.extend(next(Some(i as u16)));
                }
            }
            if seen[j] || origin == j {
                return Err(BuildError::JoinAround {
                    join: d.name.clone(),
                    origin: self
                        .decls
                        .get(origin)
                        .map(|o| o.name.clone())
                        .unwrap_or_default(),
                });
            }
        }
        // Depth-first colouring: a grey node met again closes a cycle. A cycle would never
        // drain, since each stage holds its successors' queues open.
        let mut colour = vec![0u8; n];
        fn visit(i: usize, colour: &mut [u8], edges: &[Edge]) -> Option<usize> {
            colour[i] = 1;
            for e in edges.iter().filter(|e| e.from == Some(i as u16)) {
                let j = usize::from(e.to);
                match colour[j] {
                    1 => return Some(j),
                    0 => {
                        if let Some(c) = visit(j, colour, edges) {
                            return Some(c);
                        }
                    }
                    _ => {}
                }
            }
            colour[i] = 2;
            None
        }
        for i in 0..n {
            if colour[i] == 0 {
                if let Some(c) = visit(i, &mut colour, &self.edges) {
                    return Err(BuildError::Cycle(self.decls[c].name.clone()));
                }
            }
        }
        Ok(())
    }
}

/// A pipeline as a line of stages, each feeding the next: the common case, with the types
/// checked from one stage to the next.
///
/// ```
/// use flowdeck_runtime::{Line, Stage};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let pipeline = Line::<u64>::new("squares")
///     .stage(Stage::map("square", |n: u64, _cx| async move { Ok::<_, String>(n * n) }).workers(4))
///     .stage(Stage::map("format", |n: u64, _cx| async move { Ok::<_, String>(n.to_string()) }))
///     .build()
///     .unwrap();
/// let report = pipeline.run(1..=3).await;
/// let mut out = report.outputs;
/// out.sort();
/// assert_eq!(out, ["1", "4", "9"]);
/// # });
/// ```
pub struct Line<In, Cur = In> {
    /// The output type is only known at `build`; no port holds the sink before then, so
    /// the graph is re-typed there.
    graph: Graph<In, ()>,
    last: Option<StageIndex>,
    _cur: PhantomData<fn() -> Cur>,
}

impl<In: Send + 'static> Line<In, In> {
    pub fn new(name: impl Into<String>) -> Self {
        Line {
            graph: Graph::new(name),
            last: None,
            _cur: PhantomData,
        }
    }
}

impl<In: Send + 'static, Cur: Send + 'static> Line<In, Cur> {
    /// Appends a stage taking what the previous one gives.
    pub fn stage<O, T>(mut self, stage: Stage<Cur, O, T>) -> Line<In, O>
    where
        Cur: Clone + Sync,
        O: Send + 'static,
        T: TaskFn<Cur, O>,
    {
        let next = self.graph.add(stage);
        self.graph.route::<Cur>(self.last, next.at(), None);
        Line {
            graph: self.graph,
            last: Some(next.index),
            _cur: PhantomData,
        }
    }

    /// Turns per-item tracking off; see [`Graph::tracking`].
    pub fn tracking(mut self, on: bool) -> Self {
        self.graph.tracking(on);
        self
    }

    /// See [`Graph::retention`].
    pub fn retention(mut self, items: usize) -> Self {
        self.graph.retention(items);
        self
    }

    /// See [`Graph::on_status_change`].
    pub fn on_status_change(mut self, f: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        self.graph.on_status_change(f);
        self
    }

    /// See [`Graph::on`].
    pub fn on(
        mut self,
        kind: flowdeck_protocol::EventKind,
        f: impl Fn(&Event) + Send + Sync + 'static,
    ) -> Self {
        self.graph.on(kind, f);
        self
    }

    /// See [`Graph::monitor`].
    pub fn monitor(mut self, d: impl Monitor, interval: Duration) -> Self {
        self.graph.monitor(d, interval);
        self
    }

    /// See [`Graph::warnings`].
    pub fn warnings(mut self, t: Option<crate::warnings::Thresholds>) -> Self {
        self.graph.warnings(t);
        self
    }

    /// See [`Graph::progress`].
    #[cfg(feature = "progress")]
    pub fn progress(mut self, p: crate::progress::Progress) -> Self {
        self.graph.progress(p);
        self
    }

    /// See [`Graph::on_warning`].
    pub fn on_warning(
        mut self,
        f: impl Fn(&crate::warnings::Change) + Send + Sync + 'static,
    ) -> Self {
        self.graph.on_warning(f);
        self
    }

    /// See [`Graph::on_question`].
    pub fn on_question(
        mut self,
        f: impl Fn(&crate::ask::QuestionChange) + Send + Sync + 'static,
    ) -> Self {
        self.graph.on_question(f);
        self
    }

    pub fn build(self) -> Result<Pipeline<In, Cur>, BuildError> {
        let g = self.graph;
        let mut graph = Graph::<In, Cur> {
            name: g.name,
            decls: g.decls,
            edges: g.edges,
            input: g.input,
            sink: async_channel::bounded(1024),
            options: g.options,
        };
        if let Some(last) = self.last {
            if let Some(port) = graph
                .decls
                .get_mut(usize::from(last))
                .and_then(|d| d.port.downcast_mut::<Port<Cur>>())
            {
                port.sink = Some(graph.sink.0.clone());
            }
        }
        graph.build()
    }
}

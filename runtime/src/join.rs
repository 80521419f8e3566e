//! Joins: a stage that waits for every item descended from one item of an upstream stage
//! (its *origin*: a `flat_map`, a broadcast, any stage) and runs once per such group, on
//! the parts that arrived and an account of those that did not.
//!
//! The group is made when the origin item completes at its stage ([`Collector::begin`]);
//! from then on its members are counted as [`crate::group`] describes. The joined item's
//! id is reserved at that moment and made a member of the origin item's own groups, so a
//! join of joins accounts for it before it exists. A part that arrives after its group
//! fired (it timed out) is failed as `Late` at the join, so it shows in its history and
//! the join's counts instead of vanishing.

use std::{
    any::Any,
    collections::VecDeque,
    fmt::Display,
    future::Future,
    marker::PhantomData,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, OnceLock, Weak,
    },
    time::Duration,
};

use flowdeck_protocol::{EventKind, ItemId, ItemStatus, JoinSnapshot, OldestGroup, StageIndex};
use futures::future::BoxFuture;
use parking_lot::Mutex;

use crate::{
    error::runtime_error,
    events::{EventBuf, Subject},
    graph::StageRef,
    group::{settle, End, Fire, Firing, Group, Groups, Why},
    node::Env,
    port::{wait_for_room, Envelope, Origin},
    stage::{Stage, TaskFn},
    worker::{Ctx, WorkerSlot},
};

/// What a join does with a group that waited longer than its timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Partial {
    /// Runs the join on the parts that arrived; the others are listed as timed out.
    Emit,
    /// Fails the joined item (error kind `JoinTimeout`) without running the join.
    Fail,
}

/// A part of a group that did not arrive at the join, and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Missing {
    pub item: ItemId,
    #[serde(flatten)]
    pub why: Why,
}

/// What a join receives for one group: the parts that arrived, in the order the fan-out
/// made them (a part's own fan-outs sort right after it), and those that did not.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Joined<T> {
    /// The item of the origin stage the parts descend from.
    pub origin: ItemId,
    pub parts: Vec<T>,
    /// The item id of each part, in the order of `parts`.
    pub ids: Vec<ItemId>,
    pub missing: Vec<Missing>,
    /// Every part arrived (nothing missing, no timeout).
    pub complete: bool,
}

/// What a join of two kinds of parts receives: the parts from the edges drawn to its
/// first port, and those drawn to its second, each in fan-out order.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Joined2<A, B> {
    pub origin: ItemId,
    pub a: Vec<A>,
    pub b: Vec<B>,
    pub missing: Vec<Missing>,
    pub complete: bool,
}

/// A part of a [`Joined2`], as the group keeps it.
#[doc(hidden)]
#[derive(Clone, Debug, serde::Serialize)]
#[serde(untagged)]
pub enum Either2<A, B> {
    A(A),
    B(B),
}

/// A group as the join stage's input: the origin's own input, and the group's parts.
/// Not built by hand: a join stage makes it. `Serialize` when its types are, so a join
/// stage can `capture` its input like any stage (the item's page then shows the group).
#[derive(Clone, serde::Serialize)]
pub struct Gathered<K, P> {
    value: K,
    origin: ItemId,
    parts: Vec<(ItemId, P)>,
    missing: Vec<Missing>,
    complete: bool,
}

/// What a join's function takes for its group: [`Joined`] or [`Joined2`].
pub trait Gather: Sized + Send + 'static {
    /// A part as the group keeps it.
    type Part: Clone + Send + Sync + 'static;
    /// The handles edges are drawn to: one per kind of part.
    type Refs<O>;
    #[doc(hidden)]
    fn gather(
        origin: ItemId,
        parts: Vec<(ItemId, Self::Part)>,
        missing: Vec<Missing>,
        complete: bool,
    ) -> Self;
    #[doc(hidden)]
    fn ports<M: MakePort<Self::Part>>(m: &M) -> Vec<Box<dyn Any + Send>>;
    #[doc(hidden)]
    fn refs<O>(index: StageIndex) -> Self::Refs<O>;
}

/// Makes the arrival point of one kind of part (not nameable outside the crate).
pub trait MakePort<P> {
    fn port<X: Send + 'static>(&self, wrap: fn(X) -> P) -> Box<dyn Any + Send>;
}

impl<T: Clone + Send + Sync + 'static> Gather for Joined<T> {
    type Part = T;
    type Refs<O> = StageRef<T, O>;
    fn gather(origin: ItemId, parts: Vec<(ItemId, T)>, missing: Vec<Missing>, c: bool) -> Self {
        let (ids, parts) = parts.into_iter().unzip();
        Joined {
            origin,
            parts,
            ids,
            missing,
            complete: c,
        }
    }
    fn ports<M: MakePort<T>>(m: &M) -> Vec<Box<dyn Any + Send>> {
        vec![m.port::<T>(|t| t)]
    }
    fn refs<O>(index: StageIndex) -> StageRef<T, O> {
        StageRef::new(index, 0)
    }
}

impl<A, B> Gather for Joined2<A, B>
where
    A: Clone + Send + Sync + 'static,
    B: Clone + Send + Sync + 'static,
{
    type Part = Either2<A, B>;
    type Refs<O> = (StageRef<A, O>, StageRef<B, O>);
    fn gather(
        origin: ItemId,
        parts: Vec<(ItemId, Either2<A, B>)>,
        missing: Vec<Missing>,
        complete: bool,
    ) -> Self {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for (_, p) in parts {
            match p {
                Either2::A(x) => a.push(x),
                Either2::B(x) => b.push(x),
            }
        }
        Joined2 {
            origin,
            a,
            b,
            missing,
            complete,
        }
    }
    fn ports<M: MakePort<Either2<A, B>>>(m: &M) -> Vec<Box<dyn Any + Send>> {
        vec![m.port::<A>(Either2::A), m.port::<B>(Either2::B)]
    }
    fn refs<O>(index: StageIndex) -> (StageRef<A, O>, StageRef<B, O>) {
        (StageRef::new(index, 0), StageRef::new(index, 1))
    }
}

/// A join's function as a stage task: called with the origin's input and the group.
pub struct JoinFn<F, J>(F, PhantomData<fn() -> J>);

impl<K, J, O, E, F, Fut> TaskFn<Gathered<K, J::Part>, O> for JoinFn<F, J>
where
    J: Gather,
    K: Send + 'static,
    F: Fn(K, J, Ctx) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, E>> + Send + 'static,
    E: Display + Send + 'static,
    O: Send + 'static,
{
    type Error = E;
    type Outputs = Option<O>;
    const FAN_OUT: bool = false;

    fn call(
        &self,
        input: Gathered<K, J::Part>,
        cx: Ctx,
    ) -> impl Future<Output = Result<Option<O>, E>> + Send + 'static {
        let joined = J::gather(input.origin, input.parts, input.missing, input.complete);
        let fut = (self.0)(input.value, joined, cx);
        async move { fut.await.map(Some) }
    }
}

impl<K, J, O, F> Stage<Gathered<K, J::Part>, O, JoinFn<F, J>>
where
    J: Gather,
    JoinFn<F, J>: TaskFn<Gathered<K, J::Part>, O>,
{
    /// A join: runs `f` once per group of items that descend from one item of the stage
    /// named with [`of`](Self::of), with that item's input and the group
    /// ([`Joined`], or [`Joined2`] for two kinds of parts). The group fires once every
    /// part has arrived or ended elsewhere (failed after its retries, cancelled, filtered
    /// out, routed elsewhere); one with no part still fires, and `f` decides. Set the
    /// stage's workers, retries and per-attempt timeout here, before `of`.
    ///
    /// ```
    /// use flowdeck_runtime::{Graph, Joined, Stage};
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let mut g = Graph::<String, String>::new("documents");
    /// let split = g.add(Stage::flat_map("split", |doc: String, _cx| async move {
    ///     Ok::<_, String>(doc.split(' ').map(str::to_owned).collect::<Vec<_>>())
    /// }));
    /// let shout = g.add(Stage::map("shout", |w: String, _cx| async move {
    ///     if w == "bad" { Err(format!("cannot shout {w}")) } else { Ok(w.to_uppercase()) }
    /// }));
    /// let assemble = g.add_join(
    ///     Stage::join("assemble", |doc: String, words: Joined<String>, _cx| async move {
    ///         Ok::<_, String>(format!("{doc} -> {} ({} missing)", words.parts.join(" "), words.missing.len()))
    ///     })
    ///     .of(split),
    /// );
    /// g.input(split).connect(split, shout).connect(shout, assemble).output(assemble);
    ///
    /// let mut out = g.build().unwrap().run(["a b".to_owned(), "c bad d".to_owned()]).await.outputs;
    /// out.sort();
    /// assert_eq!(out, ["a b -> A B (0 missing)", "c bad d -> C D (1 missing)"]);
    /// # });
    /// ```
    pub fn join(name: impl Into<String>, f: F) -> Self {
        Stage::with_task(name, JoinFn(f, PhantomData))
    }
}

impl<K, P, O, T: TaskFn<Gathered<K, P>, O>> Stage<Gathered<K, P>, O, T> {
    /// Groups the join's parts by the item of `origin` they descend from. `origin` must
    /// be on every path to the join.
    pub fn of<X>(self, origin: StageRef<K, X>) -> Join<K, P, O, T> {
        Join {
            stage: self,
            origin: origin.index(),
            timeout: None,
        }
    }
}

/// A join stage ready to add to a graph ([`crate::Graph::add_join`]).
pub struct Join<K, P, O, T: TaskFn<Gathered<K, P>, O>> {
    pub(crate) stage: Stage<Gathered<K, P>, O, T>,
    pub(crate) origin: StageIndex,
    pub(crate) timeout: Option<(Duration, Partial)>,
}

impl<K, P, O, T: TaskFn<Gathered<K, P>, O>> Join<K, P, O, T> {
    /// A group that waits longer than `limit` (from its origin item's completion) fires
    /// with what it has ([`Partial::Emit`]) or fails ([`Partial::Fail`]). Parts arriving
    /// later fail as `Late` at the join. Without a timeout a group waits for its last part.
    pub fn timeout(mut self, limit: Duration, partial: Partial) -> Self {
        self.timeout = Some((limit, partial));
        self
    }
}

/// Groups by when they were made, held weakly: a fired group is let go.
type Pending<K, P> = VecDeque<(u64, Weak<JoinGroup<K, P>>)>;

/// What the rest of the runtime asks a join stage.
pub(crate) struct JoinHooks {
    pub stats: Box<dyn Fn() -> JoinSnapshot + Send + Sync>,
    pub group_of: Box<dyn Fn(ItemId) -> Option<String> + Send + Sync>,
}

/// Where a member sorts in its group: its path of fan-out positions from the origin.
type Rank = Vec<u32>;

/// A join's side of its groups: makes them, takes their parts, times them out, and
/// counts them for the dashboard.
pub(crate) struct Collector<K, P> {
    stage: StageIndex,
    /// The origin stage.
    of: StageIndex,
    /// How long groups took to fill (made to fired).
    fill: crate::histogram::AtomicHistogram,
    name: Arc<str>,
    timeout: Option<(Duration, Partial)>,
    queue: crate::queue::WeakSender<Envelope<Gathered<K, P>>>,
    env: OnceLock<Arc<Env>>,
    /// Groups in the order they were made (fired ones are let go from the front).
    pending: Mutex<Pending<K, P>>,
    pub counts: JoinCounts,
    /// Cancelled when the collector goes: the timeout sweeper stops.
    gone: tokio_util::sync::CancellationToken,
}

/// A join's live numbers, read by snapshots.
#[derive(Default)]
pub(crate) struct JoinCounts {
    made: AtomicU64,
    fired: AtomicU64,
    /// Parts arrived, in groups still waiting.
    arrived: AtomicU64,
    /// Members still under way, in groups still waiting.
    live: AtomicU64,
    late: AtomicU64,
    timed_out: AtomicU64,
}

impl<K, P> Drop for Collector<K, P> {
    fn drop(&mut self) {
        self.gone.cancel();
    }
}

impl<K, P> Collector<K, P>
where
    K: Clone + Send + Sync + 'static,
    P: Clone + Send + Sync + 'static,
{
    pub(crate) fn new(
        stage: StageIndex,
        of: StageIndex,
        name: &str,
        timeout: Option<(Duration, Partial)>,
        queue: crate::queue::WeakSender<Envelope<Gathered<K, P>>>,
    ) -> Arc<Self> {
        Arc::new(Collector {
            stage,
            of,
            fill: crate::histogram::AtomicHistogram::new(),
            name: name.into(),
            timeout,
            queue,
            env: OnceLock::new(),
            pending: Mutex::new(VecDeque::new()),
            counts: JoinCounts::default(),
            gone: tokio_util::sync::CancellationToken::new(),
        })
    }

    /// Starts with the pipeline: knows its run, and times its groups out if it must.
    pub(crate) fn start(self: &Arc<Self>, env: Arc<Env>) {
        let abort = env.abort.clone();
        let _ = self.env.set(env);
        if let Some((limit, _)) = self.timeout {
            let weak = Arc::downgrade(self);
            let gone = self.gone.clone();
            let tick = (limit / 10).clamp(Duration::from_millis(5), Duration::from_millis(500));
            tokio::spawn(async move {
                let mut every = tokio::time::interval(tick);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = gone.cancelled() => break,
                        _ = abort.cancelled() => break,
                        _ = every.tick() => {}
                    }
                    let Some(c) = weak.upgrade() else { break };
                    // Its queue closed: no group waits, and none will be made.
                    if c.queue.upgrade().is_none() {
                        break;
                    }
                    c.sweep().await;
                }
            });
        }
    }

    fn now_us(&self) -> u64 {
        self.env.get().map_or(0, |e| e.clock.now_us())
    }

    /// Fires the groups that waited past the timeout.
    async fn sweep(&self) {
        let Some((limit, _)) = self.timeout else {
            return;
        };
        let now = self.now_us();
        let limit_us = u64::try_from(limit.as_micros()).unwrap_or(u64::MAX);
        let expired: Vec<Arc<JoinGroup<K, P>>> = {
            let mut pending = self.pending.lock();
            let mut expired = Vec::new();
            while let Some((made, g)) = oldest_waiting(&mut pending) {
                if now.saturating_sub(made) < limit_us {
                    break;
                }
                expired.push(g);
                pending.pop_front();
            }
            expired
        };
        if expired.is_empty() {
            return;
        }
        let tracker = self.env.get().and_then(|e| e.tracker());
        let mut buf = EventBuf::new(tracker);
        let fires: Vec<Fire> = expired.iter().filter_map(|g| g.time_out(now)).collect();
        settle(fires, &mut buf, None).await;
        buf.flush().await;
    }

    /// The waiting groups, as the dashboard shows them.
    pub(crate) fn stats(&self) -> JoinSnapshot {
        let now = self.now_us();
        let oldest = oldest_waiting(&mut self.pending.lock())
            .and_then(|(made, g)| Some((now.saturating_sub(made), g.waiting()?)));
        let c = &self.counts;
        let made = c.made.load(Ordering::Acquire);
        let fired = c.fired.load(Ordering::Acquire);
        let arrived = c.arrived.load(Ordering::Acquire);
        let mut fill = crate::histogram::Counts::default();
        self.fill.add_to(&mut fill);
        JoinSnapshot {
            of: self.of,
            waiting: made.saturating_sub(fired),
            oldest_ms: oldest.as_ref().map_or(0, |(age, _)| age / 1000),
            arrived,
            expected: arrived + c.live.load(Ordering::Acquire),
            fired,
            timed_out: c.timed_out.load(Ordering::Acquire),
            late: c.late.load(Ordering::Acquire),
            fill_p99_ms: if fill.total() == 0 {
                0
            } else {
                fill.quantile(0.99) / 1000
            },
            oldest: oldest.map(|(_, o)| o),
        }
    }

    /// Which waiting group item `id` is a part of, as a warning names it.
    pub(crate) fn group_of(&self, id: ItemId) -> Option<String> {
        let pending: Vec<_> = self.pending.lock().iter().map(|(_, g)| g.clone()).collect();
        pending.iter().filter_map(Weak::upgrade).find_map(|g| {
            let st = g.state.lock();
            let member = !st.fired && st.live.iter().any(|(m, _, _)| *m == id);
            member.then(|| {
                format!(
                    "a part of the group of item #{} at join {} ({} of {} parts arrived)",
                    g.origin,
                    self.name,
                    st.arrived.len(),
                    st.arrived.len() + st.live.len()
                )
            })
        })
    }

    /// Makes the group of `origin` (input `value`), which just completed at the origin
    /// stage and belongs to `outer`: it is its group's first member until its outputs
    /// replace it.
    fn begin_group(
        self: &Arc<Self>,
        origin: ItemId,
        value: &K,
        outer: &Groups,
        now: u64,
    ) -> Arc<dyn Group> {
        let joined = self.env.get().map_or(u64::MAX, |e| e.next_id());
        let group = Arc::new(JoinGroup {
            origin,
            made_us: now,
            joined,
            collector: self.clone(),
            state: Mutex::new(GroupState {
                value: Some(value.clone()),
                live: vec![(origin, Vec::new(), 0)],
                arrived: Vec::new(),
                missing: Vec::new(),
                fired: false,
                queue: self.queue.upgrade(),
                outer: outer.clone(),
            }),
        });
        // The joined item stands for the whole group in the groups around it.
        outer.spawned(origin, joined);
        self.counts.made.fetch_add(1, Ordering::AcqRel);
        self.counts.live.fetch_add(1, Ordering::AcqRel);
        let mut pending = self.pending.lock();
        // Let go of fired groups at the front while at it: memory stays flat.
        oldest_waiting(&mut pending);
        pending.push_back((now, Arc::downgrade(&group)));
        group
    }

    /// Part `id` (`value`) arrived, belonging to `groups`; `origin` is how it came.
    #[allow(clippy::too_many_arguments)]
    async fn arrive(
        &self,
        id: ItemId,
        value: P,
        groups: Groups,
        origin: Origin,
        now: u64,
        buf: &mut EventBuf,
        slot: Option<&WorkerSlot>,
    ) {
        let here = Subject {
            item: id,
            stage: self.stage,
            worker: None,
        };
        let (from, parents) = match origin {
            Origin::Input => (None, Vec::new()),
            Origin::Moved | Origin::Reported => (Some(ItemStatus::Queued), Vec::new()),
            Origin::Child(p) => (None, vec![p]),
        };
        let mine = groups.iter().find(|g| {
            g.as_any()
                .downcast_ref::<JoinGroup<K, P>>()
                .is_some_and(|jg| std::ptr::eq(Arc::as_ptr(&jg.collector), self))
        });
        let mut outer = Groups::default();
        let taken = mine.and_then(|g| {
            let jg = g.as_any().downcast_ref::<JoinGroup<K, P>>()?;
            // Read before the part can fire the group, which hands its groups on.
            outer = jg.state.lock().outer.clone();
            jg.take_part(id, value)
        });
        let mut fires = Vec::new();
        match (mine, taken) {
            (Some(g), Some(fire)) => {
                if buf.on() {
                    let event = here.event(EventKind::Completed, from, now).last();
                    buf.push(event.with_parents(parents)).await;
                }
                fires.extend(fire);
                for other in groups.iter().filter(|o| !same(o, g)) {
                    // A group around this join gets the joined item instead; any other
                    // (a sibling join's) will not see this part.
                    let end = if outer.iter().any(|o| same(o, other)) {
                        End::Replaced
                    } else {
                        End::Missing(Why::RoutedElsewhere {
                            stage: self.name.to_string(),
                        })
                    };
                    fires.extend(other.ended(id, &end, now));
                }
            }
            _ => {
                self.counts.late.fetch_add(1, Ordering::AcqRel);
                let why = if mine.is_some() {
                    "its group had fired (timed out) before it arrived"
                } else {
                    "it belongs to no waiting group (retried or re-fed after its group fired?)"
                };
                let error = runtime_error("Late", format!("dropped at join {}: {why}", self.name));
                if let Some(g) = mine {
                    // Its group is done with it; the others lose it.
                    fires.extend(g.ended(id, &End::Replaced, now));
                }
                let end = End::Missing(Why::Failed {
                    error: error.clone(),
                });
                for other in groups.iter().filter(|o| mine.is_none_or(|m| !same(o, m))) {
                    fires.extend(other.ended(id, &end, now));
                }
                if buf.on() {
                    let event = here.event(EventKind::Failed, from, now).with_error(error);
                    buf.push(event.with_parents(parents)).await;
                }
            }
        }
        settle(fires, buf, slot).await;
    }
}

/// The oldest group still waiting, with when it was made; lets go of the fired (and
/// dropped) groups before it.
fn oldest_waiting<K, P>(pending: &mut Pending<K, P>) -> Option<(u64, Arc<JoinGroup<K, P>>)>
where
    K: Clone + Send + Sync + 'static,
    P: Clone + Send + Sync + 'static,
{
    while let Some((made, g)) = pending.front() {
        match g.upgrade() {
            Some(g) if !g.is_fired() => return Some((*made, g)),
            _ => {
                pending.pop_front();
            }
        }
    }
    None
}

/// Whether two group handles are the same group.
fn same(a: &Arc<dyn Group>, b: &Arc<dyn Group>) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
}

/// How the origin stage makes its joins' groups, whatever their part types.
pub(crate) trait Begin<I>: Send + Sync {
    fn begin(&self, origin: ItemId, value: &I, outer: &Groups, now_us: u64) -> Arc<dyn Group>;
}

impl<K, P> Begin<K> for Arc<Collector<K, P>>
where
    K: Clone + Send + Sync + 'static,
    P: Clone + Send + Sync + 'static,
{
    fn begin(&self, origin: ItemId, value: &K, outer: &Groups, now_us: u64) -> Arc<dyn Group> {
        self.begin_group(origin, value, outer, now_us)
    }
}

/// A part reaching a join: the item, its value and groups, and how it came.
pub(crate) struct Arrival<X> {
    pub id: ItemId,
    pub value: X,
    pub groups: Groups,
    pub origin: Origin,
    pub now: u64,
}

/// Where parts of type `X` arrive at a join.
pub(crate) trait Deposit<X>: Send + Sync {
    fn arrive<'a>(
        &'a self,
        part: Arrival<X>,
        buf: &'a mut EventBuf,
        slot: Option<&'a WorkerSlot>,
    ) -> BoxFuture<'a, ()>;
}

struct PortOf<K, P, X> {
    collector: Arc<Collector<K, P>>,
    wrap: fn(X) -> P,
}

impl<K, P, X> Deposit<X> for PortOf<K, P, X>
where
    K: Clone + Send + Sync + 'static,
    P: Clone + Send + Sync + 'static,
    X: Send + 'static,
{
    fn arrive<'a>(
        &'a self,
        part: Arrival<X>,
        buf: &'a mut EventBuf,
        slot: Option<&'a WorkerSlot>,
    ) -> BoxFuture<'a, ()> {
        let Arrival {
            id,
            value,
            groups,
            origin,
            now,
        } = part;
        let part = (self.wrap)(value);
        Box::pin(
            self.collector
                .arrive(id, part, groups, origin, now, buf, slot),
        )
    }
}

impl<K, P> MakePort<P> for Arc<Collector<K, P>>
where
    K: Clone + Send + Sync + 'static,
    P: Clone + Send + Sync + 'static,
{
    fn port<X: Send + 'static>(&self, wrap: fn(X) -> P) -> Box<dyn Any + Send> {
        let deposit: Arc<dyn Deposit<X>> = Arc::new(PortOf {
            collector: self.clone(),
            wrap,
        });
        Box::new(deposit)
    }
}

/// One group: the members under way, the parts arrived, and those missing.
struct JoinGroup<K, P> {
    origin: ItemId,
    /// When it was made, on the run's clock.
    made_us: u64,
    /// The joined item's id, reserved when the group was made.
    joined: ItemId,
    collector: Arc<Collector<K, P>>,
    state: Mutex<GroupState<K, P>>,
}

struct GroupState<K, P> {
    /// The origin item's input, for the join; taken when the group fires.
    value: Option<K>,
    /// Members under way: id, rank, and how many children it made so far.
    live: Vec<(ItemId, Rank, u32)>,
    arrived: Vec<(Rank, ItemId, P)>,
    missing: Vec<(Rank, Missing)>,
    fired: bool,
    /// The join's queue, held open while the group waits.
    queue: Option<crate::queue::Sender<Envelope<Gathered<K, P>>>>,
    /// The origin item's groups: the joined item's.
    outer: Groups,
}

impl<K, P> GroupState<K, P> {
    /// Takes member `item` out of those under way, with its rank.
    fn leave(&mut self, item: ItemId) -> Option<Rank> {
        let i = self.live.iter().rposition(|(id, _, _)| *id == item)?;
        Some(self.live.swap_remove(i).1)
    }
}

impl<K, P> JoinGroup<K, P>
where
    K: Clone + Send + Sync + 'static,
    P: Clone + Send + Sync + 'static,
{
    fn is_fired(&self) -> bool {
        self.state.lock().fired
    }

    /// The group as the dashboard shows it, while it waits.
    fn waiting(&self) -> Option<OldestGroup> {
        let st = self.state.lock();
        (!st.fired).then(|| OldestGroup {
            origin: self.origin,
            arrived: st.arrived.len() as u64,
            expected: (st.arrived.len() + st.live.len()) as u64,
        })
    }

    /// Takes part `id` if the group still waits: `Some` with the firing it completed, if
    /// it was the last; `None` when it came too late.
    fn take_part(&self, id: ItemId, value: P) -> Option<Option<Fire>> {
        let mut st = self.state.lock();
        if st.fired {
            return None;
        }
        let rank = st.leave(id)?;
        st.arrived.push((rank, id, value));
        let c = &self.collector.counts;
        c.live.fetch_sub(1, Ordering::AcqRel);
        c.arrived.fetch_add(1, Ordering::AcqRel);
        let now = self.collector.now_us();
        Some(self.fire_if_done(&mut st, now, false))
    }

    /// Fires the group if no member is under way (or `timed_out`).
    fn fire_if_done(&self, st: &mut GroupState<K, P>, now: u64, timed_out: bool) -> Option<Fire> {
        if st.fired || !(st.live.is_empty() || timed_out) {
            return None;
        }
        st.fired = true;
        self.collector.fill.record(now.saturating_sub(self.made_us));
        let c = &self.collector.counts;
        c.fired.fetch_add(1, Ordering::AcqRel);
        c.arrived
            .fetch_sub(st.arrived.len() as u64, Ordering::AcqRel);
        c.live.fetch_sub(st.live.len() as u64, Ordering::AcqRel);
        let mut missing = std::mem::take(&mut st.missing);
        for (id, rank, _) in st.live.drain(..) {
            missing.push((
                rank,
                Missing {
                    item: id,
                    why: Why::TimedOut,
                },
            ));
        }
        missing.sort_by(|a, b| a.0.cmp(&b.0));
        let mut arrived = std::mem::take(&mut st.arrived);
        arrived.sort_by(|a, b| a.0.cmp(&b.0));
        let complete = missing.is_empty() && !timed_out;
        let gathered = Gathered {
            value: st.value.take()?,
            origin: self.origin,
            parts: arrived.into_iter().map(|(_, id, p)| (id, p)).collect(),
            missing: missing.into_iter().map(|(_, m)| m).collect(),
            complete,
        };
        let fail = timed_out && matches!(self.collector.timeout, Some((_, Partial::Fail)));
        Some(Box::new(Fired {
            stage: self.collector.stage,
            joined: self.joined,
            gathered,
            queue: st.queue.take(),
            outer: std::mem::take(&mut st.outer),
            fail: fail.then(|| self.collector.timeout.map(|(d, _)| d).unwrap_or_default()),
            at: now,
        }))
    }

    /// Fires the group on its timeout, if it still waits.
    fn time_out(&self, now: u64) -> Option<Fire> {
        let mut st = self.state.lock();
        let fire = self.fire_if_done(&mut st, now, true);
        if fire.is_some() {
            self.collector
                .counts
                .timed_out
                .fetch_add(1, Ordering::AcqRel);
        }
        fire
    }
}

impl<K, P> Group for JoinGroup<K, P>
where
    K: Clone + Send + Sync + 'static,
    P: Clone + Send + Sync + 'static,
{
    fn spawned(&self, parent: ItemId, child: ItemId) {
        let mut st = self.state.lock();
        if st.fired {
            return;
        }
        let rank = match st.live.iter_mut().rev().find(|(id, _, _)| *id == parent) {
            Some((_, rank, made)) => {
                let mut r = rank.clone();
                r.push(*made);
                *made += 1;
                r
            }
            None => vec![u32::MAX],
        };
        st.live.push((child, rank, 0));
        self.collector.counts.live.fetch_add(1, Ordering::AcqRel);
    }

    fn ended(&self, item: ItemId, end: &End, now_us: u64) -> Option<Fire> {
        let mut st = self.state.lock();
        if st.fired {
            return None;
        }
        let rank = st.leave(item)?;
        self.collector.counts.live.fetch_sub(1, Ordering::AcqRel);
        if let End::Missing(why) = end {
            st.missing.push((
                rank,
                Missing {
                    item,
                    why: why.clone(),
                },
            ));
        }
        self.fire_if_done(&mut st, now_us, false)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A fired group's joined item, on its way to the join.
struct Fired<K, P> {
    stage: StageIndex,
    joined: ItemId,
    gathered: Gathered<K, P>,
    queue: Option<crate::queue::Sender<Envelope<Gathered<K, P>>>>,
    outer: Groups,
    /// Set when the group timed out under [`Partial::Fail`]: the limit it passed.
    fail: Option<Duration>,
    at: u64,
}

impl<K, P> Firing for Fired<K, P>
where
    K: Clone + Send + Sync + 'static,
    P: Clone + Send + Sync + 'static,
{
    fn deliver<'a>(
        self: Box<Self>,
        buf: &'a mut EventBuf,
        slot: Option<&'a WorkerSlot>,
    ) -> BoxFuture<'a, Vec<Fire>> {
        Box::pin(async move {
            let Fired {
                stage,
                joined,
                gathered,
                queue,
                outer,
                fail,
                at,
            } = *self;
            let here = Subject {
                item: joined,
                stage,
                worker: None,
            };
            // Its parents are the parts; with none, the item they would have come from.
            let mut parents: Vec<ItemId> = gathered.parts.iter().map(|(id, _)| *id).collect();
            if parents.is_empty() {
                parents.push(gathered.origin);
            }
            if let Some(limit) = fail {
                let error = runtime_error(
                    "JoinTimeout",
                    format!(
                        "the group of item {} waited longer than {limit:?}: {} of {} parts arrived",
                        gathered.origin,
                        gathered.parts.len(),
                        gathered.parts.len() + gathered.missing.len()
                    ),
                );
                buf.push(
                    here.event(EventKind::Failed, None, at)
                        .with_parents(parents)
                        .with_error(error.clone()),
                )
                .await;
                return outer.ended(joined, &End::Missing(Why::Failed { error }), at);
            }
            if buf.on() {
                buf.push(
                    here.event(EventKind::Queued, None, at)
                        .with_parents(parents),
                )
                .await;
            }
            let envelope = Envelope {
                id: joined,
                value: gathered,
                enqueued_us: at,
                groups: outer.clone(),
            };
            let sent = match &queue {
                None => Err(()),
                Some(tx) => match tx.try_send(envelope) {
                    Ok(()) => Ok(()),
                    Err(async_channel::TrySendError::Closed(_)) => Err(()),
                    Err(async_channel::TrySendError::Full(e)) => {
                        let send = async { tx.send(e).await.map_err(|_| ()) };
                        wait_for_room(buf, slot, send).await
                    }
                },
            };
            if sent.is_ok() {
                return Vec::new();
            }
            // The join was stopped: nothing will take the joined item.
            buf.push(here.event(EventKind::Cancelled, Some(ItemStatus::Queued), at))
                .await;
            outer.ended(joined, &End::cancelled(), at)
        })
    }
}

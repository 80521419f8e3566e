//! Joins over random plans: documents fanned out into parts, some broadcast to a second
//! branch, some fanned out again or filtered out, failing after their retries, routed to
//! another output, cancelled, or stuck past the group's timeout. Whatever the plan, every
//! group fires exactly once, every part is either among those that arrived (in fan-out
//! order) or among those that did not (with why), nothing is lost or counted twice, and
//! the run's counts add up to what the outputs saw.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    collections::BTreeMap,
    sync::{Arc, OnceLock},
    time::Duration,
};

use common::why;
use flowdeck_runtime::{
    Graph, Joined, Partial, PipelineHandle, RetryPolicy, Stage, StageRef, TaskFn,
};
use proptest::prelude::*;
use tokio::sync::watch;

/// What happens to a part.
#[derive(Clone, Debug)]
enum Fate {
    Ok,
    /// Fails on every attempt (two).
    Fail,
    /// Routed to the `aside` output instead of the join.
    Aside,
    /// Filtered out by the `expand` fan-out.
    Filter,
    /// Cancelled while it runs.
    Cancel,
    /// Held until the test lets it go (after its group timed out), then arrives late.
    Stuck,
    /// Fanned out again by `expand` into these.
    Split(Vec<Fate>),
}

fn leaf() -> impl Strategy<Value = Fate> {
    prop_oneof![
        6 => Just(Fate::Ok),
        1 => Just(Fate::Fail),
        1 => Just(Fate::Aside),
        1 => Just(Fate::Filter),
        1 => Just(Fate::Cancel),
        1 => Just(Fate::Stuck),
    ]
}

fn fate() -> impl Strategy<Value = Fate> {
    prop_oneof![
        4 => leaf(),
        // `expand` fans out once: its children's fates play out at `act`.
        1 => prop::collection::vec(leaf().prop_filter("no second filter", |f| !matches!(f, Fate::Filter)), 0..3)
            .prop_map(Fate::Split),
    ]
}

/// A part as it travels: its document, where it sorts, and its fate.
#[derive(Clone, Debug)]
struct Part {
    doc: usize,
    tag: String,
    fate: Fate,
}

/// What a join made of its group.
#[derive(Clone, Debug)]
enum Out {
    Joined {
        doc: usize,
        parts: Vec<String>,
        missing: Vec<String>,
        complete: bool,
    },
    Aside,
}

/// What the join must see of one document: the tags that arrive, in order, and the
/// reasons of those that do not (sorted).
fn expected(doc: &[Fate], broadcast: bool, timeout: bool) -> (Vec<String>, Vec<String>) {
    let mut parts = Vec::new();
    let mut missing = Vec::new();
    let mut leaf = |f: &Fate, tag: String| match f {
        Fate::Ok => parts.push(tag),
        Fate::Stuck if !timeout => parts.push(tag),
        Fate::Stuck => missing.push("timed out".to_owned()),
        Fate::Fail => missing.push("failed:String".to_owned()),
        Fate::Aside => missing.push("routed:aside".to_owned()),
        Fate::Filter => missing.push("filtered:expand".to_owned()),
        Fate::Cancel => missing.push("cancelled".to_owned()),
        Fate::Split(_) => unreachable!(),
    };
    for (i, f) in doc.iter().enumerate() {
        if broadcast {
            leaf(&Fate::Ok, format!("c{i}"));
        }
        match f {
            Fate::Split(children) if children.is_empty() => leaf(&Fate::Filter, String::new()),
            Fate::Split(children) => {
                for (j, c) in children.iter().enumerate() {
                    leaf(c, format!("p{i}.{j}"));
                }
            }
            f => leaf(f, format!("p{i}")),
        }
    }
    missing.sort();
    (parts, missing)
}

/// The `act` stage: does what each part's fate says.
fn act(
    handle: Arc<OnceLock<PipelineHandle>>,
    open: watch::Receiver<bool>,
    timeout: bool,
) -> Stage<Part, Part, impl TaskFn<Part, Part>> {
    Stage::map("act", move |p: Part, cx: flowdeck_runtime::Ctx| {
        let handle = handle.clone();
        let mut open = open.clone();
        async move {
            match p.fate {
                Fate::Fail => return Err(format!("{} fails", p.tag)),
                Fate::Cancel => {
                    let id = cx.item();
                    tokio::spawn(async move { handle.get().unwrap().cancel(id) });
                    std::future::pending::<()>().await;
                }
                Fate::Stuck if timeout => {
                    let _ = open.wait_for(|o| *o).await;
                }
                _ => {}
            }
            Ok(p)
        }
    })
    // More workers than parts can be stuck at once: a stuck part holds its worker, and
    // the others must not wait behind it past their group's timeout.
    .workers(128)
    .retry(RetryPolicy::attempts(2).backoff(Duration::ZERO, Duration::ZERO))
}

fn run(docs: Vec<Vec<Fate>>, broadcast: bool, timeout: bool) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let handle: Arc<OnceLock<PipelineHandle>> = Arc::default();
        let (open_tx, open) = watch::channel(false);
        let mut g = Graph::<(usize, Vec<Fate>), Out>::new("props");
        let split = g.add(
            Stage::flat_map(
                "split",
                |(doc, fates): (usize, Vec<Fate>), _cx| async move {
                    let parts = fates.into_iter().enumerate().map(move |(i, fate)| Part {
                        doc,
                        tag: format!("p{i}"),
                        fate,
                    });
                    Ok::<_, String>(parts.collect::<Vec<_>>())
                },
            )
            .workers(2),
        );
        let expand = g.add(
            Stage::flat_map("expand", |p: Part, _cx| async move {
                let out = match p.fate {
                    Fate::Filter => vec![],
                    Fate::Split(children) => children
                        .into_iter()
                        .enumerate()
                        .map(|(j, fate)| Part {
                            doc: p.doc,
                            tag: format!("{}.{j}", p.tag),
                            fate,
                        })
                        .collect(),
                    fate => vec![Part { fate, ..p }],
                };
                Ok::<_, String>(out)
            })
            .workers(2),
        );
        let act = g.add(act(handle.clone(), open, timeout));
        let aside = g.add(Stage::map("aside", |_p: Part, _cx| async move {
            Ok::<_, String>(Out::Aside)
        }));
        let echo = g.add(Stage::map("echo", |p: Part, _cx| async move {
            Ok::<_, String>(Part {
                tag: p.tag.replace('p', "c"),
                fate: Fate::Ok,
                ..p
            })
        }));
        let join = Stage::join(
            "join",
            |(doc, _): (usize, Vec<Fate>), j: Joined<Part>, _cx| async move {
                Ok::<_, String>(Out::Joined {
                    doc,
                    parts: j.parts.into_iter().map(|p| p.tag).collect(),
                    missing: j.missing.iter().map(|m| why(&m.why)).collect(),
                    complete: j.complete,
                })
            },
        )
        .workers(2)
        .of(split);
        let join: StageRef<Part, Out> = g.add_join(if timeout {
            join.timeout(Duration::from_secs(2), Partial::Emit)
        } else {
            join
        });
        g.input(split).connect(split, expand).connect(expand, act);
        if broadcast {
            g.broadcast(split, echo).connect(echo, join);
        } else {
            // Unused, but drawn so the graph is the same shape: reached, never fed.
            g.connect_if(split, echo, |_| false).connect(echo, join);
        }
        g.connect_if(act, aside, |p| matches!(p.fate, Fate::Aside));
        g.connect(act, join);
        g.output(aside).output(join);

        let running = g
            .build()
            .map_err(|e| TestCaseError::fail(e.to_string()))?
            .start();
        handle.set(running.handle.clone()).ok().unwrap();
        let h = running.handle.clone();
        let n = docs.len();
        for (i, d) in docs.iter().enumerate() {
            running.input.send((i, d.clone())).await.unwrap();
        }
        running.input.close();
        // Every group fires before the stuck parts are let go (they wait for the timeout).
        let expect_aside = docs
            .iter()
            .flatten()
            .map(|f| match f {
                Fate::Aside => 1,
                Fate::Split(c) => c.iter().filter(|f| matches!(f, Fate::Aside)).count(),
                _ => 0,
            })
            .sum::<usize>();
        let mut joined = BTreeMap::new();
        let mut asides = 0;
        while joined.len() < n || asides < expect_aside {
            match running.outputs.recv().await.unwrap() {
                Out::Aside => asides += 1,
                Out::Joined {
                    doc,
                    parts,
                    mut missing,
                    complete,
                } => {
                    missing.sort();
                    prop_assert!(
                        joined.insert(doc, (parts, missing, complete)).is_none(),
                        "doc {} fired twice",
                        doc
                    );
                }
            }
        }
        open_tx.send_replace(true);
        prop_assert!(
            running.outputs.recv().await.is_err(),
            "no group fires twice"
        );
        h.wait().await;

        let mut stuck = 0u64;
        for (i, d) in docs.iter().enumerate() {
            let (parts, missing) = expected(d, broadcast, timeout);
            let has_stuck = timeout && missing.iter().any(|m| m == "timed out");
            stuck += missing.iter().filter(|m| *m == "timed out").count() as u64;
            let complete = missing.is_empty() && !has_stuck;
            prop_assert_eq!(
                &joined[&i],
                &(parts, missing, complete),
                "doc {}: {:?}",
                i,
                d
            );
        }
        let s = h.summary();
        let t = &s.snapshot.totals;
        prop_assert_eq!(
            t.queued + t.running + t.waiting,
            0,
            "nothing in flight: {:?}",
            t
        );
        prop_assert_eq!(t.submitted, t.completed + t.failed + t.cancelled, "{:?}", t);
        let leaves = |pick: fn(&Fate) -> bool| -> u64 {
            docs.iter()
                .flatten()
                .map(|f| match f {
                    Fate::Split(c) => c.iter().filter(|f| pick(f)).count() as u64,
                    f => u64::from(pick(f)),
                })
                .sum()
        };
        prop_assert_eq!(t.failed, leaves(|f| matches!(f, Fate::Fail)) + stuck);
        prop_assert_eq!(t.cancelled, leaves(|f| matches!(f, Fate::Cancel)));
        let stats = h.join_stats("join").unwrap().unwrap();
        prop_assert_eq!(
            (stats.waiting, stats.fired, stats.late),
            (0, n as u64, stuck)
        );
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]
    #[test]
    fn every_group_fires_once_and_every_part_is_accounted(
        docs in prop::collection::vec(prop::collection::vec(fate(), 0..5), 0..12),
        broadcast in any::<bool>(),
        timeout in prop::bool::weighted(0.2),
    ) {
        run(docs, broadcast, timeout)?;
    }
}

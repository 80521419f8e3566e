//! Joins: a stage that runs once per group of items descended from one item of its origin
//! stage, when every part has arrived or ended elsewhere, with an account of each part.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{sync::Arc, time::Duration};

use common::why;
use flowdeck_runtime::{
    protocol::ItemStatus, BuildError, Graph, Joined, Joined2, Partial, PipelineHandle, RetryPolicy,
    Stage, TaskFn,
};
use tokio::sync::watch;

/// A document split into words; each word is a part.
fn split() -> Stage<String, String, impl TaskFn<String, String>> {
    Stage::flat_map("split", |doc: String, _cx| async move {
        Ok::<_, String>(
            doc.split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>(),
        )
    })
}

/// What the join saw of a group, as the tests compare it.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    doc: String,
    parts: Vec<String>,
    missing: Vec<String>,
    complete: bool,
}

fn seen(doc: String, j: Joined<String>) -> Seen {
    Seen {
        doc,
        parts: j.parts,
        missing: j.missing.iter().map(|m| why(&m.why)).collect(),
        complete: j.complete,
    }
}

/// split → `work` → assemble (a join of `split`, with `timeout` if any), the join's
/// view of each group as the output.
fn docs<T: TaskFn<String, String>>(
    work: Stage<String, String, T>,
    timeout: Option<(Duration, Partial)>,
) -> Graph<String, Seen> {
    let mut g = Graph::<String, Seen>::new("docs");
    let split = g.add(split());
    let work = g.add(work);
    let join = Stage::join(
        "assemble",
        |doc: String, j: Joined<String>, _cx| async move { Ok::<_, String>(seen(doc, j)) },
    )
    .of(split);
    let assemble = g.add_join(match timeout {
        Some((limit, partial)) => join.timeout(limit, partial),
        None => join,
    });
    g.input(split)
        .connect(split, work)
        .connect(work, assemble)
        .output(assemble);
    g
}

/// A stage that holds the word "stuck" until `open` turns true.
fn holding(open: watch::Receiver<bool>) -> Stage<String, String, impl TaskFn<String, String>> {
    Stage::map("work", move |w: String, _cx| {
        let mut open = open.clone();
        async move {
            if w == "stuck" {
                let _ = open.wait_for(|o| *o).await;
            }
            Ok::<_, String>(w)
        }
    })
    .workers(4)
}

/// Starts `g` on the one document `doc`: its handle and outputs.
async fn one(g: Graph<String, Seen>, doc: &str) -> (PipelineHandle, async_channel::Receiver<Seen>) {
    let running = g.build().unwrap().start();
    running.input.send(doc.to_owned()).await.unwrap();
    running.input.close();
    (running.handle, running.outputs)
}

/// Waits until `f` holds, checking every few milliseconds: no assumption about how long.
async fn until(mut f: impl FnMut() -> bool) {
    while !f() {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Parts arrive in the order the fan-out made them, whatever order the workers finish
/// them in; a failed part is listed with its error; each group fires once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_in_fan_out_order_failures_listed_each_group_once() {
    let g = docs(
        Stage::map("work", |w: String, _cx| async move {
            // Later words finish first.
            let wait = 20u64.saturating_sub(w.len() as u64 * 3);
            tokio::time::sleep(Duration::from_millis(wait)).await;
            if w.starts_with('x') {
                Err(format!("cannot work {w}"))
            } else {
                Ok(w.to_uppercase())
            }
        })
        .workers(4)
        .retry(
            RetryPolicy::attempts(2).backoff(Duration::from_millis(1), Duration::from_millis(2)),
        ),
        None,
    );
    let docs = ["a bb ccc dddd", "one xtwo three", "solo"];
    let report = g.build().unwrap().run(docs.map(String::from)).await;
    let mut out = report.outputs;
    out.sort_by(|a, b| a.doc.cmp(&b.doc));
    assert_eq!(
        out,
        vec![
            Seen {
                doc: "a bb ccc dddd".into(),
                parts: vec!["A".into(), "BB".into(), "CCC".into(), "DDDD".into()],
                missing: vec![],
                complete: true,
            },
            Seen {
                doc: "one xtwo three".into(),
                parts: vec!["ONE".into(), "THREE".into()],
                missing: vec!["failed:String".into()],
                complete: false,
            },
            Seen {
                doc: "solo".into(),
                parts: vec!["SOLO".into()],
                missing: vec![],
                complete: true,
            },
        ]
    );
    let s = report.summary;
    // 3 docs, 8 words, 3 joined items; 7 words merged, 1 failed.
    assert_eq!(s.snapshot.totals.submitted, 3 + 8 + 3);
    assert_eq!(s.snapshot.totals.failed, 1);
    assert_eq!(s.snapshot.totals.completed, 3 + 7 + 3);
    assert_eq!(s.snapshot.totals.queued + s.snapshot.totals.running, 0);
}

/// A fan-out of nothing fires at once, complete and empty; a group whose every part
/// failed fires too, with each failure; the join's function decides what to make of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_and_all_failed_groups_fire() {
    let g = docs(
        Stage::map("work", |w: String, _cx| async move {
            Err::<String, _>(format!("no {w}"))
        }),
        None,
    );
    let report = g
        .build()
        .unwrap()
        .run(["".to_owned(), "p q".to_owned()])
        .await;
    let mut out = report.outputs;
    out.sort_by(|a, b| a.doc.cmp(&b.doc));
    assert_eq!(
        out,
        vec![
            Seen {
                doc: "".into(),
                parts: vec![],
                missing: vec![],
                complete: true,
            },
            Seen {
                doc: "p q".into(),
                parts: vec![],
                missing: vec!["failed:String".into(), "failed:String".into()],
                complete: false,
            },
        ]
    );
}

/// A part routed to another output, and one filtered out by a later fan-out, are listed
/// as such; the group does not wait for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_routed_elsewhere_or_filtered_out_are_accounted() {
    let mut g = Graph::<String, Seen>::new("docs");
    let split = g.add(split());
    let sieve = g.add(Stage::flat_map("sieve", |w: String, _cx| async move {
        // "-" words vanish here.
        Ok::<_, String>((w != "-").then_some(w))
    }));
    let aside = g.add(Stage::map("aside", |w: String, _cx| async move {
        Ok::<_, String>(Seen {
            doc: w,
            parts: vec![],
            missing: vec![],
            complete: false,
        })
    }));
    let assemble = g.add_join(
        Stage::join(
            "assemble",
            |doc: String, j: Joined<String>, _cx| async move { Ok::<_, String>(seen(doc, j)) },
        )
        .of(split),
    );
    g.input(split).connect(split, sieve);
    g.connect_if(sieve, aside, |w| w.starts_with('!'));
    g.connect(sieve, assemble);
    g.output(aside).output(assemble);
    let report = g.build().unwrap().run(["a - !b c".to_owned()]).await;
    let joined: Vec<Seen> = report
        .outputs
        .into_iter()
        .filter(|s| s.doc == "a - !b c")
        .collect();
    assert_eq!(
        joined,
        vec![Seen {
            doc: "a - !b c".into(),
            parts: vec!["a".into(), "c".into()],
            missing: vec!["filtered:sieve".into(), "routed:aside".into()],
            complete: false,
        }]
    );
}

/// A broadcast into two branches of different types, joined back typed: "embed AND
/// summarize, then store both". The joined item has both parts as parents, and its
/// provenance walks back to the input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_then_typed_join_of_two_kinds() {
    let mut g = Graph::<u32, (u32, Vec<usize>, Vec<String>)>::new("rag");
    let fetch = g.add(Stage::map("fetch", |n: u32, _cx| async move {
        Ok::<_, String>(format!("doc {n}"))
    }));
    let embed = g.add(Stage::map("embed", |d: String, _cx| async move {
        Ok::<_, String>(d.len())
    }));
    let summarize = g.add(
        Stage::map("summarize", |d: String, _cx| async move {
            tokio::time::sleep(Duration::from_millis(3)).await;
            Ok::<_, String>(format!("summary of {d}"))
        })
        .workers(3),
    );
    let (with_embedding, with_summary) = g.add_join(
        Stage::join(
            "store",
            |n: u32, j: Joined2<usize, String>, _cx| async move { Ok::<_, String>((n, j.a, j.b)) },
        )
        .of(fetch),
    );
    g.input(fetch);
    g.broadcast(fetch, embed).broadcast(fetch, summarize);
    g.connect(embed, with_embedding)
        .connect(summarize, with_summary);
    g.output(with_embedding);
    let running = g.build().unwrap().start();
    let h = running.handle.clone();
    let report = running.run(1..=30).await;
    assert_eq!(report.outputs.len(), 30);
    for (n, a, b) in &report.outputs {
        let doc = format!("doc {n}");
        assert_eq!(
            (a, b),
            (&vec![doc.len()], &vec![format!("summary of {doc}")])
        );
    }
    // The joined items are the store's completions; each has the two copies as parents.
    let store = h.stage_index("store").unwrap();
    let joined: Vec<_> = h
        .tracker()
        .items(Some(ItemStatus::Completed), Some(store), 1000)
        .into_iter()
        .filter_map(|s| h.tracker().item(s.id))
        .filter(|d| d.parents.len() == 2)
        .collect();
    assert_eq!(joined.len(), 30);
    let item = &joined[0];
    let chain = h.tracker().provenance(item.id);
    let ids: Vec<_> = chain.iter().map(|a| a.id).collect();
    for p in &item.parents {
        assert!(ids.contains(p), "provenance {ids:?} lacks parent {p}");
    }
    // Back to the input item the copies were made from.
    let deepest = chain.iter().max_by_key(|a| a.depth).unwrap();
    assert!(h.tracker().item(deepest.id).unwrap().parents.is_empty());
    assert_eq!(deepest.depth, 2);
    let stats = h.join_stats("store").unwrap().unwrap();
    assert_eq!((stats.waiting, stats.fired, stats.late), (0, 30, 0));
}

/// A stuck part holds its group until the timeout: meanwhile the join shows one group
/// waiting with its parts arrived of expected; then the group fires with what it has
/// (`Emit`), and the stuck part, let go, is failed as late at the join, not lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_part_times_out_and_arrives_late() {
    let (open_tx, open) = watch::channel(false);
    let g = docs(
        holding(open),
        Some((Duration::from_millis(300), Partial::Emit)),
    );
    let (h, outputs) = one(g, "a stuck b").await;
    // Two of three parts in, one group waiting: seen while it waits (or, on a slow
    // machine, already timed out: then the output below says so).
    let mut waited = None;
    until(|| {
        let s = h.join_stats("assemble").unwrap().unwrap();
        let fired = s.fired == 1;
        if s.waiting == 1 && s.arrived == 2 {
            waited = Some(s);
        }
        waited.is_some() || fired
    })
    .await;
    if let Some(s) = waited {
        assert_eq!(s.expected, 3);
        // The oldest group is named by its origin item, with its parts.
        let oldest = s.oldest.unwrap();
        assert_eq!((oldest.arrived, oldest.expected), (2, 3));
        assert_eq!(h.tracker().item(oldest.origin).unwrap().stage, 0);
        assert_eq!(h.snapshot().stages[2].join.as_ref().map(|j| j.of), Some(0));
    }
    let out = outputs.recv().await.unwrap();
    assert_eq!(
        out,
        Seen {
            doc: "a stuck b".into(),
            parts: vec!["a".into(), "b".into()],
            missing: vec!["timed out".into()],
            complete: false,
        }
    );
    open_tx.send_replace(true);
    assert!(outputs.recv().await.is_err(), "fired once only");
    h.wait().await;
    let s = h.join_stats("assemble").unwrap().unwrap();
    assert_eq!((s.waiting, s.fired, s.timed_out, s.late), (0, 1, 1, 1));
    let errors = h.tracker().errors();
    assert_eq!(errors.by_kind, vec![("Late".to_string(), 1)]);
    let late = &errors.recent[0];
    let item = h.tracker().item(late.id).unwrap();
    assert_eq!(item.status, ItemStatus::Failed);
    assert_eq!(item.stage, h.stage_index("assemble").unwrap());
}

/// Under `Partial::Fail`, a group past its timeout fails its joined item without running
/// the join, naming how many parts arrived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_group_can_fail_instead() {
    let (open_tx, open) = watch::channel(false);
    let g = docs(
        holding(open),
        Some((Duration::from_millis(100), Partial::Fail)),
    );
    let (h, outputs) = one(g, "a stuck").await;
    until(|| h.tracker().errors_total() == 1).await;
    let errors = h.tracker().errors();
    assert_eq!(errors.by_kind, vec![("JoinTimeout".to_string(), 1)]);
    assert!(errors.recent[0]
        .error
        .message
        .contains("1 of 2 parts arrived"));
    open_tx.send_replace(true);
    assert!(outputs.recv().await.is_err(), "the join never ran");
    h.wait().await;
    assert_eq!(
        h.tracker().errors().by_kind.len(),
        2,
        "and the late part failed"
    );
}

/// A part cancelled while it runs is listed as cancelled, and the group fires without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_part_is_listed() {
    let handle: Arc<std::sync::OnceLock<PipelineHandle>> = Arc::default();
    let h2 = handle.clone();
    let g = docs(
        Stage::map("work", move |w: String, cx| {
            let h = h2.clone();
            async move {
                if w == "cancel" {
                    // Cancels itself, from outside the task as a person would.
                    let id = cx.item();
                    tokio::spawn(async move { h.get().unwrap().cancel(id) });
                    std::future::pending::<()>().await;
                }
                Ok::<_, String>(w)
            }
        })
        .workers(2),
        None,
    );
    let running = g.build().unwrap().start();
    handle.set(running.handle.clone()).ok().unwrap();
    let report = running.run(["x cancel y".to_owned()]).await;
    assert_eq!(
        report.outputs,
        vec![Seen {
            doc: "x cancel y".into(),
            parts: vec!["x".into(), "y".into()],
            missing: vec!["cancelled".into()],
            complete: false,
        }]
    );
}

/// A join of joins: lines are joined into pages, pages into documents. The inner joined
/// items count in the outer groups from the moment their group is made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_nest() {
    let mut g = Graph::<String, String>::new("books");
    let pages = g.add(Stage::flat_map("pages", |doc: String, _cx| async move {
        Ok::<_, String>(doc.split('|').map(str::to_owned).collect::<Vec<_>>())
    }));
    let lines = g.add(Stage::flat_map("lines", |page: String, _cx| async move {
        Ok::<_, String>(
            page.split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>(),
        )
    }));
    let upper = g.add(
        Stage::map("upper", |l: String, _cx| async move {
            tokio::time::sleep(Duration::from_millis(u64::from(l.len() as u8 % 3))).await;
            Ok::<_, String>(l.to_uppercase())
        })
        .workers(3),
    );
    let page = g.add_join(
        Stage::join("page", |_p: String, j: Joined<String>, _cx| async move {
            Ok::<_, String>(j.parts.join(" "))
        })
        .of(lines),
    );
    let book = g.add_join(
        Stage::join("book", |_d: String, j: Joined<String>, _cx| async move {
            Ok::<_, String>(j.parts.join(" / "))
        })
        .of(pages),
    );
    g.input(pages).connect(pages, lines).connect(lines, upper);
    g.connect(upper, page).connect(page, book).output(book);
    let report = g
        .build()
        .unwrap()
        .run(["a b|c|d e f".to_owned(), "|x".to_owned()])
        .await;
    let mut out = report.outputs;
    out.sort();
    assert_eq!(out, [" / X", "A B / C / D E F"]);
}

/// A graph where items can reach the join without passing its origin is refused.
#[test]
fn a_join_must_be_below_its_origin() {
    let mut g = Graph::<String, Seen>::new("docs");
    let split = g.add(split());
    let other = g.add(Stage::map("other", |w: String, _cx| async move {
        Ok::<_, String>(w)
    }));
    let assemble = g.add_join(
        Stage::join(
            "assemble",
            |doc: String, j: Joined<String>, _cx| async move { Ok::<_, String>(seen(doc, j)) },
        )
        .of(split),
    );
    g.input(split).input(other);
    g.connect(split, assemble)
        .connect(other, assemble)
        .output(assemble);
    assert_eq!(
        g.build().err(),
        Some(BuildError::JoinAround {
            join: "assemble".into(),
            origin: "split".into()
        })
    );
}

/// An abort mid-run ends every group (the joined items of groups that could not be
/// queued are cancelled) and the run ends: nothing waits forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_ends_every_group() {
    let g = docs(
        Stage::map("work", |w: String, _cx| async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            Ok::<_, String>(w)
        })
        .workers(2)
        .queue(4),
        None,
    );
    let running = g.build().unwrap().start();
    let h = running.handle.clone();
    let feed = tokio::spawn(async move {
        for n in 0..200 {
            if running.input.send(format!("{n} a b c")).await.is_err() {
                break;
            }
        }
        drop(running.outputs);
    });
    until(|| h.join_stats("assemble").unwrap().unwrap().fired >= 3).await;
    h.abort();
    h.wait().await;
    feed.await.unwrap();
    let s = h.join_stats("assemble").unwrap().unwrap();
    assert_eq!(s.waiting, 0, "every group fired: {s:?}");
    let t = h.snapshot().totals;
    assert_eq!(t.queued + t.running, 0, "{t:?}");
}

/// A paused join stage holds its fired groups in its queue (they wait there, not lost);
/// resumed and scaled, it runs each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_and_scaled_join_runs_each_group_once() {
    let work = Stage::map("work", |w: String, _cx| async move { Ok::<_, String>(w) });
    let g = docs(work, None);
    let running = g.build().unwrap().start();
    let h = running.handle.clone();
    h.pause("assemble").unwrap();
    for n in 0..20 {
        running.input.send(format!("d{n} a b")).await.unwrap();
    }
    running.input.close();
    // Every group fires into the paused stage's queue; none runs.
    until(|| h.join_stats("assemble").unwrap().unwrap().fired == 20).await;
    assert_eq!(h.snapshot().stages[2].queued, 20);
    assert!(running.outputs.is_empty());
    h.set_workers("assemble", 3).unwrap();
    h.resume("assemble").unwrap();
    let mut docs = Vec::new();
    while let Ok(s) = running.outputs.recv().await {
        assert_eq!(s.parts[1..], ["a", "b"]);
        docs.push(s.doc);
    }
    docs.sort();
    docs.dedup();
    assert_eq!(docs.len(), 20);
}

/// A join stage captures its input like any stage: the origin's input and the group, as
/// the joined item's page shows them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_captures_its_group_as_its_input() {
    let mut g = Graph::<String, String>::new("docs");
    let split = g.add(split());
    let join = g.add_join(
        Stage::join(
            "assemble",
            |doc: String, j: Joined<String>, _cx| async move {
                Ok::<_, String>(format!("{doc}: {}", j.parts.join("+")))
            },
        )
        .capture(flowdeck_runtime::Capture::failures().sample(1.0))
        .of(split),
    );
    g.input(split).connect(split, join).output(join);
    let running = g.build().unwrap().start();
    let h = running.handle.clone();
    let report = running.run(["alpha beta".to_owned()]).await;
    assert_eq!(report.outputs, ["alpha beta: alpha+beta"]);
    let stage = h.stage_index("assemble").unwrap();
    let joined = h
        .tracker()
        .items(Some(ItemStatus::Completed), Some(stage), 100)
        .into_iter()
        .filter_map(|s| h.tracker().item(s.id))
        .find(|d| d.parents.len() == 2)
        .unwrap();
    let input = joined.visits.iter().find_map(|v| v.input.clone()).unwrap();
    for part in ["alpha beta", "\"alpha\"", "\"beta\""] {
        assert!(input.text.contains(part), "{part} in {}", input.text);
    }
}

//! Broadcast edges: every output of a stage goes to each stage of its broadcast group as a
//! copy (a new item whose parent is the one copied), besides the first-match routing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use flowdeck_runtime::{Graph, RetryPolicy, Stage};

fn map(
    name: &'static str,
    f: fn(u32) -> Result<String, String>,
) -> Stage<u32, String, impl flowdeck_runtime::TaskFn<u32, String>> {
    Stage::map(name, move |n: u32, _cx| async move { f(n) }).workers(2)
}

/// Each input reaches both stages of the group and the routing edge; the copies name the
/// item they were copied from; the counts add up while items are still moving (a slow
/// stage holds them) and at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_output_reaches_each_stage_of_the_group_and_the_routing_edge() {
    let mut g = Graph::<u32, String>::new("documents");
    let fetch = g.add(Stage::map("fetch", |n: u32, _cx| async move {
        Ok::<_, String>(n)
    }));
    let embed = g.add(map("embed", |n| Ok(format!("embedded {n}"))));
    // Held until the test lets it go, so the counts are checked mid-run too.
    let (gate_tx, gate) = tokio::sync::watch::channel(false);
    let summarize = g.add(
        Stage::map("summarize", move |n: u32, _cx| {
            let mut gate = gate.clone();
            async move {
                gate.wait_for(|open| *open)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>(format!("summary of {n}"))
            }
        })
        .workers(2),
    );
    let store = g.add(map("store", |n| Ok(format!("stored {n}"))));
    g.input(fetch);
    g.broadcast(fetch, embed).broadcast(fetch, summarize);
    g.connect(fetch, store);
    g.output(embed).output(summarize).output(store);
    let running = g.build().unwrap().start();
    let h = running.handle.clone();
    let mut inputs = Vec::new();
    for n in 1..=20 {
        inputs.push(running.input.send(n).await.unwrap());
    }
    drop(running.input);
    let outputs = running.outputs.clone();
    let collect = tokio::spawn(async move {
        let mut out = Vec::new();
        while let Ok(s) = outputs.recv().await {
            out.push(s);
        }
        out
    });

    // Mid-run: every embedded copy and stored original is out, the summaries wait.
    loop {
        let t = h.tracker().stats();
        if t.completed >= 40 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let t = h.tracker().stats();
    assert_eq!(t.submitted, 60, "20 inputs and two copies of each");
    let summarizing = h.snapshot().stages[usize::from(summarize.index())].clone();
    assert_eq!(summarizing.completed, 0);
    assert_eq!(summarizing.queued + summarizing.in_flight, 20);
    gate_tx.send(true).unwrap();

    let mut out = collect.await.unwrap();
    h.wait().await;
    out.sort();
    let mut want: Vec<String> = (1..=20)
        .flat_map(|n| {
            [
                format!("embedded {n}"),
                format!("summary of {n}"),
                format!("stored {n}"),
            ]
        })
        .collect();
    want.sort();
    assert_eq!(out, want);
    let t = h.tracker().stats();
    assert_eq!((t.submitted, t.completed, t.failed), (60, 60, 0));
    // The graph says which edges copy.
    let edges: Vec<(Option<u16>, u16, bool)> = h
        .snapshot()
        .edges
        .iter()
        .map(|e| (e.from, e.to, e.broadcast))
        .collect();
    assert_eq!(
        edges,
        [
            (None, fetch.index(), false),
            (Some(fetch.index()), embed.index(), true),
            (Some(fetch.index()), summarize.index(), true),
            (Some(fetch.index()), store.index(), false),
        ]
    );

    // Each input went on to `store` itself; each copy names it as its parent.
    let mut copies: BTreeMap<u64, Vec<u16>> = BTreeMap::new();
    for row in h.tracker().items(None, None, 100) {
        let d = h.tracker().item(row.id).unwrap();
        let stages: Vec<u16> = d.visits.iter().map(|v| v.stage).collect();
        if inputs.contains(&d.id) {
            assert!(d.parents.is_empty());
            assert_eq!(stages, [fetch.index(), store.index()]);
        } else {
            assert_eq!(d.parents.len(), 1, "{d:?}");
            assert_eq!(stages.len(), 1);
            copies.entry(d.parents[0]).or_default().push(stages[0]);
        }
    }
    assert_eq!(copies.len(), 20);
    for (parent, mut stages) in copies {
        assert!(inputs.contains(&parent));
        stages.sort();
        assert_eq!(stages, [embed.index(), summarize.index()]);
    }
}

/// A `flat_map`'s outputs are each copied; a copy that fails fails alone (after its
/// retries), and a group member with a filtered routing edge still gets every copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_children_are_copied_and_a_failing_copy_fails_alone() {
    let mut g = Graph::<u32, String>::new("pages");
    let split = g.add(Stage::flat_map("split", |n: u32, _cx| async move {
        Ok::<_, String>((0..n).collect::<Vec<u32>>())
    }));
    let ocr = g.add(
        map("ocr", |n| {
            if n == 3 {
                Err("unreadable".into())
            } else {
                Ok(format!("text {n}"))
            }
        })
        .retry(RetryPolicy::attempts(2).backoff(
            std::time::Duration::from_millis(1),
            std::time::Duration::from_millis(2),
        )),
    );
    let thumb = g.add(map("thumb", |n| Ok(format!("thumb {n}"))));
    let big = g.add(map("big", |n| Ok(format!("big {n}"))));
    g.input(split);
    g.broadcast(split, ocr).broadcast(split, thumb);
    g.connect_if(split, big, |n| *n >= 4);
    g.output(ocr).output(thumb).output(big);
    let report = g.build().unwrap().run([2u32, 5]).await;
    let mut out = report.outputs;
    out.sort();
    // Pages 0 and 1 of the first input, 0 to 4 of the second: each has a thumbnail and
    // text (page 3 is unreadable), and page 4 also went to `big`.
    let pages = [0, 1, 0, 1, 2, 3, 4];
    let mut want: Vec<String> = pages.iter().map(|n| format!("thumb {n}")).collect();
    want.extend(
        pages
            .iter()
            .filter(|&&n| n != 3)
            .map(|n| format!("text {n}")),
    );
    want.push("big 4".into());
    want.sort();
    assert_eq!(out, want);
    let t = report.summary.snapshot.totals;
    // 2 inputs, 7 pages, 14 copies.
    assert_eq!(t.submitted, 2 + 7 + 14);
    assert_eq!(t.failed, 1);
    assert_eq!(t.completed + t.failed + t.cancelled, t.submitted);
    assert_eq!(report.summary.snapshot.totals.retried, 1);
}

/// With tracking off the counts still add up: copies are counted as items entering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untracked_counts_include_the_copies() {
    let mut g = Graph::<u32, String>::new("untracked");
    let fetch = g.add(Stage::map("fetch", |n: u32, _cx| async move {
        Ok::<_, String>(n)
    }));
    let a = g.add(map("a", |n| Ok(format!("a{n}"))));
    let b = g.add(map("b", |n| Ok(format!("b{n}"))));
    g.input(fetch);
    g.broadcast(fetch, a).broadcast(fetch, b);
    g.output(a).output(b);
    g.tracking(false);
    let report = g.build().unwrap().run(0..1000u32).await;
    assert_eq!(report.outputs.len(), 2000);
    let t = report.summary.snapshot.totals;
    assert_eq!(t.submitted, 3000);
    assert_eq!(t.completed, 3000);
    assert_eq!(
        report.summary.snapshot.stages[usize::from(fetch.index())].completed,
        1000
    );
}

//! Item data on the task page (`Stage::capture`, `Stage::preview`): a failed item's input
//! is kept at the stage where it failed, redacted; a sample of the others too; a stage
//! that does not capture keeps nothing, and a preview that panics costs only the preview.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use flowdeck_runtime::{
    protocol::{ItemDetail, ItemStatus},
    Capture, Line, RetryPolicy, Stage, MASKED,
};

#[derive(Clone, Debug, serde::Serialize)]
struct Doc {
    n: u32,
    title: String,
    api_key: String,
}

fn doc(n: u32) -> Doc {
    Doc {
        n,
        title: format!("document {n}"),
        api_key: format!("sk-live-{n}"),
    }
}

async fn details(
    pipeline: flowdeck_runtime::Pipeline<Doc, u32>,
    n: u32,
) -> (Vec<ItemDetail>, (usize, u64)) {
    let running = pipeline.start();
    let h = running.handle.clone();
    let outputs = running.outputs;
    tokio::spawn(async move { while outputs.recv().await.is_ok() {} });
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(running.input.send(doc(i)).await.unwrap());
    }
    drop(running.input);
    tokio::time::timeout(Duration::from_secs(10), h.wait())
        .await
        .unwrap();
    let t = h.tracker();
    (
        ids.into_iter().filter_map(|id| t.item(id)).collect(),
        t.captured(),
    )
}

#[tokio::test]
async fn a_failed_items_input_is_kept_redacted_where_it_failed_and_a_sample_of_the_rest() {
    let pipeline = Line::<Doc>::new("capture")
        // Every input here (a sample of 1.0), through Serialize.
        .stage(
            Stage::map("read", |d: Doc, _cx| async move { Ok::<_, String>(d) })
                .capture(Capture::failures().sample(1.0)),
        )
        // Failures only, through a preview of the caller's choosing.
        .stage(
            Stage::map("check", |d: Doc, _cx| async move {
                if d.n.is_multiple_of(4) {
                    Err(format!("document {} is empty", d.n))
                } else {
                    Ok(d)
                }
            })
            .retry(
                RetryPolicy::attempts(2)
                    .backoff(Duration::from_millis(1), Duration::from_millis(1)),
            )
            .preview(
                Capture::failures(),
                |d: &Doc| serde_json::json!({ "title": d.title, "api_key": d.api_key }),
            ),
        )
        // No capture.
        .stage(Stage::map("done", |d: Doc, _cx| async move {
            Ok::<_, String>(d.n)
        }))
        .build()
        .unwrap();
    let (items, (held, dropped)) = details(pipeline, 40).await;
    assert_eq!(items.len(), 40);
    assert!(held > 0);
    assert_eq!(dropped, 0);
    for item in &items {
        let at = |stage: u16| item.visits.iter().find(|v| v.stage == stage);
        let read = at(0).unwrap().input.as_ref().expect("sampled at read");
        assert!(read.text.contains("\"title\": \"document"), "{}", read.text);
        assert!(
            read.text.contains(MASKED) && !read.text.contains("sk-live"),
            "{}",
            read.text
        );
        let check = at(1).unwrap();
        if item.status == ItemStatus::Failed {
            let input = check.input.as_ref().expect("a failure keeps its input");
            assert!(input.text.contains("document"), "{}", input.text);
            assert!(!input.text.contains("sk-live"), "masked: {}", input.text);
            assert!(!input.text.contains("\"n\""), "the preview, not the input");
        } else {
            assert_eq!(check.input, None, "not sampled at check");
            assert_eq!(at(2).unwrap().input, None, "done captures nothing");
        }
    }
    assert_eq!(
        items
            .iter()
            .filter(|i| i.status == ItemStatus::Failed)
            .count(),
        10
    );
}

#[tokio::test]
async fn a_preview_that_panics_costs_the_preview_not_the_item() {
    let pipeline = Line::<Doc>::new("capture-panics")
        .stage(
            Stage::map("read", |d: Doc, _cx| async move {
                if d.n == 3 {
                    Err("bad".to_string())
                } else {
                    Ok(d.n)
                }
            })
            .preview(Capture::failures().sample(1.0), |d: &Doc| -> u32 {
                if d.n % 2 == 1 {
                    panic!("no preview for odd documents")
                }
                d.n
            }),
        )
        .build()
        .unwrap();
    let (items, _) = details(pipeline, 6).await;
    assert_eq!(items.len(), 6);
    let statuses: Vec<_> = items.iter().map(|i| i.status).collect();
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == ItemStatus::Failed)
            .count(),
        1,
        "{statuses:?}"
    );
    let kept: Vec<&str> = items
        .iter()
        .filter_map(|i| i.visits[0].input.as_ref().map(|p| p.text.as_str()))
        .collect();
    assert_eq!(kept, ["0", "2", "4"], "the even documents only");
}

#[tokio::test]
async fn a_failure_whose_input_was_let_go_says_it_cannot_be_retried() {
    let running = Line::<u32>::new("keep-one")
        .stage(
            Stage::map("work", |n: u32, _cx| async move {
                Err::<u32, _>(format!("no {n}"))
            })
            .keep_failed(1),
        )
        .build()
        .unwrap()
        .start();
    let h = running.handle.clone();
    let first = running.input.send(1).await.unwrap();
    let second = running.input.send(2).await.unwrap();
    drop(running.input);
    h.wait().await;
    assert_eq!(
        h.can_retry(first),
        Some(false),
        "the newest failure took its place"
    );
    assert_eq!(h.can_retry(second), Some(true));
    assert_eq!(h.can_retry(99), None, "not a retained failure");
}

#[tokio::test]
async fn the_last_stages_outputs_are_captured_for_a_sample() {
    let pipeline = Line::<Doc>::new("outputs")
        .stage(
            Stage::map(
                "count",
                |d: Doc, _cx| async move { Ok::<_, String>(d.n * 10) },
            )
            .capture_output(Capture::failures().sample(1.0)),
        )
        .build()
        .unwrap();
    let (items, _) = details(pipeline, 5).await;
    let outputs: Vec<_> = items
        .iter()
        .map(|i| i.visits[0].output.as_ref().map(|p| p.text.clone()))
        .collect();
    let want: Vec<_> = (0..5).map(|n| Some((n * 10).to_string())).collect();
    assert_eq!(outputs, want);
    assert!(
        items.iter().all(|i| i.visits[0].input.is_none()),
        "outputs only"
    );
}

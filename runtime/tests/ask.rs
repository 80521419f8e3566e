//! A stage asks a person and waits, holding no worker (`Ctx::ask`): the answer reaches
//! the item, a deadline takes the default or fails the item with `TimedOut`, cancelling,
//! draining and stopping close waiting questions, a stage caps how many of its items
//! wait, time spent waiting does not count against its timeout, and the item's history
//! and the counts show it waiting. Time is paused: minutes of waiting take no wall time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use flowdeck_runtime::{
    ask::{QuestionChange, QuestionState, Reply},
    protocol::{EventKind, ItemStatus},
    Line, PipelineHandle, Question, RetryPolicy, Stage,
};

fn reply(choice: &str) -> Reply {
    Reply {
        choice: choice.into(),
        data: serde_json::Value::Null,
    }
}

/// Waits (in pipeline time) until `n` questions are pending.
async fn pending(h: &PipelineHandle, n: usize) -> Vec<flowdeck_runtime::ask::QuestionInfo> {
    for _ in 0..10_000 {
        let p = h.questions().pending();
        if p.len() >= n {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "{} questions pending, not {n}",
        h.questions().pending_count()
    );
}

/// Waits until `f` holds of the snapshot.
async fn until(
    h: &PipelineHandle,
    what: &str,
    f: impl Fn(&flowdeck_runtime::protocol::Snapshot) -> bool,
) {
    for _ in 0..10_000 {
        if f(&h.snapshot()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never {what}: {:?}", h.snapshot().totals);
}

/// Even items ask "keep?" (with `q` adjusting the question); odd ones pass straight
/// through. One worker.
fn review(
    q: impl Fn(Question) -> Question + Send + Sync + 'static,
) -> flowdeck_runtime::Running<u32, (u32, String)> {
    let q = Arc::new(q);
    Line::<u32>::new("review")
        .stage(Stage::map("approve", move |n: u32, cx| {
            let q = q.clone();
            async move {
                if n % 2 == 1 {
                    return Ok::<_, String>((n, "passed".to_owned()));
                }
                let asked = q(Question::new(format!("Keep {n}?")).options(["keep", "drop"]));
                let answer = cx.ask(asked).await?;
                Ok((n, answer.choice))
            }
        }))
        .build()
        .unwrap()
        .start()
}

#[tokio::test(start_paused = true)]
async fn waiting_items_leave_their_worker_free_and_the_answer_reaches_the_item() {
    let running = review(|q| q);
    let h = running.handle.clone();
    running.input.send_all(0..10).await;
    // The five odd items go through the one worker while the five even ones wait.
    let asked = pending(&h, 5).await;
    let mut outs = Vec::new();
    for _ in 0..5 {
        outs.push(running.outputs.recv().await.unwrap());
    }
    assert!(
        outs.iter().all(|(n, c)| n % 2 == 1 && c == "passed"),
        "{outs:?}"
    );
    until(&h, "five waiting", |s| {
        s.totals.waiting == 5 && s.stages[0].waiting == 5
    })
    .await;
    let s = h.snapshot();
    assert_eq!(s.stages[0].max_waiting, 1_000);
    assert!(
        s.stages[0].workers.iter().all(|w| w.current_item.is_none()),
        "no worker holds a waiting item"
    );
    let item = asked[0].item;
    assert_eq!(h.tracker().status(item), Some(ItemStatus::Waiting));

    for q in &asked {
        let choice = if q.item % 4 == 0 { "keep" } else { "drop" };
        let closed = h
            .questions()
            .answer(q.id, &reply(choice), Some("alice"))
            .unwrap();
        assert_eq!(closed.state, QuestionState::Answered);
    }
    for _ in 0..5 {
        outs.push(running.outputs.recv().await.unwrap());
    }
    drop(running.input);
    h.wait().await;
    let mut answered: Vec<_> = outs.into_iter().filter(|(n, _)| n % 2 == 0).collect();
    answered.sort();
    assert_eq!(
        answered,
        [
            (0, "keep"),
            (2, "drop"),
            (4, "keep"),
            (6, "drop"),
            (8, "keep")
        ]
        .map(|(n, c)| (n, c.to_owned()))
    );
    let totals = h.snapshot().totals;
    assert_eq!((totals.completed, totals.waiting), (10, 0));
    // The item's history shows the wait and the answer.
    let kinds: Vec<EventKind> = h
        .tracker()
        .item(item)
        .unwrap()
        .history
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            EventKind::Queued,
            EventKind::Started,
            EventKind::Waiting,
            EventKind::Answered,
            EventKind::Completed
        ]
    );
    assert_eq!(
        h.questions()
            .get(asked[0].id)
            .unwrap()
            .answer
            .unwrap()
            .by
            .as_deref(),
        Some("alice")
    );
}

#[tokio::test(start_paused = true)]
async fn the_default_is_taken_at_the_deadline() {
    let running = review(|q| q.default_after(Duration::from_secs(600), "drop"));
    let h = running.handle.clone();
    running.input.send(2).await.unwrap();
    let q = pending(&h, 1).await.remove(0);
    assert_eq!(
        q.default.as_ref().map(|d| (d.choice.as_str(), d.after_ms)),
        Some(("drop", 600_000))
    );
    tokio::time::sleep(Duration::from_secs(599)).await;
    assert_eq!(h.questions().pending_count(), 1, "not before its deadline");
    assert_eq!(
        running.outputs.recv().await.unwrap(),
        (2, "drop".to_owned())
    );
    let closed = h.questions().get(q.id).unwrap();
    assert_eq!(closed.state, QuestionState::Defaulted);
    let answer = closed.answer.unwrap();
    assert!(answer.timed_out && answer.by.is_none());
    // Too late: the first answer (the default) won.
    assert!(h
        .questions()
        .answer(q.id, &reply("keep"), Some("bob"))
        .is_err());
}

#[tokio::test(start_paused = true)]
async fn no_default_fails_the_item_with_timed_out_and_it_is_not_retried() {
    let running = Line::<u32>::new("strict")
        .stage(
            Stage::map("approve", |n: u32, cx| async move {
                cx.ask(
                    Question::new("ok?")
                        .options(["yes"])
                        .deadline(Duration::from_secs(60)),
                )
                .await?;
                Ok::<_, String>(n)
            })
            .retry(RetryPolicy::attempts(3)),
        )
        .build()
        .unwrap()
        .start();
    let h = running.handle.clone();
    running.input.send(1).await.unwrap();
    drop(running.input);
    h.wait().await;
    let s = h.snapshot();
    assert_eq!((s.totals.failed, s.totals.retried), (1, 0));
    let failed = h.tracker().errors().recent.remove(0);
    assert_eq!(failed.error.kind, "TimedOut");
    assert!(
        failed.error.message.contains("nobody answered"),
        "{}",
        failed.error.message
    );
    assert_eq!(h.questions().closed()[0].state, QuestionState::TimedOut);
}

#[tokio::test(start_paused = true)]
async fn cancel_and_drain_close_waiting_questions_and_cancel_their_items() {
    let closed = Arc::new(Mutex::new(Vec::new()));
    let seen = closed.clone();
    let running = Line::<u32>::new("review")
        .stage(Stage::map("approve", |n: u32, cx| async move {
            cx.ask(Question::new("ok?").options(["yes"])).await?;
            Ok::<_, String>(n)
        }))
        .on_question(move |c| {
            if let QuestionChange::Closed(q) = c {
                seen.lock().unwrap().push((q.item, q.state));
            }
        })
        .build()
        .unwrap()
        .start();
    let h = running.handle.clone();
    running.input.send_all(0..3).await;
    let asked = pending(&h, 3).await;
    assert!(h.cancel(asked[0].item).is_ok());
    until(&h, "one cancelled", |s| s.totals.cancelled == 1).await;
    assert_eq!(
        h.questions().get(asked[0].id).unwrap().state,
        QuestionState::Cancelled
    );
    // Draining would otherwise wait for people for ever.
    h.drain();
    tokio::time::timeout(Duration::from_secs(60), h.wait())
        .await
        .expect("the drain waited for answers");
    let t = h.snapshot().totals;
    assert_eq!((t.cancelled, t.waiting, t.completed), (3, 0, 0));
    let mut states = closed.lock().unwrap().clone();
    states.sort_by_key(|(item, _)| *item);
    assert_eq!(states, [0, 1, 2].map(|i| (i, QuestionState::Cancelled)));
}

#[tokio::test(start_paused = true)]
async fn a_question_asked_during_a_drain_is_cancelled_at_once() {
    // Items still running (or queued) when the drain starts ask only after it: their
    // questions would otherwise hold the drain until someone answers.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let held = gate.clone();
    let closed = Arc::new(Mutex::new(Vec::new()));
    let seen = closed.clone();
    let running = Line::<u32>::new("review")
        .stage(
            Stage::map("approve", move |n: u32, cx| {
                let gate = held.clone();
                async move {
                    drop(gate.acquire().await);
                    cx.ask(Question::new("ok?").options(["yes"]))
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok::<_, String>(n)
                }
            })
            .workers(2),
        )
        .on_question(move |c| {
            if let QuestionChange::Closed(q) = c {
                seen.lock().unwrap().push((q.item, q.state));
            }
        })
        .build()
        .unwrap()
        .start();
    let h = running.handle.clone();
    running.input.send_all(0..4).await;
    until(&h, "two running, two queued", |s| {
        s.totals.running == 2 && s.totals.queued == 2
    })
    .await;
    h.drain();
    gate.add_permits(4);
    tokio::time::timeout(Duration::from_secs(60), h.wait())
        .await
        .expect("the drain waited for answers");
    let t = h.snapshot().totals;
    assert_eq!(
        (t.cancelled, t.waiting, t.completed, t.failed),
        (4, 0, 0, 0)
    );
    let mut states = closed.lock().unwrap().clone();
    states.sort_by_key(|(item, _)| *item);
    assert_eq!(states, [0, 1, 2, 3].map(|i| (i, QuestionState::Cancelled)));
}

#[tokio::test(start_paused = true)]
async fn a_stage_caps_its_waiting_items_and_askers_past_it_hold_their_worker() {
    let running = Line::<u32>::new("capped")
        .stage(
            Stage::map("approve", |n: u32, cx| async move {
                cx.ask(Question::new(format!("{n}?")).options(["yes"]))
                    .await?;
                Ok::<_, String>(n)
            })
            .workers(2)
            .max_waiting(2),
        )
        .build()
        .unwrap()
        .start();
    let h = running.handle.clone();
    running.input.send_all(0..5).await;
    pending(&h, 2).await;
    // Two wait; the next two hold the two workers, waiting for a place; one is queued.
    until(&h, "two waiting, two running", |s| {
        s.totals.waiting == 2 && s.stages[0].workers.iter().all(|w| w.current_item.is_some())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(h.questions().pending_count(), 2, "never past the cap");
    // Each answer frees a place for the next asker.
    for _ in 0..5 {
        let q = pending(&h, 1).await.remove(0);
        h.questions().answer(q.id, &reply("yes"), None).unwrap();
    }
    drop(running.input);
    h.wait().await;
    assert_eq!(h.snapshot().totals.completed, 5);
}

#[tokio::test(start_paused = true)]
async fn waiting_does_not_count_against_the_timeout_and_code_after_the_answer_is_isolated() {
    let running = Line::<u32>::new("timed")
        .stage(
            Stage::map("approve", |n: u32, cx| async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                let a = cx
                    .ask(Question::new("go?").options(["go", "boom", "slow"]))
                    .await?;
                match a.choice.as_str() {
                    "boom" => panic!("after the answer"),
                    // 800 ms more: 1.1 s of work in all, past the 1 s timeout.
                    "slow" => tokio::time::sleep(Duration::from_millis(800)).await,
                    _ => tokio::time::sleep(Duration::from_millis(300)).await,
                }
                Ok::<_, String>(n)
            })
            .timeout(Duration::from_secs(1)),
        )
        .build()
        .unwrap()
        .start();
    let h = running.handle.clone();
    running.input.send_all(0..3).await;
    let asked = pending(&h, 3).await;
    // An hour of waiting: far past the timeout, which only counts the work.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    for (q, choice) in asked.iter().zip(["go", "boom", "slow"]) {
        h.questions().answer(q.id, &reply(choice), None).unwrap();
    }
    drop(running.input);
    h.wait().await;
    let t = h.snapshot().totals;
    assert_eq!((t.completed, t.failed), (1, 2));
    let mut kinds: Vec<String> = h
        .tracker()
        .errors()
        .recent
        .iter()
        .map(|f| f.error.kind.clone())
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["Panic", "Timeout"]);
}

#[tokio::test(start_paused = true)]
async fn a_form_answer_is_checked_and_typed() {
    #[derive(serde::Deserialize, schemars::JsonSchema, Debug, PartialEq)]
    struct Fix {
        title: String,
        #[schemars(range(min = 1, max = 5))]
        score: u8,
    }
    let running = Line::<u32>::new("forms")
        .stage(Stage::map("fix", |n: u32, cx| async move {
            let a = cx.ask(Question::new("Fix it").form::<Fix>()).await?;
            Ok::<_, String>((n, a.choice, a.data))
        }))
        .build()
        .unwrap()
        .start();
    let h = running.handle.clone();
    running.input.send(1).await.unwrap();
    let q = pending(&h, 1).await.remove(0);
    assert_eq!(q.options, ["submit"]);
    let answer = |data: serde_json::Value| {
        h.questions().answer(
            q.id,
            &Reply {
                choice: "submit".into(),
                data,
            },
            Some("ops"),
        )
    };
    let field = |r: Result<_, flowdeck_runtime::ask::AnswerProblem>| match r {
        Err(flowdeck_runtime::ask::AnswerProblem::BadField { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    assert_eq!(field(answer(serde_json::json!({"title": "T"}))), "score");
    assert_eq!(
        field(answer(serde_json::json!({"title": "T", "score": 9}))),
        "score"
    );
    assert_eq!(
        h.questions().pending_count(),
        1,
        "a bad answer leaves it open"
    );
    answer(serde_json::json!({"title": "T", "score": 4})).unwrap();
    let (n, choice, data) = running.outputs.recv().await.unwrap();
    assert_eq!((n, choice.as_str()), (1, "submit"));
    assert_eq!(
        data,
        Some(Fix {
            title: "T".into(),
            score: 4
        })
    );
}

/// No data for a form is the form left empty: refused, naming the field, when a field is
/// required; accepted and typed as the empty form when none is.
#[tokio::test(start_paused = true)]
async fn no_data_is_the_form_left_empty() {
    #[derive(serde::Deserialize, schemars::JsonSchema, Debug, PartialEq)]
    struct Note {
        note: Option<String>,
        #[serde(default)]
        tags: Vec<String>,
    }
    #[derive(serde::Deserialize, schemars::JsonSchema, Debug, PartialEq)]
    struct Title {
        title: String,
    }
    let running = Line::<u32>::new("empty forms")
        .stage(Stage::map("note", |n: u32, cx| async move {
            let data = if n == 0 {
                let a = cx.ask(Question::new("Note?").form::<Note>()).await?;
                format!("{:?}", a.data)
            } else {
                let a = cx.ask(Question::new("Title?").form::<Title>()).await?;
                format!("{:?}", a.data)
            };
            Ok::<_, String>(data)
        }))
        .build()
        .unwrap()
        .start();
    let h = running.handle.clone();
    running.input.send_all([0, 1]).await;
    let qs = pending(&h, 2).await;
    let reply = Reply {
        choice: "submit".into(),
        data: serde_json::Value::Null,
    };
    let (note, title) = match qs[0].title.as_str() {
        "Note?" => (&qs[0], &qs[1]),
        _ => (&qs[1], &qs[0]),
    };
    match h.questions().answer(title.id, &reply, None) {
        Err(flowdeck_runtime::ask::AnswerProblem::BadField { field, .. }) => {
            assert_eq!(field, "title")
        }
        other => panic!("{other:?}"),
    }
    h.questions().answer(note.id, &reply, None).unwrap();
    assert_eq!(
        running.outputs.recv().await.unwrap(),
        "Some(Note { note: None, tags: [] })"
    );
    assert_eq!(
        h.questions().pending_count(),
        1,
        "the refused one stays open"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stopped_pipeline_cancels_its_waiting_items() {
    let running = review(|q| q);
    let h = running.handle.clone();
    running.input.send_all([0, 2, 4]).await;
    pending(&h, 3).await;
    h.abort();
    tokio::time::timeout(Duration::from_secs(60), h.wait())
        .await
        .expect("the stop waited for answers");
    let t = h.snapshot().totals;
    assert_eq!((t.cancelled, t.waiting), (3, 0));
    assert!(h
        .questions()
        .closed()
        .iter()
        .all(|q| q.state == QuestionState::Cancelled));
}

/// The throughput check, in pipeline time (time is paused, so the machine's speed does not
/// enter): a 4-worker stage whose items take 10 ms keeps its pace on 400 items while 1,000
/// others wait for people. Were waiting items to hold workers, nothing would move.
#[tokio::test(start_paused = true)]
async fn a_thousand_waiting_items_leave_the_stage_its_throughput() {
    async fn pace(waiting: u32) -> Duration {
        let running = Line::<u32>::new("pace")
            .stage(
                Stage::map("work", |n: u32, cx| async move {
                    if n >= 1_000_000 {
                        cx.ask(Question::new("later").options(["ok"])).await?;
                    } else {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Ok::<_, String>(n)
                })
                .workers(4),
            )
            .build()
            .unwrap()
            .start();
        let h = running.handle.clone();
        running
            .input
            .send_all((0..waiting).map(|i| 1_000_000 + i))
            .await;
        if waiting > 0 {
            pending(&h, waiting as usize).await;
        }
        let start = tokio::time::Instant::now();
        running.input.send_all(0..400).await;
        for _ in 0..400 {
            running.outputs.recv().await.unwrap();
        }
        let took = start.elapsed();
        assert_eq!(h.snapshot().totals.waiting, u64::from(waiting));
        h.abort();
        took
    }
    let (alone, beside) = (pace(0).await, pace(1_000).await);
    let kept = alone.as_secs_f64() / beside.as_secs_f64();
    assert!(
        kept >= 0.9,
        "kept {:.0}% of the throughput ({alone:?} alone, {beside:?} beside 1,000 waiting)",
        kept * 100.0
    );
}

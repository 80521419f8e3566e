//! The run's progress when the output is not a terminal: plain status lines every few
//! seconds (here 50 ms) and a last one at the end, with per-stage lines (`detailed`) and
//! the failures (`full`), and never an escape code. The bars on a real terminal are
//! checked through tmux (end2end/tests/terminal.test.mjs).
#![allow(clippy::unwrap_used)]

use std::{
    io::Write,
    sync::{Arc, Mutex},
    time::Duration,
};

use flowdeck_runtime::{progress::Progress, Line, Stage};

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buf {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

fn line(progress: Progress) -> flowdeck_runtime::Pipeline<u32, u32> {
    Line::<u32>::new("docs")
        .stage(Stage::map("parse", |n: u32, _cx| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            Ok::<_, String>(n)
        }))
        .stage(
            Stage::map("enrich", |n: u32, _cx| async move {
                tokio::time::sleep(Duration::from_millis(2)).await;
                if n % 50 == 7 {
                    Err(format!("model refused {n}"))
                } else {
                    Ok(n)
                }
            })
            .workers(4)
            .classify(|_| "Refused".to_owned()),
        )
        .progress(progress)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_size_prints_counts_percent_rate_and_failures_then_the_end() {
    let out = Buf::default();
    let p = Progress::compact()
        .plain_every(Duration::from_millis(50))
        .to_writer(out.clone());
    let report = line(p).run(0..300).await;
    assert_eq!(report.outputs.len(), 294);
    // `run` returns once the display has printed its last line.
    let text = out.text();
    assert!(!text.contains('\x1b'), "no escape codes: {text:?}");
    let last = text.lines().last().unwrap();
    assert!(
        last.starts_with("docs finished: 300/300 (100%) | ") && last.contains("| 6 failed"),
        "{text}"
    );
    assert!(
        text.lines().count() >= 2,
        "a line every 50 ms, then the end: {text}"
    );
    assert!(text.lines().next().unwrap().starts_with("docs: "), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detailed_and_full_add_the_stages_and_the_failures() {
    let out = Buf::default();
    let p = Progress::full()
        .plain_every(Duration::from_secs(60))
        .to_writer(out.clone());
    let running = line(p).start();
    let h = running.handle.clone();
    drop(running.outputs);
    // Fed without a size: counts, no percentage.
    running.input.send_all(0..100).await;
    drop(running.input);
    h.wait().await;
    let mut text = String::new();
    for _ in 0..50 {
        text = out.text();
        if text.contains("finished") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(text.contains("docs finished: 100 done | "), "{text}");
    assert!(
        text.contains("\n  parse   queued      0  running    0  done      100  failed      0"),
        "{text}"
    );
    assert!(text.contains("busy 0/4"), "{text}");
    assert!(text.contains("  failures by kind: Refused 2"), "{text}");
    assert!(text.contains("  failures by stage: enrich 2"), "{text}");
}

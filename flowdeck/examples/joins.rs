//! A fan-out joined back, with a broadcast beside it, on the dashboard.
//!
//! ```sh
//! cargo run -p flowdeck --example joins
//! ```
//!
//! Each document is fetched, copied to `thumbnail` (a broadcast edge, drawn dashed) and
//! split into pages; the pages are read (`ocr`, slow for every fifth document, and failing
//! now and then) and joined back into one record per document (`assemble`, a join of
//! `split`), which `store` keeps. The graph shows the join's waiting groups; a record's
//! page lists the pages it was made from.

use std::time::Duration;

use flowdeck::{prelude::*, BuildError, Joined};

#[derive(Clone, Debug)]
struct Page {
    doc: u64,
    number: u32,
}

fn pipeline() -> Result<Pipeline<u64, String>, BuildError> {
    let mut g = Graph::<u64, String>::new("documents");
    let fetch = g.add(
        Stage::map("fetch", |doc: u64, _cx| async move {
            tokio::time::sleep(Duration::from_millis(2)).await;
            Ok::<_, String>(doc)
        })
        .workers(2),
    );
    let thumbnail = g.add(Stage::map("thumbnail", |doc: u64, _cx| async move {
        Ok::<_, String>(format!("thumbnail of {doc}"))
    }));
    let split = g.add(Stage::flat_map("split", |doc: u64, _cx| async move {
        Ok::<_, String>((1..=4).map(move |number| Page { doc, number }))
    }));
    let ocr = g.add(
        Stage::map("ocr", |page: Page, _cx| async move {
            let slow = if page.doc.is_multiple_of(5) {
                1_500
            } else {
                20
            };
            tokio::time::sleep(Duration::from_millis(slow)).await;
            if (page.doc * 4 + u64::from(page.number)).is_multiple_of(37) {
                return Err(format!(
                    "page {} of {} is unreadable",
                    page.number, page.doc
                ));
            }
            Ok::<_, String>(format!("text of page {}", page.number))
        })
        .workers(16),
    );
    let assemble = g.add_join(
        Stage::join(
            "assemble",
            |doc: u64, pages: Joined<String>, _cx| async move {
                Ok::<_, String>(format!(
                    "document {doc}: {} pages, {} missing",
                    pages.parts.len(),
                    pages.missing.len()
                ))
            },
        )
        .of(split)
        .timeout(Duration::from_secs(30), flowdeck::Partial::Emit),
    );
    let store = g.add(Stage::map("store", |record: String, _cx| async move {
        Ok::<_, String>(record)
    }));
    g.input(fetch)
        .connect(fetch, split)
        .broadcast(fetch, thumbnail);
    g.connect(split, ocr)
        .connect(ocr, assemble)
        .connect(assemble, store);
    g.output(store);
    g.build()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let running = pipeline()?.start();
    let dashboard = Dashboard::new(Config::from_env()?)
        .start_or_any_port(running.handle.clone())
        .await?;
    println!("dashboard on {}", dashboard.url());
    let input = running.input.clone();
    // Twenty documents a second until stopped.
    tokio::spawn(async move {
        for doc in 0u64.. {
            if input.send(doc).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    drop(running.outputs);
    tokio::signal::ctrl_c().await?;
    Ok(())
}

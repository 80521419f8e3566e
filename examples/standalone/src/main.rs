//! A pipeline of your own with the flowdeck dashboard and a page of your own: the code of
//! the README's "Use it in your project". Run: `cargo run --release`, then open the URL.
use flowdeck::prelude::*;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pipeline = Line::<u64>::new("orders")
        .stage(Stage::map("price", |n: u64, _cx| async move {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            Ok::<_, String>(n * 3)
        }).workers(4))
        .stage(Stage::map("ship", |n: u64, _cx| async move { if n % 7 == 0 { Err("no address") } else { Ok(n) } }))
        .build()?;
    // A widget of your own: data from a closure, a template rendered on the server.
    let backlog = Custom::new("Backlog", |cx: WidgetCx| async move {
        let t = cx.snapshot.totals;
        Ok::<_, String>(serde_json::json!({ "queued": t.queued, "done": t.completed }))
    })
    .template(r#"<p><b class="done">{{ data.done }}</b> shipped, {{ data.queued }} waiting</p>"#)
    .every(std::time::Duration::from_secs(1));
    let page = Page::new("orders", "Orders")
        .widget(Metric::new("Shipped", &builtin::tasks_completed()), (0, 0))
        .widget(Table::new("Stages", &Source::stages()).span(3, 1), (1, 0))
        .widget(backlog, (0, 1));
    pipeline.run_with(Dashboard::new(Config::from_env()?).page(page), 0..20_000).await?;
    Ok(())
}

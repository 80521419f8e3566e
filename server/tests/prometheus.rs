//! `/prometheus` over real HTTP, checked line by line against the text exposition format:
//! every sample belongs to a family announced by `# HELP` and `# TYPE` before it, names and
//! labels are well formed, values parse, counters end in `_total`, no series repeats; and
//! the numbers are the pipeline's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{collections::HashSet, time::Duration};

use common::pipeline;

fn valid_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses `{a="x",b="y"}` with the format's escapes; returns the pairs.
fn labels(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let (name, after) = rest.split_once("=\"").ok_or(format!("no =\" in {s}"))?;
        if !valid_name(name) || name.starts_with("__") {
            return Err(format!("bad label name {name:?}"));
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?} in {s}")),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => return Err(format!("unterminated value in {s}")),
            }
        };
        out.push((name.to_owned(), value));
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    Ok(out)
}

/// One sample: its name, its labels and its value.
type Sample = (String, Vec<(String, String)>, f64);

/// Checks the exposition; returns its samples.
fn parse(text: &str) -> Result<Vec<Sample>, String> {
    let mut typed: Vec<(String, String)> = Vec::new();
    let mut helped = HashSet::new();
    let mut seen = HashSet::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            if !helped.insert(name.to_owned()) {
                return Err(format!("HELP twice for {name}"));
            }
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').ok_or("TYPE without kind")?;
            if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                return Err(format!("unknown type {kind}"));
            }
            if kind == "counter" && !name.ends_with("_total") {
                return Err(format!("counter {name} does not end in _total"));
            }
            if typed.iter().any(|(n, _)| n == name) {
                return Err(format!("TYPE twice for {name}"));
            }
            typed.push((name.to_owned(), kind.to_owned()));
        } else if line.starts_with('#') || line.is_empty() {
            return Err(format!("stray line {line:?}"));
        } else {
            let (series, value) = line.rsplit_once(' ').ok_or(format!("no value: {line}"))?;
            let value: f64 = value.parse().map_err(|_| format!("bad value: {line}"))?;
            let (name, ls) = match series.split_once('{') {
                Some((n, l)) => (
                    n,
                    labels(l.strip_suffix('}').ok_or(format!("no }}: {line}"))?)?,
                ),
                None => (series, Vec::new()),
            };
            if !valid_name(name) {
                return Err(format!("bad metric name {name:?}"));
            }
            // A sample belongs to the family announced last.
            match typed.last() {
                Some((family, _)) if family == name => {}
                _ => return Err(format!("{name} outside its family")),
            }
            if !helped.contains(name) {
                return Err(format!("{name} has no HELP"));
            }
            if !seen.insert(series.to_owned()) {
                return Err(format!("series twice: {series}"));
            }
            samples.push((name.to_owned(), ls, value));
        }
    }
    Ok(samples)
}

#[test]
fn the_checker_rejects_what_the_format_forbids() {
    let ok = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\\\"\"} 3\n";
    assert_eq!(parse(ok).unwrap()[0].1[0].1, "1\"");
    for bad in [
        "a 1\n",
        "# HELP a A.\n# TYPE a counter\na 1\n",
        "# HELP a A.\n# TYPE a gauge\na{x=\"1} 1\n",
        "# HELP a A.\n# TYPE a gauge\na 1\na 2\n",
        "# HELP a A.\n# TYPE a gauge\na one\n",
    ] {
        assert!(parse(bad).is_err(), "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exposition_is_well_formed_and_counts_the_pipeline() {
    let running = pipeline(10_000);
    let handle = running.handle.clone();
    // User series too, one with a label value the format must escape.
    let store = flowdeck_runtime::metrics::MetricsStore::new();
    store
        .counter("orders", &[("shop", "east \"1\"")])
        .increment(3);
    store.gauge("queue.depth", &[]).set(4.0);
    let h = store.histogram("order_value", &[]);
    h.record(2.0);
    h.record(4.0);
    store.tick_at(1);
    let config = flowdeck_server::Config {
        refresh: Duration::from_millis(50),
        metrics: store,
        ..flowdeck_server::Config::default()
    };
    let base = common::serve_config(handle.clone(), config).await;
    let outputs = running.outputs;
    tokio::spawn(async move { while outputs.recv().await.is_ok() {} });
    running.input.send_all(0..400u64).await;
    drop(running.input);
    tokio::time::timeout(Duration::from_secs(60), handle.wait())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;

    let res = reqwest::get(format!("{base}/prometheus")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = res.text().await.unwrap();
    let samples = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let value = |name: &str, want: &[(&str, &str)]| {
        samples
            .iter()
            .find(|(n, ls, _)| {
                n == name
                    && want
                        .iter()
                        .all(|(k, v)| ls.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|s| s.2)
            .unwrap_or_else(|| panic!("no {name} {want:?} in\n{text}"))
    };
    let totals = handle.snapshot().totals;
    assert_eq!(
        value("flowdeck_items_total", &[("outcome", "submitted")]),
        400.0
    );
    assert_eq!(
        value("flowdeck_items_total", &[("outcome", "completed")]) as u64,
        totals.completed
    );
    assert_eq!(
        value("flowdeck_items_total", &[("outcome", "failed")]) as u64,
        totals.failed
    );
    assert!(totals.failed > 0);
    let stage_failed: f64 = ["a", "b", "c"]
        .iter()
        .map(|s| value("flowdeck_stage_failed_total", &[("stage", s)]))
        .sum();
    assert_eq!(stage_failed as u64, totals.failed);
    let workers: f64 = ["idle", "busy", "paused", "stopped"]
        .iter()
        .map(|st| value("flowdeck_stage_workers", &[("stage", "b"), ("state", st)]))
        .sum();
    assert_eq!(workers, 3.0);
    assert_eq!(
        value("flowdeck_pipeline_info", &[("state", "finished")]),
        1.0
    );
    assert!(value("process_resident_memory_bytes", &[]) > 1e6);
    assert_eq!(value("orders_total", &[("shop", "east \"1\"")]), 3.0);
    assert_eq!(value("queue_depth", &[]), 4.0);
    assert!(value("order_value", &[("quantile", "0.99")]) > 3.9);
}

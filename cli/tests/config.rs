//! The config file's pages, checked by the real binary before it serves: a page naming a
//! metric or a stage that does not exist, or a widget of an unknown kind, stops it with
//! exit code 2 and a message naming the page and the widget.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsStr;

/// Runs the binary with `args` (on any free port), expects it to stop before serving with
/// exit code 2 and `want` in its message; returns the message.
fn refused(args: &[&OsStr], want: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flowdeck"))
        .args(["--port", "0"])
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(want), "wanted {want:?} in:\n{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("dashboard at http"),
        "it must not have started serving:\n{stdout}"
    );
    stderr
}

#[test]
fn the_binary_stops_on_a_page_naming_a_missing_metric_or_stage() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            r#"metric = { title = "Orders", series = "orders_totl" }"#,
            r#"page "ops", widget 1 (metric "Orders"): no metric named "orders_totl""#,
        ),
        (
            r#"gauge = { title = "Queue", series = "flowdeck_stage_queued{stage=enrihc}", max = 100, warn = 50, fail = 80 }"#,
            r#"the pipeline has no stage "enrihc"; its stages are ingest, parse, enrich, store"#,
        ),
        (
            r#"chart = { title = "C", series = ["process_cpu_ratio"], range = "2m", style = "pie" }"#,
            "unknown variant `pie`",
        ),
    ];
    for (widget, want) in cases {
        let path = dir.path().join("flowdeck.toml");
        std::fs::write(
            &path,
            format!("[[pages]]\nslug = \"ops\"\ntitle = \"Ops\"\n[[pages.widgets]]\nat = [0, 0]\n{widget}\n"),
        )
        .unwrap();
        refused(&["--config".as_ref(), path.as_os_str()], want);
    }
}

/// A run store that is damaged, not a database, or cannot be opened stops the binary
/// before it serves, with the file's name and the way out, and the file is left as it was.
#[test]
fn the_binary_stops_on_a_damaged_or_unopenable_run_store_and_leaves_it_alone() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.db");
    let bytes = b"this is not a database, and it must still be here afterwards".repeat(100);
    std::fs::write(&garbage, &bytes).unwrap();
    let not_a_dir = dir.path().join("file");
    std::fs::write(&not_a_dir, b"x").unwrap();
    let unopenable = not_a_dir.join("flowdeck.db");
    let cases = [
        (garbage.clone(), "is not a flowdeck database or is damaged"),
        (unopenable.clone(), "cannot open the run store"),
    ];
    for (db, want) in cases {
        let stderr = refused(&["--db".as_ref(), db.as_os_str()], want);
        assert!(
            stderr.contains(&*db.to_string_lossy()),
            "no file name in:\n{stderr}"
        );
        assert!(stderr.contains("--db none"), "no way out in:\n{stderr}");
    }
    assert_eq!(
        std::fs::read(&garbage).unwrap(),
        bytes,
        "the damaged file was changed"
    );
}

#[test]
fn the_binary_refuses_a_retention_or_a_demo_count_out_of_range() {
    for (flag, want) in [
        (
            "--keep-days=0",
            "keep_days must be between 1 and 3650, got 0",
        ),
        (
            "--keep-mb=2000000",
            "keep_mb must be between 1 and 1048576, got 2000000",
        ),
        (
            "--demo-pipelines=0",
            "demo_pipelines must be between 1 and 100, got 0",
        ),
    ] {
        refused(&["--db".as_ref(), "none".as_ref(), flag.as_ref()], want);
    }
}

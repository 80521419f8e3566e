//! Alerts against real receivers on loopback: an HTTP server in the test that records what
//! it gets, verifies the signature as the docs tell a receiver to, and can be down or
//! answer 500. A warning that flaps is grouped; 10,000 failures make one alert; a receiver
//! down for 30 s gets the message once it is back; a secret is never shown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicU16, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use axum::{body::Bytes, http::HeaderMap, routing::post, Router};
use common::serve_config;
use flowdeck_runtime::{warnings::Thresholds, Line, Running, Stage};
use flowdeck_server::{
    alerts::{Alert, AlertEvent, Alerts, Format, On, Secret},
    Config,
};
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use serde_json::Value;
use sha2::Sha256;

const SIGNING_KEY: &str = "hunter2-signing-key-7f3a";
const URL_KEY: &str = "T000-B000-url-key-9c1e";

/// What the receiver got: each body it took (answered 200), and whether its signature
/// held; and how many requests came in all.
#[derive(Clone, Default)]
struct Received(
    Arc<Mutex<Vec<(Value, bool)>>>,
    Arc<std::sync::atomic::AtomicU64>,
);

impl Received {
    fn hits(&self) -> u64 {
        self.1.load(Ordering::SeqCst)
    }
    fn bodies(&self) -> Vec<Value> {
        self.0.lock().iter().map(|(b, _)| b.clone()).collect()
    }
    fn all_signed(&self) -> bool {
        self.0.lock().iter().all(|(_, ok)| *ok)
    }
}

/// A receiver on `addr` (a free port when 0) answering `status` (200 unless set): it
/// checks the signature the way docs/alerts.md says, with its own HMAC.
async fn receiver(addr: SocketAddr, status: Arc<AtomicU16>) -> (SocketAddr, Received) {
    let got = Received::default();
    let seen = got.clone();
    let app = Router::new().route(
        "/{*path}",
        post(move |headers: HeaderMap, body: Bytes| {
            let (seen, status) = (seen.clone(), status.clone());
            async move {
                let text = String::from_utf8(body.to_vec()).unwrap();
                let at = headers["x-flowdeck-timestamp"].to_str().unwrap();
                let mut mac = Hmac::<Sha256>::new_from_slice(SIGNING_KEY.as_bytes()).unwrap();
                mac.update(format!("{at}.{text}").as_bytes());
                let want: String = mac
                    .finalize()
                    .into_bytes()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs();
                let fresh = at.parse::<u64>().unwrap().abs_diff(now) < 300;
                let ok = fresh && headers["x-flowdeck-signature"] == format!("v1={want}").as_str();
                seen.1.fetch_add(1, Ordering::SeqCst);
                let code = status.load(Ordering::SeqCst);
                if code == 200 {
                    seen.0
                        .lock()
                        .push((serde_json::from_str(&text).unwrap(), ok));
                }
                axum::http::StatusCode::from_u16(code).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, got)
}

/// Every log line of this test binary, at every level, the HTTP client's included.
fn log() -> Arc<Mutex<Vec<u8>>> {
    static LOG: std::sync::OnceLock<Arc<Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        struct Lines(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Lines {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || Lines(sink.clone()))
            .try_init();
        buf
    })
    .clone()
}

fn alert(name: &str, to: SocketAddr, on: impl IntoIterator<Item = On>) -> Alert {
    Alert::webhook(
        name,
        Secret::new(format!("http://{to}/hooks/{URL_KEY}")),
        on,
    )
    .secret(Secret::new(SIGNING_KEY))
}

/// Events the program's own hook saw.
fn hooked(alerts: &Alerts) -> Arc<Mutex<Vec<AlertEvent>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    alerts.on_alert(move |e| s.lock().push(e.clone()));
    seen
}

async fn until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn two_stages(fail_all: bool) -> Running<u32, u32> {
    Line::<u32>::new("alerted")
        .stage(Stage::map(
            "a",
            |n: u32, _cx| async move { Ok::<_, String>(n) },
        ))
        .stage(
            Stage::map("b", move |n: u32, _cx| async move {
                if fail_all {
                    Err(format!("timeout: {n}"))
                } else {
                    Ok(n)
                }
            })
            .queue(20_000)
            .classify(|e: &String| e.split(':').next().unwrap_or_default().to_owned()),
        )
        .retention(20_000)
        .build()
        .unwrap()
        .start()
}

async fn text(url: String) -> String {
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_warning_is_grouped_signed_and_no_secret_is_shown() {
    let _log = log();
    let (to, received) = receiver(
        "127.0.0.1:0".parse().unwrap(),
        Arc::new(AtomicU16::new(200)),
    )
    .await;
    let running = two_stages(false);
    let handle = running.handle.clone();
    drop(running.outputs);
    let config = Config {
        warnings: Some(Thresholds {
            starved_ms: 0,
            grace_ms: 0,
            clear_ms: 0,
            ..Thresholds::default()
        }),
        ..Config::default()
    };
    let seen = hooked(&config.alerts);
    config
        .alerts
        .add(alert("ops", to, [On::Warnings]).throttle(Duration::from_secs(20)));
    let base = serve_config(handle.clone(), config).await;

    // Starve stage b, then feed it again: raised, cleared, three times over.
    let events = |name: &str| seen.lock().iter().filter(|e| e.event == name).count();
    for round in 1..=3 {
        handle.pause("b").unwrap();
        running.input.send_all(0..5).await;
        until("the warning raised", Duration::from_secs(60), || {
            events("warning.raised") == round
        })
        .await;
        handle.resume("b").unwrap();
        until("the warning cleared", Duration::from_secs(60), || {
            events("warning.cleared") == round
        })
        .await;
    }
    // Six events; the first went at once, what followed within the throttle was grouped.
    until("every event delivered", Duration::from_secs(90), || {
        received
            .bodies()
            .iter()
            .map(|b| b["count"].as_u64().unwrap())
            .sum::<u64>()
            == 6
    })
    .await;
    let bodies = received.bodies();
    assert!(bodies.len() < 6, "{bodies:?}");
    assert_eq!(bodies[0]["version"], 1);
    assert_eq!(bodies[0]["count"], 1);
    assert_eq!(bodies[0]["events"][0]["event"], "warning.raised");
    assert_eq!(bodies[0]["events"][0]["stage"], "b");
    assert!(bodies[0]["events"][0]["link"]
        .as_str()
        .unwrap()
        .starts_with(&base));
    assert!(
        bodies.iter().any(|b| b["count"].as_u64().unwrap() > 1),
        "{bodies:?}"
    );
    assert!(received.all_signed(), "a signature did not verify");

    // What the dashboard shows of the alert names neither the URL's key nor the secret.
    let list = text(format!("{base}/api/v1/alerts")).await;
    let alerts: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(alerts[0]["to"], format!("http://{to}/…"));
    assert_eq!(alerts[0]["signed"], true);
    assert_eq!(alerts[0]["sent"]["delivered"], bodies.len() as u64);
    for page in [
        list,
        text(format!("{base}/api/v1/alerts/deliveries")).await,
        text(format!("{base}/prometheus")).await,
        text(format!("{base}/api/v1/audit")).await,
        text(format!("{base}/")).await,
    ] {
        assert!(
            !page.contains(URL_KEY) && !page.contains(SIGNING_KEY),
            "{page}"
        );
    }
    let prom = text(format!("{base}/prometheus")).await;
    assert!(
        prom.contains(&format!(
            "flowdeck_alerts_sent_total{{alert=\"ops\",outcome=\"delivered\"}} {}",
            bodies.len()
        )),
        "{prom}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_failures_make_one_alert() {
    let _log = log();
    let (to, received) = receiver(
        "127.0.0.1:0".parse().unwrap(),
        Arc::new(AtomicU16::new(200)),
    )
    .await;
    let running = two_stages(true);
    let handle = running.handle.clone();
    drop(running.outputs);
    let config = Config::default();
    let seen = hooked(&config.alerts);
    config.alerts.add(
        alert("failures", to, Vec::new())
            .failures(100, Duration::from_secs(60), Some("b"), Some("timeout"))
            .format(Format::Json),
    );
    let _base = serve_config(handle.clone(), config).await;
    running.input.send_all(0..10_000).await;
    until("10,000 failed", Duration::from_secs(120), || {
        handle.tracker().stats().failed == 10_000
    })
    .await;
    until("the alert", Duration::from_secs(30), || {
        received.bodies().len() == 1
    })
    .await;
    // The watcher looks twice a second: a few more looks find it still over, not new.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let bodies = received.bodies();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let e = &bodies[0]["events"][0];
    assert_eq!(e["event"], "failures.over");
    assert_eq!(e["stage"], "b");
    assert_eq!(e["error_kind"], "timeout");
    assert!(e["count"].as_u64().unwrap() > 100, "{e}");
    assert!(e["link"]
        .as_str()
        .unwrap()
        .ends_with("/tasks?status=failed&stage=b&q=kind:timeout"));
    assert_eq!(
        seen.lock()
            .iter()
            .filter(|e| e.event == "failures.over")
            .count(),
        1
    );
}

/// The receiver is down (its port closed) for 30 s: the delivery is tried with backoff
/// (1, 2, 4, 8, 16 s) and arrives once it is back, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_30_seconds_gets_the_message_once_back() {
    let log = log();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let running = two_stages(false);
    let handle = running.handle.clone();
    drop(running.outputs);
    let config = Config::default();
    config.alerts.add(alert("pager", port, [On::Run]));
    let base = serve_config(handle.clone(), config).await;
    let http = reqwest::Client::new();
    let sent = http
        .post(format!("{base}/api/v1/alerts/pager/test"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 200);
    tokio::time::sleep(Duration::from_secs(30)).await;
    let (_, received) = receiver(port, Arc::new(AtomicU16::new(200))).await;
    until("the retried delivery", Duration::from_secs(60), || {
        received.bodies().len() == 1
    })
    .await;
    let deliveries: Value = http
        .get(format!("{base}/api/v1/alerts/deliveries"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let d = &deliveries[0];
    assert_eq!(d["outcome"], "delivered", "{d}");
    assert!(d["tries"].as_u64().unwrap() >= 5, "{d}");
    assert_eq!(d["event"], "test");
    assert_eq!(received.bodies()[0]["events"][0]["event"], "test");
    // No second copy: the one delivered was the last try.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(received.bodies().len(), 1);

    // Every log line so far, of every test here (a refused connection, a 500, a 400, a
    // certificate refused...), names neither the URL's key nor the secret.
    let lines = String::from_utf8_lossy(&log.lock()).into_owned();
    assert!(lines.contains("alert"), "the log was captured");
    assert!(
        !lines.contains(URL_KEY) && !lines.contains(SIGNING_KEY),
        "{lines}"
    );

    // An unknown alert is named as such.
    let none = http
        .post(format!("{base}/api/v1/alerts/nope/test"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 404);
    assert!(none.text().await.unwrap().contains("the alerts are pager"));
}

/// A 500 is tried again; a 400 is the receiver's final word.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_is_retried_and_a_400_is_not() {
    let _log = log();
    let status = Arc::new(AtomicU16::new(500));
    let (to, received) = receiver("127.0.0.1:0".parse().unwrap(), status.clone()).await;
    let running = two_stages(false);
    drop(running.outputs);
    let config = Config::default();
    config.alerts.add(
        alert("flaky", to, [On::Run])
            .retries(10, Duration::from_millis(200))
            .throttle(Duration::from_millis(1)),
    );
    let alerts = config.alerts.clone();
    let _base = serve_config(running.handle.clone(), config).await;
    assert!(alerts.test("flaky", "alerted", "http://x/".into()));
    until("two tries answered 500", Duration::from_secs(30), || {
        received.hits() >= 2
    })
    .await;
    assert!(alerts.deliveries().is_empty(), "still trying");
    status.store(200, Ordering::SeqCst);
    until("the delivery", Duration::from_secs(30), || {
        received.bodies().len() == 1
    })
    .await;
    until("its record", Duration::from_secs(10), || {
        alerts.deliveries().len() == 1
    })
    .await;
    let d = alerts.deliveries()[0].clone();
    assert!(d.tries > 1 && d.status == Some(200), "{d:?}");

    status.store(400, Ordering::SeqCst);
    assert!(alerts.test("flaky", "alerted", "http://x/".into()));
    until("the refusal recorded", Duration::from_secs(30), || {
        alerts.deliveries().len() == 2
    })
    .await;
    let d = alerts.deliveries()[0].clone();
    assert_eq!((d.tries, d.status), (1, Some(400)), "{d:?}");
}

/// A real SMTP server (aiosmtpd from PyPI, which `scripts/setup.sh` installs in
/// target/tools/smtp) that requires STARTTLS, with a certificate from a CA of the test's own
/// (trustme): the alert's mail arrives, so it went over TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_goes_through_a_real_smtp_server_over_starttls() {
    let _log = log();
    use std::io::Read;
    let python = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/tools/smtp/bin/python"
    );
    let dir = tempfile::tempdir().unwrap();
    let made = std::process::Command::new(python)
        .args(["-m", "trustme", "-q", "-i", "127.0.0.1", "-d"])
        .arg(dir.path())
        .status()
        .expect("aiosmtpd and trustme (scripts/setup.sh --test installs them)");
    assert!(made.success());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = std::process::Command::new(python)
        .args([
            "-u",
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            &format!("127.0.0.1:{port}"),
            "--tlscert",
        ])
        .arg(dir.path().join("server.pem"))
        .arg("--tlskey")
        .arg(dir.path().join("server.key"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    /// Stops the server however the test ends.
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut out = server.stdout.take().unwrap();
    let _server = Kill(server);
    let printed = Arc::new(Mutex::new(String::new()));
    let sink = printed.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    until("the SMTP server listening", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .await;

    let running = two_stages(false);
    drop(running.outputs);
    let config = Config::default();
    let smtp = flowdeck_server::alerts::Smtp::new("127.0.0.1", "flowdeck@example.com")
        .unwrap()
        .port(port)
        .ca_pem(std::fs::read(dir.path().join("client.pem")).unwrap());
    config.alerts.add(
        Alert::email(
            "mail",
            "mailto:ops@example.com, oncall@example.com",
            smtp,
            [On::Run],
        )
        .unwrap()
        .retries(3, Duration::from_millis(200)),
    );
    // The same server without its CA: the certificate is refused, and nothing is sent in
    // the clear instead.
    let untrusting = flowdeck_server::alerts::Smtp::new("127.0.0.1", "flowdeck@example.com")
        .unwrap()
        .port(port);
    config.alerts.add(
        Alert::email(
            "untrusting",
            "mailto:ops@example.com",
            untrusting,
            [On::Run],
        )
        .unwrap()
        .retries(1, Duration::from_millis(200)),
    );
    let alerts = config.alerts.clone();
    let base = serve_config(running.handle.clone(), config).await;
    assert!(alerts.test("mail", "alerted", format!("{base}/")));
    until("the mail", Duration::from_secs(30), || {
        printed.lock().contains("Sent by flowdeck")
    })
    .await;
    let mail = printed.lock().clone();
    assert!(
        mail.contains("Subject: [alerted] test: A test of the alert"),
        "{mail}"
    );
    assert!(
        mail.contains("ops@example.com") && mail.contains("oncall@example.com"),
        "{mail}"
    );
    assert!(mail.contains(&format!("{base}/")), "the link: {mail}");
    until("its record", Duration::from_secs(10), || {
        alerts.deliveries().len() == 1
    })
    .await;
    let d = alerts.deliveries()[0].clone();
    assert_eq!(
        d.outcome,
        flowdeck_server::alerts::Outcome::Delivered,
        "{d:?}"
    );
    assert!(alerts.test("untrusting", "alerted", format!("{base}/")));
    until("the refusal", Duration::from_secs(30), || {
        alerts.deliveries().len() == 2
    })
    .await;
    let refused = alerts.deliveries()[0].clone();
    assert_eq!(refused.alert, "untrusting");
    assert_eq!(
        refused.outcome,
        flowdeck_server::alerts::Outcome::Failed,
        "{refused:?}"
    );
    assert!(
        refused
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("certificate"),
        "{refused:?}"
    );
    assert_eq!(printed.lock().matches("Sent by flowdeck").count(), 1);
    let shown: Value = serde_json::from_str(&text(format!("{base}/api/v1/alerts")).await).unwrap();
    assert_eq!(shown[0]["to"], "mailto:…@example.com,…@example.com");
    assert_eq!(shown[0]["format"], "email");
}

/// What an alert delivered is kept in the run store: a dashboard restarted on the same
/// file shows it in the API and on the Alerts page, before it has sent anything itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_outlive_a_restart_in_the_run_store() {
    let _log = log();
    let db = tempfile::tempdir().unwrap();
    // The file is the process's alone: opened again once the last handle on it is gone (as
    // a restarted process would), which takes the alerts' delivery task a moment.
    let open = || async {
        let start = Instant::now();
        loop {
            match flowdeck_store::Store::open(flowdeck_store::StoreConfig::new(
                db.path().join("runs.db"),
            )) {
                Ok(store) => return store,
                Err(flowdeck_store::StoreError::InUse { .. })
                    if start.elapsed() < Duration::from_secs(30) =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("the store opens: {e}"),
            }
        }
    };
    let (to, received) = receiver(
        "127.0.0.1:0".parse().unwrap(),
        Arc::new(AtomicU16::new(200)),
    )
    .await;
    let make = |store: flowdeck_store::Store| {
        let alerts = Alerts::default();
        alerts.add(alert("kept", to, [On::Run]));
        alerts.keep_in(store);
        alerts
    };

    let first = open().await;
    let alerts = make(first.clone());
    assert!(alerts.test("kept", "alerted", "http://x/".into()));
    until("the delivery", Duration::from_secs(30), || {
        received.bodies().len() == 1 && alerts.deliveries().len() == 1
    })
    .await;
    first.flush();
    drop((first, alerts));

    // The restarted dashboard: a new store handle on the file, new alerts, nothing sent.
    let running = two_stages(false);
    drop(running.outputs);
    let config = Config {
        alerts: make(open().await),
        ..Config::default()
    };
    let base = serve_config(running.handle.clone(), config).await;
    let listed: Value = serde_json::from_str(&text(format!("{base}/api/v1/alerts")).await).unwrap();
    let last = &listed[0]["last"];
    assert_eq!(last.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(last[0]["event"], "test");
    assert_eq!(last[0]["outcome"], "delivered");
    assert_eq!(last[0]["status"], 200);
    assert_eq!(
        listed[0]["sent"]["delivered"], 0,
        "counts are this process's"
    );
    let page = text(format!("{base}/alerts")).await;
    assert!(page.contains(r#"data-testid="alert-kept""#), "{page}");
    assert!(page.contains(r#"<tr data-outcome="delivered">"#), "{page}");
    assert!(!page.contains(URL_KEY) && !page.contains(SIGNING_KEY));
}

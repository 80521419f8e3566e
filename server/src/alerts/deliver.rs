//! One alert's delivery: a bounded queue in front (full, it drops and counts, so that
//! nothing upstream ever waits), a task that groups what comes within the throttle
//! window after a message into the next one, and each message's tries with backoff.

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use parking_lot::Mutex;
use tokio::{sync::mpsc, time::Instant};

use super::{payload, sign, Alert, AlertEvent, Delivery, Outcome, Sent, MAX_BACKOFF, QUEUE};

/// Deliveries each alert keeps for the API.
const KEPT: usize = 100;
/// How long one try may take.
const TRY_TIMEOUT: Duration = Duration::from_secs(10);

/// An alert's queue and its record.
#[derive(Clone)]
pub(crate) struct Handle {
    pub alert: Arc<Alert>,
    tx: mpsc::Sender<AlertEvent>,
    record: Arc<Record>,
}

#[derive(Default)]
struct Record {
    dropped: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
    kept: Mutex<VecDeque<Delivery>>,
}

impl Handle {
    /// Queues `event`, or drops and counts it when the queue is full.
    pub fn offer(&self, event: AlertEvent) {
        if self.tx.try_send(event).is_err() {
            self.record.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sent, dropped, and the deliveries kept (newest first).
    pub fn record(&self) -> (Sent, u64, Vec<Delivery>) {
        let r = &self.record;
        (
            Sent {
                delivered: r.delivered.load(Ordering::Relaxed),
                failed: r.failed.load(Ordering::Relaxed),
            },
            r.dropped.load(Ordering::Relaxed),
            r.kept.lock().iter().rev().cloned().collect(),
        )
    }
}

/// Starts `alert`'s delivery task. With a run store, its record starts from the
/// deliveries kept there (a restarted dashboard shows what was sent before), and each new
/// one is kept there too.
pub(crate) fn start(alert: Arc<Alert>, store: Option<flowdeck_store::Store>) -> Handle {
    let (tx, rx) = mpsc::channel(QUEUE);
    let record = Arc::new(Record::default());
    if let Some(store) = &store {
        match store.alert_deliveries(&alert.name, KEPT) {
            Ok(kept) => record.kept.lock().extend(kept.into_iter().rev()),
            Err(e) => tracing::warn!(
                alert = alert.name,
                "the alert's past deliveries could not be read: {e}"
            ),
        }
    }
    tokio::spawn(run(alert.clone(), rx, record.clone(), store));
    Handle { alert, tx, record }
}

async fn run(
    alert: Arc<Alert>,
    mut rx: mpsc::Receiver<AlertEvent>,
    record: Arc<Record>,
    store: Option<flowdeck_store::Store>,
) {
    let client = match reqwest::Client::builder()
        .timeout(TRY_TIMEOUT)
        .user_agent(concat!("flowdeck/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(
                alert = alert.name,
                "alerts cannot send: {}",
                e.without_url()
            );
            return;
        }
    };
    let mail = match &alert.smtp {
        Some((smtp, _)) => match smtp.transport() {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::error!(alert = alert.name, "alerts cannot send mail: {e}");
                return;
            }
        },
        None => None,
    };
    // Until then, what comes is grouped into the next message.
    let mut quiet_until = Instant::now();
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        let mut total = 1u64;
        if Instant::now() < quiet_until {
            let window = tokio::time::sleep_until(quiet_until);
            tokio::pin!(window);
            loop {
                tokio::select! {
                    next = rx.recv() => match next {
                        Some(e) => {
                            total += 1;
                            // The message names the first ones and counts them all.
                            if group.len() < payload::NAMED {
                                group.push(e);
                            }
                        }
                        None => break,
                    },
                    () = &mut window => break,
                }
            }
        }
        let delivery = send(&client, mail.as_ref(), &alert, &group, total).await;
        match delivery.outcome {
            Outcome::Delivered => record.delivered.fetch_add(1, Ordering::Relaxed),
            Outcome::Failed => {
                tracing::warn!(
                    alert = alert.name,
                    tries = delivery.tries,
                    status = delivery.status,
                    "an alert was not delivered: {}",
                    delivery.error.as_deref().unwrap_or("refused")
                );
                record.failed.fetch_add(1, Ordering::Relaxed)
            }
        };
        if let Some(store) = &store {
            store.alert_delivery(delivery.clone());
        }
        let mut kept = record.kept.lock();
        if kept.len() == KEPT {
            kept.pop_front();
        }
        kept.push_back(delivery);
        drop(kept);
        quiet_until = Instant::now() + alert.throttle;
    }
}

/// Sends one message for `group`, trying again with backoff on a 5xx, a 408 or 429, a
/// refused connection or a time-out; a 4xx otherwise is the receiver's final word.
async fn send(
    client: &reqwest::Client,
    mail: Option<&lettre::AsyncSmtpTransport<lettre::Tokio1Executor>>,
    alert: &Alert,
    group: &[AlertEvent],
    total: u64,
) -> Delivery {
    let body = payload::body(alert, group, total);
    let mut wait = alert.backoff;
    let mut tries = 0;
    let (outcome, status, error) = loop {
        tries += 1;
        if let (Some(transport), Some((smtp, to))) = (mail, &alert.smtp) {
            let (error, again) =
                match super::email::send(transport, smtp, to, &alert.name, group, total).await {
                    super::email::Sent::Yes => break (Outcome::Delivered, None, None),
                    super::email::Sent::Again(e) => (Some(e), true),
                    super::email::Sent::Never(e) => (Some(e), false),
                };
            if !again || tries >= alert.tries {
                break (Outcome::Failed, None, error);
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(MAX_BACKOFF);
            continue;
        }
        let mut request = client
            .post(alert.to.expose())
            .header("content-type", "application/json");
        if let Some(secret) = &alert.secret {
            let at = super::watch::now_ms() / 1000;
            request = request
                .header(sign::TIMESTAMP, at.to_string())
                .header(sign::SIGNATURE, sign::signature(secret.expose(), at, &body));
        }
        let (status, error, again) = match request.body(body.clone()).send().await {
            Ok(r) => {
                let code = r.status();
                if code.is_success() {
                    break (Outcome::Delivered, Some(code.as_u16()), None);
                }
                let again = code.is_server_error() || code.as_u16() == 408 || code.as_u16() == 429;
                (Some(code.as_u16()), None, again)
            }
            // Without the URL: for Slack and Discord it is the key.
            Err(e) => (None, Some(said(e)), true),
        };
        if !again || tries >= alert.tries {
            break (Outcome::Failed, status, error);
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(MAX_BACKOFF);
    };
    Delivery {
        alert: alert.name.clone(),
        at_unix_ms: super::watch::now_ms(),
        event: group[0].event.clone(),
        events: total,
        outcome,
        status,
        error,
        tries,
    }
}

/// A failed request in words, with its causes ("error sending request: client error
/// (Connect): tcp connect error: Connection refused"), and without the URL.
fn said(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

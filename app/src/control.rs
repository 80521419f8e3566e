//! Control buttons: they call the JSON control API (`/api/v1/...`) and show its refusal,
//! if any. Hidden on a readonly dashboard.

use leptos::prelude::*;

use crate::live::use_live;

/// The last control action's error, shown under the page heading until the next action,
/// and a count of actions sent (the audit log reloads when it moves).
#[derive(Clone, Copy)]
pub(crate) struct ControlStatus(pub RwSignal<Option<String>>, RwSignal<u64>);

pub(crate) fn provide() {
    provide_context(ControlStatus(RwSignal::new(None), RwSignal::new(0)));
}

/// Sends one control request; answers the body, or the API's message.
#[cfg(feature = "hydrate")]
pub(crate) async fn post(path: &str, body: &str, csrf: Option<String>) -> Result<String, String> {
    let mut request =
        gloo_net::http::Request::post(path).header("content-type", "application/json");
    if let Some(token) = csrf {
        request = request.header("x-csrf-token", &token);
    }
    let request = request.body(body.to_owned()).map_err(|e| e.to_string())?;
    let response = request.send().await.map_err(|e| e.to_string())?;
    if response.ok() {
        return Ok(response.text().await.unwrap_or_default());
    }
    /// The API's error body; only the message is shown.
    #[derive(serde::Deserialize)]
    struct Refusal {
        message: String,
    }
    let text = response.text().await.unwrap_or_default();
    Err(serde_json::from_str::<Refusal>(&text).map_or(text, |r| r.message))
}

#[cfg(not(feature = "hydrate"))]
pub(crate) async fn post(
    _path: &str,
    _body: &str,
    _csrf: Option<String>,
) -> Result<String, String> {
    Err("controls work in the browser".to_owned())
}

/// Fires a control request from a click.
pub(crate) fn send(path: String, body: String) {
    let ControlStatus(status, sent) = expect_context::<ControlStatus>();
    let csrf = untrack(|| use_live().viewer().csrf);
    leptos::task::spawn_local(async move {
        status.set(post(&crate::scope::href(&path), &body, csrf).await.err());
        sent.update(|n| *n += 1);
    });
}

/// Restarts a worker stuck on an attempt: the attempt fails ("restarted by" whoever
/// clicked) and the stage's retry policy takes it from there.
#[component]
pub(crate) fn RestartWorker(stage: String, worker: u16) -> impl IntoView {
    let path = format!("/api/v1/stages/{stage}/workers/{worker}/restart");
    view! {
        <button
            class="btn"
            data-testid=format!("restart-{stage}-{worker}")
            on:click=move |_| send(path.clone(), "{}".to_owned())
        >
            "Restart"
        </button>
    }
}

/// Pause/resume and scale buttons for one stage (shown only to those who may control).
#[component]
pub(crate) fn StageControls(stage: String, paused: bool, workers: usize) -> impl IntoView {
    let (pause_path, scale_path) = (
        format!(
            "/api/v1/stages/{stage}/{}",
            if paused { "resume" } else { "pause" }
        ),
        format!("/api/v1/stages/{stage}/workers"),
    );
    let scale_down = scale_path.clone();
    view! {
        <span class="controls">
                <button
                    class="btn"
                    data-testid=format!("pause-{stage}")
                    on:click={
                        let path = pause_path.clone();
                        move |_| send(path.clone(), "{}".to_owned())
                    }
                >
                    {if paused { "Resume" } else { "Pause" }}
                </button>
                <button
                    class="btn"
                    aria-label=format!("One worker less for {stage}")
                    disabled=workers <= 1
                    on:click={
                        let path = scale_down.clone();
                        move |_| send(path.clone(), format!(r#"{{"workers":{}}}"#, workers.saturating_sub(1)))
                    }
                >
                    "−"
                </button>
                <button
                    class="btn"
                    aria-label=format!("One worker more for {stage}")
                    data-testid=format!("scale-up-{stage}")
                    on:click={
                        let path = scale_path.clone();
                        move |_| send(path.clone(), format!(r#"{{"workers":{}}}"#, workers + 1))
                    }
                >
                    "+"
                </button>
        </span>
    }
}

/// How many control actions this page has sent: what shows their effect reloads on it.
pub(crate) fn actions_sent() -> u64 {
    expect_context::<ControlStatus>().1.get()
}

/// Retry for a failed item, cancel for one still in the pipeline; nothing for the rest or
/// for those who may not control.
#[component]
pub(crate) fn TaskControls(
    id: u64,
    status: flowdeck_protocol::ItemStatus,
    /// `Some(false)`: a failure whose input is gone, which cannot be retried.
    retryable: Option<bool>,
) -> impl IntoView {
    use flowdeck_protocol::ItemStatus as S;
    let live = use_live();
    let (action, label) = match status {
        S::Failed if retryable == Some(false) => return None,
        S::Failed => ("retry", "Retry"),
        S::Queued | S::Running | S::Retrying | S::Waiting => ("cancel", "Cancel"),
        S::Completed | S::Cancelled => return None,
    };
    let path = format!("/api/v1/tasks/{id}/{action}");
    Some(view! {
        <Show when=move || !live.readonly()>
            <button class="btn" data-testid=format!("task-{action}") on:click={
                let path = path.clone();
                move |_| send(path.clone(), "{}".to_owned())
            }>{label}</button>
        </Show>
    })
}

/// Drain (finish what is queued, take no more) and stop (cancel everything) for the whole
/// pipeline, each asking for confirmation first.
#[component]
pub(crate) fn PipelineControls() -> impl IntoView {
    let live = use_live();
    let ask = |question: &'static str, path: &'static str| {
        move |_| {
            #[cfg(feature = "hydrate")]
            if !window().confirm_with_message(question).unwrap_or(false) {
                return;
            }
            #[cfg(not(feature = "hydrate"))]
            let _ = question;
            send(path.to_owned(), "{}".to_owned());
        }
    };
    view! {
        <Show when=move || !live.readonly()>
            <span class="controls">
                <button class="btn" data-testid="pipeline-drain"
                    on:click=ask("Drain the pipeline? It finishes what is queued and takes no more input.", "/api/v1/pipeline/drain")>
                    "Drain"
                </button>
                <button class="btn danger" data-testid="pipeline-stop"
                    on:click=ask("Stop the pipeline now? Queued and running items are cancelled.", "/api/v1/pipeline/stop")>
                    "Stop"
                </button>
            </span>
        </Show>
    }
}

/// The last refusal, if any.
#[component]
pub(crate) fn ControlError() -> impl IntoView {
    let status = expect_context::<ControlStatus>().0;
    move || {
        status.get().map(|e| {
            view! { <p class="error" role="alert" data-testid="control-error">{e}</p> }
        })
    }
}

/// The audit log: who did what, when, and whether it was allowed. Reloads after each
/// action from this page and every 20 frames of the stream (for others' actions).
#[component]
pub(crate) fn AuditLog() -> impl IntoView {
    let live = use_live();
    let ControlStatus(_, sent) = expect_context::<ControlStatus>();
    let entries = Resource::new(
        move || (sent.get(), live.received.get() / 20),
        |_| crate::fetch::fetch_audit(),
    );
    view! {
        <section class="audit">
            <h2>"Control log"</h2>
            <Suspense fallback=|| ()>
                {move || entries.get().map(|r| match r {
                    Ok(list) if list.is_empty() => view! { <p class="muted">"No control actions yet."</p> }.into_any(),
                    Ok(list) => view! {
                        <table class="grid" data-testid="audit">
                            <crate::pages::Columns names=["When", "Who", "Action", "Target", "Outcome"]/>
                            <tbody>
                                {list.into_iter().take(50).map(|e| {
                                    let outcome = if e.outcome == "ok" { "ok" } else { "refused" };
                                    view! {
                                    <tr data-outcome=outcome>
                                        <td>{crate::format::clock(e.at_unix_ms)}</td>
                                        <td>{e.user}</td>
                                        <td>{e.action}</td>
                                        <td>{e.target}</td>
                                        <td>{e.outcome}</td>
                                    </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any(),
                    Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                })}
            </Suspense>
        </section>
    }
}

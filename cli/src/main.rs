//! `flowdeck`: with no arguments, runs the demo pipeline and serves its dashboard on
//! http://127.0.0.1:3000. `flowdeck --help` lists the settings; each has an environment
//! variable, and `--config` reads them (and the users) from a TOML file.

use std::{
    io::{IsTerminal, Read},
    net::IpAddr,
    path::PathBuf,
    process::ExitCode,
    sync::Arc,
    time::Duration,
};

use clap::{Args, Parser, Subcommand};
use flowdeck_protocol::metrics::Kind;
use flowdeck_runtime::{logs::LogBuffer, metrics::MetricsStore};
use flowdeck_server::{
    auth::{self, Auth},
    console::Console,
    dashboard::{Dashboard, DashboardError},
    settings::FileConfig,
};
use tracing_subscriber::prelude::*;

/// flowdeck: a pipeline runtime with a live browser dashboard.
///
/// With no subcommand, runs the demo pipeline and serves its dashboard (like `serve`).
/// Settings come from flags, then environment variables, then the config file, then the
/// defaults shown.
#[derive(Parser, Debug)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
    /// Print logs on the terminal too: -v warnings, -vv info, -vvv debug. They are always
    /// on the dashboard's Logs page. RUST_LOG, when set, chooses instead.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the demo pipeline and serve its dashboard.
    Serve(ServeArgs),
    /// Print an argon2 hash of a password, for `password_hash` in the config's
    /// [[auth.users]]. Reads the password from the terminal (twice, not echoed) or from
    /// standard input.
    HashPassword,
    /// Print a new API token (give it to the script) and its SHA-256 (put it in the
    /// config's [[auth.tokens]]).
    NewToken,
    /// Watch a running dashboard live in the terminal: overview, stages and workers,
    /// tasks (filter by status, stage and text), errors, and any task's detail and
    /// provenance. Press ? for the keys.
    Top(TopArgs),
    /// Answer a question a stage asked (the Questions page lists them, with their ids):
    /// `flowdeck answer URL ID CHOICE [--data JSON]`. Prints the question as it closed;
    /// exits 1 with the server's reason (the field it names, who answered first) when
    /// the answer is refused.
    Answer(AnswerArgs),
}

#[derive(Args, Debug, Clone)]
struct AnswerArgs {
    /// The dashboard's address.
    url: String,
    /// The question's id.
    id: u64,
    /// One of the question's options (`submit` for a question with only a form).
    choice: String,
    /// The form's fields as a JSON object: `--data '{"title": "Fixed", "score": 4}'`.
    #[arg(long, value_name = "JSON")]
    data: Option<String>,
    /// An API token, for a dashboard with sign-in (flowdeck new-token makes one).
    #[arg(long, env = "FLOWDECK_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

#[derive(Args, Debug, Clone)]
struct TopArgs {
    /// The dashboard's address.
    #[arg(default_value = "http://127.0.0.1:3000")]
    url: String,
    /// An API token, for a dashboard with sign-in (flowdeck new-token makes one).
    #[arg(long, env = "FLOWDECK_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Open a finished run from the run store (its id on the Runs page) instead of the
    /// live pipeline.
    #[arg(long, value_name = "ID")]
    run: Option<i64>,
    /// Colours: dark or light. NO_COLOR or TERM=dumb turns them off.
    #[arg(long, value_parser = ["dark", "light"])]
    theme: Option<String>,
    /// How often the screen is redrawn, in milliseconds (50 to 10000).
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u64).range(50..=10_000))]
    refresh_ms: u64,
}

#[derive(Args, Debug, Clone)]
struct ServeArgs {
    /// A TOML config file: these settings, plus users and tokens under [auth] (which turns
    /// sign-in on).
    #[arg(long, env = "FLOWDECK_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to bind [default: 127.0.0.1]. Keep loopback unless the dashboard must be
    /// reachable from other machines, and then turn on sign-in.
    #[arg(long, env = "FLOWDECK_HOST")]
    host: Option<IpAddr>,
    /// Port to bind [default: 3000]; 0 picks a free one (the URL printed at start tells
    /// which).
    #[arg(long, env = "FLOWDECK_PORT")]
    port: Option<u16>,
    /// How often the live view updates, in milliseconds, 50 to 10000 [default: 250].
    #[arg(long, env = "FLOWDECK_REFRESH_MS")]
    refresh_ms: Option<u64>,
    /// Documents per second the demo pipeline ingests, 1 to 1000000 [default: 60].
    #[arg(long, env = "FLOWDECK_DEMO_RATE")]
    demo_rate: Option<u32>,
    /// Scales the demo's simulated work, 0 to 100 [default: 1]: 1 is realistic, 0 makes
    /// every task instant (for load tests: `--demo-rate 5000 --demo-latency 0` makes about
    /// 90,000 events a second).
    #[arg(long, env = "FLOWDECK_DEMO_LATENCY")]
    demo_latency: Option<f64>,
    /// One demo record in this many goes to a reviewer (the Questions page) before it is
    /// stored; 0 asks about none [default: 300].
    #[arg(long, env = "FLOWDECK_DEMO_REVIEW_EVERY")]
    demo_review_every: Option<u32>,
    /// Seconds a demo review waits for an answer before the record is published, 1 to
    /// 86400 [default: 120].
    #[arg(long, env = "FLOWDECK_DEMO_REVIEW_AFTER_SECS")]
    demo_review_after_secs: Option<u64>,
    /// How many demo pipelines to serve, 1 to 100 [default: 1]: with more than one, `/`
    /// lists them and each has its pages under `/p/{name}/`.
    #[arg(long, env = "FLOWDECK_DEMO_PIPELINES")]
    demo_pipelines: Option<u32>,
    /// Run no demo: serve the run store and the pipelines of other processes that report
    /// here (`report_to`), listed at `/`. Needs --ingest-token.
    #[arg(long)]
    no_demo: bool,
    /// The token reporting pipelines send (`Authorization: Bearer ...`); without it the
    /// dashboard takes no reports.
    #[arg(long, env = "FLOWDECK_INGEST_TOKEN", hide_env_values = true)]
    ingest_token: Option<String>,
    /// Seconds a reporting pipeline may stay silent before its run is marked aborted, with
    /// a warning saying why, 1 to 3600 [default: 15].
    #[arg(long, env = "FLOWDECK_REPORTER_TIMEOUT_SECS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    reporter_timeout_secs: Option<u64>,
    /// On SIGTERM or ctrl-c, seconds the pipeline may take to finish its queued items
    /// before the rest is cancelled, 0 to 3600 [default: 30].
    #[arg(long, env = "FLOWDECK_DRAIN_TIMEOUT_SECS")]
    drain_timeout_secs: Option<u64>,
    /// The dashboard's theme for browsers that have not picked one with the toggle: system,
    /// light or dark [default: system].
    #[arg(long, env = "FLOWDECK_THEME")]
    theme: Option<flowdeck_app::theme::Theme>,
    /// A host name the dashboard is reached by besides loopback names and IP addresses
    /// (repeat it, or separate names with commas; `*.example.com` takes subdomains).
    /// Requests naming any other host are refused: the guard against DNS rebinding.
    #[arg(
        long = "allowed-host",
        env = "FLOWDECK_ALLOWED_HOSTS",
        value_delimiter = ',',
        value_name = "HOST"
    )]
    allowed_hosts: Vec<String>,
    /// The run store: a SQLite file that keeps runs, their items and errors across restarts
    /// and crashes, or `none` to keep everything in memory only
    /// [default: flowdeck.db in $XDG_DATA_HOME/flowdeck or ~/.local/share/flowdeck].
    #[arg(long, env = "FLOWDECK_DB", value_name = "PATH|none")]
    db: Option<String>,
    /// How many days the run store keeps runs, metrics, warnings and the audit log,
    /// 1 to 3650 [default: 30].
    #[arg(long, env = "FLOWDECK_KEEP_DAYS")]
    keep_days: Option<u64>,
    /// The size in MB the run store deletes its oldest runs to stay under, 1 to 1048576
    /// [default: 1024].
    #[arg(long, env = "FLOWDECK_KEEP_MB")]
    keep_mb: Option<u64>,
    /// Show the pipeline but refuse every control action (pause, scale, retry, cancel,
    /// drain, stop) with 403, and hide the buttons.
    #[arg(long, env = "FLOWDECK_READONLY")]
    readonly: bool,
}

/// The settings to serve with, or the message that says which one is wrong.
struct Serve {
    config: flowdeck_server::Config,
    demo_rate: u32,
    demo_latency: f64,
    demo_pipelines: u32,
    demo_review: flowdeck_server::demo::Review,
    /// The config file's pages and the series they may name.
    pages: Vec<flowdeck_protocol::page::PageSpec>,
    declared: Vec<(String, flowdeck_protocol::metrics::Kind)>,
}

fn in_range<T: PartialOrd + std::fmt::Display>(
    name: &str,
    v: T,
    lo: T,
    hi: T,
) -> Result<T, String> {
    if v < lo || v > hi {
        return Err(format!("{name} must be between {lo} and {hi}, got {v}"));
    }
    Ok(v)
}

fn settings(args: ServeArgs) -> Result<Serve, String> {
    let file = match &args.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let host = args.host.or(file.host).unwrap_or([127, 0, 0, 1].into());
    let port = args.port.or(file.port).unwrap_or(3000);
    let refresh_ms = in_range(
        "refresh_ms",
        args.refresh_ms.or(file.refresh_ms).unwrap_or(250),
        50,
        10_000,
    )?;
    let demo_rate = in_range(
        "demo_rate",
        args.demo_rate.or(file.demo_rate).unwrap_or(60),
        1,
        1_000_000,
    )?;
    let demo_latency = in_range(
        "demo_latency",
        args.demo_latency.or(file.demo_latency).unwrap_or(1.0),
        0.0,
        100.0,
    )?;
    let demo_pipelines = in_range("demo_pipelines", args.demo_pipelines.unwrap_or(1), 1, 100)?;
    let demo_review = flowdeck_server::demo::Review {
        every: args.demo_review_every.unwrap_or(300),
        after: Duration::from_secs(in_range(
            "demo_review_after_secs",
            args.demo_review_after_secs.unwrap_or(120),
            1,
            86_400,
        )?),
    };
    if args.no_demo && args.ingest_token.is_none() {
        return Err("--no-demo serves the pipelines that report here: give it --ingest-token (or FLOWDECK_INGEST_TOKEN) for them to send".into());
    }
    if let Some(t) = &args.ingest_token {
        if t.len() < 16 {
            return Err("the ingest token must be at least 16 characters".into());
        }
    }
    let drain = in_range(
        "drain_timeout_secs",
        args.drain_timeout_secs
            .or(file.drain_timeout_secs)
            .unwrap_or(30),
        0,
        3600,
    )?;
    let branding = file.branding()?;
    let cors_origins = file.cors_origins.unwrap_or_default();
    flowdeck_server::cors_layer(&cors_origins)?;
    let allowed_hosts = if args.allowed_hosts.is_empty() {
        file.allowed_hosts.unwrap_or_default()
    } else {
        args.allowed_hosts
    };
    let allowed_hosts = flowdeck_server::origin::AllowedHosts::new(allowed_hosts)?;
    let mut store = match args.db.as_deref().or(file.db.as_deref()).map(str::trim) {
        Some("none") => None,
        Some("") => return Err("db must be a path or none".into()),
        Some(path) => Some(flowdeck_store::StoreConfig::new(path)),
        None => Some(flowdeck_store::StoreConfig::new(
            flowdeck_store::StoreConfig::default_path()
                .ok_or("no home directory for the run store: give --db PATH, or --db none")?,
        )),
    };
    let keep_days = in_range(
        "keep_days",
        args.keep_days.or(file.keep_days).unwrap_or(30),
        1,
        3650,
    )?;
    let keep_mb = in_range(
        "keep_mb",
        args.keep_mb.or(file.keep_mb).unwrap_or(1024),
        1,
        1 << 20,
    )?;
    if let Some(store) = store.as_mut() {
        store.retention = flowdeck_store::Retention {
            max_age: Duration::from_secs(keep_days * 24 * 3600),
            max_bytes: keep_mb << 20,
        };
    }
    if let Some(t) = &file.warnings {
        t.validate()?;
    }
    let alerts = flowdeck_server::alerts::Alerts::default();
    for a in file.alerts {
        alerts.add(flowdeck_server::alerts::Alert::from_file(a)?);
    }
    let auth = match file.auth {
        Some(a) => Some(Arc::new(Auth::new(a).map_err(|e| e.to_string())?)),
        None => None,
    };
    Ok(Serve {
        config: flowdeck_server::Config {
            addr: (host, port).into(),
            refresh: Duration::from_millis(refresh_ms),
            readonly: args.readonly || file.readonly.unwrap_or(false),
            auth,
            drain_timeout: Duration::from_secs(drain),
            theme: args.theme.or(file.theme).unwrap_or_default(),
            cors_origins,
            allowed_hosts,
            branding,
            store,
            warnings: file.warnings,
            ingest_token: args.ingest_token.clone(),
            standalone: args.no_demo,
            reporter_timeout: Duration::from_secs(args.reporter_timeout_secs.unwrap_or(15)),
            alerts,
            ..flowdeck_server::Config::default()
        },
        demo_rate,
        demo_latency,
        demo_pipelines,
        demo_review,
        pages: file.pages,
        declared: file.metrics.unwrap_or_default().into_iter().collect(),
    })
}

async fn serve(
    args: ServeArgs,
    metrics: MetricsStore,
    logs: LogBuffer,
    console: Console,
) -> ExitCode {
    let mut s = match settings(args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("flowdeck: {e}");
            return ExitCode::from(2);
        }
    };
    s.config.metrics = metrics;
    s.config.logs = logs;
    s.config.console = Some(console.clone());
    if !flowdeck_server::site_embedded() {
        tracing::warn!("this build carries no site: pages render but will not hydrate (build with scripts/build.sh)");
    }
    if s.config.auth.is_none() && !s.config.addr.ip().is_loopback() {
        let warning = format!("warning: serving on {} with sign-in off: anyone who reaches this address can control the pipeline", s.config.addr);
        console.line(&warning);
        tracing::warn!("{warning}");
    }
    let standalone = s.config.standalone;
    let pipeline = if standalone {
        // Nothing of its own to serve: a placeholder the server neither lists nor records.
        flowdeck_runtime::mirror("standalone".into(), Vec::new(), Vec::new(), 0).0
    } else {
        flowdeck_server::demo::start_with(
            flowdeck_server::demo::NAME,
            s.demo_rate,
            s.demo_latency,
            s.demo_review,
        )
    };
    let demo_pipelines = if standalone { 1 } else { s.demo_pipelines };
    let mut dash = Dashboard::new(s.config);
    for n in 2..=demo_pipelines {
        let name = format!("{} {n}", flowdeck_server::demo::NAME);
        dash = dash.pipeline(flowdeck_server::demo::start_with(
            &name,
            s.demo_rate,
            s.demo_latency,
            s.demo_review,
        ));
    }
    for (name, kind) in &s.declared {
        match kind {
            Kind::Counter => dash.counter(name),
            Kind::Gauge => dash.gauge(name),
            Kind::Histogram => dash.histogram(name),
        };
    }
    if !standalone {
        let demo_page = flowdeck_server::demo::page(&mut dash);
        dash = dash.page(demo_page);
    }
    match dash.pages(s.pages).serve(pipeline).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ (DashboardError::Page(_) | DashboardError::Store(_))) => {
            eprintln!("flowdeck: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("flowdeck: {e}");
            ExitCode::FAILURE
        }
    }
}

fn read_password() -> Result<String, String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").map_err(|e| e.to_string())?;
        let again = rpassword::prompt_password("Again: ").map_err(|e| e.to_string())?;
        if first != again {
            return Err("the passwords differ".into());
        }
        return Ok(first);
    }
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| format!("cannot read standard input: {e}"))?;
    Ok(input.trim_end_matches(['\r', '\n']).to_owned())
}

fn hash_password() -> ExitCode {
    let hashed = read_password().and_then(|p| {
        if p.is_empty() {
            Err("the password is empty".to_owned())
        } else {
            auth::hash_password(&p)
        }
    });
    match hashed {
        Ok(h) => {
            println!("{h}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("flowdeck hash-password: {e}");
            ExitCode::from(2)
        }
    }
}

fn new_token() -> ExitCode {
    let (token, digest) = auth::new_token();
    println!("token:  {token}");
    println!("sha256: {digest}");
    eprintln!("Give the token to the script (Authorization: Bearer <token>); put only the sha256 in the config under [[auth.tokens]].");
    ExitCode::SUCCESS
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The monitor owns the terminal: no log line may be printed over it.
    if let Some(Command::Top(args)) = cli.command {
        return top(args).await;
    }
    if let Some(Command::Answer(args)) = cli.command {
        return answer(args).await;
    }
    // Logs go into the buffer the Logs page reads and, when asked, to the terminal through
    // the console's writer, which never blocks; `metrics` calls go into the store the
    // charts read.
    let logs = LogBuffer::new(flowdeck_server::LOG_RECORDS);
    let metrics = MetricsStore::new();
    let (console, _guard) = Console::stdout();
    let terminal = match (std::env::var("RUST_LOG"), cli.verbose) {
        (Ok(spec), _) => tracing_subscriber::EnvFilter::new(spec),
        (Err(_), 0) => tracing_subscriber::EnvFilter::new("error"),
        (Err(_), 1) => tracing_subscriber::EnvFilter::new("warn"),
        (Err(_), 2) => tracing_subscriber::EnvFilter::new("info"),
        (Err(_), _) => tracing_subscriber::EnvFilter::new("debug"),
    };
    let captured = std::env::var("RUST_LOG")
        .map(tracing_subscriber::EnvFilter::new)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let stdout = console.writer().map(|w| {
        tracing_subscriber::fmt::layer()
            .with_writer(w)
            .with_ansi(console.is_terminal())
            .with_filter(terminal)
    });
    tracing_subscriber::registry()
        .with(stdout)
        .with(logs.layer().with_filter(captured))
        .init();
    if metrics.install().is_err() {
        tracing::warn!(
            "another metrics recorder is installed: metrics calls will not reach the dashboard"
        );
    }
    match cli.command {
        None => serve(cli.serve, metrics, logs, console).await,
        Some(Command::Serve(args)) => serve(args, metrics, logs, console).await,
        Some(Command::HashPassword) => hash_password(),
        Some(Command::NewToken) => new_token(),
        Some(Command::Top(_) | Command::Answer(_)) => {
            unreachable!("handled before logging is set up")
        }
    }
}

/// `flowdeck answer`: one answer from a script, over the API.
async fn answer(args: AnswerArgs) -> ExitCode {
    let data = match args
        .data
        .as_deref()
        .map(serde_json::from_str::<serde_json::Value>)
    {
        None => serde_json::Value::Null,
        Some(Ok(v)) if v.is_object() => v,
        Some(Ok(_)) => {
            eprintln!("flowdeck answer: --data must be a JSON object of the form's fields");
            return ExitCode::from(2);
        }
        Some(Err(e)) => {
            eprintln!("flowdeck answer: --data is not JSON: {e}");
            return ExitCode::from(2);
        }
    };
    let client = match flowdeck_terminal::client::Client::new(&args.url, args.token) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("flowdeck answer: {e}");
            return ExitCode::from(2);
        }
    };
    let reply = flowdeck_protocol::question::Reply {
        choice: args.choice,
        data,
    };
    match client.answer(args.id, &reply).await {
        Ok(q) => {
            let by = q
                .answer
                .as_ref()
                .and_then(|a| a.by.clone())
                .unwrap_or_else(|| "anonymous".into());
            println!(
                "question {} (item #{}, {}) answered \"{}\" by {by}",
                q.id, q.item, q.title, reply.choice
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("flowdeck answer: {e}");
            ExitCode::from(1)
        }
    }
}

async fn top(args: TopArgs) -> ExitCode {
    let options = flowdeck_terminal::Options {
        url: args.url,
        token: args.token,
        run: args.run,
        theme: args.theme,
        refresh: Duration::from_millis(args.refresh_ms),
    };
    match flowdeck_terminal::run(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flowdeck top: {e}");
            ExitCode::from(2)
        }
    }
}

//! `tagpilot run --once`: one reconciliation of every object in dependency order — scan every
//! ImageRepository, resolve every ImagePolicy, run every ImageUpdateAutomation (one Git round per
//! remote and push branch), deliver the resulting events to matching Alerts — then a summary
//! table; exit 0 if every object ended Ready.
//!
//! The work itself is `tagpilot_actors::Engine`, which the daemon's actors will drive too.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use tagpilot_actors::{Engine, Report};
use tagpilot_registry::{Gates, Limits};
use tagpilot_store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// One reconciliation of every object, then exit; without it, run as a daemon until
    /// SIGTERM or SIGINT.
    #[arg(long)]
    pub once: bool,
    /// Daemon: where the HTTP API listens (health, readiness, metrics, status JSON).
    #[arg(long, env = "TAGPILOT_API_ADDRESS", default_value = "127.0.0.1:9480")]
    pub api_address: String,
    /// Daemon: where the webhook receiver server listens (`host:port`; empty: no server).
    #[arg(
        long,
        env = "TAGPILOT_WEBHOOK_ADDRESS",
        default_value = "127.0.0.1:9292"
    )]
    pub webhook_address: String,
    /// Daemon: serve webhooks over HTTPS with this PEM certificate chain (with
    /// --webhook-tls-key).
    #[arg(long, env = "TAGPILOT_WEBHOOK_TLS_CERT", requires = "webhook_tls_key")]
    pub webhook_tls_cert: Option<PathBuf>,
    /// Daemon: the PEM private key of --webhook-tls-cert.
    #[arg(long, env = "TAGPILOT_WEBHOOK_TLS_KEY", requires = "webhook_tls_cert")]
    pub webhook_tls_key: Option<PathBuf>,
    /// Daemon: where `gcr` receivers fetch the keys that sign Google's OIDC tokens (a JWKS
    /// document). Default: Google's own.
    #[arg(long, env = "TAGPILOT_GOOGLE_JWKS_URL")]
    pub google_jwks_url: Option<String>,
    /// Daemon: how often the configuration directory is checked for changes, in seconds.
    #[arg(long, env = "TAGPILOT_RELOAD_SECONDS", default_value_t = 2)]
    pub reload_seconds: u64,
    /// Directory of Flux manifests.
    #[arg(long, env = "TAGPILOT_CONFIG_DIR", default_value = "config")]
    pub config: PathBuf,
    /// State directory: the store and the warm Git clones.
    #[arg(long, env = "TAGPILOT_STATE_DIR", default_value = ".tagpilot")]
    pub state_dir: PathBuf,
    /// Secrets laid out as `<dir>/<secret-name>/<key>` (also `$CREDENTIALS_DIRECTORY`).
    #[arg(long, env = "TAGPILOT_SECRETS_DIR")]
    pub secrets_dir: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let secrets_dir = args
        .secrets_dir
        .clone()
        .or_else(|| std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from));
    if !args.once {
        init_logging();
        tagpilot_actors::daemon::run(tagpilot_actors::daemon::Settings {
            config_dir: args.config.clone(),
            state_dir: args.state_dir.clone(),
            secrets_dir,
            reload_every: std::time::Duration::from_secs(args.reload_seconds.max(1)),
            api_address: (!args.api_address.is_empty()).then(|| args.api_address.clone()),
            webhook_address: (!args.webhook_address.is_empty())
                .then(|| args.webhook_address.clone()),
            google_jwks_url: args.google_jwks_url.clone(),
            webhook_tls: args
                .webhook_tls_cert
                .clone()
                .zip(args.webhook_tls_key.clone()),
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    let config = Arc::new(tagpilot_api::load_dir(&args.config));
    let store =
        Store::open(&args.state_dir.join("tagpilot.redb")).context("opening the state store")?;
    let engine = Engine::new(
        config,
        secrets_dir,
        Arc::new(store),
        Arc::new(Gates::new(Limits::default())),
        args.state_dir.join("git"),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    for repo in engine.repositories() {
        runtime.block_on(engine.reconcile_repository(repo));
    }
    for policy in engine.policies() {
        runtime.block_on(engine.reconcile_policy(policy));
    }
    engine.check_alerts();
    engine.automations();
    let notes = engine.notifications(&engine.take_events());
    runtime.block_on(tagpilot_actors::alerts::deliver_all(
        &engine,
        notes,
        tagpilot_actors::alerts::Retry::default(),
    ));
    let rows = engine.take_reports();
    print_table(&rows);
    Ok(if rows.iter().all(|r| r.ready) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Logs to stderr; `RUST_LOG` sets the level (default info).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn print_table(rows: &[Report]) {
    let name = |r: &Report| match r.kind {
        Some(k) => format!("{}/{}/{}", k.as_str().to_lowercase(), r.namespace, r.name),
        None => format!("config/{}", r.name),
    };
    let width = rows.iter().map(|r| name(r).len()).max().unwrap_or(4).max(4);
    println!("{:width$}  READY  MESSAGE", "NAME");
    for r in rows {
        let message = r.message.lines().next().unwrap_or("");
        println!(
            "{:width$}  {:5}  {message}",
            name(r),
            if r.ready { "True" } else { "False" }
        );
    }
}

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

use crate::settings::LogFormat;
use tagpilot_actors::source::{SourceRef, SourceSetting, SourceSpec};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// One reconciliation of every object, then exit; without it, run as a daemon until
    /// SIGTERM or SIGINT.
    #[arg(long)]
    pub once: bool,
    /// Settings file (TOML). Default: ./tagpilot.toml or /etc/tagpilot/tagpilot.toml if present.
    #[arg(long, env = "TAGPILOT_SETTINGS")]
    pub settings: Option<PathBuf>,
    /// Daemon: where the HTTP API listens (health, readiness, metrics, status JSON).
    /// [default: 127.0.0.1:9480]
    #[arg(long, env = "TAGPILOT_API_ADDRESS")]
    pub api_address: Option<String>,
    /// Daemon: a file holding a token the API's controls (suspend, resume, reconcile) require
    /// as `Authorization: Bearer <token>`.
    #[arg(long, env = "TAGPILOT_API_TOKEN_FILE")]
    pub api_token_file: Option<PathBuf>,
    /// Daemon: where the webhook receiver server listens (`host:port`; empty: no server).
    /// [default: 127.0.0.1:9292]
    #[arg(long, env = "TAGPILOT_WEBHOOK_ADDRESS")]
    pub webhook_address: Option<String>,
    /// Daemon: serve webhooks over HTTPS with this PEM certificate chain (with
    /// --webhook-tls-key).
    #[arg(long, env = "TAGPILOT_WEBHOOK_TLS_CERT")]
    pub webhook_tls_cert: Option<PathBuf>,
    /// Daemon: the PEM private key of --webhook-tls-cert.
    #[arg(long, env = "TAGPILOT_WEBHOOK_TLS_KEY")]
    pub webhook_tls_key: Option<PathBuf>,
    /// Daemon: where `gcr` receivers fetch the keys that sign Google's OIDC tokens (a JWKS
    /// document). Default: Google's own.
    #[arg(long, env = "TAGPILOT_GOOGLE_JWKS_URL")]
    pub google_jwks_url: Option<String>,
    /// Daemon: how often the configuration directory is checked for changes, in seconds.
    /// [default: 2]
    #[arg(long, env = "TAGPILOT_RELOAD_SECONDS")]
    pub reload_seconds: Option<u64>,
    /// Scans running at once across all registries. [default: 16]
    #[arg(long, env = "TAGPILOT_CONCURRENCY")]
    pub concurrency: Option<usize>,
    /// Directory of Flux manifests (with a Git source: the local overlay). [default: config;
    /// with a source: <state-dir>/local]
    #[arg(long, env = "TAGPILOT_CONFIG_DIR")]
    pub config: Option<PathBuf>,
    /// State directory: the store and the warm Git clones. [default: .tagpilot]
    #[arg(long, env = "TAGPILOT_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Secrets laid out as `<dir>/<secret-name>/<key>` (also `$CREDENTIALS_DIRECTORY`).
    #[arg(long, env = "TAGPILOT_SECRETS_DIR")]
    pub secrets_dir: Option<PathBuf>,
    /// Daemon log format. [default: text]
    #[arg(long, env = "TAGPILOT_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Daemon log level or filter (`RUST_LOG` wins). [default: info]
    #[arg(long, env = "TAGPILOT_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// Requests in flight per registry host. [default: 8]
    #[arg(long, env = "TAGPILOT_REGISTRY_MAX_CONCURRENT")]
    pub registry_max_concurrent: Option<usize>,
    /// A hard cap on requests started per second per registry host. [default: 0: none; the
    /// rate adapts to 429/503 and rate-limit headers, public registries keep 10-20/s]
    #[arg(long, env = "TAGPILOT_REGISTRY_REQUESTS_PER_SECOND")]
    pub registry_requests_per_second: Option<f64>,
    /// Attempts per registry request on 429, 5xx and network errors. [default: 5]
    #[arg(long, env = "TAGPILOT_REGISTRY_MAX_ATTEMPTS")]
    pub registry_max_attempts: Option<u32>,
    /// Read the manifests from this Git remote (ssh, https, git, file) instead of only --config.
    #[arg(long, env = "TAGPILOT_SOURCE_URL")]
    pub source_url: Option<String>,
    /// Read the manifests from the remote of this GitRepository (`namespace/name`) of --config.
    #[arg(
        long,
        env = "TAGPILOT_SOURCE_REPOSITORY",
        conflicts_with = "source_url"
    )]
    pub source_repository: Option<String>,
    /// The source's branch. [default: master, as Flux]
    #[arg(long, env = "TAGPILOT_SOURCE_BRANCH")]
    pub source_branch: Option<String>,
    /// The source's tag.
    #[arg(long, env = "TAGPILOT_SOURCE_TAG")]
    pub source_tag: Option<String>,
    /// The source's semver range over tags.
    #[arg(long, env = "TAGPILOT_SOURCE_SEMVER")]
    pub source_semver: Option<String>,
    /// The source's commit.
    #[arg(long, env = "TAGPILOT_SOURCE_COMMIT")]
    pub source_commit: Option<String>,
    /// Where the manifests are in the source (recursive). [default: the root]
    #[arg(long, env = "TAGPILOT_SOURCE_PATH")]
    pub source_path: Option<String>,
    /// How often the daemon fetches the source (Go duration). [default: 1m]
    #[arg(long, env = "TAGPILOT_SOURCE_INTERVAL")]
    pub source_interval: Option<String>,
    /// The Secret with the source's Git credentials, `[namespace/]name` (namespace
    /// flux-system by default), from --secrets-dir or --config.
    #[arg(long, env = "TAGPILOT_SOURCE_SECRET")]
    pub source_secret: Option<String>,
}

/// The settings in force: flag or variable, else the file, else the default.
#[derive(Debug)]
struct Resolved {
    config: PathBuf,
    state_dir: PathBuf,
    secrets_dir: Option<PathBuf>,
    api_address: String,
    api_token: Option<Vec<u8>>,
    webhook_address: String,
    webhook_tls: Option<(PathBuf, PathBuf)>,
    google_jwks_url: Option<String>,
    reload_seconds: u64,
    log_format: LogFormat,
    log_level: String,
    concurrency: usize,
    limits: Limits,
    source: Option<SourceSetting>,
}

/// `[namespace/]name` → (namespace, name).
fn ns_name(s: &str, default_ns: &str) -> (String, String) {
    match s.split_once('/') {
        Some((ns, n)) => (ns.to_owned(), n.to_owned()),
        None => (default_ns.to_owned(), s.to_owned()),
    }
}

/// The Git source in force: flags and variables over the file's `source`.
fn source_of(
    args: &Args,
    file: Option<crate::settings::SourceFile>,
) -> anyhow::Result<Option<SourceSetting>> {
    use crate::settings::{SourceFile, SourceTable};
    let mut t = match file {
        None => SourceTable::default(),
        Some(SourceFile::Repository(r)) => SourceTable {
            repository: Some(r),
            ..SourceTable::default()
        },
        Some(SourceFile::Table(t)) => t,
    };
    // A flag naming the remote replaces the file's remote altogether.
    if args.source_url.is_some() || args.source_repository.is_some() {
        t.url = args.source_url.clone();
        t.repository = args.source_repository.clone();
    }
    let pick = |flag: &Option<String>, file: Option<String>| flag.clone().or(file);
    let branch = pick(&args.source_branch, t.branch);
    let tag = pick(&args.source_tag, t.tag);
    let semver = pick(&args.source_semver, t.semver);
    let commit = pick(&args.source_commit, t.commit);
    let path = pick(&args.source_path, t.path).unwrap_or_else(|| ".".into());
    tagpilot_api::check_update_path(&path).map_err(|e| anyhow::anyhow!("source path: {e}"))?;
    let interval = pick(&args.source_interval, t.interval);
    let secret = pick(&args.source_secret, t.secret);
    match (t.url, t.repository) {
        (None, None) => Ok(None),
        (Some(_), Some(_)) => anyhow::bail!("source: give either url or repository, not both"),
        (None, Some(r)) => {
            anyhow::ensure!(
                branch.is_none() && tag.is_none() && semver.is_none() && commit.is_none() && interval.is_none() && secret.is_none(),
                "source: with a repository, its GitRepository gives the ref, interval and secret; only path may be set"
            );
            let (namespace, name) = ns_name(&r, "flux-system");
            Ok(Some(SourceSetting::Repository(SourceRef {
                namespace,
                name,
                path,
            })))
        }
        (Some(url), None) => {
            let interval = match interval {
                Some(i) => tagpilot_api::GoDuration::parse(&i)
                    .map_err(|e| anyhow::anyhow!("source interval: {e}"))?
                    .as_duration(),
                None => std::time::Duration::from_secs(60),
            };
            anyhow::ensure!(
                interval >= tagpilot_api::MIN_INTERVAL,
                "source interval: must be at least 1s"
            );
            Ok(Some(SourceSetting::Spec(SourceSpec {
                url,
                checkout: tagpilot_git::CheckoutRef::from_fields(
                    branch.as_deref(),
                    tag.as_deref(),
                    semver.as_deref(),
                    None,
                    commit.as_deref(),
                ),
                path,
                interval,
                secret: secret.map(|s| ns_name(&s, "flux-system")),
                repository: None,
            })))
        }
    }
}

fn resolve(args: Args) -> anyhow::Result<Resolved> {
    let (mut f, _) = crate::settings::load(args.settings.as_deref())?;
    let source = source_of(&args, f.source.take())?;
    let d = Limits::default();
    let tls = (
        args.webhook_tls_cert.or(f.webhook_tls_cert),
        args.webhook_tls_key.or(f.webhook_tls_key),
    );
    let webhook_tls = match tls {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => anyhow::bail!("--webhook-tls-cert and --webhook-tls-key go together"),
    };
    let state_dir: PathBuf = args
        .state_dir
        .or(f.state_dir)
        .unwrap_or_else(|| ".tagpilot".into());
    Ok(Resolved {
        // With a Git source and no directory named, the local overlay is `<state>/local`
        // (used when it exists), never a `config` directory that happens to be in the way.
        config: args.config.or(f.config_dir).unwrap_or_else(|| {
            if source.is_some() {
                state_dir.join("local")
            } else {
                "config".into()
            }
        }),
        state_dir,
        secrets_dir: args
            .secrets_dir
            .or(f.secrets_dir)
            .or_else(|| std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from)),
        api_address: args
            .api_address
            .or(f.api_address)
            .unwrap_or_else(|| "127.0.0.1:9480".into()),
        api_token: match args.api_token_file.or(f.api_token_file) {
            Some(path) => {
                let t = std::fs::read(&path)
                    .with_context(|| format!("reading the API token {}", path.display()))?;
                let t = String::from_utf8_lossy(&t).trim().as_bytes().to_vec();
                anyhow::ensure!(
                    !t.is_empty(),
                    "the API token file {} is empty",
                    path.display()
                );
                Some(t)
            }
            None => None,
        },
        webhook_address: args
            .webhook_address
            .or(f.webhook_address)
            .unwrap_or_else(|| "127.0.0.1:9292".into()),
        webhook_tls,
        google_jwks_url: args.google_jwks_url.or(f.google_jwks_url),
        reload_seconds: args.reload_seconds.or(f.reload_seconds).unwrap_or(2).max(1),
        log_format: args.log_format.or(f.log_format).unwrap_or(LogFormat::Text),
        log_level: args
            .log_level
            .or(f.log_level)
            .unwrap_or_else(|| "info".into()),
        concurrency: args
            .concurrency
            .or(f.concurrency)
            .unwrap_or(tagpilot_actors::DEFAULT_CONCURRENCY)
            .max(1),
        limits: Limits {
            max_concurrent: args
                .registry_max_concurrent
                .or(f.registry.max_concurrent)
                .unwrap_or(d.max_concurrent)
                .max(1),
            requests_per_second: args
                .registry_requests_per_second
                .or(f.registry.requests_per_second)
                .unwrap_or(d.requests_per_second)
                .max(0.0),
            max_attempts: args
                .registry_max_attempts
                .or(f.registry.max_attempts)
                .unwrap_or(d.max_attempts)
                .max(1),
            ..d
        },
        source,
    })
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let once = args.once;
    let args = resolve(args)?;
    if !once {
        init_logging(args.log_format, &args.log_level);
        tagpilot_actors::daemon::run(tagpilot_actors::daemon::Settings {
            config_dir: args.config.clone(),
            state_dir: args.state_dir.clone(),
            secrets_dir: args.secrets_dir.clone(),
            reload_every: std::time::Duration::from_secs(args.reload_seconds),
            api_address: (!args.api_address.is_empty()).then(|| args.api_address.clone()),
            webhook_address: (!args.webhook_address.is_empty())
                .then(|| args.webhook_address.clone()),
            google_jwks_url: args.google_jwks_url.clone(),
            webhook_tls: args.webhook_tls.clone(),
            limits: args.limits,
            concurrency: args.concurrency,
            api_token: args.api_token.clone(),
            source: args.source.clone(),
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    let secrets_dir = args.secrets_dir.clone();
    let shared = Arc::new(tagpilot_actors::Shared::new(args.concurrency));
    let fetched = match &args.source {
        None => None,
        Some(setting) => Some(
            tagpilot_actors::source::fetch_setting(
                setting,
                &args.config,
                secrets_dir.as_deref(),
                &args.state_dir.join("git"),
                &shared,
            )?
            .1,
        ),
    };
    if let Some(f) = &fetched {
        eprintln!("configuration from {}", f.revision);
    }
    let config = Arc::new(tagpilot_actors::source::load(
        &args.config,
        secrets_dir.as_deref(),
        fetched.as_ref(),
    ));
    let store = Arc::new(
        Store::open(&args.state_dir.join("tagpilot.redb")).context("opening the state store")?,
    );
    // One run, one durable commit at the end (see Store::hold).
    store.hold();
    let engine = Engine::with_shared(
        config,
        secrets_dir,
        store.clone(),
        Arc::new(Gates::new(args.limits)),
        args.state_dir.join("git"),
        shared,
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Scans overlap (network-bound), `concurrency` at a time and politely per host; the
    // automations' clones are made (or fetched) meanwhile on a thread of their own.
    let scans = engine
        .repositories()
        .into_iter()
        .map(|repo| engine.reconcile_repository(repo, false));
    std::thread::scope(|scope| {
        scope.spawn(|| engine.prepare_remotes());
        runtime.block_on(futures_util::future::join_all(scans));
    });
    // Policies are independent of each other (as the daemon's resolvers are): side by side,
    // so that their store writes share the writer's batches.
    let policies = engine.policies();
    runtime.block_on(futures_util::future::join_all(
        policies.iter().map(|p| engine.reconcile_policy(p)),
    ));
    engine.check_alerts();
    engine.automations();
    let notes = engine.notifications(&engine.take_events());
    runtime.block_on(tagpilot_actors::alerts::deliver_all(
        &engine,
        notes,
        tagpilot_actors::alerts::Retry::default(),
    ));
    store
        .release()
        .context("saving the state store (this run's results are not kept)")?;
    let rows = engine.take_reports();
    print_table(&rows);
    Ok(if rows.iter().all(|r| r.ready) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Logs to stderr as text or JSON lines; `RUST_LOG` wins over the configured level.
fn init_logging(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
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

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
use tagpilot_registry::Gates;
use tagpilot_store::Store;

use crate::settings::{LogFormat, Settings};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// One reconciliation of every object, then exit; without it, run as a daemon until
    /// SIGTERM or SIGINT.
    #[arg(long)]
    pub once: bool,
    /// Settings file (TOML). Default: ./tagpilot.toml or /etc/tagpilot/tagpilot.toml if present.
    #[arg(long, env = "TAGPILOT_SETTINGS")]
    pub settings: Option<PathBuf>,
    #[command(flatten)]
    pub layer: Settings,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (file, _) = crate::settings::load(args.settings.as_deref())?;
    let once = args.once;
    let (args, logging) = args.layer.over(file)?.resolve()?;
    if !once {
        init_logging(logging.format, &logging.level);
        tagpilot_actors::daemon::run(args)?;
        return Ok(ExitCode::SUCCESS);
    }
    let secrets_dir = args.secrets_dir.clone();
    let shared = Arc::new(tagpilot_actors::Shared::new(args.concurrency));
    let fetched = match &args.source {
        None => None,
        Some(setting) => Some(
            tagpilot_actors::source::fetch_setting(
                setting,
                &args.config_dir,
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
        &args.config_dir,
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
    // automations' clones are made (or fetched) meanwhile on a thread of their own, and only
    // the automations wait for them.
    let scans = engine
        .repositories()
        .into_iter()
        .map(|repo| engine.reconcile_repository(repo, false));
    let policies = engine.policies();
    std::thread::scope(|scope| {
        scope.spawn(|| engine.prepare_remotes());
        runtime.block_on(futures_util::future::join_all(scans));
        // Policies are independent of each other (as the daemon's resolvers are): side by
        // side, so that their store writes share the writer's batches.
        runtime.block_on(futures_util::future::join_all(
            policies.iter().map(|p| engine.reconcile_policy(p)),
        ));
    });
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

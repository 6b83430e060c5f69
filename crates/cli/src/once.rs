//! `tagpilot run --once`: one reconciliation of every object in dependency order — scan every
//! ImageRepository, resolve every ImagePolicy, run every ImageUpdateAutomation (one Git round per
//! remote and push branch) — then a summary table; exit 0 if every object ended Ready.
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
    /// One reconciliation of every object, then exit (the daemon mode is not built yet).
    #[arg(long, required = true)]
    pub once: bool,
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
    let config = Arc::new(tagpilot_api::load_dir(&args.config));
    let secrets_dir = args
        .secrets_dir
        .clone()
        .or_else(|| std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from));
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
    engine.automations();
    let rows = engine.take_reports();
    print_table(&rows);
    Ok(if rows.iter().all(|r| r.ready) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
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

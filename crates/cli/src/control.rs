//! `tagpilot suspend|resume|reconcile image repository|policy|update NAME [-n NAMESPACE]`: flux's
//! verbs, sent to a running daemon's API. Suspensions persist in the daemon's store. `resume`
//! and `reconcile` wait for the reconciliation and print its outcome; like flux, progress goes
//! to stderr. Exit 1 when the object is unknown, suspended (reconcile), not Ready afterwards, or
//! the wait times out.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::get::{fetch, Item};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub what: Target,
    #[command(flatten)]
    pub daemon: crate::get::Daemon,
    /// How long to wait for the reconciliation (resume, reconcile), in seconds.
    #[arg(long, global = true, default_value_t = 60)]
    pub timeout: u64,
}

#[derive(Debug, clap::Subcommand)]
pub enum Target {
    /// An image automation object.
    Image {
        #[command(subcommand)]
        kind: ImageKind,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum ImageKind {
    Repository { name: String },
    Policy { name: String },
    Update { name: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Suspend,
    Resume,
    Reconcile,
    /// Ends a policy's manual holds (`manualChanges: hold`).
    Release,
}

fn post(daemon: &crate::get::Daemon, path: &str) -> anyhow::Result<serde_json::Value> {
    let req = daemon
        .request(reqwest::Method::POST, path)?
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body("{}");
    daemon.call(req)
}

/// The outcome line flux prints after a reconciliation.
fn outcome(kind: &str, item: &Item) -> String {
    let message = item.message();
    match (
        kind,
        item.status.field("lastScanResult")["tagCount"].as_u64(),
    ) {
        ("ImageRepository", Some(n)) if message != "suspended" => format!("scan fetched {n} tags"),
        _ => message,
    }
}

pub fn run(action: Action, args: Args) -> anyhow::Result<ExitCode> {
    let Target::Image { kind } = &args.what;
    let (kind, noun, name) = match kind {
        ImageKind::Repository { name } => ("ImageRepository", "image repository", name),
        ImageKind::Policy { name } => ("ImagePolicy", "image policy", name),
        ImageKind::Update { name } => ("ImageUpdateAutomation", "image update automation", name),
    };
    let ns = &args.daemon.namespace;
    if action == Action::Release {
        if kind != "ImagePolicy" {
            eprintln!("✗ release applies to an image policy");
            return Ok(ExitCode::FAILURE);
        }
        return release(&args, name);
    }
    let (verb, done) = match action {
        Action::Suspend => ("suspending", "suspended"),
        Action::Resume => ("resuming", "resumed"),
        Action::Reconcile => ("annotating", "annotated"),
        Action::Release => ("releasing", "released"),
    };
    let label = if action == Action::Reconcile {
        kind
    } else {
        noun
    };
    eprintln!("► {verb} {label} {name} in {ns} namespace");
    let path = format!(
        "/api/v1/{}/{kind}/{ns}/{name}",
        match action {
            Action::Suspend => "suspend",
            Action::Resume => "resume",
            Action::Reconcile => "reconcile",
            Action::Release => "release",
        }
    );
    let answer = match post(&args.daemon, &path) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("✗ {}", crate::format_chain(&e));
            return Ok(ExitCode::FAILURE);
        }
    };
    eprintln!("✔ {label} {done}");
    if action == Action::Suspend {
        return Ok(ExitCode::SUCCESS);
    }
    // The daemon echoes this request's own token when it handled it (Flux's
    // lastHandledReconcileAt), so an earlier outcome is never taken for this one.
    let Some(requested) = answer["requestedAt"].as_str().map(str::to_owned) else {
        eprintln!("✗ the daemon did not return a request token");
        return Ok(ExitCode::FAILURE);
    };
    wait_for(&args.daemon, args.timeout, kind, ns, name, &requested)
}

/// Waits until `kind ns/name` reports the reconciliation that handled `requested`, and
/// prints its outcome.
fn wait_for(
    daemon: &crate::get::Daemon,
    timeout: u64,
    kind: &str,
    ns: &str,
    name: &str,
    requested: &str,
) -> anyhow::Result<ExitCode> {
    eprintln!("◎ waiting for {kind} reconciliation");
    let deadline = Instant::now() + Duration::from_secs(timeout);
    loop {
        let item = fetch(daemon)?.into_iter().find(|i| {
            i.kind == kind
                && i.namespace == ns
                && i.name == name
                && i.status.last_handled_reconcile_at.as_deref() == Some(requested)
        });
        if let Some(item) = item {
            if item.status.is_ready() {
                eprintln!("✔ {kind} reconciliation completed");
                eprintln!("✔ {}", outcome(kind, &item));
                return Ok(ExitCode::SUCCESS);
            }
            eprintln!("✗ {}", outcome(kind, &item));
            return Ok(ExitCode::FAILURE);
        }
        if Instant::now() >= deadline {
            eprintln!("✗ timed out waiting for {kind} {ns}/{name} to reconcile");
            return Ok(ExitCode::FAILURE);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// `tagpilot release image policy NAME`: the automations holding the policy at a person's
/// value write its latest ref again; waits for each of their rounds.
fn release(args: &Args, name: &str) -> anyhow::Result<ExitCode> {
    let ns = &args.daemon.namespace;
    eprintln!("► releasing manual holds of image policy {name} in {ns} namespace");
    let path = format!("/api/v1/release/ImagePolicy/{ns}/{name}");
    let answer = match post(&args.daemon, &path) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("✗ {}", crate::format_chain(&e));
            return Ok(ExitCode::FAILURE);
        }
    };
    let requested = answer["requestedAt"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let automations: Vec<String> = answer["automations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect();
    if automations.is_empty() {
        eprintln!("✔ released; no automation with manualChanges: hold selects it");
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("✔ released for {}", automations.join(", "));
    for a in &automations {
        let (a_ns, a_name) = a.split_once('/').unwrap_or((ns.as_str(), a.as_str()));
        let code = wait_for(
            &args.daemon,
            args.timeout,
            "ImageUpdateAutomation",
            a_ns,
            a_name,
            &requested,
        )?;
        if code != ExitCode::SUCCESS {
            return Ok(code);
        }
    }
    Ok(ExitCode::SUCCESS)
}

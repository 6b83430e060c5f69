//! `tagpilot`: the one binary. Subcommands live in their own modules and delegate to the
//! library crates; this file only parses arguments and maps outcomes to exit codes.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
pub(crate) use tagpilot_actors::format_chain;

mod control;
mod create;
mod explain;
mod export;
mod get;
mod once;
mod resolve;
mod scan;
mod settings;
mod update;
mod validate;

#[derive(Debug, Parser)]
#[command(
    name = "tagpilot",
    version,
    about = "Keeps container image references in Git up to date"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Pick the latest tag from a tag list with an image policy.
    Resolve(resolve::Args),
    /// Generate image automation objects (`--export` prints their YAML).
    Create(create::Args),
    /// Show image automation objects and their status, from a running daemon.
    Get(get::Args),
    /// Reconcile every object of a configuration directory (`--once`), or run as a daemon.
    Run(once::Args),
    /// List a repository's tags from its registry.
    Scan(scan::Args),
    /// Apply `$imagepolicy` setters to a directory and render the commit message.
    Update(update::Args),
    /// Load and check a directory of Flux manifests.
    Validate(validate::Args),
    /// Print every object of a configuration directory as flux exports it.
    Export(export::Args),
    /// Suspend an object in a running daemon (persisted; shown by `get`).
    Suspend(control::Args),
    /// Resume a suspended object and wait for its reconciliation.
    Resume(control::Args),
    /// Reconcile an object now and wait for the outcome.
    Reconcile(control::Args),
    /// End a policy's manual holds (`manualChanges: hold`) and wait for the rounds that follow.
    Release(control::Args),
    /// Why a policy chose its tag: every tag's filter and gate verdicts, from a running daemon.
    Explain(explain::Args),
}

/// jemalloc instead of glibc's malloc: the daemon allocates on many threads (arbiters, sync
/// arbiters, the blocking pool, the store writer), and glibc's per-thread arenas kept freed
/// memory resident (measured with bench/daemon-scale.sh; see the commit).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    // ring, the process's one rustls provider, before any client or server is built.
    tagpilot_http::install_crypto_provider();
    // Usage errors exit 1 like every other failure (scripts test for non-zero).
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let result = match cli.command {
        Command::Resolve(args) => resolve::run(args),
        Command::Create(args) => create::run(args),
        Command::Get(args) => get::run(args),
        Command::Run(args) => once::run(args),
        Command::Scan(args) => scan::run(args),
        Command::Update(args) => update::run(args),
        Command::Validate(args) => validate::run(args),
        Command::Export(args) => export::run(args),
        Command::Suspend(args) => control::run(control::Action::Suspend, args),
        Command::Resume(args) => control::run(control::Action::Resume, args),
        Command::Reconcile(args) => control::run(control::Action::Reconcile, args),
        Command::Explain(args) => explain::run(args),
        Command::Release(args) => control::run(control::Action::Release, args),
    };
    match result {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error and its causes.
            eprintln!("error: {}", format_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// A reader that went away (`tagpilot … | head`) is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

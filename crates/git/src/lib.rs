//! Git for image update rounds: one warm clone per remote, incremental fetches, checkout of
//! branches, tags, semver ranges and commits, one commit per automation, pushes that never
//! force and that survive races (fetch, reset, re-apply, push again).
//!
//! libgit2 (vendored, through git2) is blocking: run rounds on a blocking thread.

mod known_hosts;
mod refs;
mod repo;
mod signing;
mod tls;

pub use known_hosts::is_known;
pub use refs::{push_branch, valid_branch, CheckoutRef, NO_PUSH_BRANCH};
pub use repo::{redact, Applied, Change, GitAuth, GitError, RoundOutcome, RoundSpec, WarmRepo};
pub use signing::Signer;
pub use tls::ExtraRoots;

/// Flux's `observedSourceRevision`: `<branch>@sha1:<hash>`.
pub fn source_revision(branch: &str, commit: &str) -> String {
    format!("{branch}@sha1:{commit}")
}

/// Flux's Ready message after a push: `pushed commit '<7 chars>' to branch '<branch>'` and the
/// commit message on the next line.
pub fn pushed_message(commit: &str, branch: &str, message: &str) -> String {
    let short = commit.get(..7).unwrap_or(commit);
    format!("pushed commit '{short}' to branch '{branch}'\n{message}")
}

//! Reconcile planning for tagpilot's actors, as code that runs without sockets or clocks.
//!
//! - [`schedule`]: one run at a time per key; requests during a run merge into one follow-up.
//! - [`backoff`]: how long to wait after consecutive failures.
//! - [`writers`]: which Git remote each automation writes and which automations a policy wakes.
//! - [`events`]: a failing object alerts once per distinct failure, not on every retry.
//! - [`slots`]: each registry host's fair share of the scan slots.
//! - [`digest`]: when a policy fetches a digest, and what a digest must look like.
//! - [`gates`]: which ranked tags pass the rollout gates; the downgrade guard.
//! - [`manual`]: values people changed in Git, held until a newer tag or a release.
//!
//! The actors (tagpilot-actors) hold the mailboxes and timers and call into these.

pub mod backoff;
pub mod digest;
pub mod events;
pub mod gates;
pub mod manual;
pub mod schedule;
pub mod slots;
pub mod writers;

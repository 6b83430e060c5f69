//! tagpilot's wiring: the reconciliation of each object kind against the configuration,
//! credentials, registries, the store and Git ([`Engine`]), shared by `tagpilot run --once`
//! and by the daemon's actors ([`daemon`]), with its status API ([`api`]) and webhook
//! receiver server ([`receiver`]) and post-push notifications ([`alerts`]).

pub mod alerts;
pub mod api;
pub mod daemon;
mod engine;
pub mod metrics;
pub mod receiver;
pub mod sd_notify;
pub mod source;

pub use engine::{format_chain, Engine, Failure, Report, Shared, DEFAULT_CONCURRENCY};

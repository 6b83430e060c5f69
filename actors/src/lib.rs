//! tagpilot's wiring: the reconciliation of each object kind against the configuration,
//! credentials, registries, the store and Git ([`Engine`]), shared by `tagpilot run --once`
//! and, next, the daemon's actors.

pub mod api;
pub mod daemon;
mod engine;

pub use engine::{format_chain, Engine, Report};

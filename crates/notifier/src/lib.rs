//! What happens after a push: tagpilot emits an event (Flux's event shape), every Alert whose
//! sources, severity and message lists match it picks its Provider, and the Provider's request is
//! built and delivered with retries.
//!
//! - [`event`]: the event as Flux serialises it.
//! - [`route`]: Alert matching and metadata enrichment. Pure.
//! - [`payload`]: the HTTP request per Provider type (generic, generic-hmac, Slack). Pure.
//! - [`deliver`]: sending with a bounded retry schedule; errors never carry the address's path,
//!   query or any header, since Slack-style addresses are secrets themselves.

pub mod deliver;
pub mod event;
pub mod payload;
pub mod route;

pub use deliver::{deliver, Delivered, DeliveryError, Retry};
pub use event::{Event, InvolvedObject, Severity};
pub use payload::{build_request, PayloadError, Request, Target};
pub use route::{alert_matches, enrich};

//! Image names as Flux reads `spec.image` (reference §2.1): the one parser of
//! `tagpilot-reference`, re-exported where the registry client always had it.

pub use tagpilot_reference::{ImageName, NameError, DOCKER_HUB};

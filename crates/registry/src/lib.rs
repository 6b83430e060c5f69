//! An OCI distribution client for honest, cheap, polite tag listings.
//!
//! - Tag listing with `n`/`last` and `Link` pagination, tolerant of registries that ignore `n`,
//!   return unsorted lists or reject a page size; bounded memory and loop detection.
//! - Auth from `WWW-Authenticate` challenges: anonymous and credentialed bearer tokens, basic
//!   auth; credentials from docker config JSON and credential helpers.
//! - TLS with extra CAs and client certificates, proxies, timeouts.
//! - Per-host politeness ([`Gates`]): concurrency and rate limits, `429`/`Retry-After`,
//!   exponential back-off with jitter on 5xx and transport errors, bounded retries.
//! - [`scan`]: revisions and the never-downgrade rule.
//! - [`RepoClient::platforms`]: the platforms of an image index or manifest (oci-client types).
//!
//! `reqwest` is used directly (rather than `oci-client`) because pagination, retries and the
//! shared per-host gate need control over every request.

pub mod auth;
mod client;
mod error;
pub mod gate;
mod name;
mod platforms;
pub mod scan;

pub use auth::{Credentials, DockerConfig};
pub use client::{
    error_chain, valid_tag, ClientOptions, ProxySpec, RepoClient, TagListing, MANIFEST_ACCEPT,
};
pub use error::RegistryError;
pub use gate::{Gates, Limits};
pub use name::{ImageName, NameError, DOCKER_HUB};
pub use platforms::ImagePlatform;

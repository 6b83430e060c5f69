//! Registry credentials behind `spec.provider`, one trait for all of them:
//!
//! - [`hosts`]: which registry hosts each cloud accepts (pure).
//! - [`TokenSource`]: obtains a [`Lease`] (credentials and their expiry) — [`generic::Generic`]
//!   from a docker config, [`aws::Ecr`] from ECR's `GetAuthorizationToken`, [`gcp::Gcp`] from
//!   Google's credential chain, [`azure::Azure`] from Entra ID and ACR's token exchange.
//! - [`refresh::Refresher`]: caches a lease per (provider, identity, registry), refreshes it at
//!   80% of its lifetime, keeps the old one until it really expires, backs off on failure, and
//!   never runs two refreshes of one key at once. [`Keyring`] holds the refreshers.
//!
//! Credentials never reach a log line, an error message or a `Debug` output.

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "azure")]
pub mod azure;
#[cfg(feature = "gcp")]
pub mod gcp;
pub mod generic;
pub mod hosts;
pub mod refresh;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

pub use hosts::*;
pub use refresh::{Clock, Policy, Refresher, SystemClock};
pub use tagpilot_registry::Credentials;

/// Credentials and, when the issuer says so, when they stop working.
#[derive(Clone, PartialEq, Eq)]
pub struct Lease {
    /// None: anonymous.
    pub credentials: Option<Credentials>,
    pub expires_at: Option<SystemTime>,
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<redacted>"),
            )
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Why credentials could not be obtained. Messages name the provider, the registry and the
/// cause, never a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("aws: {0}")]
    Aws(String),
    #[error("gcp: {0}")]
    Gcp(String),
    #[error("azure: {0}")]
    Azure(String),
    #[error("{0}")]
    Generic(String),
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Something that can obtain registry credentials.
pub trait TokenSource: Send + Sync + fmt::Debug {
    fn fetch(&self) -> BoxFuture<'_, Result<Lease, ProviderError>>;
}

/// One refresher per (provider, identity, registry), shared by every scanner of that registry.
#[derive(Debug, Default)]
pub struct Keyring {
    refreshers: Mutex<BTreeMap<String, Arc<Refresher>>>,
}

impl Keyring {
    /// The refresher of `key`, made with `make` on first use.
    pub fn get_or_insert(
        &self,
        key: &str,
        make: impl FnOnce() -> Result<Refresher, ProviderError>,
    ) -> Result<Arc<Refresher>, ProviderError> {
        let mut map = self
            .refreshers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(r) = map.get(key) {
            return Ok(r.clone());
        }
        let r = Arc::new(make()?);
        map.insert(key.to_owned(), r.clone());
        Ok(r)
    }

    /// Every refresher, by key (for the refreshing actors and the metrics).
    pub fn all(&self) -> Vec<(String, Arc<Refresher>)> {
        self.refreshers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

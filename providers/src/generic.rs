//! `provider: generic`: credentials from a docker config (`.dockerconfigjson` of the
//! `secretRef`), including its credential helpers. They carry no expiry.

use tagpilot_registry::DockerConfig;

use crate::{BoxFuture, Lease, ProviderError, TokenSource};

#[derive(Debug)]
pub struct Generic {
    pub config: DockerConfig,
    pub registry: String,
}

impl TokenSource for Generic {
    fn fetch(&self) -> BoxFuture<'_, Result<Lease, ProviderError>> {
        Box::pin(async move {
            let credentials = self
                .config
                .credentials_for(&self.registry)
                .await
                .map_err(|e| ProviderError::Generic(e.to_string()))?;
            Ok(Lease {
                credentials,
                expires_at: None,
            })
        })
    }
}

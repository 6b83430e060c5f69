//! `provider: gcp`: an access token (scope cloud-platform) from gcp_auth's chain — the
//! service-account JSON named by `GOOGLE_APPLICATION_CREDENTIALS` (whose `token_uri` says where
//! to exchange the signed assertion), gcloud's application-default credentials, the metadata
//! server, the gcloud CLI — used as the password of user `oauth2accesstoken`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::hosts::gcp_registry;
use crate::{BoxFuture, Credentials, Lease, ProviderError, TokenSource};

pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
pub const USERNAME: &str = "oauth2accesstoken";

/// The token source of one GCR / Artifact Registry host. The credential chain is detected once,
/// on first use.
pub struct Gcp {
    pub host: String,
    provider: tokio::sync::OnceCell<Arc<dyn gcp_auth::TokenProvider>>,
}

impl std::fmt::Debug for Gcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gcp")
            .field("host", &self.host)
            .field("detected", &self.provider.initialized())
            .finish()
    }
}

impl Gcp {
    pub fn new(host: &str) -> Result<Self, ProviderError> {
        gcp_registry(host)?;
        Ok(Gcp {
            host: host.to_owned(),
            provider: tokio::sync::OnceCell::new(),
        })
    }
}

impl TokenSource for Gcp {
    fn fetch(&self) -> BoxFuture<'_, Result<Lease, ProviderError>> {
        Box::pin(async move {
            let provider = self
                .provider
                .get_or_try_init(gcp_auth::provider)
                .await
                .map_err(|e| {
                    ProviderError::Gcp(format!("no credentials for {}: {e}", self.host))
                })?;
            let token = provider
                .token(&[SCOPE])
                .await
                .map_err(|e| ProviderError::Gcp(format!("access token for {}: {e}", self.host)))?;
            let expires_at = u64::try_from(token.expires_at().timestamp())
                .ok()
                .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s));
            Ok(Lease {
                credentials: Some(Credentials::Basic {
                    username: USERNAME.to_owned(),
                    password: token.as_str().to_owned(),
                }),
                expires_at,
            })
        })
    }
}

//! `provider: azure`: an Entra ID access token for the ACR audience of the registry's cloud —
//! from workload identity (`AZURE_FEDERATED_TOKEN_FILE`, `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`),
//! a client secret (`AZURE_CLIENT_SECRET`), or else the managed identity — exchanged at
//! `POST https://<registry>/oauth2/exchange` for an ACR refresh token, the password of user
//! `00000000-0000-0000-0000-000000000000`. Its expiry is the token's `exp`.
//! `AZURE_AUTHORITY_HOST` (https only) overrides the Entra endpoint.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use azure_core::credentials::TokenCredential;
use base64::Engine as _;

use crate::hosts::{azure_registry, AzureCloud};
use crate::{BoxFuture, Credentials, Lease, ProviderError, TokenSource};

pub const USERNAME: &str = "00000000-0000-0000-0000-000000000000";

/// The ACR audience of a cloud, as an Entra scope.
pub fn scope(cloud: AzureCloud) -> &'static str {
    match cloud {
        AzureCloud::Public => "https://containerregistry.azure.net/.default",
        AzureCloud::China => "https://containerregistry.azure.cn/.default",
        AzureCloud::Government => "https://containerregistry.azure.us/.default",
        AzureCloud::Germany => "https://containerregistry.azure.de/.default",
    }
}

/// The token source of one ACR registry. The Entra credential is chosen once, on first use.
pub struct Azure {
    pub host: String,
    pub cloud: AzureCloud,
    credential: tokio::sync::OnceCell<Arc<dyn TokenCredential>>,
}

impl std::fmt::Debug for Azure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Azure")
            .field("host", &self.host)
            .field("cloud", &self.cloud)
            .finish_non_exhaustive()
    }
}

fn env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.is_empty())
}

fn entra_error(e: &azure_core::Error) -> ProviderError {
    ProviderError::Azure(format!("Entra ID token: {e}"))
}

impl Azure {
    pub fn new(host: &str) -> Result<Self, ProviderError> {
        Ok(Azure {
            host: host.to_owned(),
            cloud: azure_registry(host)?,
            credential: tokio::sync::OnceCell::new(),
        })
    }

    fn make_credential(&self) -> Result<Arc<dyn TokenCredential>, ProviderError> {
        use azure_core::cloud::CloudConfiguration;
        use azure_identity::*;
        // An explicit authority host wins; otherwise the registry's cloud picks it.
        let cloud = match (env("AZURE_AUTHORITY_HOST"), self.cloud) {
            (Some(_), _) => None,
            (None, AzureCloud::China) => Some(CloudConfiguration::AzureChina),
            (None, AzureCloud::Government) => Some(CloudConfiguration::AzureGovernment),
            (None, _) => None,
        };
        let client_options = azure_core::http::ClientOptions {
            cloud: cloud.map(Arc::new),
            ..Default::default()
        };
        if env("AZURE_FEDERATED_TOKEN_FILE").is_some() {
            let c = WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
                credential_options: ClientAssertionCredentialOptions { client_options },
                ..Default::default()
            }))
            .map_err(|e| entra_error(&e))?;
            return Ok(c);
        }
        if let (Some(secret), Some(tenant), Some(client)) = (
            env("AZURE_CLIENT_SECRET"),
            env("AZURE_TENANT_ID"),
            env("AZURE_CLIENT_ID"),
        ) {
            let c = ClientSecretCredential::new(
                &tenant,
                client,
                secret.into(),
                Some(ClientSecretCredentialOptions { client_options }),
            )
            .map_err(|e| entra_error(&e))?;
            return Ok(c);
        }
        let c = ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
            user_assigned_id: env("AZURE_CLIENT_ID").map(UserAssignedId::ClientId),
            client_options,
        }))
        .map_err(|e| entra_error(&e))?;
        Ok(c)
    }

    /// The registry name ACR expects as `service` (no port).
    fn service(&self) -> &str {
        self.host.split(':').next().unwrap_or(&self.host)
    }

    async fn exchange(&self, aad_token: &str) -> Result<String, ProviderError> {
        let url = format!("https://{}/oauth2/exchange", self.host);
        let fail =
            |what: String| ProviderError::Azure(format!("ACR token exchange at {url}: {what}"));
        let client = tagpilot_http::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| fail(e.without_url().to_string()))?;
        let resp = client
            .post(&url)
            .form(&[
                ("grant_type", "access_token"),
                ("service", self.service()),
                ("access_token", aad_token),
            ])
            .send()
            .await
            .map_err(|e| fail(describe(e)))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(fail(format!("HTTP {status}")));
        }
        #[derive(serde::Deserialize)]
        struct Answer {
            refresh_token: String,
        }
        let body = resp.bytes().await.map_err(|e| fail(describe(e)))?;
        let a: Answer = serde_json::from_slice(&body)
            .map_err(|_| fail("the answer holds no refresh_token".into()))?;
        Ok(a.refresh_token)
    }
}

/// A reqwest error with its causes, without the URL.
fn describe(e: reqwest::Error) -> String {
    tagpilot_registry::error_chain(&e.without_url())
}

/// The `exp` claim of a JWT, unverified (ACR verifies its own tokens; this only schedules the
/// refresh).
pub fn jwt_expiry(token: &str) -> Option<SystemTime> {
    let payload = token.split('.').nth(1)?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&raw).ok()?;
    let exp = claims["exp"].as_u64()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(exp))
}

impl TokenSource for Azure {
    fn fetch(&self) -> BoxFuture<'_, Result<Lease, ProviderError>> {
        Box::pin(async move {
            let credential = self
                .credential
                .get_or_try_init(|| async { self.make_credential() })
                .await?;
            let aad = credential
                .get_token(&[scope(self.cloud)], None)
                .await
                .map_err(|e| entra_error(&e))?;
            let refresh = self.exchange(aad.token.secret()).await?;
            Ok(Lease {
                expires_at: jwt_expiry(&refresh),
                credentials: Some(Credentials::Basic {
                    username: USERNAME.to_owned(),
                    password: refresh,
                }),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_per_cloud_and_expiry_from_exp() {
        assert_eq!(
            scope(azure_registry("r.azurecr.io").unwrap_or(AzureCloud::Germany)),
            "https://containerregistry.azure.net/.default"
        );
        assert_eq!(
            scope(AzureCloud::China),
            "https://containerregistry.azure.cn/.default"
        );
        assert_eq!(
            scope(AzureCloud::Government),
            "https://containerregistry.azure.us/.default"
        );
        // {"alg":"none"}.{"exp":1800000000}.
        let t = "eyJhbGciOiJub25lIn0.eyJleHAiOjE4MDAwMDAwMDB9.";
        assert_eq!(
            jwt_expiry(t),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000))
        );
        assert_eq!(jwt_expiry("opaque"), None);
        let a = Azure::new("r.azurecr.io:8443").unwrap();
        assert_eq!(a.service(), "r.azurecr.io");
        assert!(Azure::new("ghcr.io").is_err());
    }
}

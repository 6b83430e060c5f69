//! `provider: aws`: ECR's `GetAuthorizationToken` (ECR Public's for `public.ecr.aws`, always in
//! us-east-1) with aws-config's default credential chain — environment, profile, web identity
//! (IRSA), EKS Pod Identity and ECS container credentials, IMDS — in the region the registry host
//! names. The token is base64 `AWS:<password>`; its expiry is `expiresAt`. Endpoints follow the
//! standard overrides (`AWS_ENDPOINT_URL_ECR`, `AWS_ENDPOINT_URL_ECR_PUBLIC`, `AWS_ENDPOINT_URL`,
//! the profile's `endpoint_url`).

use std::time::SystemTime;

use aws_config::{BehaviorVersion, Region};
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use base64::Engine as _;

use crate::hosts::{aws_registry, AwsRegistry};
use crate::{BoxFuture, Credentials, Lease, ProviderError, TokenSource};

/// The token source of one ECR registry.
#[derive(Debug, Clone)]
pub struct Ecr {
    pub host: String,
    pub registry: AwsRegistry,
}

impl Ecr {
    /// For a registry host (with or without a port); a host that is not ECR's is an error
    /// naming the expected form.
    pub fn new(host: &str) -> Result<Self, ProviderError> {
        Ok(Ecr {
            host: host.to_owned(),
            registry: aws_registry(host)?,
        })
    }
}

/// Splits a decoded `AWS:<password>` token.
pub fn decode_token(token: &str) -> Result<Credentials, ProviderError> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .map_err(|_| ProviderError::Aws("authorization token is not base64".into()))?;
    let text = String::from_utf8(raw)
        .map_err(|_| ProviderError::Aws("authorization token is not UTF-8".into()))?;
    let (username, password) = text
        .split_once(':')
        .filter(|(u, p)| !u.is_empty() && !p.is_empty())
        .ok_or_else(|| ProviderError::Aws("authorization token is not 'user:password'".into()))?;
    Ok(Credentials::Basic {
        username: username.to_owned(),
        password: password.to_owned(),
    })
}

fn expiry(t: Option<&aws_sdk_ecr::primitives::DateTime>) -> Option<SystemTime> {
    t.and_then(|d| SystemTime::try_from(*d).ok())
}

impl Ecr {
    async fn token(&self) -> Result<(String, Option<SystemTime>), ProviderError> {
        let conf = aws_config::defaults(BehaviorVersion::latest())
            // The SDK's HTTPS client on ring, the process's one crypto provider, with the system
            // roots (its default client would bring aws-lc-rs). Tokens are fetched a few times a
            // day, so each fetch builds its own.
            .http_client(
                aws_smithy_http_client::Builder::new()
                    .tls_provider(Provider::Rustls(CryptoMode::Ring))
                    .build_https(),
            )
            .region(Region::new(self.registry.region.clone()))
            .load()
            .await;
        let what = |e: &dyn std::fmt::Display| {
            ProviderError::Aws(format!(
                "GetAuthorizationToken for {} in {}: {e}",
                self.host, self.registry.region
            ))
        };
        if self.registry.public {
            let out = aws_sdk_ecrpublic::Client::new(&conf)
                .get_authorization_token()
                .send()
                .await
                .map_err(|e| what(&aws_sdk_ecrpublic::error::DisplayErrorContext(e)))?;
            let data = out
                .authorization_data()
                .ok_or_else(|| what(&"no authorization data in the answer"))?;
            let token = data
                .authorization_token()
                .ok_or_else(|| what(&"no token in the answer"))?;
            Ok((token.to_owned(), expiry(data.expires_at())))
        } else {
            let out = aws_sdk_ecr::Client::new(&conf)
                .get_authorization_token()
                .send()
                .await
                .map_err(|e| what(&aws_sdk_ecr::error::DisplayErrorContext(e)))?;
            let data = out
                .authorization_data()
                .first()
                .ok_or_else(|| what(&"no authorization data in the answer"))?;
            let token = data
                .authorization_token()
                .ok_or_else(|| what(&"no token in the answer"))?;
            Ok((token.to_owned(), expiry(data.expires_at())))
        }
    }
}

impl TokenSource for Ecr {
    fn fetch(&self) -> BoxFuture<'_, Result<Lease, ProviderError>> {
        Box::pin(async move {
            let (token, expires_at) = self.token().await?;
            Ok(Lease {
                credentials: Some(decode_token(&token)?),
                expires_at,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_split() {
        // moto's token for account 123456789012.
        let c = decode_token("QVdTOjEyMzQ1Njc4OTAxMi1hdXRoLXRva2Vu").unwrap();
        assert_eq!(
            c,
            Credentials::Basic {
                username: "AWS".into(),
                password: "123456789012-auth-token".into()
            }
        );
        for bad in ["%%%", "QVdT", "OnBhc3M="] {
            let e = decode_token(bad).expect_err(bad);
            assert!(matches!(e, ProviderError::Aws(_)), "{e}");
        }
    }

    #[test]
    fn hosts_with_ports_and_foreign_hosts() {
        let e = Ecr::new("123456789012.dkr.ecr.eu-west-1.amazonaws.com:5443").unwrap();
        assert_eq!(e.registry.region, "eu-west-1");
        assert_eq!(e.registry.account, "123456789012");
        let err = Ecr::new("ghcr.io").expect_err("not ECR");
        assert!(
            err.to_string().contains("invalid AWS registry: 'ghcr.io'"),
            "{err}"
        );
    }
}

//! Which registry hosts each cloud provider accepts, and what the host says (AWS account and
//! region, Azure cloud), with Flux's error messages (reference §6). Pure.

use std::sync::OnceLock;

use regex::Regex;

/// Amazon's registry pattern (from amazon-ecr-credential-helper, unanchored, as Flux uses it).
pub const AWS_PATTERN: &str = r"([0-9+]*).dkr[.-]ecr(?:-fips)?\.([^/.]*)\.(amazonaws\.com[.cn]*|amazonaws\.eu|sc2s\.sgov\.gov|c2s\.ic\.gov|cloud\.adc-e\.uk|csp\.hci\.ic\.gov|on\.aws)";
/// GCR, Artifact Registry and the S3NS sovereign registry.
pub const GCP_PATTERN: &str =
    r"^(((.+\.)?gcr\.io)|(.+-docker\.pkg\.dev)|(docker\.s3nsregistry\.fr))$";
/// Azure Container Registry in every cloud.
pub const AZURE_PATTERN: &str = r"^.+\.(azurecr\.io|azurecr\.cn|azurecr\.de|azurecr\.us)$";

/// A host that does not belong to the provider, named with the form expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("invalid AWS registry: '{host}'. must match {AWS_PATTERN}")]
    Aws { host: String },
    #[error("invalid GCP registry: '{host}'. must match {GCP_PATTERN}")]
    Gcp { host: String },
    #[error("invalid Azure registry: '{host}'. must match {AZURE_PATTERN}")]
    Azure { host: String },
}

fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| match Regex::new(pattern) {
        Ok(r) => r,
        // The patterns are constants checked by the tests below.
        Err(e) => unreachable!("invalid built-in pattern: {e}"),
    })
}

/// What an ECR host says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsRegistry {
    /// Empty for ECR Public.
    pub account: String,
    pub region: String,
    /// `public.ecr.aws`: ECR Public, always us-east-1.
    pub public: bool,
}

/// Parses an ECR registry host (`123456789012.dkr.ecr.eu-west-1.amazonaws.com`, FIPS, China,
/// EU sovereign, ISO partitions, dual-stack `on.aws`, or `public.ecr.aws`).
pub fn aws_registry(host: &str) -> Result<AwsRegistry, HostError> {
    if host == "public.ecr.aws" {
        return Ok(AwsRegistry {
            account: String::new(),
            region: "us-east-1".into(),
            public: true,
        });
    }
    static RE: OnceLock<Regex> = OnceLock::new();
    let caps = re(&RE, AWS_PATTERN)
        .captures(host)
        .ok_or_else(|| HostError::Aws {
            host: host.to_owned(),
        })?;
    let region = caps.get(2).map_or("", |m| m.as_str());
    if region.is_empty() {
        return Err(HostError::Aws {
            host: host.to_owned(),
        });
    }
    Ok(AwsRegistry {
        account: caps.get(1).map_or("", |m| m.as_str()).to_owned(),
        region: region.to_owned(),
        public: false,
    })
}

/// A host without its port: the port never changes which cloud a registry belongs to.
fn without_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// Checks a GCR / Artifact Registry host.
pub fn gcp_registry(host: &str) -> Result<(), HostError> {
    static RE: OnceLock<Regex> = OnceLock::new();
    if re(&RE, GCP_PATTERN).is_match(without_port(host)) {
        Ok(())
    } else {
        Err(HostError::Gcp {
            host: host.to_owned(),
        })
    }
}

/// The Azure cloud an ACR host belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AzureCloud {
    Public,
    China,
    Germany,
    Government,
}

/// Checks an ACR host and says which cloud it is in.
pub fn azure_registry(host: &str) -> Result<AzureCloud, HostError> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let caps = re(&RE, AZURE_PATTERN)
        .captures(without_port(host))
        .ok_or_else(|| HostError::Azure {
            host: host.to_owned(),
        })?;
    Ok(match caps.get(1).map(|m| m.as_str()) {
        Some("azurecr.cn") => AzureCloud::China,
        Some("azurecr.de") => AzureCloud::Germany,
        Some("azurecr.us") => AzureCloud::Government,
        _ => AzureCloud::Public,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_hosts() {
        let ok = [
            (
                "123456789012.dkr.ecr.us-east-1.amazonaws.com",
                "123456789012",
                "us-east-1",
            ),
            (
                "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com",
                "123456789012",
                "us-gov-west-1",
            ),
            (
                "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn",
                "123456789012",
                "cn-north-1",
            ),
            (
                "123456789012.dkr.ecr.eusc-de-east-1.amazonaws.eu",
                "123456789012",
                "eusc-de-east-1",
            ),
            (
                "123456789012.dkr.ecr.us-iso-east-1.c2s.ic.gov",
                "123456789012",
                "us-iso-east-1",
            ),
            (
                "123456789012.dkr.ecr.us-isob-east-1.sc2s.sgov.gov",
                "123456789012",
                "us-isob-east-1",
            ),
            (
                "123456789012.dkr.ecr.eu-isoe-west-1.cloud.adc-e.uk",
                "123456789012",
                "eu-isoe-west-1",
            ),
            (
                "123456789012.dkr.ecr.us-isof-south-1.csp.hci.ic.gov",
                "123456789012",
                "us-isof-south-1",
            ),
            (
                "123456789012.dkr-ecr.us-west-2.on.aws",
                "123456789012",
                "us-west-2",
            ),
        ];
        for (host, account, region) in ok {
            let r = aws_registry(host).unwrap_or_else(|e| panic!("{host}: {e}"));
            assert_eq!(
                (r.account.as_str(), r.region.as_str(), r.public),
                (account, region, false),
                "{host}"
            );
        }
        let public = aws_registry("public.ecr.aws").unwrap();
        assert!(public.public && public.region == "us-east-1");
        for bad in [
            "ghcr.io",
            "123456789012.dkr.ecr..amazonaws.com",
            "ecr.aws",
            "gcr.io",
            "example.com",
        ] {
            let e = aws_registry(bad)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                e.starts_with(&format!("invalid AWS registry: '{bad}'. must match ")),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn gcp_hosts() {
        for ok in [
            "gcr.io",
            "eu.gcr.io",
            "us.gcr.io",
            "europe-west1-docker.pkg.dev",
            "docker.s3nsregistry.fr",
            "europe-docker.pkg.dev:5000",
        ] {
            assert!(gcp_registry(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ghcr.io",
            "gcr.io.evil.com",
            "pkg.dev",
            "docker.pkg.dev",
            "123.dkr.ecr.us-east-1.amazonaws.com",
            "gcr.io:abc",
            "gcr.io.evil.com:443",
        ] {
            assert!(
                matches!(gcp_registry(bad), Err(HostError::Gcp { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn azure_hosts() {
        assert_eq!(azure_registry("myreg.azurecr.io"), Ok(AzureCloud::Public));
        assert_eq!(
            azure_registry("myreg.azurecr.io:8443"),
            Ok(AzureCloud::Public)
        );
        assert_eq!(azure_registry("myreg.azurecr.cn"), Ok(AzureCloud::China));
        assert_eq!(azure_registry("myreg.azurecr.de"), Ok(AzureCloud::Germany));
        assert_eq!(
            azure_registry("myreg.azurecr.us"),
            Ok(AzureCloud::Government)
        );
        for bad in ["azurecr.io", "myreg.azurecr.io.evil.com", "ghcr.io"] {
            let e = azure_registry(bad)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                e.starts_with(&format!("invalid Azure registry: '{bad}'")),
                "{bad}: {e}"
            );
        }
    }
}

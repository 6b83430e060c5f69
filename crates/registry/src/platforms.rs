//! Which platforms an image serves: the entries of its index (manifest list), or the
//! `os`/`architecture`/`variant` of a single manifest's config. Documents are parsed with
//! `oci-spec` (the types `oci-client` builds on); requests go through [`RepoClient`]'s gate,
//! credentials and redirect rules.

use std::fmt;

use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use reqwest::{header::CONTENT_TYPE, Method, StatusCode};
use sha2::Digest as _;

use crate::client::{snippet, RepoClient, MANIFEST_ACCEPT};
use crate::RegistryError;

/// One platform an image is built for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImagePlatform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl fmt::Display for ImagePlatform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

const INDEX_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];
const MANIFEST_TYPES: [&str; 2] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// `sha256:<64 hex>`, the only digest form tagpilot fetches by.
fn sha256_of(reference: &str) -> Option<&str> {
    reference
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

impl RepoClient {
    /// The platforms the image `digest` (`sha256:…`) serves. The documents read are checked
    /// against their digests; attestation entries (`unknown/unknown`) are not platforms.
    pub async fn platforms(&self, digest: &str) -> Result<Vec<ImagePlatform>, RegistryError> {
        if sha256_of(digest).is_none() {
            return Err(RegistryError::Config(format!(
                "invalid digest {digest:?}: expected sha256:<64 hex digits>"
            )));
        }
        let (url, media_type, body) = self.document("manifests", digest).await?;
        let invalid = |message: String| RegistryError::InvalidResponse {
            url: url.clone(),
            message,
        };
        // The header is authoritative; a registry that omits it leaves the body's own field.
        let media_type = match media_type {
            Some(m) => m,
            None => serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("mediaType")?.as_str().map(str::to_owned))
                .ok_or_else(|| invalid("manifest names no media type".into()))?,
        };
        if INDEX_TYPES.contains(&media_type.as_str()) {
            let index = ImageIndex::from_reader(body.as_slice())
                .map_err(|e| invalid(format!("not an image index: {e}")))?;
            let mut found: Vec<ImagePlatform> = index
                .manifests()
                .iter()
                .filter_map(|m| m.platform().as_ref())
                .map(|p| ImagePlatform {
                    os: p.os().to_string(),
                    architecture: p.architecture().to_string(),
                    variant: p.variant().clone(),
                })
                .filter(|p| p.os != "unknown" && p.architecture != "unknown")
                .collect();
            found.sort();
            found.dedup();
            return Ok(found);
        }
        if !MANIFEST_TYPES.contains(&media_type.as_str()) {
            return Err(invalid(format!(
                "unsupported manifest media type '{}'",
                snippet(media_type.as_bytes())
            )));
        }
        let manifest = ImageManifest::from_reader(body.as_slice())
            .map_err(|e| invalid(format!("not an image manifest: {e}")))?;
        let config_digest = manifest.config().digest().to_string();
        let (url, _, body) = self.document("blobs", &config_digest).await?;
        let config = ImageConfiguration::from_reader(body.as_slice()).map_err(|e| {
            RegistryError::InvalidResponse {
                url,
                message: format!("not an image configuration: {e}"),
            }
        })?;
        Ok(vec![ImagePlatform {
            os: config.os().to_string(),
            architecture: config.architecture().to_string(),
            variant: config.variant().clone(),
        }])
    }

    /// GETs `v2/<name>/<kind>/<digest>` and checks the body against the digest. Returns the
    /// URL, the media type (Content-Type without parameters) and the body.
    async fn document(
        &self,
        kind: &str,
        digest: &str,
    ) -> Result<(String, Option<String>, Vec<u8>), RegistryError> {
        let Some(hex) = sha256_of(digest) else {
            return Err(RegistryError::Config(format!(
                "invalid digest {digest:?}: expected sha256:<64 hex digits>"
            )));
        };
        let url = self.url(&format!("v2/{}/{kind}/{digest}", self.name().repository))?;
        let reply = match self
            .send(Method::GET, url.clone(), Some(MANIFEST_ACCEPT))
            .await
        {
            // Blob stores (S3, CDNs) live on other hosts: follow without credentials.
            Err(RegistryError::Redirect { location, .. }) if kind == "blobs" => {
                self.fetch_elsewhere(&url, &location).await?
            }
            r => r?,
        };
        let shown = url.to_string();
        if reply.status == StatusCode::NOT_FOUND {
            return Err(RegistryError::NotFound { url: shown });
        }
        if !reply.status.is_success() {
            return Err(RegistryError::Status {
                url: shown,
                status: reply.status.as_u16(),
                message: snippet(&reply.body),
            });
        }
        let got = format!("{:x}", sha2::Sha256::digest(&reply.body));
        if got != hex.to_ascii_lowercase() {
            return Err(RegistryError::InvalidResponse {
                url: shown,
                message: format!("content does not match its digest (sha256:{got})"),
            });
        }
        let media_type = reply
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().to_owned())
            .filter(|v| {
                !v.is_empty() && v != "application/json" && v != "application/octet-stream"
            });
        Ok((shown, media_type, reply.body))
    }
}

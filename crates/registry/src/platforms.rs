//! Which platforms an image serves: the entries of its index (manifest list), or the
//! `os`/`architecture`/`variant` of a single manifest's config.
//!
//! Documents are parsed with `oci-client`'s types (its digest helpers are private, so the
//! digest check is sha2's). The
//! requests themselves go through [`RepoClient`] (its host gate, adaptive rate, credentials,
//! client certificate and redirect rules): `oci_client::Client` builds its own HTTP client, which
//! can present no client certificate and would bypass the per-host politeness every other
//! request of the host obeys.

use std::fmt;

use oci_client::config::ConfigFile;
use oci_client::manifest::{
    OciImageIndex, OciImageManifest, OciManifest, IMAGE_MANIFEST_LIST_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE,
};
use reqwest::{header::CONTENT_TYPE, Method, StatusCode};

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

/// An image config: `oci_client::config::ConfigFile` has no `variant` (image-spec's config
/// has one: `arm/v7`), so it is read beside it in the same pass.
#[derive(serde::Deserialize)]
struct ImageConfig {
    #[serde(flatten)]
    file: ConfigFile,
    variant: Option<String>,
}

/// Whether `digest` is `algorithm:hex` in a form tagpilot fetches by (it becomes part of a URL
/// path, so nothing else may pass): sha256, sha384 or sha512 with their hex lengths.
pub(crate) fn is_fetchable_digest(digest: &str) -> bool {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return false;
    };
    let len = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return false,
    };
    hex.len() == len && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The digest of `body` with the algorithm `digest` names (one [`is_fetchable_digest`] passed).
fn digest_of(digest: &str, body: &[u8]) -> String {
    use sha2::Digest as _;
    match digest.split_once(':').map(|(a, _)| a) {
        Some("sha512") => format!("sha512:{:x}", sha2::Sha512::digest(body)),
        Some("sha384") => format!("sha384:{:x}", sha2::Sha384::digest(body)),
        _ => format!("sha256:{:x}", sha2::Sha256::digest(body)),
    }
}

fn invalid_digest(digest: &str) -> RegistryError {
    RegistryError::Config(format!(
        "invalid digest {digest:?}: expected sha256:, sha384: or sha512: and its hex digits"
    ))
}

/// The manifest or index in `body`, read as its media type says; without one (a registry that
/// sends `application/json`), by its shape.
fn parse_manifest(media_type: Option<&str>, body: &[u8]) -> Result<OciManifest, String> {
    match media_type {
        Some(OCI_IMAGE_INDEX_MEDIA_TYPE | IMAGE_MANIFEST_LIST_MEDIA_TYPE) => {
            serde_json::from_slice::<OciImageIndex>(body)
                .map(OciManifest::ImageIndex)
                .map_err(|e| format!("not an image index: {e}"))
        }
        Some(OCI_IMAGE_MEDIA_TYPE | IMAGE_MANIFEST_MEDIA_TYPE) => {
            serde_json::from_slice::<OciImageManifest>(body)
                .map(OciManifest::Image)
                .map_err(|e| format!("not an image manifest: {e}"))
        }
        Some(other) => Err(format!(
            "unsupported manifest media type '{}'",
            snippet(other.as_bytes())
        )),
        None => serde_json::from_slice::<OciManifest>(body)
            .map_err(|_| "neither an image index nor an image manifest".to_owned()),
    }
}

/// The platforms an index lists; attestation entries (`unknown/unknown`) are not platforms.
fn index_platforms(index: &OciImageIndex) -> Vec<ImagePlatform> {
    let mut found: Vec<ImagePlatform> = index
        .manifests
        .iter()
        .filter_map(|m| m.platform.as_ref())
        .map(|p| ImagePlatform {
            os: p.os.to_string(),
            architecture: p.architecture.to_string(),
            variant: p.variant.clone(),
        })
        .filter(|p| p.os != "unknown" && p.architecture != "unknown")
        .collect();
    found.sort();
    found.dedup();
    found
}

fn config_platform(body: &[u8]) -> Result<ImagePlatform, String> {
    let config: ImageConfig =
        serde_json::from_slice(body).map_err(|e| format!("not an image configuration: {e}"))?;
    Ok(ImagePlatform {
        os: config.file.os.to_string(),
        architecture: config.file.architecture.to_string(),
        variant: config.variant.filter(|v| !v.is_empty()),
    })
}

impl RepoClient {
    /// The platforms the image `digest` serves. Every document read is checked against its
    /// digest.
    pub async fn platforms(&self, digest: &str) -> Result<Vec<ImagePlatform>, RegistryError> {
        let (url, media_type, body) = self.document("manifests", digest).await?;
        // A registry that sends a generic Content-Type leaves the body's own field.
        let media_type = media_type.or_else(|| {
            serde_json::from_slice::<MediaTypeField>(&body)
                .ok()
                .and_then(|m| m.media_type)
        });
        let manifest = parse_manifest(media_type.as_deref(), &body)
            .map_err(|message| RegistryError::InvalidResponse { url, message })?;
        let manifest = match manifest {
            OciManifest::ImageIndex(index) => return Ok(index_platforms(&index)),
            OciManifest::Image(manifest) => manifest,
        };
        let (url, _, body) = self.document("blobs", &manifest.config.digest).await?;
        config_platform(&body)
            .map(|p| vec![p])
            .map_err(|message| RegistryError::InvalidResponse { url, message })
    }

    /// GETs `v2/<name>/<kind>/<digest>` and checks the body against the digest. Returns the
    /// URL, the media type (Content-Type without parameters) and the body.
    async fn document(
        &self,
        kind: &str,
        digest: &str,
    ) -> Result<(String, Option<String>, Vec<u8>), RegistryError> {
        if !is_fetchable_digest(digest) {
            return Err(invalid_digest(digest));
        }
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
        // The header is not consulted: what was asked for is what must have arrived.
        let got = digest_of(digest, &reply.body);
        if !got.eq_ignore_ascii_case(digest) {
            return Err(RegistryError::InvalidResponse {
                url: shown,
                message: format!("content does not match its digest ({got})"),
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

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct MediaTypeField {
    media_type: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",
      "manifests":[
        {"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"digest":"sha256:aa",
         "platform":{"architecture":"arm64","os":"linux"}},
        {"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"digest":"sha256:bb",
         "platform":{"architecture":"arm","os":"linux","variant":"v7"}},
        {"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"digest":"sha256:cc",
         "platform":{"architecture":"unknown","os":"unknown"}},
        {"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"digest":"sha256:dd",
         "platform":{"architecture":"amd64","os":"linux"}}]}"#;

    const MANIFEST: &str = r#"{"schemaVersion":2,
      "mediaType":"application/vnd.docker.distribution.manifest.v2+json",
      "config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":2,
                "digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000"},
      "layers":[]}"#;

    fn shown(platforms: &[ImagePlatform]) -> Vec<String> {
        platforms.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn an_index_lists_its_platforms_sorted_without_attestations() {
        for media_type in [Some(OCI_IMAGE_INDEX_MEDIA_TYPE), None] {
            let Ok(OciManifest::ImageIndex(index)) = parse_manifest(media_type, INDEX.as_bytes())
            else {
                panic!("an index, read as {media_type:?}");
            };
            assert_eq!(
                shown(&index_platforms(&index)),
                ["linux/amd64", "linux/arm/v7", "linux/arm64"]
            );
        }
    }

    #[test]
    fn a_manifest_is_read_by_its_media_type_or_its_shape() {
        for media_type in [Some(IMAGE_MANIFEST_MEDIA_TYPE), None] {
            let Ok(OciManifest::Image(m)) = parse_manifest(media_type, MANIFEST.as_bytes()) else {
                panic!("a manifest, read as {media_type:?}");
            };
            assert!(m.config.digest.starts_with("sha256:0000"));
        }
        // Declared as an index, shaped as a manifest: the declaration wins and fails.
        let e = parse_manifest(Some(OCI_IMAGE_INDEX_MEDIA_TYPE), MANIFEST.as_bytes());
        assert!(matches!(e, Err(m) if m.starts_with("not an image index")));
        let e = parse_manifest(Some("text/html"), b"<html>");
        assert!(matches!(e, Err(m) if m.contains("unsupported manifest media type 'text/html'")));
        let e = parse_manifest(None, br#"{"schemaVersion":2}"#);
        assert!(matches!(e, Err(m) if m.contains("neither an image index nor")));
    }

    #[test]
    fn a_config_gives_os_architecture_and_variant() {
        let arm = br#"{"architecture":"arm","os":"linux","variant":"v7","rootfs":{"type":"layers","diff_ids":[]}}"#;
        assert_eq!(
            config_platform(arm).map(|p| p.to_string()),
            Ok("linux/arm/v7".to_owned())
        );
        let amd = br#"{"architecture":"amd64","os":"linux","variant":"","rootfs":{"type":"layers","diff_ids":[]}}"#;
        assert_eq!(
            config_platform(amd).map(|p| p.to_string()),
            Ok("linux/amd64".to_owned())
        );
        let e = config_platform(br#"{"os":"linux"}"#);
        assert!(matches!(e, Err(m) if m.starts_with("not an image configuration")));
    }

    #[test]
    fn digests_use_the_algorithm_they_name() {
        let empty256 = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(digest_of(empty256, b""), empty256);
        assert!(
            digest_of(&format!("sha512:{}", "0".repeat(128)), b"").starts_with("sha512:cf83e135")
        );
    }

    #[test]
    fn only_well_formed_digests_are_fetched() {
        let hex64 = "a".repeat(64);
        assert!(is_fetchable_digest(&format!("sha256:{hex64}")));
        assert!(is_fetchable_digest(&format!("sha512:{}", "0".repeat(128))));
        for bad in [
            format!("sha256:{}", "a".repeat(63)),
            format!("md5:{hex64}"),
            format!("sha256:{}/../x", &hex64[..60]),
            hex64.clone(),
            format!("sha384:{hex64}"),
        ] {
            assert!(!is_fetchable_digest(&bad), "{bad}");
        }
    }
}

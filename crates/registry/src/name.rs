//! Image names as Flux reads `spec.image` (reference §2.1): validation with Flux's messages and
//! canonical names (`alpine` → `index.docker.io/library/alpine`).

use std::fmt;

/// The Docker Hub registry, as go-containerregistry names it.
pub const DOCKER_HUB: &str = "index.docker.io";

/// A repository: registry host and path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageName {
    /// Registry host (with port), e.g. `ghcr.io`, `127.0.0.1:5000`, `index.docker.io`.
    pub registry: String,
    /// Repository path, e.g. `stefanprodan/podinfo`, `library/alpine`.
    pub repository: String,
}

/// Why `spec.image` is not a valid repository.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("image '{image}' should not include URL scheme; remove '{scheme}://'")]
    Scheme { image: String, scheme: String },
    #[error("image '{image}' should not include a tag; remove ':{tag}'")]
    Tag { image: String, tag: String },
    #[error("image '{image}' should not include a digest; remove '@{digest}'")]
    Digest { image: String, digest: String },
    #[error("could not parse reference: {image}: {why}")]
    Invalid { image: String, why: &'static str },
}

impl ImageName {
    /// Parses and validates `spec.image`.
    pub fn parse(image: &str) -> Result<Self, NameError> {
        if let Some((scheme, _)) = image.split_once("://") {
            return Err(NameError::Scheme {
                image: image.to_owned(),
                scheme: scheme.to_owned(),
            });
        }
        if let Some((_, digest)) = image.split_once('@') {
            return Err(NameError::Digest {
                image: image.to_owned(),
                digest: digest.to_owned(),
            });
        }
        let invalid = |why| NameError::Invalid {
            image: image.to_owned(),
            why,
        };
        let (registry, path) = match image.split_once('/') {
            Some((host, rest))
                if host.contains('.') || host.contains(':') || host == "localhost" =>
            {
                (host.to_owned(), rest.to_owned())
            }
            _ => (DOCKER_HUB.to_owned(), image.to_owned()),
        };
        if let Some((_, tag)) = path.rsplit_once(':') {
            return Err(NameError::Tag {
                image: image.to_owned(),
                tag: tag.to_owned(),
            });
        }
        if path.is_empty() {
            return Err(invalid("repository must not be empty"));
        }
        if registry.is_empty()
            || !registry
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        {
            return Err(invalid("invalid registry host"));
        }
        for component in path.split('/') {
            let ok = !component.is_empty()
                && component
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && component
                    .bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_alphanumeric())
                && component
                    .bytes()
                    .last()
                    .is_some_and(|b| b.is_ascii_alphanumeric());
            if !ok {
                return Err(invalid(
                    "repository path components must be lowercase letters, digits and separators",
                ));
            }
        }
        let registry = if registry == "docker.io" || registry == "registry-1.docker.io" {
            DOCKER_HUB.to_owned()
        } else {
            registry
        };
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        Ok(ImageName {
            registry,
            repository,
        })
    }

    /// The canonical name Flux reports (`status.canonicalImageName`).
    pub fn canonical(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        ImageName::parse(s)
            .map(|n| n.canonical())
            .unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn canonical_names() {
        assert_eq!(canon("alpine"), "index.docker.io/library/alpine");
        assert_eq!(canon("fluxcd/flux"), "index.docker.io/fluxcd/flux");
        assert_eq!(canon("docker.io/nginx"), "index.docker.io/library/nginx");
        assert_eq!(
            canon("ghcr.io/stefanprodan/podinfo"),
            "ghcr.io/stefanprodan/podinfo"
        );
        assert_eq!(
            canon("127.0.0.1:5000/team/sub/app"),
            "127.0.0.1:5000/team/sub/app"
        );
        assert_eq!(canon("localhost/app"), "localhost/app");
    }

    #[test]
    fn flux_messages() {
        assert_eq!(
            canon("https://ghcr.io/a"),
            "image 'https://ghcr.io/a' should not include URL scheme; remove 'https://'"
        );
        assert_eq!(
            canon("ghcr.io/a:1.0"),
            "image 'ghcr.io/a:1.0' should not include a tag; remove ':1.0'"
        );
        assert_eq!(
            canon("alpine:3"),
            "image 'alpine:3' should not include a tag; remove ':3'"
        );
        assert!(canon("Alpine").starts_with("could not parse reference"));
        assert!(canon("ghcr.io/").starts_with("could not parse reference"));
        assert!(canon("ghcr.io/a//b").starts_with("could not parse reference"));
        assert!(canon("a@sha256:00").contains("should not include a digest"));
    }
}

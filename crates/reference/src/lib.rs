//! Container image names and references, parsed once for every crate of tagpilot.
//!
//! Two shapes, both with Docker's host rule (the first path component is a registry host when
//! it holds a `.` or a `:` or is `localhost`) and Docker Hub's aliases folded into one
//! canonical host (`docker.io`, `registry-1.docker.io`, `index.docker.io`, and no host at all,
//! with `library/` for a one-component path):
//! - [`ImageName`]: a repository as Flux reads `ImageRepository.spec.image` (no tag, no
//!   digest), with Flux's messages when it is not one;
//! - [`Reference`]: `NAME[:TAG][@DIGEST]`, what a policy resolved to and what a marker writes;
//!   `name` stays verbatim, since a marker writes back the name the user gave.

use std::fmt;

/// The Docker Hub registry, as go-containerregistry names it.
pub const DOCKER_HUB: &str = "index.docker.io";

/// Splits `name` into its registry host, when the first component is one, and the rest.
pub fn split_host(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((host, rest)) if host.contains(['.', ':']) || host == "localhost" => {
            (Some(host), rest)
        }
        _ => (None, name),
    }
}

/// The canonical registry of a host [`split_host`] found: Docker Hub's names are one.
pub fn canonical_host(host: Option<&str>) -> &str {
    match host {
        None | Some("docker.io" | "registry-1.docker.io" | DOCKER_HUB) => DOCKER_HUB,
        Some(h) => h,
    }
}

/// Registry and repository of a repository name by Docker's rules, without validating it
/// (see [`ImageName::parse`] for that): `nginx` is `index.docker.io` + `library/nginx`.
pub fn registry_and_repository(name: &str) -> (String, String) {
    let (host, path) = split_host(name);
    let registry = canonical_host(host);
    let repository = if registry == DOCKER_HUB && !path.contains('/') {
        format!("library/{path}")
    } else {
        path.to_owned()
    };
    (registry.to_owned(), repository)
}

/// A repository: canonical registry host and path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageName {
    /// Registry host (with port), e.g. `ghcr.io`, `127.0.0.1:5000`, `index.docker.io`.
    pub registry: String,
    /// Repository path, e.g. `stefanprodan/podinfo`, `library/alpine`.
    pub repository: String,
}

/// Why a string is not a valid repository name (Flux's messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("image is required")]
    Empty,
    #[error("image '{image}' should not include URL scheme; remove '{scheme}://'")]
    Scheme { image: String, scheme: String },
    #[error("image '{image}' should not include a tag; remove ':{tag}'")]
    Tag { image: String, tag: String },
    #[error("image '{image}' should not include a digest; remove '@{digest}'")]
    Digest { image: String, digest: String },
    #[error("could not parse reference: {image}: {why}")]
    Invalid { image: String, why: &'static str },
}

fn valid_component(c: &str) -> bool {
    let edge = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    edge(c.bytes().next())
        && edge(c.bytes().last())
        && c.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

impl ImageName {
    /// Parses and validates a repository name (`spec.image`).
    pub fn parse(image: &str) -> Result<Self, NameError> {
        if image.is_empty() {
            return Err(NameError::Empty);
        }
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
        let (host, path) = split_host(image);
        if let Some((_, tag)) = path.rsplit_once(':') {
            return Err(NameError::Tag {
                image: image.to_owned(),
                tag: tag.to_owned(),
            });
        }
        if path.is_empty() {
            return Err(invalid("repository must not be empty"));
        }
        if let Some(host) = host {
            let ok = host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
            if !ok {
                return Err(invalid("invalid registry host"));
            }
        }
        if !path.split('/').all(valid_component) {
            return Err(invalid(
                "repository path components must be lowercase letters, digits and separators",
            ));
        }
        let (registry, repository) = registry_and_repository(image);
        Ok(ImageName {
            registry,
            repository,
        })
    }

    /// The canonical name Flux reports (`status.canonicalImageName`).
    pub fn canonical(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)
    }
}

/// `NAME[:TAG][@DIGEST]`: `name` is the repository name verbatim (`spec.image`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reference {
    pub name: String,
    pub tag: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// Why a string is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("encountered invalid image ref \"{image}\": {why}")]
pub struct ReferenceError {
    pub image: String,
    pub why: String,
}

fn valid_tag(tag: &str) -> bool {
    tag.len() <= 128
        && tag
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

fn valid_digest(digest: &str) -> bool {
    digest.split_once(':').is_some_and(|(algo, hex)| {
        !algo.is_empty()
            && algo
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b))
            && hex.len() >= 32
            && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

impl Reference {
    /// Parses `NAME[:TAG][@DIGEST]`; the tag follows the last `:` after the last `/`, and a
    /// tag or a digest is required.
    pub fn parse(image: &str) -> Result<Self, ReferenceError> {
        let bad = |why: String| ReferenceError {
            image: image.to_owned(),
            why,
        };
        let (rest, digest) = match image.split_once('@') {
            Some((_, d)) if !valid_digest(d) => return Err(bad("invalid digest".into())),
            Some((r, d)) => (r, Some(d.to_owned())),
            None => (image, None),
        };
        let slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[slash..].rfind(':') {
            Some(i) => (&rest[..slash + i], &rest[slash + i + 1..]),
            None => (rest, ""),
        };
        if let Err(e) = ImageName::parse(name) {
            return Err(bad(match e {
                NameError::Invalid { why, .. } => format!("invalid repository name: {why}"),
                _ => "invalid repository name".to_owned(),
            }));
        }
        if !tag.is_empty() && !valid_tag(tag) {
            return Err(bad("invalid tag".into()));
        }
        if tag.is_empty() && digest.is_none() {
            return Err(bad("a tag or a digest is required".into()));
        }
        Ok(Reference {
            name: name.to_owned(),
            tag: tag.to_owned(),
            digest,
        })
    }

    /// The full reference: `name[:tag][@digest]`.
    pub fn image(&self) -> String {
        let mut s = self.name.clone();
        if !self.tag.is_empty() {
            s.push(':');
            s.push_str(&self.tag);
        }
        if let Some(d) = self.digest.as_deref().filter(|d| !d.is_empty()) {
            s.push('@');
            s.push_str(d);
        }
        s
    }

    /// Canonical registry and repository of the name (Docker's rules, not validated again).
    pub fn registry_and_repository(&self) -> (String, String) {
        registry_and_repository(&self.name)
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
    fn docker_hub_and_its_aliases_are_one_registry() {
        for (name, want) in [
            ("alpine", "index.docker.io/library/alpine"),
            ("fluxcd/flux", "index.docker.io/fluxcd/flux"),
            ("docker.io/nginx", "index.docker.io/library/nginx"),
            ("docker.io/library/nginx", "index.docker.io/library/nginx"),
            ("index.docker.io/nginx", "index.docker.io/library/nginx"),
            (
                "registry-1.docker.io/nginx",
                "index.docker.io/library/nginx",
            ),
            ("registry-1.docker.io/team/app", "index.docker.io/team/app"),
            (
                "ghcr.io/stefanprodan/podinfo",
                "ghcr.io/stefanprodan/podinfo",
            ),
            ("127.0.0.1:5000/team/sub/app", "127.0.0.1:5000/team/sub/app"),
            ("localhost/app", "localhost/app"),
            ("localhost:5000/app", "localhost:5000/app"),
            ("[::1]:5000/app", "[::1]:5000/app"),
            // Not a host: no '.', no ':', not localhost.
            ("team/app", "index.docker.io/team/app"),
        ] {
            assert_eq!(canon(name), want, "{name}");
            let (r, p) = registry_and_repository(name);
            assert_eq!(format!("{r}/{p}"), want, "lenient {name}");
        }
    }

    #[test]
    fn flux_messages() {
        assert_eq!(canon(""), "image is required");
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
        assert_eq!(
            canon("a@sha256:00"),
            "image 'a@sha256:00' should not include a digest; remove '@sha256:00'"
        );
        for bad in [
            "Alpine",
            "ghcr.io/",
            "ghcr.io/a//b",
            "ghcr.io/App",
            "a b",
            "ghcr.io/-a",
            "ghcr.io/a-",
            "gh cr.io/a",
            "ghcr.io/a/",
        ] {
            assert!(
                canon(bad).starts_with("could not parse reference"),
                "{bad}: {}",
                canon(bad)
            );
        }
        // Ports are part of the host; a ':' after it is a tag.
        assert!(ImageName::parse("localhost:5000/app").is_ok());
        assert!(matches!(
            ImageName::parse("localhost:5000/app:1"),
            Err(NameError::Tag { .. })
        ));
    }

    #[test]
    fn references_split_name_tag_and_digest() {
        let r = Reference::parse("ghcr.io/stefanprodan/podinfo:5.0.3").unwrap();
        assert_eq!(
            (r.name.as_str(), r.tag.as_str(), r.digest.as_deref()),
            ("ghcr.io/stefanprodan/podinfo", "5.0.3", None)
        );
        let r = Reference::parse("localhost:5000/app:1.0").unwrap();
        assert_eq!(
            (r.name.as_str(), r.tag.as_str()),
            ("localhost:5000/app", "1.0")
        );
        let d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let r = Reference::parse(&format!("localhost:5000/app@{d}")).unwrap();
        assert_eq!((r.tag.as_str(), r.digest.as_deref()), ("", Some(d)));
        assert_eq!(r.image(), format!("localhost:5000/app@{d}"));
        let r = Reference::parse(&format!("docker.io/nginx:1.27@{d}")).unwrap();
        assert_eq!(r.name, "docker.io/nginx", "the name stays as written");
        assert_eq!(
            r.registry_and_repository(),
            ("index.docker.io".to_owned(), "library/nginx".to_owned())
        );
        assert_eq!(r.image(), format!("docker.io/nginx:1.27@{d}"));
        for bad in [
            "",
            "app",
            "app:",
            "app:-x",
            "app@sha256:xyz",
            "a b:1",
            "https://x/y:1",
            "App:1",
            "ghcr.io//a:1",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?}");
        }
        let e = Reference::parse("app:-x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "encountered invalid image ref \"app:-x\": invalid tag"
        );
    }

    proptest::proptest! {
        #[test]
        fn a_parsed_reference_prints_back_as_it_was_written(
            host in proptest::option::of("(ghcr\\.io|docker\\.io|localhost:5000|10\\.0\\.0\\.1:80)"),
            path in "[a-z0-9]{1,8}(/[a-z0-9]{1,8}){0,2}",
            tag in "[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}",
        ) {
            let name = match &host { Some(h) => format!("{h}/{path}"), None => path.clone() };
            let written = format!("{name}:{tag}");
            let r = Reference::parse(&written).unwrap();
            proptest::prop_assert_eq!(r.image(), written);
            proptest::prop_assert_eq!(&r.name, &name);
            let canonical = ImageName::parse(&name).unwrap();
            proptest::prop_assert_eq!(
                r.registry_and_repository(),
                (canonical.registry, canonical.repository)
            );
        }
    }
}

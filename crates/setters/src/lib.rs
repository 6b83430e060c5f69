//! Flux image-automation setters, done surgically.
//!
//! Finds `$imagepolicy` markers in YAML files (line comments on mapping values and sequence
//! items) and replaces only the marked scalars' bytes: comments, blank lines, `---`, indentation,
//! quoting, CRLF and unicode elsewhere stay byte-identical. Every edited file is re-parsed and
//! checked before it is offered for writing. Pure apart from reading the tree and, on request,
//! writing the files ([`write_changes`]).

mod edit;
mod marker;
mod scalar;
mod tree;

use serde::Serialize;

pub use edit::{update_str, FileError, FileUpdate, Policies};
pub use marker::{parse_marker, Marker, Setter};
pub use scalar::{plain_is_safe, reads_as_non_string, render, Style};
pub use tree::{
    scan_tree, write_changes, write_changes_in_clone, ChangeSet, FileChange, TreeError,
};

/// What a policy resolved to: `name` is the ImageRepository's `spec.image` verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LatestRef {
    pub name: String,
    pub tag: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

impl LatestRef {
    /// The full reference a `ns:name` marker writes: `name:tag[@digest]`.
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

    /// Parses `IMAGE[:TAG][@DIGEST]`: the tag follows the last `:` after the last `/`.
    pub fn parse(image: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("encountered invalid image ref \"{image}\": {why}");
        let (rest, digest) = match image.split_once('@') {
            Some((r, d)) => {
                let valid = d.split_once(':').is_some_and(|(algo, hex)| {
                    !algo.is_empty()
                        && algo.bytes().all(|b| {
                            b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b)
                        })
                        && hex.len() >= 32
                        && hex.bytes().all(|b| b.is_ascii_hexdigit())
                });
                if !valid {
                    return Err(bad("invalid digest"));
                }
                (r, Some(d.to_owned()))
            }
            None => (image, None),
        };
        let slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[slash..].rfind(':') {
            Some(i) => (&rest[..slash + i], &rest[slash + i + 1..]),
            None => (rest, ""),
        };
        if name.is_empty() || name.contains(char::is_whitespace) || name.contains("://") {
            return Err(bad("invalid repository name"));
        }
        let tag_ok = tag.is_empty()
            || (tag.len() <= 128
                && tag
                    .bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
                && tag
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)));
        if !tag_ok {
            return Err(bad("invalid tag"));
        }
        if tag.is_empty() && digest.is_none() {
            return Err(bad("a tag or a digest is required"));
        }
        Ok(LatestRef {
            name: name.to_owned(),
            tag: tag.to_owned(),
            digest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::LatestRef;

    #[test]
    fn parses_image_refs() {
        let r = LatestRef::parse("ghcr.io/stefanprodan/podinfo:5.0.3").unwrap();
        assert_eq!(
            (r.name.as_str(), r.tag.as_str(), r.digest),
            ("ghcr.io/stefanprodan/podinfo", "5.0.3", None)
        );
        let r = LatestRef::parse("localhost:5000/app:1.0").unwrap();
        assert_eq!(
            (r.name.as_str(), r.tag.as_str()),
            ("localhost:5000/app", "1.0")
        );
        let d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let r = LatestRef::parse(&format!("localhost:5000/app@{d}")).unwrap();
        assert_eq!((r.tag.as_str(), r.digest.as_deref()), ("", Some(d)));
        assert_eq!(r.image(), format!("localhost:5000/app@{d}"));
        for bad in [
            "",
            "app",
            "app:",
            "app:-x",
            "app@sha256:xyz",
            "a b:1",
            "https://x/y:1",
        ] {
            assert!(LatestRef::parse(bad).is_err(), "{bad:?}");
        }
    }
}

/// The identity of the YAML document holding a change (empty fields for non-Kubernetes YAML).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectId {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

/// One changed value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub old_value: String,
    pub new_value: String,
    /// The marker value, e.g. `flux-system:podinfo:tag`.
    pub setter: String,
}

/// The changes in one object (document), in document order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectChange {
    pub object: ObjectId,
    pub changes: Vec<Change>,
}

//! `$imagepolicy` markers: a comment whose text, after its leading `#`s, is a JSON object of
//! string values with the key `"$imagepolicy"` and a value `ns:name[:tag|:name|:digest]`.

use std::collections::BTreeMap;

/// Which part of the latest ref a marker writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setter {
    /// `ns:name`: the full image, `name:tag[@digest]`.
    Image,
    Tag,
    Name,
    Digest,
}

/// A recognised marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    pub namespace: String,
    pub name: String,
    pub setter: Setter,
    /// The marker value as written (`flux-system:podinfo:tag`): the change set's setter.
    pub text: String,
}

/// Parses a comment (including its `#`). `None` when it is not a marker or names an unknown
/// suffix; such comments are left alone, as Flux does.
pub fn parse_marker(comment: &str) -> Option<Marker> {
    let body = comment.trim_start_matches('#').trim();
    if !body.starts_with('{') {
        return None;
    }
    let fields: BTreeMap<String, String> = serde_json::from_str(body).ok()?;
    let value = fields.get("$imagepolicy")?;
    let mut parts = value.split(':');
    let (namespace, name) = (parts.next()?, parts.next()?);
    let setter = match parts.next() {
        None => Setter::Image,
        Some("tag") => Setter::Tag,
        Some("name") => Setter::Name,
        Some("digest") => Setter::Digest,
        Some(_) => return None,
    };
    if parts.next().is_some() || namespace.is_empty() || name.is_empty() {
        return None;
    }
    Some(Marker {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        setter,
        text: value.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_flux_markers() {
        let m = parse_marker(r#"# {"$imagepolicy": "flux-system:podinfo"}"#);
        assert_eq!(
            m.map(|m| (m.namespace, m.name, m.setter)),
            Some(("flux-system".into(), "podinfo".into(), Setter::Image))
        );
        assert_eq!(
            parse_marker(r#"#{"$imagepolicy":"a:b:tag"}"#).map(|m| m.setter),
            Some(Setter::Tag)
        );
        assert_eq!(
            parse_marker(r#"### {"$imagepolicy": "a:b:name", "x": "y"}"#).map(|m| m.setter),
            Some(Setter::Name)
        );
        assert_eq!(
            parse_marker(r#"# {"$imagepolicy": "a:b:digest"}  "#).map(|m| m.setter),
            Some(Setter::Digest)
        );
    }

    #[test]
    fn rejects_lookalikes() {
        for c in [
            r#"# {'$imagepolicy': 'a:b'}"#,
            r#"# {"$imagepolicy": "a:b"} trailing"#,
            r#"# note {"$imagepolicy": "a:b"}"#,
            r#"# {"$imagepolicy": "a:b:version"}"#,
            r#"# {"$imagepolicy": "a"}"#,
            r#"# {"$imagepolicy": "a:b:tag:x"}"#,
            r#"# {"$imagepolicy": 1}"#,
            r#"# {"$imagepolicy": "a:b", "n": 2}"#,
            r#"# {"$imagepolicy": ":b"}"#,
            "# plain comment",
        ] {
            assert_eq!(parse_marker(c), None, "{c}");
        }
    }
}

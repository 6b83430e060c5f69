//! Digest reflection (Flux's `digestReflectionPolicy`) and what a digest must look like before
//! it is used anywhere.

use tagpilot_api::DigestReflectionPolicy;

/// The previous latest ref of a policy, as far as the digest rule cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Previous<'a> {
    pub name: &'a str,
    pub tag: &'a str,
    pub digest: Option<&'a str>,
}

/// What to do about the digest of the newly selected `name:tag`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// No digest (`Never`: switching to it clears a previous one).
    None,
    /// Keep the previous digest (`IfNotPresent`, same image and tag, digest known).
    Keep,
    /// Ask the registry.
    Fetch,
}

/// Flux's rule: `Never` → none; `IfNotPresent` → fetch only when there was no previous ref, its
/// name or tag changed, or its digest is empty; `Always` → fetch on every reconcile.
pub fn plan(
    policy: DigestReflectionPolicy,
    previous: Option<Previous<'_>>,
    name: &str,
    tag: &str,
) -> Plan {
    match policy {
        DigestReflectionPolicy::Never => Plan::None,
        DigestReflectionPolicy::Always => Plan::Fetch,
        DigestReflectionPolicy::IfNotPresent => match previous {
            Some(p)
                if p.name == name && p.tag == tag && p.digest.is_some_and(|d| !d.is_empty()) =>
            {
                Plan::Keep
            }
            _ => Plan::Fetch,
        },
    }
}

/// Why a digest was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidDigest(pub String);

impl std::fmt::Display for InvalidDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidDigest {}

/// A digest is `<algorithm>:<hex>`: `sha256` with 64 lower-case hex digits or `sha512` with
/// 128 (the OCI image spec's registered algorithms). Anything else never reaches a file.
pub fn validate(digest: &str) -> Result<(), InvalidDigest> {
    let shown: String = digest.chars().take(80).collect();
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return Err(InvalidDigest(format!(
            "invalid digest '{shown}': expected <algorithm>:<hex>"
        )));
    };
    let want = match algorithm {
        "sha256" => 64,
        "sha512" => 128,
        _ => {
            return Err(InvalidDigest(format!(
                "invalid digest '{shown}': unsupported algorithm (sha256 or sha512)"
            )))
        }
    };
    if hex.len() != want
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(InvalidDigest(format!(
            "invalid digest '{shown}': {algorithm} needs {want} lower-case hex digits"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn flux_digest_rules() {
        let prev = Previous {
            name: "r/app",
            tag: "1.0.0",
            digest: Some(D),
        };
        use DigestReflectionPolicy::*;
        assert_eq!(plan(Never, Some(prev), "r/app", "1.0.0"), Plan::None);
        assert_eq!(plan(Always, Some(prev), "r/app", "1.0.0"), Plan::Fetch);
        assert_eq!(plan(IfNotPresent, Some(prev), "r/app", "1.0.0"), Plan::Keep);
        assert_eq!(
            plan(IfNotPresent, Some(prev), "r/app", "1.0.1"),
            Plan::Fetch
        );
        assert_eq!(
            plan(IfNotPresent, Some(prev), "r/other", "1.0.0"),
            Plan::Fetch
        );
        assert_eq!(plan(IfNotPresent, None, "r/app", "1.0.0"), Plan::Fetch);
        let empty = Previous {
            digest: Some(""),
            ..prev
        };
        assert_eq!(
            plan(IfNotPresent, Some(empty), "r/app", "1.0.0"),
            Plan::Fetch
        );
        let none = Previous {
            digest: None,
            ..prev
        };
        assert_eq!(
            plan(IfNotPresent, Some(none), "r/app", "1.0.0"),
            Plan::Fetch
        );
    }

    #[test]
    fn digests_must_be_algorithm_and_hex() {
        assert!(validate(D).is_ok());
        assert!(validate(&format!("sha512:{}", "ab".repeat(64))).is_ok());
        for bad in [
            "",
            "sha256",
            "sha256:",
            &D[..70],
            &format!("{D}0"),
            &D.to_uppercase(),
            "md5:0123456789abcdef0123456789abcdef",
            &format!("sha512:{}", &D[7..]),
            "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg",
            "sha256:../../../../etc/passwd",
            "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n",
        ] {
            assert!(validate(bad).is_err(), "{bad:?}");
        }
        // The message shows at most 80 characters of what the registry sent.
        let long = format!("sha256:{}", "x".repeat(10_000));
        assert!(validate(&long).err().is_some_and(|e| e.0.len() < 200));
    }
}

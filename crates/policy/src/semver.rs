//! Semantic versions as Flux reads image tags, and their SemVer 2.0 precedence.
//!
//! Flux (fluxcd/pkg `version.ParseVersion`) accepts a tag only when it splits into three parts
//! on its first two dots, then parses it with Masterminds/semver's coercing parser: an optional
//! lowercase `v`, one to three numeric parts with leading zeros allowed (`v2025.07.03` is
//! 2025.7.3), SemVer 2.0 pre-release and build identifiers. The split counts dots anywhere, so
//! `3.1-rc.2` (3.1.0-rc.2) and `v1.5+build.7` (1.5.0+build.7) are versions while `1.2` is not.

use std::cmp::Ordering;
use std::fmt;

/// A parsed version. Borrows its pre-release and build parts from the tag, so parsing a
/// tag list allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version<'a> {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    /// Pre-release identifiers without the leading `-`; empty when absent.
    pub pre: &'a str,
    /// Build metadata without the leading `+`; empty when absent. Ignored for precedence.
    pub build: &'a str,
}

/// Why a string is not a version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("empty string")]
    Empty,
    #[error("must split into three parts on its first two dots (major.minor.patch)")]
    NotThreeParts,
    #[error("invalid character {0:?} in the numeric part")]
    InvalidNumeric(char),
    #[error("numeric part too large")]
    Overflow,
    #[error("invalid pre-release {0:?}")]
    InvalidPrerelease(String),
    #[error("pre-release identifier {0:?} is numeric with a leading zero")]
    LeadingZeroPrerelease(String),
    #[error("invalid build metadata {0:?}")]
    InvalidBuild(String),
}

impl<'a> Version<'a> {
    /// Parses an image tag as current Flux does: at least two dots anywhere in the tag
    /// (`strings.SplitN(tag, ".", 3)` must give three parts), then Masterminds' coercing
    /// parse: `v?MAJOR[.MINOR[.PATCH]][-pre][+build]`, missing parts zero.
    pub fn parse_tag(tag: &'a str) -> Result<Self, VersionError> {
        if tag.bytes().filter(|&b| b == b'.').count() < 2 {
            return Err(VersionError::NotThreeParts);
        }
        parse_loose(tag).map(|(v, _)| v)
    }

    pub fn is_prerelease(&self) -> bool {
        !self.pre.is_empty()
    }

    /// SemVer 2.0 precedence (build metadata ignored).
    pub fn precedence(&self, other: &Version<'_>) -> Ordering {
        self.major
            .cmp(&other.major)
            .then(self.minor.cmp(&other.minor))
            .then(self.patch.cmp(&other.patch))
            .then_with(|| compare_prerelease(self.pre, other.pre))
    }
}

impl fmt::Display for Version<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if !self.pre.is_empty() {
            write!(f, "-{}", self.pre)?;
        }
        if !self.build.is_empty() {
            write!(f, "+{}", self.build)?;
        }
        Ok(())
    }
}

/// Masterminds `NewVersion` (coercing): `v?MAJOR(.MINOR(.PATCH)?)?(-PRE)?(+BUILD)?`.
/// Returns the version and whether all three numeric parts were present.
pub(crate) fn parse_loose(s: &str) -> Result<(Version<'_>, bool), VersionError> {
    if s.is_empty() {
        return Err(VersionError::Empty);
    }
    let body = s.strip_prefix('v').unwrap_or(s);
    // The numeric core ends at the first '-' or '+'.
    let core_end = body.find(['-', '+']).unwrap_or(body.len());
    let (core, suffix) = body.split_at(core_end);
    let mut nums = [0u64; 3];
    let mut count = 0;
    for part in core.split('.') {
        if count == 3 {
            return Err(VersionError::NotThreeParts);
        }
        nums[count] = parse_numeric(part)?;
        count += 1;
    }
    let (pre, build) = match suffix.as_bytes().first() {
        None => ("", ""),
        Some(b'+') => ("", &suffix[1..]),
        Some(_) => {
            let rest = &suffix[1..];
            match rest.find('+') {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, ""),
            }
        }
    };
    if suffix.starts_with('-') {
        validate_prerelease(pre)?;
    }
    if suffix.contains('+') {
        validate_build(build)?;
    }
    Ok((
        Version {
            major: nums[0],
            minor: nums[1],
            patch: nums[2],
            pre,
            build,
        },
        count == 3,
    ))
}

fn parse_numeric(part: &str) -> Result<u64, VersionError> {
    if part.is_empty() {
        return Err(VersionError::NotThreeParts);
    }
    let mut n: u64 = 0;
    for c in part.chars() {
        let d = c.to_digit(10).ok_or(VersionError::InvalidNumeric(c))?;
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d)))
            .ok_or(VersionError::Overflow)?;
    }
    Ok(n)
}

fn is_ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

fn validate_prerelease(pre: &str) -> Result<(), VersionError> {
    if pre.is_empty() {
        return Err(VersionError::InvalidPrerelease(pre.to_owned()));
    }
    for ident in pre.split('.') {
        if ident.is_empty() || !ident.bytes().all(is_ident_char) {
            return Err(VersionError::InvalidPrerelease(pre.to_owned()));
        }
        if ident.len() > 1 && ident.starts_with('0') && ident.bytes().all(|b| b.is_ascii_digit()) {
            return Err(VersionError::LeadingZeroPrerelease(ident.to_owned()));
        }
    }
    Ok(())
}

fn validate_build(build: &str) -> Result<(), VersionError> {
    if build.is_empty()
        || build
            .split('.')
            .any(|id| id.is_empty() || !id.bytes().all(is_ident_char))
    {
        return Err(VersionError::InvalidBuild(build.to_owned()));
    }
    Ok(())
}

/// SemVer 2.0 §11: a version without pre-release ranks above one with; identifiers compare
/// numerically when both are numeric, numeric ranks below alphanumeric, otherwise byte order;
/// a shorter list of equal identifiers ranks lower.
pub(crate) fn compare_prerelease(a: &str, b: &str) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        (false, false) => {}
    }
    let mut ai = a.split('.');
    let mut bi = b.split('.');
    loop {
        match (ai.next(), bi.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let ord = compare_identifier(x, y);
                if ord != Ordering::Equal {
                    return ord;
                }
            }
        }
    }
}

fn compare_identifier(x: &str, y: &str) -> Ordering {
    // Masterminds treats an identifier as numeric when it parses as a u64.
    match (x.parse::<u64>().ok(), y.parse::<u64>().ok()) {
        (Some(a), Some(b)) => a.cmp(&b),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => x.as_bytes().cmp(y.as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version<'_> {
        match Version::parse_tag(s) {
            Ok(v) => v,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn accepts_flux_examples() {
        for tag in [
            "1.2.3",
            "v1.2.3",
            "1.2.3-rc.1",
            "1.2.3+meta",
            "v1.2.3-rc1-with-hypen",
            "v2025.07.03",
            "0.0.0",
            "1.0.0-0",
            "1.0.0-alpha+001",
            "1.0.0+20130313144700",
            "1.0.0-beta+exp.sha.5114f85",
        ] {
            assert!(Version::parse_tag(tag).is_ok(), "{tag} should parse");
        }
        let c = v("v2025.07.03");
        assert_eq!((c.major, c.minor, c.patch), (2025, 7, 3));
    }

    #[test]
    fn short_tags_with_two_dots_are_versions_as_in_current_flux() {
        // fluxcd/pkg version.ParseVersion (v0.10+): SplitN on ".", then the coercing parse.
        for (tag, want) in [
            ("3.1-rc.2", "3.1.0-rc.2"),
            ("v2-rc.1.2", "2.0.0-rc.1.2"),
            ("v1.5+build.7", "1.5.0+build.7"),
            ("1-a.b.c", "1.0.0-a.b.c"),
            ("2+x.y.z", "2.0.0+x.y.z"),
        ] {
            assert_eq!(v(tag).to_string(), want, "{tag}");
        }
        for tag in [
            "1.2",
            "v1",
            "1.2.3.4",
            "1.2-rc",
            "1.2+b",
            "3.1-rc.02",
            "1.2.x",
        ] {
            assert!(Version::parse_tag(tag).is_err(), "{tag:?} should not parse");
        }
    }

    #[test]
    fn rejects_flux_examples() {
        for tag in [
            "1.2",
            "v1",
            "1.2.beta",
            "1.2-5",
            "1.2.3.4",
            "V1.2.3",
            "latest",
            "1.0.0-rc.01",
            " 1.2.3",
            "1.2.3 ",
            "",
            "1.2.3-",
            "1.2.3+",
            "1.2.3-rc..1",
            "1.2.3-rc_1",
            "1..3",
            "-1.2.3",
            "+1.2.3",
            "99999999999999999999.0.0",
            "1.2.3-１",
        ] {
            assert!(Version::parse_tag(tag).is_err(), "{tag:?} should not parse");
        }
    }

    #[test]
    fn precedence_follows_semver_spec() {
        // The SemVer 2.0 spec's own ordering example.
        let ordered = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "2.0.0",
            "2.1.0",
            "2.1.1",
        ];
        for w in ordered.windows(2) {
            assert_eq!(v(w[0]).precedence(&v(w[1])), Ordering::Less, "{w:?}");
        }
        // Alphanumeric identifiers compare bytewise: rc9 > rc10, but rc.10 > rc.9.
        assert_eq!(
            v("1.0.0-rc9").precedence(&v("1.0.0-rc10")),
            Ordering::Greater
        );
        assert_eq!(
            v("1.0.0-rc.10").precedence(&v("1.0.0-rc.9")),
            Ordering::Greater
        );
        // Build metadata and the v prefix do not matter.
        assert_eq!(v("v1.0.0").precedence(&v("1.0.0+b7")), Ordering::Equal);
    }
}

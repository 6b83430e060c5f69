//! Semver range constraints with the grammar and meaning of Masterminds/semver v3, which Flux
//! uses for `spec.policy.semver.range`.
//!
//! Grammar: OR groups separated by `||`; inside a group, constraints separated by whitespace or
//! a comma; a constraint is an optional operator (`=` `!=` `>` `<` `>=` `=>` `<=` `=<` `~` `~>`
//! `^`) and a version with optional `v`, where any numeric part may be a wildcard (`x` `X` `*`)
//! or missing. Hyphen ranges `A - B` mean `>= A, <= B`.
//!
//! Partial versions follow Masterminds: `>1.2` means `>=1.3.0`, `<=2` admits every 2.x, `1.2`
//! alone means `~1.2`. A pre-release version satisfies a group only when some constraint of that
//! group names a pre-release itself.

use std::fmt;

use crate::semver::{compare_prerelease, parse_loose, Version};

/// Longest range accepted (as Masterminds, to bound work on hostile input).
pub const MAX_RANGE_LEN: usize = 512;
/// Most OR groups accepted.
pub const MAX_GROUPS: usize = 32;

/// An invalid range, with Masterminds' wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConstraintError {
    #[error("improper constraint: {0}")]
    Improper(String),
    #[error("constraint string is too long (max {MAX_RANGE_LEN} bytes)")]
    TooLong,
    #[error("too many constraint groups (max {MAX_GROUPS})")]
    TooManyGroups,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    TildeOrEqual,
    NotEqual,
    Greater,
    Less,
    GreaterEqual,
    LessEqual,
    Tilde,
    Caret,
}

/// Operators in the order they are tried: longer spellings first so `>=` is not read as `>`.
const OPS: &[(&str, Op)] = &[
    ("!=", Op::NotEqual),
    (">=", Op::GreaterEqual),
    ("=>", Op::GreaterEqual),
    ("<=", Op::LessEqual),
    ("=<", Op::LessEqual),
    ("~>", Op::Tilde),
    ("=", Op::TildeOrEqual),
    (">", Op::Greater),
    ("<", Op::Less),
    ("~", Op::Tilde),
    ("^", Op::Caret),
    ("", Op::TildeOrEqual),
];

#[derive(Debug, Clone, PartialEq, Eq)]
struct Bound {
    major: u64,
    minor: u64,
    patch: u64,
    pre: String,
}

impl Bound {
    fn cmp_version(&self, v: &Version<'_>) -> std::cmp::Ordering {
        // Ordering of v relative to this bound.
        v.major
            .cmp(&self.major)
            .then(v.minor.cmp(&self.minor))
            .then(v.patch.cmp(&self.patch))
            .then_with(|| compare_prerelease(v.pre, &self.pre))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Constraint {
    op: Op,
    con: Bound,
    /// A wildcard or missing part somewhere.
    dirty: bool,
    /// The minor part (and so the patch) is a wildcard or missing.
    minor_dirty: bool,
    /// Only the patch part is a wildcard or missing.
    patch_dirty: bool,
}

/// A parsed semver range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraints {
    source: String,
    groups: Vec<Group>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Group {
    constraints: Vec<Constraint>,
    has_prerelease: bool,
}

/// Why a version does not satisfy a range (for explanations).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    /// The version is a pre-release and no group that could admit it names a pre-release.
    PrereleaseNotAdmitted,
    /// The version is outside every group.
    OutsideRange,
}

impl Constraints {
    /// Parses a range (Masterminds `NewConstraint`).
    pub fn parse(range: &str) -> Result<Self, ConstraintError> {
        if range.len() > MAX_RANGE_LEN {
            return Err(ConstraintError::TooLong);
        }
        let rewritten = rewrite_hyphen_ranges(range);
        let parts: Vec<&str> = rewritten.split("||").collect();
        if parts.len() > MAX_GROUPS {
            return Err(ConstraintError::TooManyGroups);
        }
        let mut groups = Vec::with_capacity(parts.len());
        for part in parts {
            let atoms =
                split_group(part).ok_or_else(|| ConstraintError::Improper(part.to_owned()))?;
            let mut constraints = Vec::with_capacity(atoms.len());
            for atom in atoms {
                constraints.push(parse_atom(atom)?);
            }
            let has_prerelease = constraints.iter().any(|c| !c.con.pre.is_empty());
            groups.push(Group {
                constraints,
                has_prerelease,
            });
        }
        Ok(Constraints {
            source: range.to_owned(),
            groups,
        })
    }

    /// The range as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `v` satisfies the range.
    pub fn check(&self, v: &Version<'_>) -> bool {
        self.check_explained(v).is_ok()
    }

    /// Like [`check`](Self::check), saying why not.
    pub fn check_explained(&self, v: &Version<'_>) -> Result<(), Mismatch> {
        let mut pre_blocked = false;
        for g in &self.groups {
            if v.is_prerelease() && !g.has_prerelease {
                pre_blocked = true;
                continue;
            }
            if g.constraints.iter().all(|c| c.admits(v)) {
                return Ok(());
            }
        }
        // Report the pre-release rule only when it is what kept the version out: the version
        // would pass a blocked group if pre-releases were admitted.
        if pre_blocked
            && self
                .groups
                .iter()
                .filter(|g| !g.has_prerelease)
                .any(|g| g.constraints.iter().all(|c| c.admits(v)))
        {
            return Err(Mismatch::PrereleaseNotAdmitted);
        }
        Err(Mismatch::OutsideRange)
    }
}

impl fmt::Display for Constraints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Constraint {
    fn admits(&self, v: &Version<'_>) -> bool {
        use std::cmp::Ordering::*;
        let c = &self.con;
        match self.op {
            Op::NotEqual => {
                if self.dirty {
                    if c.major != v.major {
                        return true;
                    }
                    if self.minor_dirty {
                        return false;
                    }
                    if c.minor != v.minor {
                        return true;
                    }
                    if self.patch_dirty {
                        return (!v.pre.is_empty() || !c.pre.is_empty())
                            && compare_prerelease(v.pre, &c.pre) != Equal;
                    }
                    if c.patch != v.patch {
                        return true;
                    }
                }
                c.cmp_version(v) != Equal
            }
            Op::Greater => {
                if !self.dirty {
                    return c.cmp_version(v) == Greater;
                }
                if v.major != c.major {
                    return v.major > c.major;
                }
                if self.minor_dirty {
                    // >11 needs 12 or higher.
                    return false;
                }
                if self.patch_dirty {
                    // >11.1 needs 11.2 or higher.
                    return v.minor > c.minor;
                }
                c.cmp_version(v) == Greater
            }
            Op::Less => c.cmp_version(v) == Less,
            Op::GreaterEqual => c.cmp_version(v) != Less,
            Op::LessEqual => {
                if !self.dirty {
                    return c.cmp_version(v) != Greater;
                }
                if v.major > c.major {
                    return false;
                }
                !(v.major == c.major && v.minor > c.minor && !self.minor_dirty)
            }
            Op::Tilde => self.tilde(v),
            Op::TildeOrEqual => {
                if self.dirty {
                    self.tilde(v)
                } else {
                    c.cmp_version(v) == Equal
                }
            }
            Op::Caret => {
                if c.cmp_version(v) == Less {
                    return false;
                }
                if c.major > 0 || self.minor_dirty {
                    return v.major == c.major;
                }
                if v.major > 0 {
                    return false;
                }
                if c.minor > 0 || self.patch_dirty {
                    return v.minor == c.minor;
                }
                if v.minor > 0 {
                    return false;
                }
                v.patch == c.patch
            }
        }
    }

    fn tilde(&self, v: &Version<'_>) -> bool {
        let c = &self.con;
        if c.cmp_version(v) == std::cmp::Ordering::Less {
            return false;
        }
        // ~0.0.0 (and `*`) admits everything.
        if c.major == 0 && c.minor == 0 && c.patch == 0 && !self.minor_dirty && !self.patch_dirty {
            return true;
        }
        if v.major != c.major {
            return false;
        }
        self.minor_dirty || v.minor == c.minor
    }
}

fn is_ws(b: u8) -> bool {
    // Go's regexp \s: [\t\n\f\r ].
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0c' | b'\r')
}

fn is_seg(b: u8) -> bool {
    // Masterminds' version-part class `[0-9|x|X|\*]` (the `|` is literal, a quirk kept).
    b.is_ascii_digit() || matches!(b, b'x' | b'X' | b'*' | b'|')
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

/// Scans `[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*` from `start`; returns the end, or None if empty.
fn scan_idents(s: &[u8], start: usize) -> Option<usize> {
    let mut i = start;
    while i < s.len() && is_ident(s[i]) {
        i += 1;
    }
    if i == start {
        return None;
    }
    while i < s.len() && s[i] == b'.' {
        let mut k = i + 1;
        while k < s.len() && is_ident(s[k]) {
            k += 1;
        }
        if k == i + 1 {
            break;
        }
        i = k;
    }
    Some(i)
}

/// The pieces of a constraint version: `v?MAJOR(.MINOR)?(.PATCH)?(-PRE)?(+BUILD)?`.
#[derive(Debug, Default)]
struct CvParts<'a> {
    end: usize,
    major: &'a str,
    minor: Option<&'a str>,
    patch: Option<&'a str>,
    pre: Option<&'a str>,
}

/// Scans a constraint version at `start`. Returns None when there is none there.
fn scan_cv(s: &str, start: usize) -> Option<CvParts<'_>> {
    let b = s.as_bytes();
    let mut i = start;
    if i < b.len() && b[i] == b'v' {
        i += 1;
    }
    let seg = |from: usize| -> Option<usize> {
        let mut j = from;
        while j < b.len() && is_seg(b[j]) {
            j += 1;
        }
        (j > from).then_some(j)
    };
    let major_end = seg(i)?;
    let mut parts = CvParts {
        major: &s[i..major_end],
        ..Default::default()
    };
    i = major_end;
    for slot in 0..2 {
        if i < b.len() && b[i] == b'.' {
            let j = seg(i + 1)?;
            let part = &s[i + 1..j];
            if slot == 0 {
                parts.minor = Some(part);
            } else {
                parts.patch = Some(part);
            }
            i = j;
        }
    }
    if i < b.len() && b[i] == b'-' {
        let j = scan_idents(b, i + 1)?;
        parts.pre = Some(&s[i + 1..j]);
        i = j;
    }
    if i < b.len() && b[i] == b'+' {
        i = scan_idents(b, i + 1)?;
    }
    parts.end = i;
    Some(parts)
}

/// Matches an operator and version at `start` (after whitespace). Returns (op, parts).
fn match_atom(s: &str, start: usize) -> Option<(Op, CvParts<'_>)> {
    let b = s.as_bytes();
    let mut i = start;
    while i < b.len() && is_ws(b[i]) {
        i += 1;
    }
    for &(spelling, op) in OPS {
        if !s[i..].starts_with(spelling) {
            continue;
        }
        let mut j = i + spelling.len();
        while j < b.len() && is_ws(b[j]) {
            j += 1;
        }
        if let Some(parts) = scan_cv(s, j) {
            return Some((op, parts));
        }
    }
    None
}

/// Splits one OR group into its constraints; None if the group is malformed. Constraints
/// must be separated by whitespace or a comma.
fn split_group(g: &str) -> Option<Vec<(Op, CvParts<'_>)>> {
    let b = g.as_bytes();
    let first = match_atom(g, 0)?;
    let mut rest = first.1.end;
    let mut atoms = vec![first];
    while rest < b.len() {
        let mut q = rest;
        while q < b.len() && is_ws(b[q]) {
            q += 1;
        }
        if q == b.len() {
            break;
        }
        let from = if b[q] == b',' {
            q + 1
        } else if q > rest {
            q
        } else {
            return None;
        };
        let atom = match_atom(g, from)?;
        rest = atom.1.end;
        atoms.push(atom);
    }
    Some(atoms)
}

fn is_wildcard(part: &str) -> bool {
    matches!(part, "x" | "X" | "*")
}

fn parse_atom((op, p): (Op, CvParts<'_>)) -> Result<Constraint, ConstraintError> {
    let parser_error = || ConstraintError::Improper("constraint parser error".to_owned());
    let pre = p.pre.unwrap_or("");
    let (major, minor, patch, dirty, minor_dirty, patch_dirty) = if is_wildcard(p.major) {
        ("0", "0", "0", true, false, false)
    } else {
        match (p.minor, p.patch) {
            (None, _) => (p.major, "0", "0", true, true, false),
            (Some(m), _) if is_wildcard(m) => (p.major, "0", "0", true, true, false),
            (Some(m), None) => (p.major, m, "0", true, false, true),
            (Some(m), Some(pt)) if is_wildcard(pt) => (p.major, m, "0", true, false, true),
            (Some(m), Some(pt)) => (p.major, m, pt, false, false, false),
        }
    };
    // Re-parse the normalised version so that numeric and pre-release rules apply as for tags.
    let text = if pre.is_empty() {
        format!("{major}.{minor}.{patch}")
    } else {
        format!("{major}.{minor}.{patch}-{pre}")
    };
    let (v, _) = parse_loose(&text).map_err(|_| parser_error())?;
    Ok(Constraint {
        op,
        con: Bound {
            major: v.major,
            minor: v.minor,
            patch: v.patch,
            pre: v.pre.to_owned(),
        },
        dirty,
        minor_dirty,
        patch_dirty,
    })
}

/// Rewrites `A - B` (spaces required around the hyphen) into `>= A, <= B`.
fn rewrite_hyphen_ranges(s: &str) -> String {
    if !s.contains(" -") && !s.contains("\t-") {
        return s.to_owned();
    }
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len() + 8);
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        if let Some((a_end, b_start, b_end)) = hyphen_at(s, i) {
            // Masterminds' pattern starts with `\s*`: the whitespace before the range is part
            // of the match and replaced with it, so `>=1.0.0 1.2 - 1.4` becomes
            // `>=1.0.0>= 1.2, <= 1.4 ` (an improper constraint), as in Flux.
            let mut start = i;
            while start > copied && is_ws(b[start - 1]) {
                start -= 1;
            }
            out.push_str(&s[copied..start]);
            out.push_str(">= ");
            out.push_str(&s[i..a_end]);
            out.push_str(", <= ");
            out.push_str(&s[b_start..b_end]);
            out.push(' ');
            copied = b_end;
            i = b_end;
        } else {
            i += 1;
        }
    }
    out.push_str(&s[copied..]);
    out
}

/// A hyphen range whose first version starts exactly at `i` and is preceded by a boundary.
fn hyphen_at(s: &str, i: usize) -> Option<(usize, usize, usize)> {
    let b = s.as_bytes();
    if i > 0 && !is_ws(b[i - 1]) && !matches!(b[i - 1], b',' | b'|') {
        return None;
    }
    let a = scan_cv(s, i)?;
    let mut j = a.end;
    let ws_start = j;
    while j < b.len() && is_ws(b[j]) {
        j += 1;
    }
    if j == ws_start || j >= b.len() || b[j] != b'-' {
        return None;
    }
    j += 1;
    let ws2 = j;
    while j < b.len() && is_ws(b[j]) {
        j += 1;
    }
    if j == ws2 {
        return None;
    }
    let second = scan_cv(s, j)?;
    Some((a.end, j, second.end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admits(range: &str, version: &str) -> bool {
        let c = Constraints::parse(range).unwrap_or_else(|e| panic!("{range}: {e}"));
        let v = Version::parse_tag(version).unwrap_or_else(|e| panic!("{version}: {e}"));
        c.check(&v)
    }

    #[test]
    fn valid_and_invalid_ranges() {
        for ok in [
            "5.0.x",
            ">=1.0.0 <2.0.0",
            ">=1.0.0, <2.0.0",
            "^1.x-0",
            ">1.0.0-rc <2.0.0-rc",
            "1.2 - 1.4.5",
            "v1.0.x",
            "~1.2.3",
            "~>1.2",
            "=>1.0.0",
            "=<2",
            "!=1.2.3",
            "*",
            "x",
            "1.x.x || >=3.0.0",
            "  >= 1.0.0  ",
            "1.2.3+build",
        ] {
            assert!(Constraints::parse(ok).is_ok(), "{ok:?} should parse");
        }
        for bad in [
            "1.0.0p",
            "1x",
            "x1",
            "-1",
            "a",
            "",
            "*-*",
            ">=1.2.3<2",
            ">=",
            "1.2.3 ||",
            "|| 1.2.3",
            "1..2",
            "1.2.3-",
            "1.2.3-01",
            "> = 1",
            "1|2",
        ] {
            assert!(
                Constraints::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
        assert!(Constraints::parse(&"1".repeat(600)).is_err());
        assert!(Constraints::parse(&vec!["1.0.0"; 40].join("||")).is_err());
    }

    #[test]
    fn operators() {
        assert!(admits("5.0.x", "5.0.3"));
        assert!(!admits("5.0.x", "5.1.0"));
        assert!(admits("=1.2.3", "1.2.3"));
        assert!(admits("1.2.3", "v1.2.3"));
        assert!(!admits("1.2.3", "1.2.4"));
        assert!(admits("!=1.2.3", "1.2.4"));
        assert!(!admits("!=1.2.3", "1.2.3"));
        assert!(!admits("!=1.2.x", "1.2.9"));
        assert!(admits("!=1.2.x", "1.3.0"));
        assert!(admits(">1.2.3", "1.2.4"));
        assert!(!admits(">1.2.3", "1.2.3"));
        assert!(admits("<1.2.3", "1.2.2"));
        assert!(!admits("<1.2.3", "1.2.3"));
        assert!(admits(">=1.2.3", "1.2.3"));
        assert!(admits("=>1.2.3", "1.2.3"));
        assert!(admits("<=1.2.3", "1.2.3"));
        assert!(admits("=<1.2.3", "1.2.3"));
        assert!(!admits("<=1.2.3", "1.2.4"));
    }

    #[test]
    fn partial_versions_follow_masterminds() {
        // >1.2 means >=1.3.0; >1 means >=2.0.0.
        assert!(!admits(">1.2", "1.2.9"));
        assert!(admits(">1.2", "1.3.0"));
        assert!(!admits(">1", "1.9.9"));
        assert!(admits(">1", "2.0.0"));
        // <=2 admits every 2.x; <=2.1 admits 2.1.x.
        assert!(admits("<=2", "2.99.99"));
        assert!(!admits("<=2", "3.0.0"));
        assert!(admits("<=2.1", "2.1.7"));
        assert!(!admits("<=2.1", "2.2.0"));
        // <2 is strict: 2.0.0 is out.
        assert!(admits("<2", "1.99.0"));
        assert!(!admits("<2", "2.0.0"));
        // A bare partial version is a tilde.
        assert!(admits("1.2", "1.2.9"));
        assert!(!admits("1.2", "1.3.0"));
        assert!(admits("1", "1.9.0"));
        assert!(admits("*", "0.0.1"));
        assert!(admits("x", "99.0.0"));
        assert!(admits("1.x.3", "1.7.0"));
    }

    #[test]
    fn tilde_and_caret() {
        assert!(admits("~1.2.3", "1.2.9"));
        assert!(!admits("~1.2.3", "1.3.0"));
        assert!(!admits("~1.2.3", "1.2.2"));
        assert!(admits("~1", "1.9.0"));
        assert!(!admits("~1", "2.0.0"));
        assert!(admits("~>2.0", "2.0.5"));
        assert!(admits("^1.2.3", "1.9.0"));
        assert!(!admits("^1.2.3", "2.0.0"));
        assert!(!admits("^1.2.3", "1.2.2"));
        assert!(admits("^0.2.3", "0.2.9"));
        assert!(!admits("^0.2.3", "0.3.0"));
        assert!(admits("^0.0.3", "0.0.3"));
        assert!(!admits("^0.0.3", "0.0.4"));
        assert!(admits("^0.0", "0.0.9"));
        assert!(!admits("^0.0", "0.1.0"));
        assert!(admits("^0", "0.9.0"));
        assert!(!admits("^0", "1.0.0"));
        assert!(admits("^1.x", "1.5.0"));
    }

    #[test]
    fn hyphen_and_or() {
        assert!(admits("1.2 - 1.4.5", "1.2.0"));
        assert!(admits("1.2 - 1.4.5", "1.4.5"));
        assert!(!admits("1.2 - 1.4.5", "1.4.6"));
        assert!(!admits("1.2 - 1.4.5", "1.1.9"));
        assert!(admits("1.x || >=3.0.0", "3.1.0"));
        assert!(admits("1.x || >=3.0.0", "1.1.0"));
        assert!(!admits("1.x || >=3.0.0", "2.1.0"));
        assert!(admits(">=1.0.0, <2.0.0", "1.5.0"));
        assert!(!admits(">=1.0.0 <2.0.0", "2.0.0"));
        // A pre-release identifier with a hyphen is not a range.
        assert!(admits(">=1.0.0-rc-1", "1.0.0"));
    }

    #[test]
    fn prereleases_need_a_prerelease_in_the_group() {
        assert!(!admits(">=1.0.0", "1.1.0-rc.1"));
        assert!(!admits("^1.x", "1.1.0-rc.1"));
        assert!(admits("^1.x-0", "1.1.0-rc.1"));
        assert!(admits(">=1.0.0-0", "1.1.0-rc.1"));
        assert!(admits(">1.0.0-rc <2.0.0-rc", "1.5.0-beta"));
        // Group-level: one constraint naming a pre-release opens the whole group.
        assert!(admits(">=1.0.0-0 <2.0.0", "1.5.0-rc.1"));
        // ...but not another OR group.
        assert!(!admits(">=3.0.0-0 || >=1.0.0", "1.5.0-rc.1"));
        assert!(admits("1.0.0-rc.1", "1.0.0-rc.1"));
        let c = Constraints::parse(">=1.0.0").unwrap();
        let v = Version::parse_tag("1.1.0-rc.1").unwrap();
        assert_eq!(c.check_explained(&v), Err(Mismatch::PrereleaseNotAdmitted));
        let v = Version::parse_tag("0.1.0-rc.1").unwrap();
        assert_eq!(c.check_explained(&v), Err(Mismatch::OutsideRange));
    }
}

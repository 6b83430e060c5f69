//! What to check out and where to push (reference §4). Pure.

use std::fmt;

/// source-controller's `GitRepositoryRef`, resolved by precedence commit > name > tag > semver
/// > branch; nothing set means branch `master`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckoutRef {
    Branch(String),
    Tag(String),
    /// Highest tag satisfying the range.
    Semver(String),
    /// A full reference name such as `refs/heads/main` or `refs/tags/v1`.
    Name(String),
    Commit(String),
}

impl CheckoutRef {
    /// Picks the reference Flux would: commit > name > tag > semver > branch, default `master`.
    pub fn from_fields(
        branch: Option<&str>,
        tag: Option<&str>,
        semver: Option<&str>,
        name: Option<&str>,
        commit: Option<&str>,
    ) -> Self {
        let set = |v: Option<&str>| v.filter(|s| !s.is_empty()).map(str::to_owned);
        if let Some(c) = set(commit) {
            CheckoutRef::Commit(c)
        } else if let Some(n) = set(name) {
            CheckoutRef::Name(n)
        } else if let Some(t) = set(tag) {
            CheckoutRef::Tag(t)
        } else if let Some(s) = set(semver) {
            CheckoutRef::Semver(s)
        } else {
            CheckoutRef::Branch(set(branch).unwrap_or_else(|| "master".to_owned()))
        }
    }

    /// The branch this checkout follows, if it is a branch.
    pub fn branch(&self) -> Option<&str> {
        match self {
            CheckoutRef::Branch(b) => Some(b),
            CheckoutRef::Name(n) => n.strip_prefix("refs/heads/"),
            _ => None,
        }
    }
}

impl fmt::Display for CheckoutRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckoutRef::Branch(b) => write!(f, "branch '{b}'"),
            CheckoutRef::Tag(t) => write!(f, "tag '{t}'"),
            CheckoutRef::Semver(s) => write!(f, "semver '{s}'"),
            CheckoutRef::Name(n) => write!(f, "ref '{n}'"),
            CheckoutRef::Commit(c) => write!(f, "commit '{c}'"),
        }
    }
}

/// Flux's message when no push branch can be found.
pub const NO_PUSH_BRANCH: &str =
    "push spec not provided, and cannot be inferred from .spec.git.checkout.ref or GitRepository .spec.ref";

/// The branch to push to: `push.branch`, else the checkout branch.
pub fn push_branch(checkout: &CheckoutRef, push: Option<&str>) -> Result<String, &'static str> {
    match push.filter(|b| !b.is_empty()) {
        Some(b) => Ok(b.to_owned()),
        None => checkout.branch().map(str::to_owned).ok_or(NO_PUSH_BRANCH),
    }
}

/// Whether `name` is acceptable as a branch name (a subset of git's rules that refuses
/// anything that could escape `refs/heads/`).
pub fn valid_branch(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && !name.starts_with('/')
        && !name.ends_with('/')
        && !name.ends_with(".lock")
        && !name.contains("..")
        && !name.contains("//")
        && !name.contains("@{")
        && name
            .bytes()
            .all(|b| b > b' ' && !b"~^:?*[\\\x7f".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_and_inference() {
        let r = CheckoutRef::from_fields(Some("main"), Some("v1"), None, None, None);
        assert_eq!(r, CheckoutRef::Tag("v1".into()));
        assert_eq!(
            CheckoutRef::from_fields(None, None, None, None, None),
            CheckoutRef::Branch("master".into())
        );
        assert_eq!(
            CheckoutRef::from_fields(
                Some("main"),
                None,
                Some(">=1"),
                Some("refs/heads/dev"),
                Some("abc")
            ),
            CheckoutRef::Commit("abc".into())
        );
        assert_eq!(
            push_branch(&CheckoutRef::Branch("main".into()), None)
                .ok()
                .as_deref(),
            Some("main")
        );
        assert_eq!(
            push_branch(&CheckoutRef::Name("refs/heads/dev".into()), None)
                .ok()
                .as_deref(),
            Some("dev")
        );
        assert_eq!(
            push_branch(&CheckoutRef::Tag("v1".into()), Some("auto"))
                .ok()
                .as_deref(),
            Some("auto")
        );
        assert_eq!(
            push_branch(&CheckoutRef::Tag("v1".into()), None),
            Err(NO_PUSH_BRANCH)
        );
        assert_eq!(
            push_branch(&CheckoutRef::Semver("*".into()), Some("")),
            Err(NO_PUSH_BRANCH)
        );
    }

    #[test]
    fn branch_names() {
        for ok in ["main", "flux-image-updates", "team/auto", "release-1.2"] {
            assert!(valid_branch(ok), "{ok}");
        }
        for bad in [
            "", "-x", "a..b", "a b", "a:b", "x.lock", "/a", "a/", "a~1", "a^", "a@{1}",
        ] {
            assert!(!valid_branch(bad), "{bad}");
        }
    }
}

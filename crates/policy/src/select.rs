//! The selection pipeline: exclusion → filterTags (pattern, extract) → rank → map back to the
//! original tag, with an optional explanation of every decision.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

use regex::Regex;
use serde::Serialize;

use crate::constraint::{ConstraintError, Constraints, Mismatch};
use crate::expand::Template;
use crate::numeric::parse_go_float;
use crate::semver::Version;

/// Flux's default `exclusionList`: cosign signature tags.
pub const DEFAULT_EXCLUSION: &str = r"^.*\.sig$";

/// A policy that cannot be built or cannot pick a tag, worded as Flux words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("version list argument cannot be empty")]
    EmptyList,
    #[error("unable to determine latest version from provided list")]
    NoneSelectable,
    #[error("failed to parse invalid numeric value '{0}'")]
    InvalidNumber(String),
    #[error("invalid regular expression pattern '{pattern}': {message}")]
    InvalidPattern { pattern: String, message: String },
    #[error("capture group ${name} used in extract not found in pattern '{pattern}'")]
    UnknownGroup { name: String, pattern: String },
    #[error("failed to compile regex {pattern}: {message}")]
    InvalidExclusion { pattern: String, message: String },
    #[error("semver parse error: {0}")]
    InvalidRange(#[from] ConstraintError),
    #[error("invalid order argument provided: '{0}', must be one of: ASC, DESC")]
    InvalidOrder(String),
}

/// Sort order for alphabetical and numerical policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Pick the greatest.
    Asc,
    /// Pick the smallest.
    Desc,
}

impl Order {
    /// Case-insensitive `asc`/`desc`; empty means `asc` (Flux's default).
    pub fn parse(s: &str) -> Result<Self, PolicyError> {
        if s.is_empty() || s.eq_ignore_ascii_case("asc") {
            Ok(Order::Asc)
        } else if s.eq_ignore_ascii_case("desc") {
            Ok(Order::Desc)
        } else {
            Err(PolicyError::InvalidOrder(s.to_owned()))
        }
    }
}

impl fmt::Display for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Order::Asc => "asc",
            Order::Desc => "desc",
        })
    }
}

/// Which ranking a policy uses.
#[derive(Debug, Clone)]
pub enum Choice {
    SemVer(Constraints),
    Alphabetical(Order),
    Numerical(Order),
}

impl Choice {
    pub fn semver(range: &str) -> Result<Self, PolicyError> {
        Ok(Choice::SemVer(Constraints::parse(range)?))
    }
    pub fn alphabetical(order: &str) -> Result<Self, PolicyError> {
        Ok(Choice::Alphabetical(Order::parse(order)?))
    }
    pub fn numerical(order: &str) -> Result<Self, PolicyError> {
        Ok(Choice::Numerical(Order::parse(order)?))
    }
}

impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Choice::SemVer(c) => write!(f, "semver range '{c}'"),
            Choice::Alphabetical(o) => write!(f, "alphabetical order {o}"),
            Choice::Numerical(o) => write!(f, "numerical order {o}"),
        }
    }
}

/// `filterTags`: an unanchored pattern and an optional extract template.
#[derive(Debug, Clone)]
pub struct TagFilter {
    pattern: Regex,
    extract: Option<Template>,
}

impl TagFilter {
    /// Compiles the pattern; an empty `extract` means "rank the whole tag".
    pub fn new(pattern: &str, extract: &str) -> Result<Self, PolicyError> {
        let re = Regex::new(pattern).map_err(|e| PolicyError::InvalidPattern {
            pattern: pattern.to_owned(),
            message: regex_message(&e),
        })?;
        let extract = (!extract.is_empty()).then(|| Template::parse(extract));
        Ok(TagFilter {
            pattern: re,
            extract,
        })
    }

    /// Like [`new`](Self::new), and also rejects an extract naming a group the pattern lacks
    /// (what `flux create image policy` checks; the controller itself expands it to "").
    pub fn new_strict(pattern: &str, extract: &str) -> Result<Self, PolicyError> {
        let f = Self::new(pattern, extract)?;
        if let Some(t) = &f.extract {
            if let Some(name) = t.unknown_names(&f.pattern).first() {
                return Err(PolicyError::UnknownGroup {
                    name: (*name).to_owned(),
                    pattern: pattern.to_owned(),
                });
            }
        }
        Ok(f)
    }

    pub fn pattern(&self) -> &str {
        self.pattern.as_str()
    }

    /// The value to rank for `tag`, or None when the pattern does not match.
    pub fn apply<'t>(&self, tag: &'t str) -> Option<Cow<'t, str>> {
        match &self.extract {
            None => self.pattern.is_match(tag).then_some(Cow::Borrowed(tag)),
            Some(t) => {
                let caps = self.pattern.captures(tag)?;
                let mut out = String::new();
                t.expand(&self.pattern, &caps, &mut out);
                Some(Cow::Owned(out))
            }
        }
    }
}

/// The first line of a regex error (the rest is a caret diagram).
fn regex_message(e: &regex::Error) -> String {
    let s = e.to_string();
    s.lines()
        .rev()
        .find(|l| l.starts_with("error:"))
        .map(|l| l.trim_start_matches("error:").trim().to_owned())
        .unwrap_or(s)
}

/// Compiles `pattern`, once per process: every repository carries the same few exclusion
/// lists (Flux's default above all), validated at every load and applied at every scan and
/// resolution, and compiling a pattern costs more than parsing its whole object (`validate` of
/// 100 repositories and policies: 50 -> 20 ms). The answer, compiled or error, is the same as
/// a fresh compile's; the memo is bounded, since a reload may bring new patterns.
pub fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    use std::collections::HashMap;
    use std::sync::{LazyLock, Mutex};
    type Memo = HashMap<String, Result<Regex, regex::Error>>;
    static SEEN: LazyLock<Mutex<Memo>> = LazyLock::new(Default::default);
    let Ok(mut seen) = SEEN.lock() else {
        return Regex::new(pattern);
    };
    if let Some(known) = seen.get(pattern) {
        return known.clone();
    }
    let result = Regex::new(pattern);
    if seen.len() >= 4096 {
        seen.clear();
    }
    seen.insert(pattern.to_owned(), result.clone());
    result
}

/// `exclusionList`: a tag matching any rule (unanchored) is dropped.
#[derive(Debug, Clone)]
pub struct Exclusions {
    rules: Vec<Regex>,
}

impl Exclusions {
    pub fn new<S: AsRef<str>>(rules: &[S]) -> Result<Self, PolicyError> {
        let rules = rules
            .iter()
            .map(|r| {
                let r = r.as_ref();
                compile(r).map_err(|e| PolicyError::InvalidExclusion {
                    pattern: r.to_owned(),
                    message: regex_message(&e),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Exclusions { rules })
    }

    /// Flux's default list, `^.*\.sig$`.
    pub fn flux_default() -> Self {
        Self::new(&[DEFAULT_EXCLUSION]).unwrap_or_else(|_| Self::none())
    }

    /// No exclusions (tags already filtered at scan time).
    pub fn none() -> Self {
        Exclusions { rules: Vec::new() }
    }

    /// The first rule that matches `tag`.
    pub fn matching(&self, tag: &str) -> Option<&str> {
        self.rules
            .iter()
            .find(|r| r.is_match(tag))
            .map(Regex::as_str)
    }
}

/// A complete image policy: ranking plus optional filter.
#[derive(Debug, Clone)]
pub struct Policy {
    pub choice: Choice,
    pub filter: Option<TagFilter>,
}

/// The winning tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Selection {
    /// The original tag.
    pub tag: String,
    /// What was ranked (the extracted value, or the tag itself).
    pub value: String,
}

/// Why a tag was kept or dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    /// Dropped by an exclusion rule.
    Excluded { rule: String },
    /// `filterTags.pattern` did not match.
    FilteredOut,
    /// Not a semantic version (semver policies).
    NotAVersion { reason: String },
    /// Not a number (numerical policies); fails the whole policy.
    NotANumber,
    /// A version outside the range.
    OutsideRange,
    /// A pre-release, and the range names no pre-release.
    PrereleaseNotAdmitted,
    /// Eligible, ranked below the winner.
    RankedLower,
    /// Ranked equal to the winner; the byte-greatest original tag won.
    TieBroken,
    /// The winner.
    Selected,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Excluded { rule } => write!(f, "excluded by rule '{rule}'"),
            Verdict::FilteredOut => f.write_str("filtered out: pattern does not match"),
            Verdict::NotAVersion { reason } => write!(f, "not a version: {reason}"),
            Verdict::NotANumber => f.write_str("not a number"),
            Verdict::OutsideRange => f.write_str("outside the range"),
            Verdict::PrereleaseNotAdmitted => {
                f.write_str("pre-release not admitted: the range names no pre-release")
            }
            Verdict::RankedLower => f.write_str("ranked lower"),
            Verdict::TieBroken => {
                f.write_str("ranked equal to the winner; tie broken by the byte-greatest tag")
            }
            Verdict::Selected => f.write_str("selected"),
        }
    }
}

/// One tag's line in an explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagReport {
    pub tag: String,
    /// The extracted value, when it differs from the tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// Every decision of one resolution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    pub policy: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selected: Option<Selection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub tags: Vec<TagReport>,
}

/// A candidate's rank key.
#[derive(Debug, Clone, Copy)]
enum Key<'v> {
    Version(Version<'v>),
    Text(&'v str),
    Number(f64),
}

impl Policy {
    pub fn new(choice: Choice, filter: Option<TagFilter>) -> Self {
        Policy { choice, filter }
    }

    /// Picks the latest tag.
    pub fn select<S: AsRef<str>>(
        &self,
        tags: &[S],
        exclusions: &Exclusions,
    ) -> Result<Selection, PolicyError> {
        self.run(tags, exclusions, None)
    }

    /// Picks the latest tag and says why, for every tag.
    pub fn explain<S: AsRef<str>>(&self, tags: &[S], exclusions: &Exclusions) -> Explanation {
        let mut verdicts = vec![None; tags.len()];
        let mut values = vec![None; tags.len()];
        let outcome = self.run(tags, exclusions, Some((&mut verdicts, &mut values)));
        let reports = tags
            .iter()
            .zip(verdicts)
            .zip(values)
            .map(|((tag, verdict), value)| TagReport {
                tag: tag.as_ref().to_owned(),
                value,
                verdict: verdict.unwrap_or(Verdict::RankedLower),
            })
            .collect();
        let mut policy = self.choice.to_string();
        if let Some(f) = &self.filter {
            policy.push_str(&format!(", filter '{}'", f.pattern()));
        }
        let (selected, error) = match outcome {
            Ok(s) => (Some(s), None),
            Err(e) => (None, Some(e.to_string())),
        };
        Explanation {
            policy,
            selected,
            error,
            tags: reports,
        }
    }

    /// Every eligible tag, best first, equal ranks ordered by the byte-greatest tag (the
    /// first is what [`Policy::select`] picks). Fails where `select` fails.
    pub fn ranked<S: AsRef<str>>(
        &self,
        tags: &[S],
        exclusions: &Exclusions,
    ) -> Result<Vec<Selection>, PolicyError> {
        self.ranked_best(tags, exclusions, usize::MAX)
    }

    /// The `limit` best of [`Policy::ranked`], without sorting the rest (a resolution looks
    /// at a few candidates of a list that may hold thousands).
    pub fn ranked_best<S: AsRef<str>>(
        &self,
        tags: &[S],
        exclusions: &Exclusions,
        limit: usize,
    ) -> Result<Vec<Selection>, PolicyError> {
        let values: Vec<(&str, Cow<'_, str>)> = tags
            .iter()
            .map(AsRef::as_ref)
            .filter(|t| exclusions.matching(t).is_none())
            .filter_map(|t| Some((t, self.value_of(t)?)))
            .collect();
        if values.is_empty() {
            return Err(PolicyError::EmptyList);
        }
        let mut keyed = Vec::with_capacity(values.len());
        for (tag, value) in &values {
            match self.key_of(value) {
                Ok(Some(key)) => keyed.push((*tag, value, key)),
                Ok(None) => {}
                Err(e) => return Err(e),
            }
        }
        if keyed.is_empty() {
            return Err(PolicyError::NoneSelectable);
        }
        let best_first = |(ta, _, a): &(&str, _, Key<'_>), (tb, _, b): &(&str, _, Key<'_>)| {
            self.rank(b, a)
                .then_with(|| tb.as_bytes().cmp(ta.as_bytes()))
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        if keyed.len() > limit {
            keyed.select_nth_unstable_by(limit - 1, best_first);
            keyed.truncate(limit);
        }
        keyed.sort_by(best_first);
        Ok(keyed
            .into_iter()
            .map(|(tag, value, _)| Selection {
                tag: tag.to_owned(),
                value: value.to_string(),
            })
            .collect())
    }

    /// How tag `a` ranks against tag `b` under this policy (equal ranks by the byte-greater
    /// tag, as [`Policy::select`] breaks ties); None when either is not eligible.
    pub fn compare(&self, a: &str, b: &str) -> Option<Ordering> {
        let (va, vb) = (self.value_of(a)?, self.value_of(b)?);
        let (ka, kb) = (self.key_of(&va).ok()??, self.key_of(&vb).ok()??);
        Some(
            self.rank(&ka, &kb)
                .then_with(|| a.as_bytes().cmp(b.as_bytes())),
        )
    }

    /// What is ranked for a tag: the extracted value, None when the filter does not match.
    fn value_of<'t>(&self, tag: &'t str) -> Option<Cow<'t, str>> {
        match &self.filter {
            None => Some(Cow::Borrowed(tag)),
            Some(f) => f.apply(tag),
        }
    }

    /// The rank key of a value; None when it is not eligible (not a version, outside the
    /// range); an error for a non-number under a numerical policy (fails the policy).
    fn key_of<'v>(&self, value: &'v str) -> Result<Option<Key<'v>>, PolicyError> {
        Ok(match &self.choice {
            Choice::SemVer(range) => Version::parse_tag(value)
                .ok()
                .filter(|v| range.check_explained(v).is_ok())
                .map(Key::Version),
            Choice::Alphabetical(_) => Some(Key::Text(value)),
            Choice::Numerical(_) => match parse_go_float(value) {
                Some(n) => Some(Key::Number(n)),
                None => return Err(PolicyError::InvalidNumber(value.to_owned())),
            },
        })
    }

    /// Whether `a` ranks above `b` (ties are not broken here).
    fn rank(&self, a: &Key<'_>, b: &Key<'_>) -> Ordering {
        match (a, b) {
            (Key::Version(x), Key::Version(y)) => x.precedence(y),
            (Key::Text(x), Key::Text(y)) => {
                let o = x.as_bytes().cmp(y.as_bytes());
                match self.choice {
                    Choice::Alphabetical(Order::Desc) => o.reverse(),
                    _ => o,
                }
            }
            (Key::Number(x), Key::Number(y)) => {
                // NaN never outranks a number, in either order, so the answer is deterministic.
                let o = match (x.is_nan(), y.is_nan()) {
                    (true, true) => return Ordering::Equal,
                    (true, false) => return Ordering::Less,
                    (false, true) => return Ordering::Greater,
                    (false, false) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
                };
                match self.choice {
                    Choice::Numerical(Order::Desc) => o.reverse(),
                    _ => o,
                }
            }
            _ => Ordering::Equal,
        }
    }

    #[allow(clippy::type_complexity)]
    fn run<S: AsRef<str>>(
        &self,
        tags: &[S],
        exclusions: &Exclusions,
        mut explain: Option<(&mut Vec<Option<Verdict>>, &mut Vec<Option<String>>)>,
    ) -> Result<Selection, PolicyError> {
        // Stage 1: exclusion and filter → (index, value) candidates.
        let mut candidates: Vec<(usize, Cow<'_, str>)> = Vec::with_capacity(tags.len());
        for (i, tag) in tags.iter().enumerate() {
            let tag = tag.as_ref();
            if let Some(rule) = exclusions.matching(tag) {
                if let Some((v, _)) = explain.as_mut() {
                    v[i] = Some(Verdict::Excluded {
                        rule: rule.to_owned(),
                    });
                }
                continue;
            }
            let value = match &self.filter {
                None => Cow::Borrowed(tag),
                Some(f) => match f.apply(tag) {
                    Some(v) => v,
                    None => {
                        if let Some((v, _)) = explain.as_mut() {
                            v[i] = Some(Verdict::FilteredOut);
                        }
                        continue;
                    }
                },
            };
            if let (Some((_, vals)), Cow::Owned(s)) = (explain.as_mut(), &value) {
                if s != tag {
                    vals[i] = Some(s.clone());
                }
            }
            candidates.push((i, value));
        }
        if candidates.is_empty() {
            return Err(PolicyError::EmptyList);
        }

        // Stage 2: rank keys for the eligible candidates.
        let mut eligible: Vec<(usize, Key<'_>)> = Vec::with_capacity(candidates.len());
        let mut numeric_error = None;
        for (ci, (i, value)) in candidates.iter().enumerate() {
            let key = match &self.choice {
                Choice::SemVer(range) => match Version::parse_tag(value) {
                    Err(e) => {
                        if let Some((v, _)) = explain.as_mut() {
                            v[*i] = Some(Verdict::NotAVersion {
                                reason: e.to_string(),
                            });
                        }
                        continue;
                    }
                    Ok(ver) => match range.check_explained(&ver) {
                        Ok(()) => Key::Version(ver),
                        Err(m) => {
                            if let Some((v, _)) = explain.as_mut() {
                                v[*i] = Some(match m {
                                    Mismatch::OutsideRange => Verdict::OutsideRange,
                                    Mismatch::PrereleaseNotAdmitted => {
                                        Verdict::PrereleaseNotAdmitted
                                    }
                                });
                            }
                            continue;
                        }
                    },
                },
                Choice::Alphabetical(_) => Key::Text(value),
                Choice::Numerical(_) => match parse_go_float(value) {
                    Some(n) => Key::Number(n),
                    None => {
                        numeric_error.get_or_insert_with(|| value.to_string());
                        match explain.as_mut() {
                            Some((v, _)) => {
                                v[*i] = Some(Verdict::NotANumber);
                                continue;
                            }
                            None => break,
                        }
                    }
                },
            };
            eligible.push((ci, key));
        }
        if let Some(bad) = numeric_error {
            return Err(PolicyError::InvalidNumber(bad));
        }

        // Stage 3: the best key; equal keys go to the byte-greatest original tag.
        let tag_of = |ci: usize| tags[candidates[ci].0].as_ref();
        let mut best: Option<(usize, Key<'_>)> = None;
        for &(ci, key) in &eligible {
            best = match best {
                None => Some((ci, key)),
                Some((bi, bkey)) => {
                    let better = match self.rank(&key, &bkey) {
                        Ordering::Greater => true,
                        Ordering::Less => false,
                        Ordering::Equal => tag_of(ci).as_bytes() > tag_of(bi).as_bytes(),
                    };
                    Some(if better { (ci, key) } else { (bi, bkey) })
                }
            };
        }
        let (bi, bkey) = best.ok_or(PolicyError::NoneSelectable)?;

        if let Some((v, _)) = explain.as_mut() {
            for &(ci, key) in &eligible {
                let i = candidates[ci].0;
                v[i] = Some(if ci == bi {
                    Verdict::Selected
                } else if self.rank(&key, &bkey) == Ordering::Equal {
                    Verdict::TieBroken
                } else {
                    Verdict::RankedLower
                });
            }
        }
        let (i, value) = &candidates[bi];
        Ok(Selection {
            tag: tags[*i].as_ref().to_owned(),
            value: value.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_pattern_gives_the_answer_a_fresh_compile_gives() {
        let unclosed = "(";
        let fresh = Regex::new(unclosed).expect_err("an unclosed group is an error");
        for _ in 0..2 {
            let sig = compile(DEFAULT_EXCLUSION).expect("Flux's default compiles");
            assert!(sig.is_match("1.0.0.sig") && !sig.is_match("1.0.0"));
            assert_eq!(compile(unclosed).expect_err("still an error"), fresh);
        }
    }

    fn pick(
        choice: Choice,
        filter: Option<TagFilter>,
        tags: &[&str],
    ) -> Result<String, PolicyError> {
        Policy::new(choice, filter)
            .select(tags, &Exclusions::flux_default())
            .map(|s| s.tag)
    }

    fn semver(range: &str, tags: &[&str]) -> Result<String, PolicyError> {
        pick(Choice::semver(range).unwrap(), None, tags)
    }

    fn ok(r: Result<String, PolicyError>) -> String {
        r.unwrap()
    }

    const PODINFO: &[&str] = &[
        "5.0.0",
        "5.0.1",
        "5.0.2",
        "5.0.3",
        "5.1.0",
        "5.1.1",
        "5.2.0",
        "6.0.0",
        "6.0.1-rc.1",
        "latest",
        "master-1a2b3c4",
        "6.0.0.sig",
        "sha256-abc.sig",
    ];

    #[test]
    fn semver_guide_examples() {
        assert_eq!(ok(semver("5.0.x", PODINFO)), "5.0.3");
        assert_eq!(ok(semver(">=1.0.0 <6.0.0", PODINFO)), "5.2.0");
        assert_eq!(ok(semver(">=1.0.0", PODINFO)), "6.0.0");
        assert_eq!(ok(semver("^6.x-0", PODINFO)), "6.0.1-rc.1");
        assert_eq!(ok(semver("5.0.0", PODINFO)), "5.0.0");
        assert_eq!(semver(">=7.0.0", PODINFO), Err(PolicyError::NoneSelectable));
        assert_eq!(semver("*", &[]), Err(PolicyError::EmptyList));
        assert_eq!(semver("*", &["a.sig"]), Err(PolicyError::EmptyList));
    }

    #[test]
    fn semver_ties_go_to_the_byte_greatest_tag() {
        assert_eq!(ok(semver("*", &["1.0.0", "v1.0.0"])), "v1.0.0");
        assert_eq!(ok(semver("*", &["v1.0.0", "1.0.0"])), "v1.0.0");
        assert_eq!(
            ok(semver("*", &["1.2.3+build.5", "1.2.3+build.7"])),
            "1.2.3+build.7"
        );
        assert_eq!(
            ok(semver("*", &["v2025.07.03", "2025.7.3", "2025.7.2"])),
            "v2025.07.03"
        );
    }

    #[test]
    fn alphabetical() {
        let tags = [
            "RELEASE.2023-01-31T08-42-01Z",
            "RELEASE.2024-05-01T00-00-00Z",
            "B",
            "a",
        ];
        let asc = ok(pick(Choice::alphabetical("asc").unwrap(), None, &tags));
        assert_eq!(asc, "a");
        let desc = ok(pick(Choice::alphabetical("DESC").unwrap(), None, &tags));
        assert_eq!(desc, "B");
        assert_eq!(
            ok(pick(Choice::alphabetical("").unwrap(), None, &["9", "10"])),
            "9"
        );
        assert!(matches!(
            Choice::alphabetical("up"),
            Err(PolicyError::InvalidOrder(_))
        ));
        // Flux docs: RELEASE.<timestamp>Z with extract, alphabetical asc.
        let f = TagFilter::new(r"^RELEASE\.(?P<timestamp>.*)Z$", "$timestamp").ok();
        let tags = [
            "RELEASE.2023-01-31T08-42-01Z",
            "RELEASE.2024-05-01T00-00-00Z",
            "latest",
        ];
        assert_eq!(
            ok(pick(Choice::Alphabetical(Order::Asc), f, &tags)),
            "RELEASE.2024-05-01T00-00-00Z"
        );
    }

    #[test]
    fn numerical() {
        let n = |o: &str| Choice::numerical(o).unwrap();
        assert_eq!(ok(pick(n("asc"), None, &["1", "10", "9", "2.5"])), "10");
        assert_eq!(ok(pick(n("desc"), None, &["1", "10", "9", "2.5"])), "1");
        assert_eq!(
            pick(n("asc"), None, &["1", "latest"]),
            Err(PolicyError::InvalidNumber("latest".into()))
        );
        assert_eq!(
            PolicyError::InvalidNumber("latest".into()).to_string(),
            "failed to parse invalid numeric value 'latest'"
        );
        // Equal values: byte-greatest original.
        assert_eq!(ok(pick(n("asc"), None, &["1.0", "1", "01"])), "1.0");
        // NaN never wins against a number, in either order.
        assert_eq!(ok(pick(n("asc"), None, &["NaN", "3"])), "3");
        assert_eq!(ok(pick(n("desc"), None, &["3", "NaN"])), "3");
        // Flux docs: main-<sha>-<ts> with $ts, numerical asc.
        let f = TagFilter::new(r"^main-[a-fA-F0-9]+-(?P<ts>.*)", "$ts").ok();
        let tags = [
            "main-aaaa-1611000000",
            "main-bbbb-1612000000",
            "main-cccc-1610000000",
            "v1.0.0",
        ];
        assert_eq!(ok(pick(n("asc"), f, &tags)), "main-bbbb-1612000000");
    }

    #[test]
    fn filter_and_extract() {
        let f = TagFilter::new(
            r"^(?P<semver>[0-9]*\.[0-9]*\.[0-9]*)-(alpine[0-9]*\.[0-9]*)",
            "$semver",
        )
        .ok();
        let tags = [
            "1.2.3-alpine3.17",
            "1.3.0-alpine3.18",
            "1.4.0",
            "2.0.0-bullseye",
        ];
        let c = Choice::semver(">=1.0.0").unwrap();
        assert_eq!(ok(pick(c, f, &tags)), "1.3.0-alpine3.18");
        // Two originals extracting the same value: the byte-greatest original wins, whatever
        // the input order.
        let f = || TagFilter::new(r"^(\d+\.\d+\.\d+)-", "$1").ok();
        let c = || Choice::semver("*").unwrap();
        let a = ok(pick(c(), f(), &["1.0.0-alpine", "1.0.0-debian"]));
        let b = ok(pick(c(), f(), &["1.0.0-debian", "1.0.0-alpine"]));
        assert_eq!((a.as_str(), b.as_str()), ("1.0.0-debian", "1.0.0-debian"));
        // A pattern that matches nothing empties the list.
        let f = TagFilter::new("^nope$", "").ok();
        assert_eq!(pick(c(), f, &["1.0.0"]), Err(PolicyError::EmptyList));
        // Unanchored search.
        let f = TagFilter::new("rc", "").ok();
        let c = Choice::semver("^1.x-0").unwrap();
        assert_eq!(
            ok(pick(c, f, &["1.0.0", "1.1.0-rc.1", "1.2.0-rc.2"])),
            "1.2.0-rc.2"
        );
    }

    #[test]
    fn errors_carry_flux_wording() {
        let e = TagFilter::new("(", "")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.starts_with("invalid regular expression pattern '(': "),
            "{e}"
        );
        let e = Choice::semver("1.0.0p")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(e, "semver parse error: improper constraint: 1.0.0p");
        let e = TagFilter::new_strict("(?P<a>x)", "$b")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("$b"), "{e}");
    }

    #[test]
    fn exclusions() {
        let p = Policy::new(Choice::Alphabetical(Order::Asc), None);
        let tags = ["a", "z.sig"];
        assert_eq!(
            p.select(&tags, &Exclusions::flux_default()).map(|s| s.tag),
            Ok("a".into())
        );
        assert_eq!(
            p.select(&tags, &Exclusions::none()).map(|s| s.tag),
            Ok("z.sig".into())
        );
        // A user list replaces the default; matching is unanchored.
        let ex = Exclusions::new(&["^z"]).unwrap();
        assert_eq!(
            p.select(&["a", "z", "b.sig"], &ex).map(|s| s.tag),
            Ok("b.sig".into())
        );
        assert!(Exclusions::new(&["("]).is_err());
    }

    #[test]
    fn explain_reports_every_tag() {
        let p = Policy::new(Choice::semver("5.0.x").unwrap(), None);
        let tags = [
            "5.0.0",
            "5.0.3",
            "v5.0.3",
            "5.1.0",
            "5.0.4-rc.1",
            "latest",
            "x.sig",
        ];
        let ex = p.explain(&tags, &Exclusions::flux_default());
        assert_eq!(ex.selected.as_ref().map(|s| s.tag.as_str()), Some("v5.0.3"));
        let verdicts: Vec<_> = ex.tags.iter().map(|t| t.verdict.clone()).collect();
        assert_eq!(verdicts[0], Verdict::RankedLower);
        assert_eq!(verdicts[1], Verdict::TieBroken);
        assert_eq!(verdicts[2], Verdict::Selected);
        assert_eq!(verdicts[3], Verdict::OutsideRange);
        assert_eq!(verdicts[4], Verdict::PrereleaseNotAdmitted);
        assert!(matches!(verdicts[5], Verdict::NotAVersion { .. }));
        assert!(matches!(verdicts[6], Verdict::Excluded { .. }));
        // Numerical failures are reported per tag too.
        let p = Policy::new(Choice::Numerical(Order::Asc), None);
        let ex = p.explain(&["1", "x", "y"], &Exclusions::none());
        assert_eq!(
            ex.error.as_deref(),
            Some("failed to parse invalid numeric value 'x'")
        );
        assert_eq!(ex.tags[2].verdict, Verdict::NotANumber);
    }

    #[test]
    fn ranked_lists_the_eligible_tags_best_first_and_agrees_with_select() {
        let lists: &[&[&str]] = &[
            &[
                "5.0.0",
                "5.0.3",
                "5.1.0-rc.1",
                "v5.0.3",
                "5.0.2",
                "latest",
                "4.9.9",
                "6.0.0",
            ],
            &["1.0", "1.0.0", "v1.0.0", "1.0.0+build", "0.9"],
        ];
        for (choice, filter) in [
            (Choice::semver(">=5.0.0 <6.0.0").unwrap(), None),
            (Choice::semver("*").unwrap(), None),
            (Choice::alphabetical("asc").unwrap(), None),
            (Choice::alphabetical("desc").unwrap(), None),
            (
                Choice::semver(">=1").unwrap(),
                Some(TagFilter::new("^v?(?P<v>.*)$", "$v").unwrap()),
            ),
        ] {
            let p = Policy::new(choice, filter);
            for tags in lists {
                let ex = Exclusions::flux_default();
                let Ok(chosen) = p.select(tags, &ex) else {
                    assert!(p.ranked(tags, &ex).is_err());
                    continue;
                };
                let ranked = p.ranked(tags, &ex).unwrap();
                assert_eq!(ranked[0], chosen, "{}: {tags:?}", p.choice);
                for pair in ranked.windows(2) {
                    assert_eq!(
                        p.compare(&pair[0].tag, &pair[1].tag),
                        Some(Ordering::Greater),
                        "{}: {pair:?}",
                        p.choice
                    );
                }
                // Every eligible tag is listed once; the ineligible ones are not.
                let eligible = p
                    .explain(tags, &ex)
                    .tags
                    .iter()
                    .filter(|t| {
                        matches!(
                            t.verdict,
                            Verdict::Selected | Verdict::RankedLower | Verdict::TieBroken
                        )
                    })
                    .count();
                assert_eq!(ranked.len(), eligible);
            }
        }
        let p = Policy::new(Choice::semver("5.0.x").unwrap(), None);
        assert_eq!(p.compare("5.0.3", "5.0.2"), Some(Ordering::Greater));
        assert_eq!(p.compare("5.0.2", "5.0.3"), Some(Ordering::Less));
        assert_eq!(p.compare("5.1.0", "5.0.3"), None, "outside the range");
        // The best few of a long list are the head of the whole ranking.
        let long: Vec<String> = (0..500).map(|i| format!("1.{}.{}", i % 37, i)).collect();
        let all = Policy::new(Choice::semver("*").unwrap(), None)
            .ranked(&long, &Exclusions::none())
            .unwrap();
        let best = Policy::new(Choice::semver("*").unwrap(), None)
            .ranked_best(&long, &Exclusions::none(), 7)
            .unwrap();
        assert_eq!(best, all[..7]);
        let n = Policy::new(Choice::numerical("asc").unwrap(), None);
        assert!(matches!(
            n.ranked(&["1", "x"], &Exclusions::none()),
            Err(PolicyError::InvalidNumber(_))
        ));
        assert_eq!(
            n.ranked(&["2", "10", "1"], &Exclusions::none())
                .unwrap()
                .iter()
                .map(|s| s.tag.as_str())
                .collect::<Vec<_>>(),
            ["10", "2", "1"]
        );
    }
}

//! Rollout gates of an ImagePolicy: which ranked candidate tags may become the latest ref,
//! and when the latest ref may move to a lower tag.
//!
//! The engine walks the policy's ranked tags best first and asks [`check`] about each; a
//! gate that needs a fact not fetched yet answers [`Need`], the engine fetches it (digest,
//! platforms) and asks again. A fact that could not be fetched holds the tag: an unchecked
//! tag never passes.

use std::cmp::Ordering;
use std::fmt;
use std::time::Duration;

use serde::Serialize;
use tagpilot_api::gates::Platform;
use tagpilot_api::rfc3339;

/// The gates of one policy, parsed.
#[derive(Debug, Clone, Default)]
pub struct Gates {
    pub min_age: Option<Duration>,
    pub repush_hold: Option<Duration>,
    pub platforms: Vec<Platform>,
}

impl Gates {
    /// From `spec.gates` (validated at load; an invalid platform is skipped here).
    pub fn from_spec(spec: Option<&tagpilot_api::PolicyGates>) -> Self {
        let Some(g) = spec else {
            return Gates::default();
        };
        Gates {
            min_age: g.min_age.map(|d| d.0),
            repush_hold: g.repush_hold.map(|d| d.0),
            platforms: g
                .platforms
                .iter()
                .filter_map(|p| Platform::parse(p).ok())
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.min_age.is_none() && self.repush_hold.is_none() && self.platforms.is_empty()
    }

    /// Whether a gate needs the tag's digest.
    pub fn need_digest(&self) -> bool {
        self.repush_hold.is_some() || !self.platforms.is_empty()
    }
}

/// What tagpilot knows about one tag.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Unix seconds a scan first listed it; 0 when it was listed at the repository's first
    /// scan (age unknown: counts as old enough).
    pub first_seen: u64,
    /// The tag's digest as of this resolution; None until fetched; `Err` when it could not be.
    pub digest: Option<Result<String, String>>,
    /// Unix seconds the digest was last seen to change (0: never).
    pub digest_changed: u64,
    /// The platforms the digest's image serves; `Err` when they could not be read.
    pub platforms: Option<Result<Vec<Platform>, String>>,
}

/// A fact [`check`] needs before it can answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Digest,
    Platforms,
}

/// A gate's verdict on one candidate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    Passed,
    /// minAge: known for less than the gate; `until` Unix seconds.
    TooYoung {
        until: u64,
    },
    /// repushHold: its digest changed at `since`; held until `until`.
    Repushed {
        since: u64,
        until: u64,
    },
    /// platforms: the image lacks these.
    MissingPlatforms {
        missing: Vec<String>,
    },
    /// A gate could not be evaluated; the tag is held.
    Unchecked {
        gate: &'static str,
        reason: String,
    },
}

impl Verdict {
    pub fn passed(&self) -> bool {
        matches!(self, Verdict::Passed)
    }

    /// When a time-bound hold ends (minAge, repushHold): the policy should resolve again then.
    pub fn until(&self) -> Option<u64> {
        match self {
            Verdict::TooYoung { until } | Verdict::Repushed { until, .. } => Some(*until),
            _ => None,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Passed => f.write_str("passes every gate"),
            Verdict::TooYoung { until } => write!(f, "held by minAge until {}", rfc3339(*until)),
            Verdict::Repushed { since, until } => write!(
                f,
                "held by repushHold until {} (re-pushed: digest changed at {})",
                rfc3339(*until),
                rfc3339(*since)
            ),
            Verdict::MissingPlatforms { missing } => {
                write!(f, "held by platforms: no image for {}", missing.join(", "))
            }
            Verdict::Unchecked { gate, reason } => {
                write!(f, "held by {gate}: cannot be checked: {reason}")
            }
        }
    }
}

/// A candidate a gate held (an ImagePolicy's status `heldTags`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeldTag {
    pub tag: String,
    #[serde(flatten)]
    pub verdict: Verdict,
    /// The verdict in words.
    pub message: String,
}

impl HeldTag {
    pub fn new(tag: &str, verdict: &Verdict) -> Self {
        HeldTag {
            tag: tag.to_owned(),
            verdict: verdict.clone(),
            message: verdict.to_string(),
        }
    }
}

fn secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// The verdict of every gate on one tag, the first that holds it; or what must be fetched.
pub fn check(gates: &Gates, facts: &Facts, now: u64) -> Result<Verdict, Need> {
    if let Some(min) = gates.min_age {
        if facts.first_seen > 0 {
            let until = facts.first_seen.saturating_add(secs(min));
            if now < until {
                return Ok(Verdict::TooYoung { until });
            }
        }
    }
    if !gates.need_digest() {
        return Ok(Verdict::Passed);
    }
    let unchecked = |gate: &'static str, reason: &str| Verdict::Unchecked {
        gate,
        reason: reason.to_owned(),
    };
    let first_gate = if gates.repush_hold.is_some() {
        "repushHold"
    } else {
        "platforms"
    };
    match &facts.digest {
        None => return Err(Need::Digest),
        Some(Err(e)) => return Ok(unchecked(first_gate, e)),
        Some(Ok(_)) => {}
    }
    if let Some(hold) = gates.repush_hold {
        if facts.digest_changed > 0 {
            let until = facts.digest_changed.saturating_add(secs(hold));
            if now < until {
                return Ok(Verdict::Repushed {
                    since: facts.digest_changed,
                    until,
                });
            }
        }
    }
    if gates.platforms.is_empty() {
        return Ok(Verdict::Passed);
    }
    let found = match &facts.platforms {
        None => return Err(Need::Platforms),
        Some(Err(e)) => return Ok(unchecked("platforms", e)),
        Some(Ok(found)) => found,
    };
    let missing: Vec<String> = gates
        .platforms
        .iter()
        .filter(|want| !found.iter().any(|have| want.served_by(have)))
        .map(ToString::to_string)
        .collect();
    Ok(if missing.is_empty() {
        Verdict::Passed
    } else {
        Verdict::MissingPlatforms { missing }
    })
}

/// The current latest ref of a policy, as the downgrade guard sees it.
#[derive(Debug, Clone, Copy)]
pub struct Current<'a> {
    pub tag: &'a str,
    /// Whether the last accepted scan still lists it.
    pub listed: bool,
    /// Whether the ranking part of the policy changed since it was chosen.
    pub spec_changed: bool,
}

/// What the policy's latest ref becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Move to (or stay at) this tag.
    Use(String),
    /// Keep the current tag; the reason is for the status.
    Keep { tag: String, reason: String },
    /// Nothing passes and nothing is current.
    Nothing,
}

/// Whether the walk may look at a candidate ranked `against_current` relative to the current
/// tag: below it only when a downgrade is allowed.
pub fn may_descend(
    current: Option<&Current<'_>>,
    against_current: Option<Ordering>,
    allow: bool,
) -> bool {
    match current {
        Some(c) if !allow && !c.spec_changed => against_current != Some(Ordering::Less),
        _ => true,
    }
}

/// The downgrade guard: the latest ref moves to a lower tag only after a policy change or
/// with `allowDowngrade`. `chosen` is the best candidate that passed every gate;
/// `cmp(a, b)` ranks two tags under the policy.
pub fn decide(
    current: Option<Current<'_>>,
    chosen: Option<&str>,
    allow_downgrade: bool,
    cmp: impl Fn(&str, &str) -> Option<Ordering>,
) -> Decision {
    let Some(cur) = current else {
        return chosen.map_or(Decision::Nothing, |c| Decision::Use(c.to_owned()));
    };
    let guarded = !allow_downgrade && !cur.spec_changed;
    let keep = |reason: String| Decision::Keep {
        tag: cur.tag.to_owned(),
        reason,
    };
    match chosen {
        Some(c) if c == cur.tag => Decision::Use(c.to_owned()),
        Some(c) if guarded && cmp(c, cur.tag) == Some(Ordering::Less) => keep(if cur.listed {
            format!(
                "{} is held; not moving back to {c} without a policy change",
                cur.tag
            )
        } else {
            format!(
                "{} is no longer listed; not moving back to {c} without a policy change",
                cur.tag
            )
        }),
        Some(c) => Decision::Use(c.to_owned()),
        None if guarded => keep(if cur.listed {
            format!("no tag passes the gates; keeping {}", cur.tag)
        } else {
            format!(
                "{} is no longer listed and no other tag passes the gates; keeping it",
                cur.tag
            )
        }),
        None => Decision::Nothing,
    }
}

/// The held part of a status message: "5.0.4 held by minAge until …; 5.0.5 held by …".
pub fn held_summary(held: &[(String, Verdict)]) -> String {
    held.iter()
        .map(|(tag, v)| format!("{tag} {v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// One tag's line in `tagpilot explain`: the policy's verdict, or the gate's for a
/// candidate the gates held, or `chosen` for the latest ref.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExplainRow {
    pub tag: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `chosen`, a gate's verdict (`too-young`, `repushed`, `missing-platforms`,
    /// `unchecked`) or the policy's (`excluded`, `filtered-out`, `outside-range`, …).
    pub verdict: String,
    pub message: String,
    /// When tagpilot first listed the tag (RFC 3339); None when it was listed at the
    /// repository's first scan (age unknown, old enough for minAge).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<String>,
}

/// A held candidate as the status records it (`heldTags`): verdict name and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldLine {
    pub verdict: String,
    pub message: String,
}

/// Every tag's line: the policy's explanation, overlaid with the last resolution's holds
/// and the current latest ref.
pub fn explain_rows(
    ex: &tagpilot_policy::Explanation,
    held: &std::collections::BTreeMap<String, HeldLine>,
    latest: Option<&str>,
    first_seen: impl Fn(&str) -> Option<u64>,
) -> Vec<ExplainRow> {
    use tagpilot_policy::Verdict as P;
    ex.tags
        .iter()
        .map(|t| {
            let (verdict, message) = if latest == Some(t.tag.as_str()) {
                ("chosen".to_owned(), "the latest ref".to_owned())
            } else if let Some(h) = held.get(&t.tag) {
                (h.verdict.clone(), h.message.clone())
            } else {
                let name = match &t.verdict {
                    P::Excluded { .. } => "excluded",
                    P::FilteredOut => "filtered-out",
                    P::NotAVersion { .. } => "not-a-version",
                    P::NotANumber => "not-a-number",
                    P::OutsideRange => "outside-range",
                    P::PrereleaseNotAdmitted => "prerelease-not-admitted",
                    // The policy's best that is not the latest ref and was not held: the
                    // guard kept a higher current tag, or no resolution ran since it appeared.
                    P::Selected => "not-chosen",
                    P::RankedLower | P::TieBroken => "ranked-lower",
                };
                let message = match &t.verdict {
                    P::Selected => {
                        "ranked first, not the latest ref (see the policy's status)".to_owned()
                    }
                    v => v.to_string(),
                };
                (name.to_owned(), message)
            };
            ExplainRow {
                tag: t.tag.clone(),
                value: t.value.clone(),
                verdict,
                message,
                first_seen: first_seen(&t.tag).filter(|s| *s > 0).map(rfc3339),
            }
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn gates(min_age: u64, repush: u64, platforms: &[&str]) -> Gates {
        Gates {
            min_age: (min_age > 0).then(|| Duration::from_secs(min_age)),
            repush_hold: (repush > 0).then(|| Duration::from_secs(repush)),
            platforms: platforms
                .iter()
                .map(|p| Platform::parse(p).unwrap())
                .collect(),
        }
    }

    #[test]
    fn min_age_counts_from_first_seen_and_baseline_tags_are_old_enough() {
        let g = gates(3600, 0, &[]);
        let young = Facts {
            first_seen: 1000,
            ..Facts::default()
        };
        assert_eq!(
            check(&g, &young, 4599),
            Ok(Verdict::TooYoung { until: 4600 })
        );
        assert_eq!(check(&g, &young, 4600), Ok(Verdict::Passed));
        // Listed at the first scan: no known age.
        assert_eq!(check(&g, &Facts::default(), 0), Ok(Verdict::Passed));
        // minAge needs no fetch at all.
        assert!(!g.need_digest());
        // Sub-second gates round up, never down to "no gate".
        let ms = Gates {
            min_age: Some(Duration::from_millis(1500)),
            ..Gates::default()
        };
        assert_eq!(
            check(&ms, &young, 1001),
            Ok(Verdict::TooYoung { until: 1002 })
        );
    }

    #[test]
    fn repush_hold_and_platforms_ask_for_facts_and_hold_what_cannot_be_checked() {
        let g = gates(0, 600, &["linux/amd64", "linux/arm64"]);
        let mut f = Facts::default();
        assert_eq!(check(&g, &f, 100), Err(Need::Digest));
        f.digest = Some(Err("registry answered 500".into()));
        assert_eq!(
            check(&g, &f, 100).unwrap().to_string(),
            "held by repushHold: cannot be checked: registry answered 500"
        );
        f.digest = Some(Ok("sha256:aa".into()));
        f.digest_changed = 50;
        assert_eq!(
            check(&g, &f, 100),
            Ok(Verdict::Repushed {
                since: 50,
                until: 650
            })
        );
        assert_eq!(check(&g, &f, 650), Err(Need::Platforms));
        f.platforms = Some(Ok(vec![Platform::parse("linux/amd64").unwrap()]));
        assert_eq!(
            check(&g, &f, 650),
            Ok(Verdict::MissingPlatforms {
                missing: vec!["linux/arm64".into()]
            })
        );
        f.platforms = Some(Ok(vec![
            Platform::parse("linux/amd64").unwrap(),
            Platform::parse("linux/arm64/v8").unwrap(),
        ]));
        assert_eq!(check(&g, &f, 650), Ok(Verdict::Passed));
        f.platforms = Some(Err("index is not JSON".into()));
        assert!(matches!(
            check(&g, &f, 650),
            Ok(Verdict::Unchecked {
                gate: "platforms",
                ..
            })
        ));
        assert_eq!(
            check(&Gates::default(), &Facts::default(), 0),
            Ok(Verdict::Passed)
        );
    }

    /// The project's own ranking, any version.
    pub(crate) fn semver(a: &str, b: &str) -> Option<Ordering> {
        use tagpilot_policy::{Choice, Policy};
        Policy::new(Choice::semver("*").ok()?, None).compare(a, b)
    }

    #[test]
    fn the_latest_ref_never_moves_down_without_a_policy_change() {
        let cur = |listed, spec_changed| Current {
            tag: "5.0.3",
            listed,
            spec_changed,
        };
        // A newer tag: move.
        assert_eq!(
            decide(Some(cur(true, false)), Some("5.0.4"), false, semver),
            Decision::Use("5.0.4".into())
        );
        // The newest tag vanished from the listing: keep, and say why.
        assert_eq!(
            decide(Some(cur(false, false)), Some("5.0.2"), false, semver),
            Decision::Keep {
                tag: "5.0.3".into(),
                reason:
                    "5.0.3 is no longer listed; not moving back to 5.0.2 without a policy change"
                        .into()
            }
        );
        // A policy change (the guide's rollback) or allowDowngrade: move down.
        assert_eq!(
            decide(Some(cur(true, true)), Some("5.0.2"), false, semver),
            Decision::Use("5.0.2".into())
        );
        assert_eq!(
            decide(Some(cur(false, false)), Some("5.0.2"), true, semver),
            Decision::Use("5.0.2".into())
        );
        // Nothing passes: keep what is there.
        assert!(matches!(
            decide(Some(cur(true, false)), None, false, semver),
            Decision::Keep { .. }
        ));
        assert_eq!(decide(None, None, false, semver), Decision::Nothing);
        assert_eq!(
            decide(None, Some("1.0.0"), false, semver),
            Decision::Use("1.0.0".into())
        );
        // The walk stops above the current tag unless a downgrade may happen.
        let c = cur(true, false);
        assert!(may_descend(Some(&c), Some(Ordering::Equal), false));
        assert!(!may_descend(Some(&c), Some(Ordering::Less), false));
        assert!(may_descend(Some(&c), Some(Ordering::Less), true));
        assert!(may_descend(None, None, false));
    }

    #[test]
    fn held_summary_names_each_tag_and_until_when() {
        let s = held_summary(&[
            (
                "5.0.5".into(),
                Verdict::MissingPlatforms {
                    missing: vec!["linux/arm64".into()],
                },
            ),
            (
                "5.0.4".into(),
                Verdict::TooYoung {
                    until: 1_796_205_600,
                },
            ),
        ]);
        assert_eq!(
            s,
            "5.0.5 held by platforms: no image for linux/arm64; 5.0.4 held by minAge until 2026-12-02T10:00:00Z"
        );
    }

    #[test]
    fn explain_rows_overlay_holds_and_the_chosen_tag_on_the_policy_verdicts() {
        use tagpilot_policy::{Choice, Exclusions, Policy};
        let p = Policy::new(Choice::semver("5.0.x").unwrap(), None);
        let tags = ["5.0.6", "5.0.5", "5.0.4", "5.1.0", "latest", "x.sig"];
        let ex = p.explain(&tags, &Exclusions::flux_default());
        let mut held = std::collections::BTreeMap::new();
        held.insert(
            "5.0.6".to_owned(),
            HeldLine {
                verdict: "too-young".into(),
                message: "held by minAge until 2026-12-02T10:00:00Z".into(),
            },
        );
        held.insert(
            "5.0.5".to_owned(),
            HeldLine {
                verdict: "missing-platforms".into(),
                message: "held by platforms: no image for linux/arm64".into(),
            },
        );
        let rows = explain_rows(&ex, &held, Some("5.0.4"), |t| {
            (t == "5.0.6").then_some(1_796_202_000)
        });
        let v: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| (r.tag.as_str(), r.verdict.as_str()))
            .collect();
        assert_eq!(
            v,
            [
                ("5.0.6", "too-young"),
                ("5.0.5", "missing-platforms"),
                ("5.0.4", "chosen"),
                ("5.1.0", "outside-range"),
                ("latest", "not-a-version"),
                ("x.sig", "excluded"),
            ]
        );
        assert_eq!(rows[0].first_seen.as_deref(), Some("2026-12-02T09:00:00Z"));
        assert_eq!(rows[2].first_seen, None);
    }
}

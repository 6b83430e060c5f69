//! `manualChanges: hold` of an ImageUpdateAutomation: a marked value a person changed (an
//! edit by hand, a revert of an automated commit) is kept until the policy ranks a tag above
//! the one they moved away from, or until `tagpilot release image policy` ends the hold.
//!
//! A change is a person's when the marker's value in the branch is not what this automation
//! last left there: tagpilot only ever moves a marker to its policy's latest ref, so any
//! other value came from a commit it did not make.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What an automation last left its markers at, per policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Written {
    pub name: String,
    pub tag: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// One held policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hold {
    /// The value the person chose (as the marker holds it).
    pub value: String,
    /// The tag tagpilot had written, which they moved away from.
    pub moved_away_from: String,
    /// Unix seconds the change was first seen.
    pub since: u64,
    /// Released by request: this value is no longer a person's choice to keep.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub released: bool,
}

/// An automation's state, persisted between rounds (policy keys are `namespace/name`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManualState {
    #[serde(default)]
    pub written: BTreeMap<String, Written>,
    #[serde(default)]
    pub holds: BTreeMap<String, Hold>,
}

impl ManualState {
    /// Policies whose markers must not be touched this round.
    pub fn held(&self) -> impl Iterator<Item = &str> {
        self.holds
            .iter()
            .filter(|(_, h)| !h.released)
            .map(|(k, _)| k.as_str())
    }
}

/// One marker the setters would change: its marker text (`ns:name[:tag|:name|:digest]`) and
/// the value it has now.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    pub setter: &'a str,
    pub old_value: &'a str,
}

/// `ns:name[:field]` → (policy key `ns/name`, field).
fn marker(setter: &str) -> Option<(String, &str)> {
    let mut parts = setter.splitn(3, ':');
    let (ns, name) = (parts.next()?, parts.next()?);
    Some((format!("{ns}/{name}"), parts.next().unwrap_or("")))
}

/// What a marker of `field` reads when the automation left it at `w`.
fn expected(w: &Written, field: &str) -> Option<String> {
    Some(match field {
        "" => {
            let mut s = format!("{}:{}", w.name, w.tag);
            if let Some(d) = &w.digest {
                s.push('@');
                s.push_str(d);
            }
            s
        }
        "tag" => w.tag.clone(),
        "name" => w.name.clone(),
        "digest" => w.digest.clone()?,
        _ => return None,
    })
}

/// Records the holds the markers show: a marker whose value is not what the automation last
/// wrote was changed by someone else. A released hold's markers are not news.
pub fn detect(state: &mut ManualState, seen: &[Seen<'_>], now: u64) -> Vec<String> {
    let mut found = Vec::new();
    for s in seen {
        let Some((policy, field)) = marker(s.setter) else {
            continue;
        };
        let Some(w) = state.written.get(&policy) else {
            // Never written by this automation: Flux's behaviour, the policy's value wins.
            continue;
        };
        if expected(w, field).is_none_or(|e| e == s.old_value) {
            continue;
        }
        // Held already, or released for this round (which writes every marker of it).
        if state.holds.contains_key(&policy) {
            continue;
        }
        let hold = Hold {
            value: s.old_value.to_owned(),
            moved_away_from: w.tag.clone(),
            since: now,
            released: false,
        };
        state.holds.insert(policy.clone(), hold);
        found.push(policy);
    }
    found
}

/// Ends the holds whose policy now ranks a tag above the one the person moved away from
/// (`latest` gives each policy's tag, `cmp` ranks two tags under a policy), and marks the
/// requested ones released. Returns the policies released.
pub fn release(
    state: &mut ManualState,
    requested: &[&str],
    latest: impl Fn(&str) -> Option<String>,
    cmp: impl Fn(&str, &str, &str) -> Option<Ordering>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (policy, hold) in state.holds.iter_mut().filter(|(_, h)| !h.released) {
        let newer = latest(policy)
            .is_some_and(|t| cmp(policy, &t, &hold.moved_away_from) == Some(Ordering::Greater));
        if newer || requested.contains(&policy.as_str()) {
            hold.released = true;
            out.push(policy.clone());
        }
    }
    out
}

/// After a successful round: every policy not held is at its latest ref; released holds are
/// done.
pub fn settle(state: &mut ManualState, latest: &BTreeMap<String, Written>) {
    state.holds.retain(|_, h| !h.released);
    for (policy, w) in latest {
        if !state.holds.contains_key(policy) {
            state.written.insert(policy.clone(), w.clone());
        }
    }
    state
        .written
        .retain(|policy, _| latest.contains_key(policy) || state.holds.contains_key(policy));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(tag: &str) -> Written {
        Written {
            name: "reg/app".into(),
            tag: tag.into(),
            digest: None,
        }
    }

    fn semver(_: &str, a: &str, b: &str) -> Option<Ordering> {
        crate::gates::tests::semver(a, b)
    }

    #[test]
    fn a_revert_is_held_until_a_newer_tag_and_then_overwritten() {
        let mut st = ManualState::default();
        // Never written: the policy's value wins (Flux's behaviour).
        let seen = [Seen {
            setter: "apps:app",
            old_value: "reg/app:1.0.0",
        }];
        assert!(detect(&mut st, &seen, 10).is_empty());
        settle(
            &mut st,
            &BTreeMap::from([("apps/app".to_owned(), w("1.0.3"))]),
        );
        assert_eq!(st.written["apps/app"].tag, "1.0.3");

        // Someone reverts to 1.0.2 (full-image and tag markers alike).
        let seen = [
            Seen {
                setter: "apps:app",
                old_value: "reg/app:1.0.2",
            },
            Seen {
                setter: "apps:app:tag",
                old_value: "1.0.2",
            },
        ];
        assert_eq!(detect(&mut st, &seen, 20), ["apps/app"]);
        let h = &st.holds["apps/app"];
        assert_eq!(
            (h.value.as_str(), h.moved_away_from.as_str(), h.since),
            ("reg/app:1.0.2", "1.0.3", 20)
        );
        assert_eq!(st.held().collect::<Vec<_>>(), ["apps/app"]);
        // Seen again: still the same hold, from the same time.
        assert!(detect(&mut st, &seen, 30).is_empty());
        assert_eq!(st.holds["apps/app"].since, 20);
        // The policy still says 1.0.3: held; a settle keeps what was written.
        assert!(release(&mut st, &[], |_| Some("1.0.3".into()), semver).is_empty());
        settle(
            &mut st,
            &BTreeMap::from([("apps/app".to_owned(), w("1.0.3"))]),
        );
        assert_eq!(st.written["apps/app"].tag, "1.0.3");
        assert!(st.holds.contains_key("apps/app"));

        // 1.0.4 ranks above 1.0.3: released, the marker at 1.0.2 is not detected again, and
        // after the round the automation has written 1.0.4.
        assert_eq!(
            release(&mut st, &[], |_| Some("1.0.4".into()), semver),
            ["apps/app"]
        );
        assert_eq!(st.held().count(), 0);
        assert!(detect(&mut st, &seen, 40).is_empty());
        settle(
            &mut st,
            &BTreeMap::from([("apps/app".to_owned(), w("1.0.4"))]),
        );
        assert!(st.holds.is_empty());
        assert_eq!(st.written["apps/app"].tag, "1.0.4");
    }

    #[test]
    fn a_release_request_ends_a_hold_and_deleted_policies_are_forgotten() {
        let mut st = ManualState::default();
        settle(
            &mut st,
            &BTreeMap::from([
                ("apps/app".to_owned(), w("2.0.0")),
                ("apps/old".to_owned(), w("1.0.0")),
            ]),
        );
        detect(
            &mut st,
            &[Seen {
                setter: "apps:app:tag",
                old_value: "1.9.0",
            }],
            5,
        );
        assert_eq!(
            release(&mut st, &["apps/app"], |_| Some("2.0.0".into()), semver),
            ["apps/app"]
        );
        // A name-only marker that someone pointed at a mirror is a change too.
        settle(
            &mut st,
            &BTreeMap::from([("apps/app".to_owned(), w("2.0.0"))]),
        );
        assert!(!st.written.contains_key("apps/old"));
        assert_eq!(
            detect(
                &mut st,
                &[Seen {
                    setter: "apps:app:name",
                    old_value: "mirror/app"
                }],
                6
            ),
            ["apps/app"]
        );
        // A marker of a digest the automation never wrote cannot be judged.
        let mut st2 = ManualState::default();
        settle(
            &mut st2,
            &BTreeMap::from([("apps/app".to_owned(), w("2.0.0"))]),
        );
        assert!(detect(
            &mut st2,
            &[Seen {
                setter: "apps:app:digest",
                old_value: "sha256:x"
            }],
            6
        )
        .is_empty());
    }
}

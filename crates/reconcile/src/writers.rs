//! Which Git remote each automation writes, and which automations a policy wakes.
//!
//! One Git worker owns each remote URL (its warm clone); every branch and automation of that URL
//! runs in its rounds, one at a time. A policy whose latest ref changes wakes only the workers
//! whose automations select it (same namespace, `policySelector` admitting its labels), and an
//! automation applies only policies that exist and that it selects.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tagpilot_api::{Config, GitRepository, ImagePolicy, ImageUpdateAutomation};

/// `(namespace, name)`.
pub type Key = (String, String);

/// Whether `automation` selects `policy` (Flux: policies of the automation's namespace that its
/// `policySelector` admits; no selector admits all).
pub fn selects(automation: &ImageUpdateAutomation, policy: &ImagePolicy) -> bool {
    policy.metadata.namespace == automation.metadata.namespace
        && automation
            .spec
            .policy_selector
            .as_ref()
            .is_none_or(|sel| sel.matches(&policy.metadata.labels))
}

/// The remote URL an automation writes: its GitRepository's `spec.url`, when that exists.
pub fn remote_of<'c>(config: &'c Config, automation: &ImageUpdateAutomation) -> Option<&'c str> {
    let src = &automation.spec.source_ref;
    let ns = src
        .namespace
        .as_deref()
        .unwrap_or(&automation.metadata.namespace);
    config
        .find::<GitRepository>(ns, &src.name)
        .map(|g| g.spec.url.as_str())
}

/// One remote's worker: the automations it runs and how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worker {
    pub url: String,
    pub automations: BTreeSet<Key>,
    /// The shortest interval among its automations (at least 500 ms).
    pub interval: Duration,
}

/// Every remote with an automation, and the policy → remotes wake-up index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriterIndex {
    pub workers: BTreeMap<String, Worker>,
    /// Policy → the remotes whose automations select it.
    by_policy: BTreeMap<Key, BTreeSet<String>>,
    /// Automation → its remote.
    by_automation: BTreeMap<Key, String>,
    /// GitRepository → the remotes of the automations that use it.
    by_source: BTreeMap<Key, BTreeSet<String>>,
}

impl WriterIndex {
    pub fn build(config: &Config) -> Self {
        let mut index = WriterIndex::default();
        let policies: Vec<&ImagePolicy> = config.all::<ImagePolicy>().collect();
        for a in config.all::<ImageUpdateAutomation>() {
            let Some(url) = remote_of(config, a) else {
                continue;
            };
            let key = (a.metadata.namespace.clone(), a.metadata.name.clone());
            let interval = a
                .spec
                .interval
                .as_duration()
                .max(Duration::from_millis(500));
            let w = index
                .workers
                .entry(url.to_owned())
                .or_insert_with(|| Worker {
                    url: url.to_owned(),
                    automations: BTreeSet::new(),
                    interval,
                });
            w.interval = w.interval.min(interval);
            w.automations.insert(key.clone());
            index.by_automation.insert(key, url.to_owned());
            let src = &a.spec.source_ref;
            let src_key = (
                src.namespace
                    .clone()
                    .unwrap_or_else(|| a.metadata.namespace.clone()),
                src.name.clone(),
            );
            index
                .by_source
                .entry(src_key)
                .or_default()
                .insert(url.to_owned());
            for p in policies.iter().filter(|p| selects(a, p)) {
                index
                    .by_policy
                    .entry((p.metadata.namespace.clone(), p.metadata.name.clone()))
                    .or_default()
                    .insert(url.to_owned());
            }
        }
        index
    }

    /// The remotes to wake when a policy's latest ref changed.
    pub fn woken_by_policy(&self, policy: &Key) -> impl Iterator<Item = &str> {
        self.by_policy
            .get(policy)
            .into_iter()
            .flatten()
            .map(String::as_str)
    }

    /// The remote an automation runs on.
    pub fn of_automation(&self, automation: &Key) -> Option<&str> {
        self.by_automation.get(automation).map(String::as_str)
    }

    /// The remotes whose automations use a GitRepository.
    pub fn of_source(&self, source: &Key) -> impl Iterator<Item = &str> {
        self.by_source
            .get(source)
            .into_iter()
            .flatten()
            .map(String::as_str)
    }
}

/// Of the resolved latest refs, those `automation` applies: the policy still exists in
/// `config` and the automation selects it.
pub fn applicable<'r, V>(
    config: &Config,
    automation: &ImageUpdateAutomation,
    latest: &'r BTreeMap<Key, V>,
) -> Vec<(&'r Key, &'r V)> {
    latest
        .iter()
        .filter(|((ns, name), _)| {
            config
                .find::<ImagePolicy>(ns, name)
                .is_some_and(|p| selects(automation, p))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(text: &str) -> Config {
        let c = tagpilot_api::load_str(text, Path::new("test.yaml"));
        assert!(c.errors.is_empty(), "{:?}", c.errors);
        c
    }

    const BASE: &str = r#"
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: fleet, namespace: flux-system}
spec: {url: "git://127.0.0.1/fleet.git", interval: 1m, ref: {branch: main}}
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: other, namespace: flux-system}
spec: {url: "git://127.0.0.1/other.git", interval: 1m, ref: {branch: main}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {name: app, namespace: flux-system}
spec: {image: 127.0.0.1:5000/app, interval: 1m}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {name: a, namespace: flux-system, labels: {team: a}}
spec: {imageRepositoryRef: {name: app}, policy: {semver: {range: ">=1.0.0"}}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {name: b, namespace: flux-system, labels: {team: b}}
spec: {imageRepositoryRef: {name: app}, policy: {semver: {range: ">=1.0.0"}}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageUpdateAutomation
metadata: {name: to-a, namespace: flux-system}
spec:
  sourceRef: {kind: GitRepository, name: fleet}
  interval: 5m
  policySelector: {matchLabels: {team: a}}
  git:
    commit: {author: {email: bot@example.com}}
    push: {branch: branch-a}
  update: {path: ./a}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageUpdateAutomation
metadata: {name: to-b, namespace: flux-system}
spec:
  sourceRef: {kind: GitRepository, name: fleet}
  interval: 2m
  policySelector: {matchLabels: {team: b}}
  git:
    commit: {author: {email: bot@example.com}}
    push: {branch: branch-b}
  update: {path: ./b}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageUpdateAutomation
metadata: {name: all, namespace: flux-system}
spec:
  sourceRef: {kind: GitRepository, name: other}
  interval: 10m
  git:
    commit: {author: {email: bot@example.com}}
"#;

    fn key(ns: &str, n: &str) -> Key {
        (ns.to_owned(), n.to_owned())
    }

    #[test]
    fn one_worker_per_remote_and_policies_wake_only_their_automations() {
        let c = config(BASE);
        let index = WriterIndex::build(&c);
        assert_eq!(
            index.workers.keys().collect::<Vec<_>>(),
            ["git://127.0.0.1/fleet.git", "git://127.0.0.1/other.git"]
        );
        let fleet = &index.workers["git://127.0.0.1/fleet.git"];
        assert_eq!(
            fleet.automations.len(),
            2,
            "both branches of one remote share a worker"
        );
        assert_eq!(fleet.interval, Duration::from_secs(120));
        let a: Vec<_> = index.woken_by_policy(&key("flux-system", "a")).collect();
        assert_eq!(
            a,
            ["git://127.0.0.1/fleet.git", "git://127.0.0.1/other.git"]
        );
        // A policy in another namespace wakes nobody.
        assert_eq!(index.woken_by_policy(&key("apps", "a")).count(), 0);
        assert_eq!(
            index.of_automation(&key("flux-system", "to-b")),
            Some("git://127.0.0.1/fleet.git")
        );
        assert_eq!(index.of_source(&key("flux-system", "other")).count(), 1);
    }

    #[test]
    fn only_existing_selected_policies_apply() {
        let c = config(BASE);
        let to_a = c
            .find::<ImageUpdateAutomation>("flux-system", "to-a")
            .expect("to-a");
        let latest = BTreeMap::from([
            (key("flux-system", "a"), 1),
            (key("flux-system", "b"), 2),
            // Deleted from the configuration: never applied again.
            (key("flux-system", "gone"), 3),
        ]);
        let applied: Vec<_> = applicable(&c, to_a, &latest)
            .into_iter()
            .map(|(k, _)| k.1.as_str())
            .collect();
        assert_eq!(applied, ["a"]);
        let all = c
            .find::<ImageUpdateAutomation>("flux-system", "all")
            .expect("all");
        let applied: Vec<_> = applicable(&c, all, &latest)
            .into_iter()
            .map(|(k, _)| k.1.as_str())
            .collect();
        assert_eq!(applied, ["a", "b"]);
    }
}

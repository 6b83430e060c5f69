//! ImagePolicy: the latest tag of the stored list by the policy, Flux's digest reflection, the
//! persisted latest ref.

use super::*;
use tagpilot_api::gates::Platform;
use tagpilot_reconcile::gates::{self, Current, Decision, Facts, Gates, HeldTag, Need, Verdict};

/// Candidates the gates look at per resolution, best first.
const MAX_CANDIDATES: usize = 50;
/// Digest fetches per resolution (each a registry request or two): the walk stays within
/// the registry's limits even when many candidates are held.
const MAX_FETCHES: usize = 10;

/// What a walk through the candidates found.
#[derive(Default)]
struct Walk {
    /// The best candidate that passed every gate, with what was learnt about it.
    chosen: Option<(String, Facts)>,
    /// The best tag below the current one, where the walk stopped (a refusal names it).
    below: Option<String>,
    /// The candidates a gate held, best first.
    held: Vec<(String, Verdict)>,
}

impl Engine {
    /// Resolves a policy and records its status.
    pub async fn reconcile_policy(&self, policy: &ImagePolicy) {
        let (ns, name) = (&policy.metadata.namespace, &policy.metadata.name);
        self.begin(Kind::ImagePolicy, ns, name);
        let outcome = match self.resolve(policy).await {
            Ok(m) => Outcome::ready(m),
            Err(f) => f.outcome(|e| e.to_owned()),
        };
        let key = (ns.clone(), name.clone());
        let mut fields = self
            .lock_latest()
            .get(&key)
            .map_or(json!({}), |l| json!({ "latestRef": l }));
        // Holds are shown while they last; a suspended or failed resolution keeps the last.
        if let Some(held) = lock(&self.shared.held).get(&key) {
            fields["heldTags"] = json!(held);
        }
        self.record_outcome_async(Kind::ImagePolicy, ns, name, outcome, fields)
            .await;
    }

    pub fn policies(&self) -> Vec<&ImagePolicy> {
        self.config.all().collect()
    }

    pub async fn resolve(&self, policy: &ImagePolicy) -> Result<String, Failure> {
        use reason::{DEPENDENCY_NOT_READY, FAILURE, IMAGE_URL_INVALID, INVALID_POLICY};
        let ns = &policy.metadata.namespace;
        if self.is_suspended(Kind::ImagePolicy, &policy.metadata, policy.spec.suspend) {
            // Like a suspended repository or automation: not reconciled, not a failure.
            return Ok("suspended".into());
        }
        let (repo_ns, repo_name) = policy.repository_key();
        let Some(repo) = self.config.find::<ImageRepository>(repo_ns, repo_name) else {
            return Err(Failure::new(DEPENDENCY_NOT_READY, false, anyhow::anyhow!("failed to get the referred ImageRepository: referenced ImageRepository does not exist: {repo_ns}/{repo_name}")));
        };
        let engine = build_policy(&policy.spec)
            .map_err(|e| anyhow::anyhow!("invalid policy: {e}"))
            .stalled(INVALID_POLICY)?;
        let name = ImageName::parse(&repo.spec.image).stalled(IMAGE_URL_INVALID)?;
        let canonical = name.canonical();
        let key = (ns.clone(), policy.metadata.name.clone());
        let previous = self.lock_latest().get(&key).cloned();
        let selection_generation = policy.spec.selection_generation();
        let previous_generation = lock(&self.shared.selections).get(&key).copied();
        let gates = Gates::from_spec(policy.spec.gates.as_ref());
        let now = (self.shared.clock)();
        // Only the best candidates are kept, and the tag list is dropped before anything
        // below awaits: a thousand policies resolving at once must not hold a thousand lists.
        let (candidates, current_listed) = {
            let stored = self
                .store
                .tags(&canonical)
                .because(FAILURE)?
                .ok_or_else(|| anyhow::anyhow!("no tags in database"))
                .because(DEPENDENCY_NOT_READY)?;
            // The stored list is the image's whole list: this repository's exclusions apply.
            // Each pattern compiles once per process (tagpilot_policy::compile).
            let exclusions = Exclusions::new(&repo.spec.exclusion_list).stalled(reason::FAILURE)?;
            let tags: Vec<&str> = stored
                .iter()
                .map(|t| t.tag.as_str())
                .filter(|t| exclusions.matching(t).is_none())
                .collect();
            let ranked = engine
                .ranked_best(&tags, &Exclusions::none(), MAX_CANDIDATES)
                .because(FAILURE)?;
            let listed = previous
                .as_ref()
                .is_some_and(|p| tags.contains(&p.tag.as_str()));
            let by_tag: std::collections::HashMap<&str, &tagpilot_store::StoredTag> =
                stored.iter().map(|t| (t.tag.as_str(), t)).collect();
            let candidates: Vec<(String, Facts)> = ranked
                .into_iter()
                .map(|s| {
                    let t = by_tag.get(s.tag.as_str());
                    let facts = Facts {
                        first_seen: t.map_or(0, |t| t.first_seen),
                        digest_changed: t.map_or(0, |t| t.digest_changed),
                        ..Facts::default()
                    };
                    (s.tag, facts)
                })
                .collect();
            (candidates, listed)
        };
        let current = previous.as_ref().map(|p| Current {
            tag: &p.tag,
            listed: current_listed,
            // A record from before the guard has no generation: nothing is known to have
            // changed. Another image is another policy.
            spec_changed: previous_generation.is_some_and(|g| g != selection_generation)
                || p.name != repo.spec.image,
        });
        let allow = policy.spec.allows_downgrade();

        let Walk {
            chosen,
            below,
            held,
        } = self
            .walk(
                repo,
                &name,
                &engine,
                &gates,
                candidates,
                current.as_ref(),
                allow,
                now,
            )
            .await;
        for (tag, verdict) in &held {
            tracing::info!(kind = "ImagePolicy", namespace = %ns, name = %policy.metadata.name, tag = %tag, verdict = %verdict, "candidate held by a gate");
        }
        let chosen_tag = chosen
            .as_ref()
            .map(|(t, _)| t.as_str())
            .or(below.as_deref());
        let decision = gates::decide(current, chosen_tag, allow, |a, b| engine.compare(a, b));
        let held_text = gates::held_summary(&held);
        let (tag, kept) = match decision {
            Decision::Use(tag) => (tag, None),
            Decision::Keep { tag, reason } => (tag, Some(reason)),
            Decision::Nothing => {
                return Err(Failure::new(
                    FAILURE,
                    false,
                    anyhow::anyhow!("no tag passes the gates: {held_text}"),
                ))
            }
        };
        let mut latest = LatestRef {
            name: repo.spec.image.clone(),
            tag: tag.clone(),
            digest: None,
        };
        let prev = previous.as_ref().map(|p| digest::Previous {
            name: &p.name,
            tag: &p.tag,
            digest: p.digest.as_deref(),
        });
        match digest::plan(
            policy.spec.digest_reflection_policy,
            prev,
            &latest.name,
            &latest.tag,
        ) {
            digest::Plan::None => {}
            digest::Plan::Keep => latest.digest = previous.as_ref().and_then(|p| p.digest.clone()),
            digest::Plan::Fetch => {
                // A digest the gates just fetched for this tag is as fresh as another HEAD.
                let fetched = chosen
                    .as_ref()
                    .filter(|(t, _)| *t == tag)
                    .and_then(|(_, f)| f.digest.clone()?.ok());
                latest.digest = Some(match fetched {
                    Some(d) => d,
                    None => self.digest_of(repo, &name, &tag).await?,
                });
            }
        }
        let mut message = format!(
            "Latest image tag for {} resolved to {}",
            latest.name, latest.tag
        );
        if let Some(d) = &latest.digest {
            message.push_str(&format!(" with digest {d}"));
        }
        match (&kept, held.is_empty()) {
            (Some(reason), true) => message.push_str(&format!(" ({reason})")),
            (Some(reason), false) => message.push_str(&format!(" ({held_text}; {reason})")),
            (None, false) => message.push_str(&format!(" ({held_text}; using {tag})")),
            (None, true) => {}
        }
        if let Some(reason) = &kept {
            if reason.contains("not moving back") {
                self.emit_policy(policy, "DowngradeRefused", &message);
            }
        }
        // The decision above took any policy change into account: from now on the current
        // tag is this policy's choice.
        let generation = selection_generation;
        let stale_generation = previous_generation != Some(generation);
        lock(&self.shared.selections).insert(key.clone(), generation);
        lock(&self.shared.held).insert(
            key.clone(),
            held.iter().map(|(t, v)| HeldTag::new(t, v)).collect(),
        );
        if previous.as_ref() != Some(&latest) || stale_generation {
            let stored = format!("{}/{}", key.0, key.1);
            let value = serde_json::to_value(&latest).ok().map(|mut v| {
                v["selectionGeneration"] = json!(generation);
                v
            });
            if let Err(e) = self
                .shared
                .write(&self.store, move |store| {
                    store.put_latest(&stored, value.as_ref())
                })
                .await
            {
                tracing::warn!(kind = "ImagePolicy", namespace = %key.0, name = %key.1, error = %e, "cannot store the latest ref");
            }
            self.lock_latest().insert(key, latest);
        }
        Ok(message)
    }

    /// The candidates best first, until one passes every gate; never below the current tag
    /// unless a downgrade may happen.
    #[allow(clippy::too_many_arguments)]
    async fn walk(
        &self,
        repo: &ImageRepository,
        name: &ImageName,
        engine: &tagpilot_policy::Policy,
        gates: &Gates,
        candidates: Vec<(String, Facts)>,
        current: Option<&Current<'_>>,
        allow: bool,
        now: u64,
    ) -> Walk {
        let canonical = name.canonical();
        let mut walk = Walk::default();
        let mut fetches = 0;
        for (tag, mut facts) in candidates {
            let against = current.and_then(|c| engine.compare(&tag, c.tag));
            if !gates::may_descend(current, against, allow) {
                walk.below = Some(tag);
                break;
            }
            let verdict = loop {
                match gates::check(gates, &facts, now) {
                    Ok(v) => break v,
                    Err(Need::Digest) if fetches >= MAX_FETCHES => {
                        break Verdict::Unchecked {
                            gate: if gates.repush_hold.is_some() {
                                "repushHold"
                            } else {
                                "platforms"
                            },
                            reason: format!(
                                "at most {MAX_FETCHES} candidates are fetched per resolution"
                            ),
                        }
                    }
                    Err(Need::Digest) => {
                        fetches += 1;
                        facts.digest = Some(
                            self.fresh_digest(repo, name, &canonical, &tag, now, &mut facts)
                                .await,
                        );
                    }
                    Err(Need::Platforms) => {
                        let Some(Ok(digest)) = facts.digest.clone() else {
                            break Verdict::Unchecked {
                                gate: "platforms",
                                reason: "no digest".into(),
                            };
                        };
                        facts.platforms = Some(self.platforms_of(repo, name, &digest).await);
                    }
                }
            };
            if verdict.passed() {
                walk.chosen = Some((tag, facts));
                break;
            }
            walk.held.push((tag, verdict));
        }
        walk
    }

    /// The digest of a candidate, recorded in the store (which notices a re-push: another
    /// digest under the same tag); the re-push time goes into `facts`.
    async fn fresh_digest(
        &self,
        repo: &ImageRepository,
        name: &ImageName,
        canonical: &str,
        tag: &str,
        now: u64,
        facts: &mut Facts,
    ) -> Result<String, String> {
        let d = self
            .digest_of(repo, name, tag)
            .await
            .map_err(|f| format_chain(&f.error))?;
        let (repo_key, t, dig) = (canonical.to_owned(), tag.to_owned(), d.clone());
        match self
            .shared
            .write(&self.store, move |store| {
                store.set_digest(&repo_key, &t, &dig, now)
            })
            .await
        {
            Ok(Some(record)) => facts.digest_changed = record.digest_changed,
            Ok(None) => {}
            // Without the record a re-push cannot be ruled out.
            Err(e) => return Err(format!("cannot record the digest: {e}")),
        }
        Ok(d)
    }

    /// The platforms of an image digest: from the store, else from the registry (then kept:
    /// a digest's content never changes).
    async fn platforms_of(
        &self,
        repo: &ImageRepository,
        name: &ImageName,
        digest: &str,
    ) -> Result<Vec<Platform>, String> {
        let parse = |list: Vec<String>| -> Result<Vec<Platform>, String> {
            // An entry no platform rule knows (a new OS) cannot serve a wanted platform.
            Ok(list
                .iter()
                .filter_map(|p| Platform::parse(p).ok())
                .collect())
        };
        if let Ok(Some(known)) = self.store.platforms(digest) {
            return parse(known);
        }
        let what = || {
            format!(
                "failed reading the platforms of {}@{digest}",
                repo.spec.image
            )
        };
        let client = self
            .repo_client(repo, name)
            .await
            .map_err(|f| format_chain(&f.error))?;
        let found: Vec<String> = client
            .platforms(digest)
            .await
            .map_err(|e| format!("{}: {e}", what()))?
            .iter()
            .map(ToString::to_string)
            .collect();
        let (d, list) = (digest.to_owned(), found.clone());
        if let Err(e) = self
            .shared
            .write(&self.store, move |store| store.put_platforms(&d, &list))
            .await
        {
            tracing::warn!(kind = "ImagePolicy", digest, error = %e, "cannot store platforms");
        }
        parse(found)
    }

    /// A client for the repository, with its own credentials (cloud providers included) and
    /// through its host's gate.
    async fn repo_client(
        &self,
        repo: &ImageRepository,
        name: &ImageName,
    ) -> Result<RepoClient, Failure> {
        let what = || format!("cannot reach {}", repo.spec.image);
        let mut opts = self
            .client_options(repo)
            .await
            .with_context(what)
            .because(reason::AUTHENTICATION_FAILED)?;
        opts.credentials = self
            .credentials(repo, &name.registry, &mut Vec::new())
            .await
            .with_context(what)
            .because(reason::AUTHENTICATION_FAILED)?;
        RepoClient::new(name, opts, &self.gates)
            .map_err(anyhow::Error::from)
            .with_context(what)
            .because(reason::FAILURE)
    }

    /// The digest of `image:tag`; refused unless it is `<algorithm>:<hex>`.
    async fn digest_of(
        &self,
        repo: &ImageRepository,
        name: &ImageName,
        tag: &str,
    ) -> Result<String, Failure> {
        let what = || format!("failed fetching digest of {}:{tag}", repo.spec.image);
        let found = self
            .repo_client(repo, name)
            .await?
            .head_digest(tag)
            .await
            .with_context(what)
            .because(reason::FAILURE)?;
        digest::validate(&found)
            .map_err(anyhow::Error::from)
            .with_context(what)
            .because(reason::FAILURE)?;
        Ok(found)
    }

    /// How long until the first time-bound hold of a policy ends (a resolution then may take
    /// the tag); None when nothing waits for the clock.
    pub fn until_hold_ends(&self, namespace: &str, name: &str) -> Option<std::time::Duration> {
        let now = (self.shared.clock)();
        lock(&self.shared.held)
            .get(&(namespace.to_owned(), name.to_owned()))?
            .iter()
            .filter_map(|h| h.verdict.until())
            .min()
            .map(|t| std::time::Duration::from_secs(t.saturating_sub(now) + 1))
    }

    /// Whether a policy of `repo` must resolve after a scan that left the tag list as it was:
    /// one that has not resolved yet (after a start or a reload), or one with `repushHold`,
    /// which compares the digests of its candidates each time. One pass over the policies.
    pub fn resolves_after_any_scan(&self, repo: &(String, String)) -> bool {
        self.policies_of(repo).any(|p| {
            p.spec
                .gates
                .as_ref()
                .is_some_and(|g| g.repush_hold.is_some())
                || self
                    .latest_of(&p.metadata.namespace, &p.metadata.name)
                    .is_none()
        })
    }

    /// The policies that read ImageRepository `repo` (namespace, name).
    pub fn policies_of<'a>(
        &'a self,
        repo: &'a (String, String),
    ) -> impl Iterator<Item = &'a ImagePolicy> + 'a {
        self.policies_by_repo
            .get(repo)
            .into_iter()
            .flatten()
            .filter_map(|(ns, name)| self.config.find::<ImagePolicy>(ns, name))
    }

    /// The latest ref of a policy, once resolved.
    pub fn latest_of(&self, namespace: &str, name: &str) -> Option<LatestRef> {
        self.lock_latest()
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }
}

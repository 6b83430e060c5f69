//! ImagePolicy: the latest tag of the stored list by the policy, Flux's digest reflection, the
//! persisted latest ref.

use super::*;

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
        let fields = self
            .lock_latest()
            .get(&key)
            .map_or(json!({}), |l| json!({ "latestRef": l }));
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
        let r = &policy.spec.image_repository_ref;
        let repo_ns = r.namespace.as_deref().unwrap_or(ns);
        let Some(repo) = self.config.find::<ImageRepository>(repo_ns, &r.name) else {
            return Err(Failure::new(DEPENDENCY_NOT_READY, false, anyhow::anyhow!("failed to get the referred ImageRepository: referenced ImageRepository does not exist: {repo_ns}/{}", r.name)));
        };
        let engine = build_policy(&policy.spec)
            .map_err(|e| anyhow::anyhow!("invalid policy: {e}"))
            .stalled(INVALID_POLICY)?;
        let name = ImageName::parse(&repo.spec.image).stalled(IMAGE_URL_INVALID)?;
        let canonical = name.canonical();
        // The tag list is dropped before anything below awaits: a thousand policies resolving
        // at once must not hold a thousand lists.
        let selection = {
            let tags: Vec<String> = self
                .store
                .tags(&canonical)
                .because(FAILURE)?
                .ok_or_else(|| anyhow::anyhow!("no tags in database"))
                .because(DEPENDENCY_NOT_READY)?
                .into_iter()
                .map(|t| t.tag)
                .collect();
            engine.select(&tags, &Exclusions::none()).because(FAILURE)?
        };
        let key = (ns.clone(), policy.metadata.name.clone());
        let previous = self.lock_latest().get(&key).cloned();
        let mut latest = LatestRef {
            name: repo.spec.image.clone(),
            tag: selection.tag.clone(),
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
                latest.digest = Some(self.digest_of(repo, &name, &selection.tag).await?);
            }
        }
        let mut message = format!(
            "Latest image tag for {} resolved to {}",
            latest.name, latest.tag
        );
        if let Some(d) = &latest.digest {
            message.push_str(&format!(" with digest {d}"));
        }
        if previous.as_ref() != Some(&latest) {
            let stored = format!("{}/{}", key.0, key.1);
            let value = serde_json::to_value(&latest).ok();
            let store = self.store.clone();
            if let Err(e) = self
                .shared
                .write(move || store.put_latest(&stored, value.as_ref()))
                .await
            {
                tracing::warn!(kind = "ImagePolicy", namespace = %key.0, name = %key.1, error = %e, "cannot store the latest ref");
            }
            self.lock_latest().insert(key, latest);
        }
        Ok(message)
    }

    /// The digest of `image:tag`, with the repository's own credentials (cloud providers
    /// included) and through its host's gate; refused unless it is `<algorithm>:<hex>`.
    async fn digest_of(
        &self,
        repo: &ImageRepository,
        name: &ImageName,
        tag: &str,
    ) -> Result<String, Failure> {
        let what = || format!("failed fetching digest of {}:{tag}", repo.spec.image);
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
        let found = RepoClient::new(name, opts, &self.gates)
            .map_err(anyhow::Error::from)
            .with_context(what)
            .because(reason::FAILURE)?
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

    /// The latest ref of a policy, once resolved.
    pub fn latest_of(&self, namespace: &str, name: &str) -> Option<LatestRef> {
        self.lock_latest()
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }
}

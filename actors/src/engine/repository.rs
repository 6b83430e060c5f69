//! ImageRepository: its credentials (docker config or the cloud's token), the tag listing
//! (shared by repositories of the same image and credentials), the never-downgrade judgement
//! and the store.

use super::*;

/// The token source of a cloud provider, if this build has it (one cargo feature per cloud).
fn cloud_source(
    provider: Provider,
    registry: &str,
) -> Result<Box<dyn tagpilot_providers::TokenSource>, tagpilot_providers::ProviderError> {
    match provider {
        #[cfg(feature = "aws")]
        Provider::Aws => Ok(Box::new(tagpilot_providers::aws::Ecr::new(registry)?)),
        #[cfg(feature = "gcp")]
        Provider::Gcp => Ok(Box::new(tagpilot_providers::gcp::Gcp::new(registry)?)),
        #[cfg(feature = "azure")]
        Provider::Azure => Ok(Box::new(tagpilot_providers::azure::Azure::new(registry)?)),
        other => {
            let _ = registry;
            Err(tagpilot_providers::ProviderError::Generic(format!(
                "this tagpilot was built without provider {} (cargo feature '{0}')",
                provider_name(other)
            )))
        }
    }
}

impl Engine {
    /// Scans a repository and records its status; whether it ended Ready.
    /// `urgent` (a webhook or a reconcile request) takes one of the few urgent slots instead
    /// of queueing behind every scheduled scan: during the first pass over 10,000
    /// repositories that queue is seconds long. The registry host's own request limits still
    /// apply to it.
    pub async fn reconcile_repository(&self, repo: &ImageRepository, urgent: bool) -> bool {
        let (ns, name) = (&repo.metadata.namespace, &repo.metadata.name);
        self.begin(Kind::ImageRepository, ns, name);
        // A host's share first, then a global slot: a slow host queues on its own share and
        // leaves the other slots to the other hosts. The semaphores are never closed; a closed
        // one would only mean no limit.
        let (_host, _slot);
        if urgent {
            _host = None;
            _slot = self.shared.urgent_slots.acquire().await.ok();
        } else {
            let host = ImageName::parse(&repo.spec.image)
                .map(|n| n.registry)
                .unwrap_or_default();
            let host_slot = self.shared.host_slot(&host, self.host_share);
            _host = host_slot.acquire_owned().await.ok();
            _slot = self.shared.scan_slots.acquire().await.ok();
        }
        let started = std::time::Instant::now();
        let outcome = self.scan(repo).await;
        let metrics = &self.shared.metrics;
        if !matches!(&outcome, Ok((m, _)) if m == "suspended") {
            metrics.scanned(ns, name, started.elapsed(), outcome.is_err());
        }
        let (outcome, fields) = match outcome {
            Ok((m, f)) => (Outcome::ready(m), f),
            Err(f) => (f.outcome(|e| format!("scan failed: {e}")), json!({})),
        };
        let ready = outcome.is_ready();
        self.record_outcome_async(Kind::ImageRepository, ns, name, outcome, fields)
            .await;
        ready
    }

    /// Every object of a kind in the configuration.
    pub fn repositories(&self) -> Vec<&ImageRepository> {
        self.config.all().collect()
    }

    /// The registry credentials of `repo`, per `spec.provider`: the docker config of its
    /// `secretRef` (generic), or the cloud's token from the shared keyring.
    pub(super) async fn credentials(
        &self,
        repo: &ImageRepository,
        registry: &str,
        warnings: &mut Vec<String>,
    ) -> anyhow::Result<Option<tagpilot_registry::Credentials>> {
        let (ns, name) = (&repo.metadata.namespace, &repo.metadata.name);
        let provider = repo.spec.provider;
        if provider != Provider::Generic && repo.spec.secret_ref.is_some() {
            let w = format!(
                "spec.secretRef is ignored for provider {}",
                provider_name(provider)
            );
            tracing::warn!(kind = "ImageRepository", namespace = %ns, name = %name, "{w}");
            warnings.push(w);
        }
        let refresher = match provider {
            Provider::Generic => {
                let Some(r) = &repo.spec.secret_ref else {
                    return Ok(None);
                };
                let (ns, secret) = (ns.clone(), r.name.clone());
                let bytes = self
                    .read_secrets(move |s| s.docker_config(&ns, &secret))
                    .await??;
                let config = DockerConfig::parse(&bytes)?;
                let source = tagpilot_providers::generic::Generic {
                    config,
                    registry: registry.to_owned(),
                };
                return Ok(source.fetch().await?.credentials);
            }
            Provider::Aws | Provider::Gcp | Provider::Azure => {
                let key = format!("{}/default/{registry}", provider_name(provider));
                self.shared.keyring.get_or_insert(&key, || {
                    let source = cloud_source(provider, registry)?;
                    Ok(Refresher::new(
                        source,
                        Arc::new(SystemClock),
                        RefreshPolicy::default(),
                    ))
                })?
            }
        };
        Ok(refresher.get().await?)
    }

    /// The client options of `repo` (CA, client certificate, proxy from its Secrets), read on a
    /// blocking thread.
    pub(super) async fn client_options(
        &self,
        repo: &ImageRepository,
    ) -> anyhow::Result<ClientOptions> {
        if repo.spec.cert_secret_ref.is_none() && repo.spec.proxy_secret_ref.is_none() {
            // Nothing to read.
            return client_options(self.secrets(), repo);
        }
        let repo = repo.clone();
        self.read_secrets(move |s| client_options(s, &repo)).await?
    }

    /// Runs `f` on the Secrets of this configuration on a blocking thread (files of the secrets
    /// directory are read there, never on an actor's thread).
    async fn read_secrets<T: Send + 'static>(
        &self,
        f: impl FnOnce(Secrets<'_>) -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let (config, dir) = (self.config.clone(), self.secrets_dir.clone());
        tokio::task::spawn_blocking(move || {
            f(Secrets {
                config: &config,
                dir: dir.as_deref(),
            })
        })
        .await
        .map_err(|e| anyhow::anyhow!("reading secrets did not complete: {e}"))
    }
}

/// The client options of `repo` from its Secrets: CA, client certificate, proxy.
fn client_options(secrets: Secrets<'_>, repo: &ImageRepository) -> anyhow::Result<ClientOptions> {
    let ns = &repo.metadata.namespace;
    let s = &repo.spec;
    let mut opts = ClientOptions {
        insecure: s.insecure,
        timeout: s.effective_timeout(),
        ..ClientOptions::default()
    };
    if let Some(r) = &s.cert_secret_ref {
        opts.ca_pem = secrets.get(ns, &r.name, "ca.crt")?;
        if let (Some(c), Some(k)) = (
            secrets.get(ns, &r.name, "tls.crt")?,
            secrets.get(ns, &r.name, "tls.key")?,
        ) {
            opts.client_cert = Some((c, k));
        }
    }
    if let Some(r) = &s.proxy_secret_ref {
        opts.proxy = Some(ProxySpec {
            address: text(secrets.require(ns, &r.name, "address")?),
            username: secrets.get(ns, &r.name, "username")?.map(text),
            password: secrets.get(ns, &r.name, "password")?.map(text),
        });
    }
    Ok(opts)
}

impl Engine {
    pub async fn scan(
        &self,
        repo: &ImageRepository,
    ) -> Result<(String, serde_json::Value), Failure> {
        use reason::{IMAGE_URL_INVALID, READ_OPERATION_FAILED};
        if self.is_suspended(Kind::ImageRepository, &repo.metadata, repo.spec.suspend) {
            return Ok(("suspended".into(), json!({})));
        }
        let name = ImageName::parse(&repo.spec.image).stalled(IMAGE_URL_INVALID)?;
        // Each pattern compiles once per process (tagpilot_policy::compile).
        let exclusions = Exclusions::new(&repo.spec.exclusion_list).stalled(reason::FAILURE)?;
        let mut warnings = Vec::new();
        let listed = self.list_shared(repo, &name, &mut warnings).await?;
        // The store keeps the registry's whole list per image: repositories of one image
        // with different exclusion lists share it (each policy applies its repository's
        // exclusions when it reads), so one repository's filtered list never becomes
        // another's, and the drop check compares like with like.
        let mut all: Vec<String> = listed.to_vec();
        drop(listed);
        scan::sort_desc(&mut all);
        all.dedup();
        let tags: Vec<String> = all
            .iter()
            .filter(|t| exclusions.matching(t).is_none())
            .cloned()
            .collect();
        let revision = scan::revision(&tags);
        let stored_revision = scan::revision(&all);
        let canonical = name.canonical();
        let meta = self
            .store
            .repo_meta(&canonical)
            .because(READ_OPERATION_FAILED)?;
        match scan::judge(
            meta.as_ref().map(|m| m.tag_count),
            meta.as_ref().and_then(|m| m.pending_revision.as_deref()),
            &stored_revision,
            all.len(),
            0.5,
        ) {
            scan::Verdict::Accept => {
                let scan_time = now();
                let count = tags.len();
                let latest_tags: Vec<String> = tags.iter().take(10).cloned().collect();
                let (c, r) = (canonical.clone(), stored_revision.clone());
                self.shared
                    .write(&self.store, move |store| {
                        store.record_scan(&c, &all, &r, scan_time)
                    })
                    .await
                    .because(READ_OPERATION_FAILED)?;
                let fields = json!({
                    "canonicalImageName": canonical,
                    "lastScanResult": {
                        "revision": revision,
                        "tagCount": count,
                        "scanTime": scan_time,
                        "latestTags": latest_tags,
                    },
                    "observedExclusionList": repo.spec.exclusion_list,
                    "warnings": warnings,
                });
                Ok((
                    format!("successful scan: found {count} tags with checksum {revision}"),
                    fields,
                ))
            }
            scan::Verdict::Hold { reason } => {
                let (c, r) = (canonical.clone(), stored_revision);
                self.shared
                    .write(&self.store, move |store| store.set_pending(&c, Some(&r)))
                    .await
                    .because(READ_OPERATION_FAILED)?;
                Err(Failure::new(
                    READ_OPERATION_FAILED,
                    false,
                    anyhow::anyhow!("{reason}"),
                ))
            }
        }
    }

    /// The tag list of `repo`'s image. Repositories with the same image and the same
    /// credentials share one listing (single flight): one waiting while another lists takes
    /// that listing's result, completed after it asked.
    async fn list_shared(
        &self,
        repo: &ImageRepository,
        name: &ImageName,
        warnings: &mut Vec<String>,
    ) -> Result<Arc<Vec<String>>, Failure> {
        let s = &repo.spec;
        let ns = &repo.metadata.namespace;
        let refs = |r: &Option<tagpilot_api::LocalObjectReference>| {
            r.as_ref()
                .map_or(String::new(), |r| format!("{ns}/{}", r.name))
        };
        let key = format!(
            "{}|{}|{}|{}|{}|{}",
            name.canonical(),
            provider_name(s.provider),
            refs(&s.secret_ref),
            refs(&s.cert_secret_ref),
            refs(&s.proxy_secret_ref),
            s.insecure
        );
        let asked = std::time::Instant::now();
        let cell = self.shared.listing_cell(&key);
        let mut last = cell.lock().await;
        let result = match &*last {
            Some((done, tags)) if *done >= asked => Ok(tags.clone()),
            _ => {
                let fetched = self.list(repo, name, warnings).await.map(Arc::new);
                if let Ok(tags) = &fetched {
                    *last = Some((std::time::Instant::now(), tags.clone()));
                }
                fetched
            }
        };
        // Nobody else holds the cell (only the map and this call): the listing served every
        // waiter; drop it so memory does not keep a copy of every tag list.
        if Arc::strong_count(&cell) <= 2 {
            *last = None;
        }
        result
    }

    async fn list(
        &self,
        repo: &ImageRepository,
        name: &ImageName,
        warnings: &mut Vec<String>,
    ) -> Result<Vec<String>, Failure> {
        use reason::{AUTHENTICATION_FAILED, READ_OPERATION_FAILED};
        // A cloud provider that cannot serve this host: no retry can help until the object
        // changes (Flux's message; Flux 2.7 requires the provider to match the host).
        let host_ok = match repo.spec.provider {
            Provider::Generic => Ok(()),
            Provider::Aws => tagpilot_providers::aws_registry(&name.registry).map(|_| ()),
            Provider::Gcp => tagpilot_providers::gcp_registry(&name.registry),
            Provider::Azure => tagpilot_providers::azure_registry(&name.registry).map(|_| ()),
        };
        host_ok
            .map_err(|e| anyhow::anyhow!("failed to configure authentication options: {e}"))
            .stalled(AUTHENTICATION_FAILED)?;
        let mut opts = self
            .client_options(repo)
            .await
            .because(AUTHENTICATION_FAILED)?;
        opts.credentials = self
            .credentials(repo, &name.registry, warnings)
            .await
            .because(AUTHENTICATION_FAILED)?;
        let client = RepoClient::new(name, opts, &self.gates).because(AUTHENTICATION_FAILED)?;
        Ok(client
            .list_tags()
            .await
            .because(READ_OPERATION_FAILED)?
            .tags)
    }

    /// The revision of a repository's stored tag list.
    pub fn stored_revision(&self, repo: &ImageRepository) -> Option<String> {
        let canonical = ImageName::parse(&repo.spec.image).ok()?.canonical();
        self.store
            .repo_meta(&canonical)
            .ok()
            .flatten()
            .map(|m| m.revision)
    }

    /// How long until `repo` is due for a scan, judged from the store: None when it has never
    /// been scanned with its current image and exclusion list (scan now), else the rest of its
    /// interval since the last accepted scan (zero when overdue). A restart or reload thus
    /// resumes the schedule instead of rescanning everything at once.
    pub fn scan_due_in(&self, repo: &ImageRepository, now: u64) -> Option<std::time::Duration> {
        let canonical = ImageName::parse(&repo.spec.image).ok()?.canonical();
        let meta = self.store.repo_meta(&canonical).ok().flatten()?;
        let key = format!(
            "{}/{}/{}",
            Kind::ImageRepository,
            repo.metadata.namespace,
            repo.metadata.name
        );
        let status = self.store.status(&key).ok().flatten()?;
        let same_exclusions = status["observedExclusionList"]
            == serde_json::to_value(&repo.spec.exclusion_list).ok()?;
        if !same_exclusions || status["canonicalImageName"] != canonical.as_str() {
            return None;
        }
        let next = meta
            .scan_time
            .saturating_add(repo.spec.interval.as_duration().as_secs());
        Some(std::time::Duration::from_secs(next.saturating_sub(now)))
    }
}

//! The reconciliation of one object of each kind, shared by `tagpilot run --once` and the
//! daemon: credentials from Secrets, scan + never-downgrade + store, policy → latest ref, and
//! automations grouped by remote and push branch into Git rounds, each recording its status with
//! Flux's field names. Errors end as status messages.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Context;
use serde_json::json;
use tagpilot_api::{
    build_policy, Config, DigestReflectionPolicy, GitRepository, ImagePolicy, ImageRepository,
    ImageUpdateAutomation, Kind, Object, Provider, ReceiverType, Secrets, SigningKeyType,
};
use tagpilot_git::{Change, CheckoutRef, ExtraRoots, GitAuth, RoundSpec, Signer, WarmRepo};
use tagpilot_notifier::event::AUTOMATION_CONTROLLER;
use tagpilot_notifier::{Event, InvolvedObject, Severity};
use tagpilot_policy::Exclusions;
use tagpilot_providers::{
    Keyring, Policy as RefreshPolicy, Refresher, SystemClock, TokenSource as _,
};
use tagpilot_registry::{
    scan, ClientOptions, DockerConfig, Gates, ImageName, ProxySpec, RepoClient,
};
use tagpilot_setters::{scan_tree, write_changes, LatestRef, Policies};
use tagpilot_store::Store;
use tagpilot_template::{commit_data, render_message, MessageInput};

/// Scans running at once unless the settings say otherwise.
pub const DEFAULT_CONCURRENCY: usize = 16;

/// How to reach a Git remote: credentials and extra CAs.
type Access = (GitAuth, Option<ExtraRoots>);

/// The outcome of one object, as the summary shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// None for a configuration error without a known kind.
    pub kind: Option<Kind>,
    pub namespace: String,
    pub name: String,
    pub ready: bool,
    pub message: String,
}

/// Everything a reconciliation needs, owned so that actors can share it.
#[derive(Debug)]
pub struct Engine {
    config: Arc<Config>,
    secrets_dir: Option<PathBuf>,
    store: Arc<Store>,
    gates: Arc<Gates>,
    /// Scans running at once, across all registries (`concurrency`); shared across reloads.
    scan_slots: Arc<tokio::sync::Semaphore>,
    /// Load errors by `Kind/ns/name`, for objects running their last good version.
    config_errors: BTreeMap<String, String>,
    /// Cloud registry credentials, one refresher per (provider, identity, registry).
    keyring: Arc<Keyring>,
    metrics: Arc<crate::metrics::Metrics>,
    git_cache: PathBuf,
    rows: Mutex<Vec<Report>>,
    /// Resolved policies: (namespace, name) → latest ref.
    latest: Mutex<BTreeMap<(String, String), LatestRef>>,
    /// Events for Alerts, since the last `take_events`.
    events: Mutex<Vec<Event>>,
    /// The last failure reported per automation, so that a failing round alerts once, not on
    /// every interval.
    last_failure: Mutex<BTreeMap<(String, String), String>>,
}

pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The `configError` status field of an object running its last good version.
fn config_error_text(err: &str) -> String {
    format!("running the last good version; the current manifest is invalid: {err}")
}

fn provider_name(p: Provider) -> &'static str {
    match p {
        Provider::Generic => "generic",
        Provider::Aws => "aws",
        Provider::Gcp => "gcp",
        Provider::Azure => "azure",
    }
}

/// The error and its causes on one line; a cause already quoted by its parent is not repeated.
pub fn format_chain(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line.replace('\n', " ")
}

impl Engine {
    pub fn new(
        config: Arc<Config>,
        secrets_dir: Option<PathBuf>,
        store: Arc<Store>,
        gates: Arc<Gates>,
        git_cache: PathBuf,
    ) -> Self {
        let rows = config
            .errors
            .iter()
            .map(|e| Report {
                kind: e.kind.as_deref().and_then(Kind::from_name),
                namespace: e.namespace.clone().unwrap_or_default(),
                name: e.name.clone().unwrap_or_else(|| e.source.to_string()),
                ready: false,
                message: e.to_string(),
            })
            .collect();
        // Errors of objects that still run (their last good version was kept) go into their
        // status beside the outcome; objects with nothing to run get the error as status.
        let mut config_errors = BTreeMap::new();
        for e in &config.errors {
            let Some((kind, ns, name)) = e.object() else {
                continue;
            };
            let key = format!("{kind}/{ns}/{name}");
            let status = if config.get(kind, ns, name).is_none() {
                json!({ "conditions": [{
                    "type": "Ready", "status": "False", "reason": "InvalidManifest",
                    "message": e.to_string(), "lastTransitionTime": now(),
                }]})
            } else {
                // Still running: its last status stays, with the error beside it.
                let mut status = store
                    .status(&key)
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| json!({}));
                if let Some(obj) = status.as_object_mut() {
                    obj.insert(
                        "configError".into(),
                        json!(config_error_text(&e.to_string())),
                    );
                }
                status
            };
            if let Err(err) = store.put_status(&key, &status) {
                tracing::warn!(%key, error = %err, "cannot store status");
            }
            config_errors.insert(key, e.to_string());
        }
        Engine {
            config,
            secrets_dir,
            store,
            gates,
            config_errors,
            keyring: Arc::new(Keyring::default()),
            scan_slots: Arc::new(tokio::sync::Semaphore::new(DEFAULT_CONCURRENCY)),
            metrics: Arc::default(),
            git_cache,
            rows: Mutex::new(rows),
            latest: Mutex::new(BTreeMap::new()),
            events: Mutex::new(Vec::new()),
            last_failure: Mutex::new(BTreeMap::new()),
        }
    }

    /// Shares `keyring` (kept across configuration reloads, so tokens survive them).
    pub fn with_keyring(mut self, keyring: Arc<Keyring>) -> Self {
        self.keyring = keyring;
        self
    }

    /// Shares the limit of scans running at once (kept across reloads).
    pub fn with_scan_slots(mut self, slots: Arc<tokio::sync::Semaphore>) -> Self {
        self.scan_slots = slots;
        self
    }

    /// Shares the daemon's counters (kept across reloads).
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether an object is suspended: a runtime override (`tagpilot suspend|resume`) wins
    /// over the manifest's `spec.suspend`.
    pub fn is_suspended(&self, kind: Kind, meta: &tagpilot_api::ObjectMeta, spec: bool) -> bool {
        let key = format!("{kind}/{}/{}", meta.namespace, meta.name);
        match self.store.suspended(&key) {
            Ok(o) => o.unwrap_or(spec),
            Err(e) => {
                tracing::warn!(%key, error = %e, "cannot read the suspend override");
                spec
            }
        }
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn secrets(&self) -> Secrets<'_> {
        Secrets {
            config: &self.config,
            dir: self.secrets_dir.as_deref(),
        }
    }

    fn lock_rows(&self) -> MutexGuard<'_, Vec<Report>> {
        self.rows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock_latest(&self) -> MutexGuard<'_, BTreeMap<(String, String), LatestRef>> {
        self.latest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The events emitted since the last call, for Alerts.
    pub fn take_events(&self) -> Vec<Event> {
        std::mem::take(
            &mut *self
                .events
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Queues an event about an automation: every push, and a failure when it differs from the
    /// last one reported for that automation.
    fn emit(
        &self,
        a: &ImageUpdateAutomation,
        failure: Option<&str>,
        message: String,
        metadata: BTreeMap<String, String>,
    ) {
        let key = (a.metadata.namespace.clone(), a.metadata.name.clone());
        {
            let mut last = self
                .last_failure
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match failure {
                Some(f) if last.get(&key).is_some_and(|l| l == f) => return,
                Some(f) => {
                    last.insert(key, f.to_owned());
                }
                None => {
                    last.remove(&key);
                }
            }
        }
        let event = Event {
            involved_object: InvolvedObject {
                kind: Kind::ImageUpdateAutomation.to_string(),
                namespace: a.metadata.namespace.clone(),
                name: a.metadata.name.clone(),
                api_version: a.api_version.clone(),
            },
            severity: if failure.is_some() {
                Severity::Error
            } else {
                Severity::Info
            },
            timestamp: tagpilot_api::rfc3339(now()),
            message,
            reason: if failure.is_some() {
                "ReconciliationFailed"
            } else {
                "Succeeded"
            }
            .to_owned(),
            metadata,
            reporting_controller: AUTOMATION_CONTROLLER.to_owned(),
            reporting_instance: "tagpilot".to_owned(),
        };
        self.events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(event);
    }

    /// An automation is healthy again: its next failure is news.
    fn emit_clear(&self, a: &ImageUpdateAutomation) {
        self.last_failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&(a.metadata.namespace.clone(), a.metadata.name.clone()));
    }

    /// The reports recorded since the last call (configuration errors first).
    pub fn take_reports(&self) -> Vec<Report> {
        std::mem::take(&mut *self.lock_rows())
    }

    /// Scans a repository and records its status; whether it ended Ready.
    pub async fn reconcile_repository(&self, repo: &ImageRepository) -> bool {
        // The semaphore is never closed; a closed one would only mean no limit.
        let _slot = self.scan_slots.acquire().await.ok();
        let started = std::time::Instant::now();
        let outcome = self.scan(repo).await;
        if !matches!(&outcome, Ok((m, _)) if m == "suspended") {
            let labels =
                crate::metrics::object_labels(&repo.metadata.namespace, &repo.metadata.name);
            self.metrics.inc("tagpilot_scans_total", &labels);
            self.metrics
                .observe("tagpilot_scan_duration_seconds", &labels, started.elapsed());
            if outcome.is_err() {
                self.metrics.inc("tagpilot_scan_failures_total", &labels);
            }
        }
        let (ready, message, fields) = match outcome {
            Ok((m, f)) => (true, m, f),
            Err(e) => (
                false,
                format!("scan failed: {}", format_chain(&e)),
                json!({}),
            ),
        };
        self.record_with(
            Kind::ImageRepository,
            &repo.metadata.namespace,
            &repo.metadata.name,
            ready,
            message,
            fields,
        );
        ready
    }

    /// Resolves a policy and records its status.
    pub async fn reconcile_policy(&self, policy: &ImagePolicy) {
        let (ready, message) = match self.resolve(policy).await {
            Ok(m) => (true, m),
            Err(e) => (false, format_chain(&e)),
        };
        let key = (
            policy.metadata.namespace.clone(),
            policy.metadata.name.clone(),
        );
        let fields = self
            .lock_latest()
            .get(&key)
            .map_or(json!({}), |l| json!({ "latestRef": l }));
        self.record_with(
            Kind::ImagePolicy,
            &policy.metadata.namespace,
            &policy.metadata.name,
            ready,
            message,
            fields,
        );
    }

    /// The webhook routes of every Receiver, recording each one's status (`webhookPath`, or
    /// why it has none).
    pub fn receiver_routes(&self) -> Vec<crate::receiver::Route> {
        let mut routes = Vec::new();
        for l in self.config.of_kind(Kind::Receiver) {
            let Object::Receiver(r) = &l.object else {
                continue;
            };
            let (ns, name) = (&r.metadata.namespace, &r.metadata.name);
            let token = match &r.spec.secret_ref {
                Some(s) => self
                    .secrets()
                    .require(ns, &s.name, "token")
                    .map_err(|e| format!("unable to read token: {e}")),
                None => Err("spec.secretRef is required".to_owned()),
            };
            // gcr: the ID token's expected audience and email, from the same Secret.
            let token = token.and_then(|t| {
                let gcr = match (&r.spec.secret_ref, r.spec.receiver_type) {
                    (Some(s), ReceiverType::Gcr) => {
                        let key = |k: &str| {
                            self.secrets()
                                .require(ns, &s.name, k)
                                .map(|v| String::from_utf8_lossy(&v).trim().to_owned())
                                .map_err(|e| format!("gcr receivers need '{k}': {e}"))
                        };
                        Some(tagpilot_webhook::GcrExpect {
                            audience: key("audience")?,
                            email: key("email")?,
                        })
                    }
                    _ => None,
                };
                Ok((t, gcr))
            });
            match token {
                Ok((token, gcr)) => {
                    let token_text = String::from_utf8_lossy(&token).into_owned();
                    let path = tagpilot_webhook::webhook_path(&token_text, name, ns);
                    let message = if r.spec.suspend {
                        "suspended".to_owned()
                    } else {
                        format!("Receiver initialized for path: {path}")
                    };
                    self.record_with(
                        Kind::Receiver,
                        ns,
                        name,
                        true,
                        message,
                        json!({ "webhookPath": path }),
                    );
                    routes.push(crate::receiver::Route {
                        path,
                        namespace: ns.clone(),
                        name: name.clone(),
                        kind: r.spec.receiver_type,
                        token,
                        events: r.spec.events.clone(),
                        suspended: r.spec.suspend,
                        gcr,
                    });
                }
                Err(message) => self.record(Kind::Receiver, ns, name, false, message),
            }
        }
        routes
    }

    /// Every object of a kind in the configuration.
    pub fn repositories(&self) -> Vec<&ImageRepository> {
        self.config.all().collect()
    }

    pub fn policies(&self) -> Vec<&ImagePolicy> {
        self.config.all().collect()
    }
}

impl Engine {
    pub(crate) fn record(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        ready: bool,
        message: String,
    ) {
        self.record_with(kind, namespace, name, ready, message, json!({}));
    }

    /// Stores the object's status (Flux's field names) and adds a summary row.
    pub(crate) fn record_with(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        ready: bool,
        message: String,
        fields: serde_json::Value,
    ) {
        let key = format!("{kind}/{namespace}/{name}");
        // When it last ended Ready: now, or carried over from the stored status.
        let last_success = if ready {
            Some(now())
        } else {
            self.store
                .status(&key)
                .ok()
                .flatten()
                .and_then(|s| s["lastSuccessTime"].as_u64())
        };
        let mut status = json!({
            "conditions": [{
                "type": "Ready",
                "status": if ready { "True" } else { "False" },
                "reason": if ready { "Succeeded" } else { "Failure" },
                "message": message,
                "lastTransitionTime": now(),
            }]
        });
        if let (Some(obj), serde_json::Value::Object(extra)) = (status.as_object_mut(), fields) {
            obj.extend(extra);
        }
        if let (Some(obj), Some(t)) = (status.as_object_mut(), last_success) {
            obj.insert("lastSuccessTime".into(), json!(t));
        }
        if let (Some(obj), Some(err)) = (status.as_object_mut(), self.config_errors.get(&key)) {
            obj.insert("configError".into(), json!(config_error_text(err)));
        }
        if let Err(e) = self.store.put_status(&key, &status) {
            tracing::warn!(%key, error = %e, "cannot store status");
        }
        self.lock_rows().push(Report {
            kind: Some(kind),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            ready,
            message,
        });
    }

    /// The registry credentials of `repo`, per `spec.provider`: the docker config of its
    /// `secretRef` (generic), or the cloud's token from the shared keyring.
    async fn credentials(
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
                let config = DockerConfig::parse(&self.secrets().docker_config(ns, &r.name)?)?;
                let source = tagpilot_providers::generic::Generic {
                    config,
                    registry: registry.to_owned(),
                };
                return Ok(source.fetch().await?.credentials);
            }
            Provider::Aws | Provider::Gcp | Provider::Azure => {
                let key = format!("{}/default/{registry}", provider_name(provider));
                self.keyring.get_or_insert(&key, || {
                    let source: Box<dyn tagpilot_providers::TokenSource> = match provider {
                        Provider::Aws => Box::new(tagpilot_providers::aws::Ecr::new(registry)?),
                        Provider::Gcp => Box::new(tagpilot_providers::gcp::Gcp::new(registry)?),
                        _ => Box::new(tagpilot_providers::azure::Azure::new(registry)?),
                    };
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

    fn client_options(&self, repo: &ImageRepository) -> anyhow::Result<ClientOptions> {
        let ns = &repo.metadata.namespace;
        let s = &repo.spec;
        let mut opts = ClientOptions {
            insecure: s.insecure,
            timeout: s.effective_timeout(),
            ..ClientOptions::default()
        };
        if let Some(r) = &s.cert_secret_ref {
            opts.ca_pem = self.secrets().get(ns, &r.name, "ca.crt")?;
            if let (Some(c), Some(k)) = (
                self.secrets().get(ns, &r.name, "tls.crt")?,
                self.secrets().get(ns, &r.name, "tls.key")?,
            ) {
                opts.client_cert = Some((c, k));
            }
        }
        if let Some(r) = &s.proxy_secret_ref {
            opts.proxy = Some(ProxySpec {
                address: text(self.secrets().require(ns, &r.name, "address")?),
                username: self.secrets().get(ns, &r.name, "username")?.map(text),
                password: self.secrets().get(ns, &r.name, "password")?.map(text),
            });
        }
        Ok(opts)
    }

    pub async fn scan(
        &self,
        repo: &ImageRepository,
    ) -> anyhow::Result<(String, serde_json::Value)> {
        if self.is_suspended(Kind::ImageRepository, &repo.metadata, repo.spec.suspend) {
            return Ok(("suspended".into(), json!({})));
        }
        let name = ImageName::parse(&repo.spec.image)?;
        let mut opts = self.client_options(repo)?;
        let mut warnings = Vec::new();
        opts.credentials = self
            .credentials(repo, &name.registry, &mut warnings)
            .await?;
        let client = RepoClient::new(&name, opts, &self.gates)?;
        let listing = client.list_tags().await?;
        let exclusions = Exclusions::new(&repo.spec.exclusion_list)?;
        let mut tags: Vec<String> = listing
            .tags
            .into_iter()
            .filter(|t| exclusions.matching(t).is_none())
            .collect();
        scan::sort_desc(&mut tags);
        tags.dedup();
        let revision = scan::revision(&tags);
        let canonical = name.canonical();
        let meta = self.store.repo_meta(&canonical)?;
        match scan::judge(
            meta.as_ref().map(|m| m.tag_count),
            meta.as_ref().and_then(|m| m.pending_revision.as_deref()),
            &revision,
            tags.len(),
            0.5,
        ) {
            scan::Verdict::Accept => {
                let scan_time = now();
                self.store
                    .record_scan(&canonical, &tags, &revision, scan_time)?;
                let fields = json!({
                    "canonicalImageName": canonical,
                    "lastScanResult": {
                        "revision": revision,
                        "tagCount": tags.len(),
                        "scanTime": scan_time,
                        "latestTags": tags.iter().take(10).collect::<Vec<_>>(),
                    },
                    "observedExclusionList": repo.spec.exclusion_list,
                    "warnings": warnings,
                });
                Ok((
                    format!(
                        "successful scan: found {} tags with checksum {revision}",
                        tags.len()
                    ),
                    fields,
                ))
            }
            scan::Verdict::Hold { reason } => {
                self.store.set_pending(&canonical, Some(&revision))?;
                anyhow::bail!("{reason}")
            }
        }
    }

    pub async fn resolve(&self, policy: &ImagePolicy) -> anyhow::Result<String> {
        let ns = &policy.metadata.namespace;
        if self.is_suspended(Kind::ImagePolicy, &policy.metadata, policy.spec.suspend) {
            // Like a suspended repository or automation: not reconciled, not a failure.
            return Ok("suspended".into());
        }
        let r = &policy.spec.image_repository_ref;
        let repo_ns = r.namespace.as_deref().unwrap_or(ns);
        let Some(repo) = self.config.find::<ImageRepository>(repo_ns, &r.name) else {
            anyhow::bail!("failed to get the referred ImageRepository: referenced ImageRepository does not exist: {repo_ns}/{}", r.name);
        };
        let engine =
            build_policy(&policy.spec).map_err(|e| anyhow::anyhow!("invalid policy: {e}"))?;
        let canonical = ImageName::parse(&repo.spec.image)?.canonical();
        let tags: Vec<String> = self
            .store
            .tags(&canonical)?
            .ok_or_else(|| anyhow::anyhow!("no tags in database"))?
            .into_iter()
            .map(|t| t.tag)
            .collect();
        let selection = engine.select(&tags, &Exclusions::none())?;
        let mut latest = LatestRef {
            name: repo.spec.image.clone(),
            tag: selection.tag.clone(),
            digest: None,
        };
        if policy.spec.digest_reflection_policy != DigestReflectionPolicy::Never {
            let name = ImageName::parse(&repo.spec.image)?;
            let mut opts = self.client_options(repo)?;
            if let Some(sr) = &repo.spec.secret_ref {
                let cfg = DockerConfig::parse(&self.secrets().docker_config(repo_ns, &sr.name)?)?;
                opts.credentials = cfg.credentials_for(&name.registry).await?;
            }
            let digest = RepoClient::new(&name, opts, &self.gates)?
                .head_digest(&selection.tag)
                .await
                .with_context(|| {
                    format!(
                        "failed fetching digest of {}:{}",
                        repo.spec.image, selection.tag
                    )
                })?;
            latest.digest = Some(digest);
        }
        let mut message = format!(
            "Latest image tag for {} resolved to {}",
            latest.name, latest.tag
        );
        if let Some(d) = &latest.digest {
            message.push_str(&format!(" with digest {d}"));
        }
        self.lock_latest()
            .insert((ns.clone(), policy.metadata.name.clone()), latest);
        Ok(message)
    }

    /// Runs every automation; automations writing the same remote and branch share one round.
    pub fn automations(&self) {
        self.automations_for(None);
    }

    /// The Git writers: every (remote URL, push branch) some automation can be planned for, with
    /// the namespaces of its automations (policy changes there wake it). One plan per automation.
    pub fn writers(&self) -> BTreeMap<(String, String), Vec<String>> {
        let mut writers: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for a in self.config.all::<ImageUpdateAutomation>() {
            match self.plan(a) {
                Ok(p) => {
                    let namespaces = writers.entry(p.0).or_default();
                    if !namespaces.contains(&a.metadata.namespace) {
                        namespaces.push(a.metadata.namespace.clone());
                    }
                }
                // Suspended ones get a writer too when they can be planned (a runtime resume
                // must find it); a suspended one that cannot be planned is not reported.
                Err(_)
                    if self.is_suspended(
                        Kind::ImageUpdateAutomation,
                        &a.metadata,
                        a.spec.suspend,
                    ) => {}
                // No writer can run it: say why now, not at the first round.
                Err(e) => {
                    let (ns, name) = (&a.metadata.namespace, &a.metadata.name);
                    self.record(
                        Kind::ImageUpdateAutomation,
                        ns,
                        name,
                        false,
                        format_chain(&e),
                    );
                }
            }
        }
        writers
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

    /// After a reload: objects whose manifest was fixed lose the `configError` the previous
    /// engine put in their status (a kept actor may not reconcile again soon).
    pub fn clear_fixed_config_errors(&self, old: &Engine) {
        for key in old.config_errors.keys() {
            if self.config_errors.contains_key(key) {
                continue;
            }
            if let Ok(Some(mut status)) = self.store.status(key) {
                if let Some(obj) = status.as_object_mut() {
                    if obj.remove("configError").is_some() {
                        if let Err(e) = self.store.put_status(key, &status) {
                            tracing::warn!(%key, error = %e, "cannot store status");
                        }
                    }
                }
            }
        }
    }

    /// Takes over the latest refs another engine resolved (a reload): kept policies need not
    /// resolve again, and writers see them at once.
    pub fn inherit_latest(&self, old: &Engine) {
        let refs = old.lock_latest().clone();
        self.lock_latest().extend(refs);
    }

    /// The latest ref of a policy, once resolved.
    pub fn latest_of(&self, namespace: &str, name: &str) -> Option<LatestRef> {
        self.lock_latest()
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Runs the automations of one writer (or all with `None`), one Git round per writer.
    pub fn automations_for(&self, only: Option<&(String, String)>) {
        let git_cache = self.git_cache.as_path();
        struct Job<'c> {
            automation: &'c ImageUpdateAutomation,
            policies: Policies,
            message_template: Option<String>,
        }
        let mut groups: BTreeMap<(String, String), (RoundSpec, Access, Vec<Job<'_>>)> =
            BTreeMap::new();
        for a in self.config.all::<ImageUpdateAutomation>() {
            let (ns, name) = (a.metadata.namespace.clone(), a.metadata.name.clone());
            if self.is_suspended(Kind::ImageUpdateAutomation, &a.metadata, a.spec.suspend) {
                self.record(
                    Kind::ImageUpdateAutomation,
                    &ns,
                    &name,
                    true,
                    "suspended".into(),
                );
                continue;
            }
            match self.plan(a) {
                Ok((key, ..)) if only.is_some_and(|o| o != &key) => {}
                Ok((key, spec, auth, policies)) => {
                    let job = Job {
                        automation: a,
                        policies,
                        message_template: a.spec.git.commit.message_template.clone(),
                    };
                    groups
                        .entry(key)
                        .or_insert_with(|| (spec, auth, Vec::new()))
                        .2
                        .push(job);
                }
                Err(e) => {
                    let message = format_chain(&e);
                    self.metrics.inc(
                        "tagpilot_push_failures_total",
                        &crate::metrics::object_labels(&ns, &name),
                    );
                    self.emit(a, Some(&message), message.clone(), BTreeMap::new());
                    self.record(Kind::ImageUpdateAutomation, &ns, &name, false, message);
                }
            }
        }
        for ((url, branch), (spec, auth, jobs)) in groups {
            let started = std::time::Instant::now();
            let outcome = (|| -> anyhow::Result<tagpilot_git::RoundOutcome> {
                let repo = WarmRepo::open_with_roots(git_cache, &url, auth.0, auth.1)?;
                let mut changes: Vec<Change<'_>> = jobs
                    .iter()
                    .map(|job| -> Change<'_> {
                        let a = job.automation;
                        Box::new(move |root: &Path| {
                            let dir = update_dir(root, a.spec.update.path.as_deref())?;
                            let set = scan_tree(&dir, &job.policies).map_err(|e| e.to_string())?;
                            if set.is_empty() {
                                return Ok(None);
                            }
                            let data = commit_data(&MessageInput {
                                automation: (&a.metadata.namespace, &a.metadata.name),
                                values: &a.spec.git.commit.message_template_values,
                                changes: &set,
                                policies: &job.policies,
                            });
                            let message = render_message(job.message_template.as_deref(), &data)
                                .map_err(|e| format!("failed to run template from spec: {e}"))?;
                            write_changes(&dir, &set).map_err(|e| e.to_string())?;
                            Ok(Some(message))
                        })
                    })
                    .collect();
                Ok(repo.round(&spec, &mut changes)?)
            })();
            for job in &jobs {
                let a = job.automation;
                let (ready, message, fields) = match &outcome {
                    Ok(o) => {
                        let checkout_branch = spec.checkout.branch().unwrap_or(&branch).to_owned();
                        match &o.pushed_commit {
                            Some(c) => (
                                true,
                                tagpilot_git::pushed_message(
                                    c,
                                    &branch,
                                    o.messages.first().map_or("", String::as_str),
                                ),
                                json!({
                                    "lastPushCommit": c,
                                    "lastPushTime": now(),
                                    "observedSourceRevision": if checkout_branch == branch {
                                        tagpilot_git::source_revision(&branch, c)
                                    } else {
                                        tagpilot_git::source_revision(&checkout_branch, &o.checkout_commit)
                                    },
                                    "observedPolicies": job.policies.iter().map(|((_, n), l)| (n.clone(), l.clone())).collect::<BTreeMap<_, _>>(),
                                }),
                            ),
                            None => (
                                true,
                                "repository up-to-date".to_owned(),
                                json!({ "observedSourceRevision": tagpilot_git::source_revision(&checkout_branch, &o.checkout_commit) }),
                            ),
                        }
                    }
                    Err(e) => (false, format_chain(e), json!({})),
                };
                let labels = crate::metrics::object_labels(&a.metadata.namespace, &a.metadata.name);
                match (&outcome, &fields["lastPushCommit"]) {
                    (Ok(_), serde_json::Value::String(_)) => {
                        self.metrics.inc("tagpilot_pushes_total", &labels);
                        self.metrics.observe(
                            "tagpilot_push_duration_seconds",
                            &labels,
                            started.elapsed(),
                        );
                    }
                    (Ok(_), _) => {}
                    (Err(_), _) => self.metrics.inc("tagpilot_push_failures_total", &labels),
                }
                match (&outcome, &fields["lastPushCommit"]) {
                    (Ok(_), serde_json::Value::String(c)) => self.emit(
                        a,
                        None,
                        message.clone(),
                        BTreeMap::from([(
                            "revision".to_owned(),
                            tagpilot_git::source_revision(&branch, c),
                        )]),
                    ),
                    (Ok(_), _) => self.emit_clear(a),
                    (Err(_), _) => self.emit(a, Some(&message), message.clone(), BTreeMap::new()),
                }
                self.record_with(
                    Kind::ImageUpdateAutomation,
                    &a.metadata.namespace,
                    &a.metadata.name,
                    ready,
                    message,
                    fields,
                );
            }
        }
    }

    /// Everything a round needs for one automation: (remote, branch) key, spec, auth, policies.
    #[allow(clippy::type_complexity)]
    fn plan(
        &self,
        a: &ImageUpdateAutomation,
    ) -> anyhow::Result<((String, String), RoundSpec, Access, Policies)> {
        let ns = &a.metadata.namespace;
        let src = &a.spec.source_ref;
        let src_ns = src.namespace.as_deref().unwrap_or(ns);
        let Some(gitrepo) = self.config.find::<GitRepository>(src_ns, &src.name) else {
            anyhow::bail!(
                "referenced GitRepository {src_ns}/{} does not exist",
                src.name
            );
        };
        let r = a
            .spec
            .git
            .checkout
            .as_ref()
            .map(|c| c.reference.clone())
            .or_else(|| gitrepo.spec.reference.clone())
            .unwrap_or_default();
        let checkout = CheckoutRef::from_fields(
            r.branch.as_deref(),
            r.tag.as_deref(),
            r.semver.as_deref(),
            r.name.as_deref(),
            r.commit.as_deref(),
        );
        let push = a.spec.git.push.clone().unwrap_or_default();
        let branch = tagpilot_git::push_branch(&checkout, push.branch.as_deref())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let url = gitrepo.spec.url.clone();
        // First, so that a missing Secret is named as such (the auth keys below are optional
        // lookups).
        let roots = match &gitrepo.spec.secret_ref {
            Some(sr) => match self.secrets().get(src_ns, &sr.name, "ca.crt")? {
                Some(pem) => Some(ExtraRoots::from_pem(&pem).map_err(|e| anyhow::anyhow!("{e}"))?),
                None => None,
            },
            None => None,
        };
        let auth = match &gitrepo.spec.secret_ref {
            Some(s) => GitAuth::from_secret(&url, |k| {
                self.secrets()
                    .get(src_ns, &s.name, k)
                    .ok()
                    .flatten()
                    .map(text)
            })?,
            None => GitAuth::None,
        };
        let signer = match &a.spec.git.commit.signing_key {
            None => None,
            Some(k) => {
                let get = |key: &str| {
                    self.secrets()
                        .get(ns, &k.secret_ref.name, key)
                        .map(|v| v.map(text))
                };
                Some(Arc::new(
                    match k.key_type {
                        SigningKeyType::Gpg => Signer::openpgp(
                            &get("git.asc")?.ok_or_else(|| {
                                anyhow::anyhow!("signing key secret has no 'git.asc'")
                            })?,
                            get("passphrase")?.as_deref(),
                        ),
                        SigningKeyType::Ssh => Signer::ssh(
                            &get("identity")?.ok_or_else(|| {
                                anyhow::anyhow!("signing key secret has no 'identity'")
                            })?,
                            get("password")?.as_deref(),
                        ),
                    }
                    .map_err(|e| anyhow::anyhow!("{e}"))?,
                ))
            }
        };
        // Flux's rule: every policy of the automation's namespace that the selector admits and
        // that has resolved.
        let policies: Policies = self
            .lock_latest()
            .iter()
            .filter(|((pns, pname), _)| {
                pns == ns
                    && a.spec.policy_selector.as_ref().is_none_or(|sel| {
                        self.config
                            .get(Kind::ImagePolicy, pns, pname)
                            .is_some_and(|l| sel.matches(&l.object.metadata().labels))
                    })
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let spec = RoundSpec {
            checkout,
            push_branch: branch.clone(),
            push_refspec: push.refspec,
            push_options: push
                .options
                .iter()
                .map(|(k, v)| {
                    if v.is_empty() {
                        k.clone()
                    } else {
                        format!("{k}={v}")
                    }
                })
                .collect(),
            author_name: a.spec.git.commit.author.name.clone(),
            author_email: a.spec.git.commit.author.email.clone(),
            max_attempts: 5,
            signer,
        };
        Ok(((url, branch), spec, (auth, roots), policies))
    }
}

/// The update path inside the work tree; `..` may not lead out of it.
fn update_dir(root: &Path, path: Option<&str>) -> Result<PathBuf, String> {
    let mut dir = root.to_path_buf();
    for c in Path::new(path.unwrap_or(".")).components() {
        match c {
            std::path::Component::Normal(p) => dir.push(p),
            std::path::Component::CurDir => {}
            _ => {
                return Err(format!(
                    "update path '{}' leaves the repository",
                    path.unwrap_or_default()
                ))
            }
        }
    }
    Ok(dir)
}

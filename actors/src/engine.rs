//! The reconciliation of one object of each kind, shared by `tagpilot run --once` and the
//! daemon: credentials from Secrets, scan + never-downgrade + store, policy → latest ref, and
//! automations grouped by remote and push branch into Git rounds, each recording its status with
//! Flux's field names. Errors end as status messages.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Context;
use serde_json::json;
use tagpilot_api::status::reason;
use tagpilot_api::{
    build_policy, Config, GitRepository, ImagePolicy, ImageRepository, ImageUpdateAutomation, Kind,
    Object, Outcome, Provider, ReceiverType, Secrets, SigningKeyType, Status,
};
use tagpilot_git::{Change, CheckoutRef, ExtraRoots, GitAuth, RoundSpec, Signer, WarmRepo};
use tagpilot_notifier::event::AUTOMATION_CONTROLLER;
use tagpilot_notifier::{Event, InvolvedObject, Severity};
use tagpilot_policy::Exclusions;
use tagpilot_providers::{
    Keyring, Policy as RefreshPolicy, Refresher, SystemClock, TokenSource as _,
};
use tagpilot_reconcile::{digest, events::Dedup, slots, writers};
use tagpilot_registry::{
    scan, ClientOptions, DockerConfig, Gates, ImageName, ProxySpec, RepoClient,
};
use tagpilot_setters::{scan_tree, write_changes_via, LatestRef, Policies};
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

/// What outlives a configuration reload: credentials, scan slots, counters, pending reconcile
/// requests, shared listings and the failures already reported. One per process.
#[derive(Debug)]
pub struct Shared {
    /// Cloud registry credentials, one refresher per (provider, identity, registry).
    pub keyring: Arc<Keyring>,
    /// Scans running at once, across all registries (`concurrency`).
    scan_slots: Arc<tokio::sync::Semaphore>,
    concurrency: usize,
    /// Per registry host: its share of the scan slots (a slow host holds at most that many).
    host_slots: Mutex<BTreeMap<String, (usize, Arc<tokio::sync::Semaphore>)>>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// `Kind/ns/name` → the `requestedAt` token of a reconcile request not yet started.
    requested: Mutex<BTreeMap<String, String>>,
    /// `Kind/ns/name` → the token of the request the running reconciliation handles.
    handling: Mutex<BTreeMap<String, String>>,
    /// Single flight: one tag listing at a time per image and credentials; repositories that
    /// waited for it take its result.
    listings: Mutex<BTreeMap<String, Arc<ListingCell>>>,
    /// The last failure reported per automation, so a failing round alerts once, not on every
    /// interval.
    reported: Mutex<Dedup<(String, String)>>,
    /// Resolved policies: (namespace, name) → latest ref, one map for every engine (persisted
    /// in the store; a reload prunes deleted policies).
    latest: Mutex<BTreeMap<(String, String), LatestRef>>,
    /// Provider delivery counters: one read-modify-write at a time.
    pub(crate) deliveries: Mutex<()>,
    /// Per remote URL: held while a round works in its warm clone.
    clones: Mutex<BTreeMap<String, Arc<Mutex<()>>>>,
}

/// The last listing of one image with one set of credentials, while others wait for it.
type ListingCell = tokio::sync::Mutex<Option<(std::time::Instant, Arc<Vec<String>>)>>;

impl Shared {
    pub fn new(concurrency: usize) -> Self {
        let concurrency = concurrency.max(1);
        Shared {
            keyring: Arc::new(Keyring::default()),
            scan_slots: Arc::new(tokio::sync::Semaphore::new(concurrency)),
            concurrency,
            host_slots: Mutex::new(BTreeMap::new()),
            metrics: Arc::default(),
            requested: Mutex::new(BTreeMap::new()),
            handling: Mutex::new(BTreeMap::new()),
            listings: Mutex::new(BTreeMap::new()),
            reported: Mutex::new(Dedup::new()),
            latest: Mutex::new(BTreeMap::new()),
            deliveries: Mutex::new(()),
            clones: Mutex::new(BTreeMap::new()),
        }
    }

    /// The lock of `url`'s warm clone.
    pub fn clone_lock(&self, url: &str) -> Arc<Mutex<()>> {
        lock(&self.clones)
            .entry(url.to_owned())
            .or_default()
            .clone()
    }

    /// The slot semaphore of `host` for a share of `share` (remade when the share changed).
    fn host_slot(&self, host: &str, share: usize) -> Arc<tokio::sync::Semaphore> {
        let mut slots = lock(&self.host_slots);
        let entry = slots
            .entry(host.to_owned())
            .or_insert_with(|| (share, Arc::new(tokio::sync::Semaphore::new(share))));
        if entry.0 != share {
            *entry = (share, Arc::new(tokio::sync::Semaphore::new(share)));
        }
        entry.1.clone()
    }

    fn listing_cell(&self, key: &str) -> Arc<ListingCell> {
        lock(&self.listings)
            .entry(key.to_owned())
            .or_default()
            .clone()
    }
}

impl Default for Shared {
    fn default() -> Self {
        Shared::new(DEFAULT_CONCURRENCY)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Everything a reconciliation needs, owned so that actors can share it.
#[derive(Debug)]
pub struct Engine {
    config: Arc<Config>,
    secrets_dir: Option<PathBuf>,
    store: Arc<Store>,
    gates: Arc<Gates>,
    shared: Arc<Shared>,
    /// Scan slots each registry host may hold (from the hosts in this configuration).
    host_share: usize,
    /// Load errors by `Kind/ns/name`, for objects running their last good version.
    config_errors: BTreeMap<String, String>,
    git_cache: PathBuf,
    rows: Mutex<Vec<Report>>,
    /// Events for Alerts, since the last `take_events`.
    events: Mutex<Vec<Event>>,
}

pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Runs a store call off the async threads: redb commits fsync and must not hold up an actor.
async fn off_thread<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, tagpilot_store::StoreError> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| anyhow::anyhow!("state store call did not complete: {e}"))?
        .map_err(anyhow::Error::from)
}

/// `Kind/namespace/name` → its parts.
fn split_key(key: &str) -> Option<(Kind, &str, &str)> {
    let mut parts = key.splitn(3, '/');
    Some((
        parts.next().and_then(Kind::from_name)?,
        parts.next()?,
        parts.next()?,
    ))
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

/// A failed reconciliation: the error and how Flux reports it (its reason; Stalled when
/// retrying cannot help until the object changes).
#[derive(Debug)]
pub struct Failure {
    pub reason: &'static str,
    pub stalled: bool,
    pub error: anyhow::Error,
}

impl Failure {
    pub fn new(reason: &'static str, stalled: bool, error: anyhow::Error) -> Self {
        Failure {
            reason,
            stalled,
            error,
        }
    }

    /// The status outcome, its message made from the error chain.
    fn outcome(&self, message: impl FnOnce(&str) -> String) -> Outcome {
        let text = message(&format_chain(&self.error));
        if self.stalled {
            Outcome::stalled(self.reason, text)
        } else {
            Outcome::failed(self.reason, text)
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&format_chain(&self.error))
    }
}

/// Gives an error its Flux reason at the place it happens.
trait Because<T> {
    /// A failure that is retried.
    fn because(self, reason: &'static str) -> Result<T, Failure>;
    /// A failure that waits for the object to change.
    fn stalled(self, reason: &'static str) -> Result<T, Failure>;
}

impl<T, E: Into<anyhow::Error>> Because<T> for Result<T, E> {
    fn because(self, reason: &'static str) -> Result<T, Failure> {
        self.map_err(|e| Failure::new(reason, false, e.into()))
    }
    fn stalled(self, reason: &'static str) -> Result<T, Failure> {
        self.map_err(|e| Failure::new(reason, true, e.into()))
    }
}

impl Engine {
    pub fn new(
        config: Arc<Config>,
        secrets_dir: Option<PathBuf>,
        store: Arc<Store>,
        gates: Arc<Gates>,
        git_cache: PathBuf,
    ) -> Self {
        Self::with_shared(config, secrets_dir, store, gates, git_cache, Arc::default())
    }

    /// An engine for `config` that shares `shared` with the engines before it (a reload).
    /// Reads and prunes the store: statuses and latest refs of objects that no longer exist
    /// go, the errors of objects that do not load go into their status.
    pub fn with_shared(
        config: Arc<Config>,
        secrets_dir: Option<PathBuf>,
        store: Arc<Store>,
        gates: Arc<Gates>,
        git_cache: PathBuf,
        shared: Arc<Shared>,
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
            config_errors.insert(format!("{kind}/{ns}/{name}"), e.to_string());
        }
        let hosts: std::collections::BTreeSet<String> = config
            .all::<ImageRepository>()
            .filter_map(|r| ImageName::parse(&r.spec.image).ok())
            .map(|n| n.registry)
            .collect();
        let engine = Engine {
            host_share: slots::host_share(shared.concurrency, hosts.len()),
            config,
            secrets_dir,
            store,
            gates,
            shared,
            config_errors,
            git_cache,
            rows: Mutex::new(rows),
            events: Mutex::new(Vec::new()),
        };
        engine.load_state();
        engine
    }

    /// Statuses for objects that do not load, pruning of what no longer exists, and the
    /// persisted latest refs of the policies that do.
    fn load_state(&self) {
        let now = tagpilot_api::rfc3339(now());
        for (key, err) in &self.config_errors {
            let Some((kind, ns, name)) = split_key(key) else {
                continue;
            };
            let mut status = self.stored_status(key);
            if self.config.get(kind, ns, name).is_none() {
                status.finish(
                    &Outcome::stalled(reason::INVALID_MANIFEST, err.clone()),
                    None,
                    &now,
                );
            } else {
                // Still running: its last status stays, with the error beside it.
                status.config_error = Some(config_error_text(err));
            }
            self.put_status(key, &status);
        }
        let exists = |key: &str| {
            split_key(key).is_some_and(|(kind, ns, name)| self.config.get(kind, ns, name).is_some())
        };
        if let Err(e) = self
            .store
            .retain_statuses(|k| exists(k) || self.config_errors.contains_key(k))
        {
            tracing::warn!(error = %e, "cannot prune statuses");
        }
        fn policy<'k>(config: &Config, key: &'k str) -> Option<(&'k str, &'k str)> {
            key.split_once('/')
                .filter(|(ns, name)| config.find::<ImagePolicy>(ns, name).is_some())
        }
        let config = &*self.config;
        match self.store.retain_latest(|k| policy(config, k).is_some()) {
            Ok(0) => {}
            Ok(n) => tracing::info!(pruned = n, "latest refs of deleted policies removed"),
            Err(e) => tracing::warn!(error = %e, "cannot prune latest refs"),
        }
        self.lock_latest()
            .retain(|(ns, name), _| config.find::<ImagePolicy>(ns, name).is_some());
        match self.store.latest_refs() {
            Ok(refs) => {
                let mut latest = self.lock_latest();
                for (key, value) in refs {
                    let (Some((ns, name)), Ok(r)) = (
                        policy(config, &key),
                        serde_json::from_value::<LatestRef>(value),
                    ) else {
                        continue;
                    };
                    // A stored digest is checked like a fetched one before it can be written.
                    if r.digest
                        .as_deref()
                        .is_some_and(|d| digest::validate(d).is_err())
                    {
                        tracing::warn!(kind = "ImagePolicy", %key, "stored latest ref has an invalid digest; resolving again");
                        continue;
                    }
                    // What this process resolved since is newer than the store's copy.
                    latest.entry((ns.to_owned(), name.to_owned())).or_insert(r);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read stored latest refs"),
        }
    }

    fn stored_status(&self, key: &str) -> Status {
        match self.store.status(key) {
            Ok(Some(v)) => Status::from_value(v),
            Ok(None) => Status::default(),
            Err(e) => {
                tracing::warn!(%key, error = %e, "cannot read status");
                Status::default()
            }
        }
    }

    fn put_status(&self, key: &str, status: &Status) {
        if let Err(e) = self.store.put_status(key, &status.to_value()) {
            tracing::warn!(%key, error = %e, "cannot store status");
        }
    }

    pub fn config_arc(&self) -> Arc<Config> {
        self.config.clone()
    }

    /// The state every engine of this process shares.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Remembers a reconcile request (`tagpilot reconcile`, a resume): the next reconciliation
    /// of the object echoes `token` in `lastHandledReconcileAt`.
    pub fn request(&self, kind: Kind, namespace: &str, name: &str, token: &str) {
        lock(&self.shared.requested).insert(format!("{kind}/{namespace}/{name}"), token.to_owned());
    }

    /// A reconciliation of the object starts: the request pending now is the one it handles.
    pub(crate) fn begin(&self, kind: Kind, namespace: &str, name: &str) {
        let key = format!("{kind}/{namespace}/{name}");
        if let Some(token) = lock(&self.shared.requested).remove(&key) {
            lock(&self.shared.handling).insert(key, token);
        }
    }

    pub fn keyring(&self) -> &Keyring {
        &self.shared.keyring
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
        lock(&self.shared.latest)
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
            let mut reported = lock(&self.shared.reported);
            match failure {
                Some(f) if !reported.failure(key.clone(), f) => return,
                Some(_) => {}
                None => reported.success(&key),
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
        lock(&self.shared.reported)
            .success(&(a.metadata.namespace.clone(), a.metadata.name.clone()));
    }

    /// The reports recorded since the last call (configuration errors first).
    pub fn take_reports(&self) -> Vec<Report> {
        std::mem::take(&mut *self.lock_rows())
    }

    /// Scans a repository and records its status; whether it ended Ready.
    pub async fn reconcile_repository(&self, repo: &ImageRepository) -> bool {
        let (ns, name) = (&repo.metadata.namespace, &repo.metadata.name);
        self.begin(Kind::ImageRepository, ns, name);
        // A host's share first, then a global slot: a slow host queues on its own share and
        // leaves the other slots to the other hosts. The semaphores are never closed; a closed
        // one would only mean no limit.
        let host = ImageName::parse(&repo.spec.image)
            .map(|n| n.registry)
            .unwrap_or_default();
        let host_slot = self.shared.host_slot(&host, self.host_share);
        let _host = host_slot.acquire().await.ok();
        let _slot = self.shared.scan_slots.acquire().await.ok();
        let started = std::time::Instant::now();
        let outcome = self.scan(repo).await;
        let metrics = &self.shared.metrics;
        if !matches!(&outcome, Ok((m, _)) if m == "suspended") {
            let labels = crate::metrics::object_labels(ns, name);
            metrics.inc("tagpilot_scans_total", &labels);
            metrics.observe("tagpilot_scan_duration_seconds", &labels, started.elapsed());
            if outcome.is_err() {
                metrics.inc("tagpilot_scan_failures_total", &labels);
            }
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

    /// Records a plain outcome: Ready, or a failure with Flux's generic reason.
    pub(crate) fn record_with(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        ready: bool,
        message: String,
        fields: serde_json::Value,
    ) {
        let outcome = if ready {
            Outcome::ready(message)
        } else {
            Outcome::failed(reason::FAILURE, message)
        };
        self.record_outcome(kind, namespace, name, outcome, fields);
    }

    /// Stores the object's status (Flux's model and field names) and adds a summary row. The
    /// kind's fields given replace theirs; the others stay from the last record (a failed
    /// scan keeps its last `lastScanResult`, as Flux's does).
    pub(crate) fn record_outcome(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        outcome: Outcome,
        fields: serde_json::Value,
    ) {
        let (key, status) = self.next_status(kind, namespace, name, outcome, fields);
        self.put_status(&key, &status);
    }

    /// [`record_outcome`](Self::record_outcome) from async code: the store's commit (an fsync)
    /// runs on a blocking thread, never on the actor's.
    pub(crate) async fn record_outcome_async(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        outcome: Outcome,
        fields: serde_json::Value,
    ) {
        let (key, status) = self.next_status(kind, namespace, name, outcome, fields);
        let store = self.store.clone();
        let value = status.to_value();
        let k = key.clone();
        if let Err(e) = off_thread(move || store.put_status(&k, &value)).await {
            tracing::warn!(%key, error = %e, "cannot store status");
        }
    }

    /// The object's status after `outcome`, and its summary row.
    fn next_status(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        outcome: Outcome,
        fields: serde_json::Value,
    ) -> (String, Status) {
        let key = format!("{kind}/{namespace}/{name}");
        let now_secs = now();
        let mut status = self.stored_status(&key);
        let generation = self
            .config
            .get(kind, namespace, name)
            .map(|l| match &l.object {
                Object::ImageRepository(o) => o.generation(),
                Object::ImagePolicy(o) => o.generation(),
                Object::ImageUpdateAutomation(o) => o.generation(),
                Object::GitRepository(o) => o.generation(),
                Object::Receiver(o) => o.generation(),
                Object::Provider(o) => o.generation(),
                Object::Alert(o) => o.generation(),
                Object::Secret(o) => tagpilot_api::generation_of(&o.body),
            });
        status.finish(&outcome, generation, &tagpilot_api::rfc3339(now_secs));
        if outcome.is_ready() {
            status.last_success_time = Some(now_secs);
        }
        if let serde_json::Value::Object(extra) = fields {
            status.fields.extend(extra);
        }
        status.config_error = self.config_errors.get(&key).map(|e| config_error_text(e));
        if let Some(token) = lock(&self.shared.handling).remove(&key) {
            status.last_handled_reconcile_at = Some(token);
        }
        self.lock_rows().push(Report {
            kind: Some(kind),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            ready: outcome.is_ready(),
            message: outcome.message,
        });
        (key, status)
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
                self.shared.keyring.get_or_insert(&key, || {
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
    ) -> Result<(String, serde_json::Value), Failure> {
        use reason::{IMAGE_URL_INVALID, READ_OPERATION_FAILED};
        if self.is_suspended(Kind::ImageRepository, &repo.metadata, repo.spec.suspend) {
            return Ok(("suspended".into(), json!({})));
        }
        let name = ImageName::parse(&repo.spec.image).stalled(IMAGE_URL_INVALID)?;
        let exclusions = Exclusions::new(&repo.spec.exclusion_list).stalled(reason::FAILURE)?;
        let mut warnings = Vec::new();
        let listed = self.list_shared(repo, &name, &mut warnings).await?;
        let mut tags: Vec<String> = listed
            .iter()
            .filter(|t| exclusions.matching(t).is_none())
            .cloned()
            .collect();
        drop(listed);
        scan::sort_desc(&mut tags);
        tags.dedup();
        let revision = scan::revision(&tags);
        let canonical = name.canonical();
        let meta = self
            .store
            .repo_meta(&canonical)
            .because(READ_OPERATION_FAILED)?;
        match scan::judge(
            meta.as_ref().map(|m| m.tag_count),
            meta.as_ref().and_then(|m| m.pending_revision.as_deref()),
            &revision,
            tags.len(),
            0.5,
        ) {
            scan::Verdict::Accept => {
                let scan_time = now();
                let count = tags.len();
                let latest_tags: Vec<String> = tags.iter().take(10).cloned().collect();
                let (store, c, r) = (self.store.clone(), canonical.clone(), revision.clone());
                off_thread(move || store.record_scan(&c, &tags, &r, scan_time))
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
                let (store, c, r) = (self.store.clone(), canonical.clone(), revision.clone());
                off_thread(move || store.set_pending(&c, Some(&r)))
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
        let mut opts = self.client_options(repo).because(AUTHENTICATION_FAILED)?;
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
        let tags: Vec<String> = self
            .store
            .tags(&canonical)
            .because(FAILURE)?
            .ok_or_else(|| anyhow::anyhow!("no tags in database"))
            .because(DEPENDENCY_NOT_READY)?
            .into_iter()
            .map(|t| t.tag)
            .collect();
        let selection = engine.select(&tags, &Exclusions::none()).because(FAILURE)?;
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
            if let Err(e) = off_thread(move || store.put_latest(&stored, value.as_ref())).await {
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

    /// Runs every automation; automations writing the same remote share one round per branch.
    pub fn automations(&self) {
        self.automations_for(None);
    }

    /// Records why an automation can never run (no GitRepository, no push branch, a bad
    /// signing key, …) at load, not at its first round. Suspended ones are not reported.
    pub fn check_automations(&self) {
        for a in self.config.all::<ImageUpdateAutomation>() {
            if self.is_suspended(Kind::ImageUpdateAutomation, &a.metadata, a.spec.suspend) {
                continue;
            }
            if let Err(e) = self.plan(a) {
                self.plan_failed(a, &e);
            }
        }
    }

    /// An automation that cannot be planned: counted, alerted once, recorded.
    fn plan_failed(&self, a: &ImageUpdateAutomation, e: &anyhow::Error) {
        let (ns, name) = (&a.metadata.namespace, &a.metadata.name);
        let message = format_chain(e);
        self.shared.metrics.inc(
            "tagpilot_push_failures_total",
            &crate::metrics::object_labels(ns, name),
        );
        self.emit(a, Some(&message), message.clone(), BTreeMap::new());
        self.record_outcome(
            Kind::ImageUpdateAutomation,
            ns,
            name,
            Outcome::failed(reason::SOURCE_MANAGER_FAILED, message),
            json!({}),
        );
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

    /// The latest ref of a policy, once resolved.
    pub fn latest_of(&self, namespace: &str, name: &str) -> Option<LatestRef> {
        self.lock_latest()
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Runs the automations that write remote `url` (or every remote with `None`): one Git
    /// round per push branch, one after the other. Only the remote's Git worker calls this for
    /// a URL, so nothing else touches that warm clone meanwhile.
    pub fn automations_for(&self, only: Option<&str>) {
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
            if only.is_some_and(|url| writers::remote_of(&self.config, a) != Some(url)) {
                continue;
            }
            self.begin(Kind::ImageUpdateAutomation, &ns, &name);
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
                Err(e) => self.plan_failed(a, &e),
            }
        }
        for ((url, branch), (spec, auth, jobs)) in groups {
            let started = std::time::Instant::now();
            let outcome = (|| -> anyhow::Result<tagpilot_git::RoundOutcome> {
                let repo = WarmRepo::open_with_roots(git_cache, &url, auth.0, auth.1)?;
                let scratch = repo.scratch_dir()?;
                let scratch = scratch.as_path();
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
                            write_changes_via(&dir, &set, Some(scratch))
                                .map_err(|e| e.to_string())?;
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
                let mut fields = fields;
                if let serde_json::Value::Object(f) = &mut fields {
                    f.insert(
                        "lastAutomationRunTime".into(),
                        json!(tagpilot_api::rfc3339(now())),
                    );
                }
                let labels = crate::metrics::object_labels(&a.metadata.namespace, &a.metadata.name);
                let metrics = &self.shared.metrics;
                match (&outcome, &fields["lastPushCommit"]) {
                    (Ok(_), serde_json::Value::String(_)) => {
                        metrics.inc("tagpilot_pushes_total", &labels);
                        metrics.observe(
                            "tagpilot_push_duration_seconds",
                            &labels,
                            started.elapsed(),
                        );
                    }
                    (Ok(_), _) => {}
                    (Err(_), _) => metrics.inc("tagpilot_push_failures_total", &labels),
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
                let outcome = match &outcome {
                    _ if ready => Outcome::ready(message),
                    Err(e)
                        if matches!(
                            e.downcast_ref::<tagpilot_git::GitError>(),
                            Some(tagpilot_git::GitError::Apply(_))
                        ) =>
                    {
                        Outcome::failed(reason::UPDATE_FAILED, message)
                    }
                    _ => Outcome::failed(reason::GIT_OPERATION_FAILED, message),
                };
                self.record_outcome(
                    Kind::ImageUpdateAutomation,
                    &a.metadata.namespace,
                    &a.metadata.name,
                    outcome,
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
        // that has resolved; a deleted policy's ref is never applied.
        let policies: Policies = writers::applicable(&self.config, a, &self.lock_latest())
            .into_iter()
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

/// The update path inside the work tree: `..` may not lead out of it, and neither may a
/// symlink in the repository (the path is checked again after resolving links).
fn update_dir(root: &Path, path: Option<&str>) -> Result<PathBuf, String> {
    let dir = lexical_update_dir(root, path)?;
    let shown = path.unwrap_or(".");
    let real_root = root
        .canonicalize()
        .map_err(|e| format!("work tree {}: {e}", root.display()))?;
    let real = dir
        .canonicalize()
        .map_err(|e| format!("update path '{shown}': {e}"))?;
    if !real.starts_with(&real_root) {
        return Err(format!(
            "update path '{shown}' leads outside the repository through a symlink, refused"
        ));
    }
    Ok(real)
}

fn lexical_update_dir(root: &Path, path: Option<&str>) -> Result<PathBuf, String> {
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

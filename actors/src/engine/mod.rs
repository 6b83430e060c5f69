//! The reconciliation of one object of each kind, shared by `tagpilot run --once` and the
//! daemon, with its I/O (Secrets, registries, the store, Git): one module per kind
//! ([`repository`], [`policy`], [`automation`], [`receiver`]; Alerts and Providers in
//! `crate::alerts`). This module holds what they share: the [`Engine`] of one configuration,
//! the [`Shared`] state that outlives reloads, and the recording of Flux's status. Decisions
//! that need no I/O are tagpilot-reconcile's.

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
use tagpilot_git::{
    Applied, Change, CheckoutRef, ExtraRoots, GitAuth, RoundSpec, Signer, WarmRepo,
};
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
use tagpilot_setters::{scan_tree, write_changes_in_clone, LatestRef, Policies};
use tagpilot_store::Store;
use tagpilot_template::{commit_data, render_message, MessageInput};

mod automation;
mod policy;
mod receiver;
mod repository;

/// Scans running at once unless the settings say otherwise.
pub const DEFAULT_CONCURRENCY: usize = 16;

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
    /// Scans a webhook or a reconcile request asked for, beside the scheduled ones.
    urgent_slots: Arc<tokio::sync::Semaphore>,
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
    reported: Mutex<Dedup<(Kind, String, String)>>,
    /// Resolved policies: (namespace, name) → latest ref, one map for every engine (persisted
    /// in the store; a reload prunes deleted policies).
    latest: Mutex<BTreeMap<(String, String), LatestRef>>,
    /// Per policy: [`ImagePolicySpec::selection_generation`] when its latest ref was chosen
    /// (persisted with the latest ref): the downgrade guard's "did the policy change".
    ///
    /// [`ImagePolicySpec::selection_generation`]: tagpilot_api::ImagePolicySpec::selection_generation
    selections: Mutex<BTreeMap<(String, String), i64>>,
    /// Per policy: the candidates its gates held at the last resolution.
    held: Mutex<BTreeMap<(String, String), Vec<tagpilot_reconcile::gates::HeldTag>>>,
    /// Unix seconds now (a test sets its own clock).
    pub(crate) clock: fn() -> u64,
    /// Provider delivery counters: one read-modify-write at a time.
    pub(crate) deliveries: Mutex<()>,
    /// Per remote URL: held while a round works in its warm clone.
    clones: Mutex<BTreeMap<String, Arc<Mutex<()>>>>,
    /// The store writer thread's queue.
    writer: std::sync::mpsc::Sender<(Arc<Store>, StoreJob)>,
}

/// The last listing of one image with one set of credentials, while others wait for it.
type ListingCell = tokio::sync::Mutex<Option<(std::time::Instant, Arc<Vec<String>>)>>;

impl Shared {
    pub fn new(concurrency: usize) -> Self {
        let concurrency = concurrency.max(1);
        Shared {
            keyring: Arc::new(Keyring::default()),
            scan_slots: Arc::new(tokio::sync::Semaphore::new(concurrency)),
            urgent_slots: Arc::new(tokio::sync::Semaphore::new(URGENT_SCANS)),
            concurrency,
            host_slots: Mutex::new(BTreeMap::new()),
            metrics: Arc::default(),
            requested: Mutex::new(BTreeMap::new()),
            handling: Mutex::new(BTreeMap::new()),
            listings: Mutex::new(BTreeMap::new()),
            reported: Mutex::new(Dedup::new()),
            latest: Mutex::new(BTreeMap::new()),
            selections: Mutex::new(BTreeMap::new()),
            held: Mutex::new(BTreeMap::new()),
            clock: now,
            deliveries: Mutex::new(()),
            clones: Mutex::new(BTreeMap::new()),
            writer: store_writer(),
        }
    }

    /// Runs a store call on the store writer thread and waits for it without blocking; the
    /// answer comes once the write is on disk.
    async fn write<T: Send + 'static>(
        &self,
        store: &Arc<Store>,
        f: impl FnOnce(&Store) -> Result<T, tagpilot_store::StoreError> + Send + 'static,
    ) -> anyhow::Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let target = store.clone();
        let job: StoreJob = Box::new(move || {
            let result = f(&target);
            let reply: StoreReply = Box::new(move |synced| {
                let _ = tx.send(match (result, synced) {
                    (Err(e), _) => Err(anyhow::Error::from(e)),
                    (Ok(_), Err(e)) => Err(anyhow::anyhow!("{e}")),
                    (Ok(v), Ok(())) => Ok(v),
                });
            });
            reply
        });
        self.writer
            .send((store.clone(), job))
            .map_err(|_| anyhow::anyhow!("the store writer thread is gone"))?;
        rx.await
            .map_err(|_| anyhow::anyhow!("state store call did not complete"))?
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

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
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
    /// Ignored fields by `Kind/ns/name` (`field: why`).
    config_warnings: BTreeMap<String, Vec<String>>,
    git_cache: PathBuf,
    rows: Mutex<Vec<Report>>,
    /// ImageRepository (namespace, name) → the policies (namespace, name) that read it: asked
    /// after every scan, so it must not cost a walk over every policy.
    policies_by_repo: std::collections::HashMap<(String, String), Vec<(String, String)>>,
    /// Events for Alerts, since the last `take_events`.
    events: Mutex<Vec<Event>>,
    /// Warm clones opened and fetched ahead of their rounds ([`Engine::prepare_remotes`]),
    /// by URL; the next round of that URL takes its clone from here.
    prepared: Mutex<BTreeMap<String, tagpilot_git::WarmRepo>>,
}

pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The auth and extra CAs for Git remote `url` from its Secret `(namespace, name)`, Flux's keys
/// (`identity`/`known_hosts`, `username`/`password`, `bearerToken`, `ca.crt`). The CA is read
/// first, so that a missing Secret is named as such (the auth keys are optional lookups).
pub(crate) fn git_access(
    secrets: &Secrets<'_>,
    url: &str,
    secret: Option<(&str, &str)>,
) -> anyhow::Result<(GitAuth, Option<ExtraRoots>)> {
    let Some((ns, name)) = secret else {
        return Ok((GitAuth::None, None));
    };
    let roots = match secrets.get(ns, name, "ca.crt")? {
        Some(pem) => Some(ExtraRoots::from_pem(&pem).map_err(|e| anyhow::anyhow!("{e}"))?),
        None => None,
    };
    let auth = GitAuth::from_secret(url, |k| secrets.get(ns, name, k).ok().flatten().map(text))?;
    Ok((auth, roots))
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Urgent scans (webhooks, reconcile requests) in flight at once, beside `concurrency`.
const URGENT_SCANS: usize = 2;

/// A store call for the store writer thread: it runs the write and returns what to answer
/// once the write is durable (given the sync's outcome).
type StoreJob = Box<dyn FnOnce() -> StoreReply + Send>;
type StoreReply = Box<dyn FnOnce(Result<(), String>) + Send>;

/// Writes one batch of the store writer at most: one transaction, whose pages stay in memory
/// until it commits (bounds that, and the latency of the batch's first write).
const STORE_BATCH: usize = 64;

/// Starts the thread that makes the store commits of async code, one after the other (redb
/// commits fsync and must not hold up an actor; one thread, not a pool growing with the
/// number of scans, keeps memory flat). Group commit: the writes queued while a batch ran
/// make the next batch, one transaction per store committed without fsync and made durable
/// by one sync; nobody hears back before that sync (10,000 repositories' first scans made
/// 30,000 fsyncs otherwise, and a redb commit costs even without its fsync).
fn store_writer() -> std::sync::mpsc::Sender<(Arc<Store>, StoreJob)> {
    let (tx, rx) = std::sync::mpsc::channel::<(Arc<Store>, StoreJob)>();
    let started = std::thread::Builder::new()
        .name("tagpilot-store".into())
        .spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut batch = vec![first];
                while batch.len() < STORE_BATCH {
                    match rx.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                let replies: Vec<(Arc<Store>, StoreReply)> = tagpilot_store::deferred(|| {
                    batch
                        .into_iter()
                        .map(|(store, job)| (store, job()))
                        .collect()
                });
                // One sync per store of the batch (a reload may change the store only in
                // tests, but never answer for a store that was not synced).
                let mut synced: Vec<(Arc<Store>, Result<(), String>)> = Vec::new();
                for (store, reply) in replies {
                    let outcome = match synced.iter().find(|(s, _)| Arc::ptr_eq(s, &store)) {
                        Some((_, r)) => r.clone(),
                        None => {
                            let r = store.sync().map_err(|e| e.to_string());
                            synced.push((store, r.clone()));
                            r
                        }
                    };
                    reply(outcome);
                }
            }
        });
    if let Err(e) = started {
        tracing::error!(error = %e, "cannot start the store writer thread; store writes will fail");
    }
    tx
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
        let mut config_warnings: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for w in &config.warnings {
            let Some((kind, ns, name)) = w.object() else {
                continue;
            };
            let field = w.field.as_deref().unwrap_or_default();
            tracing::warn!(kind = %kind, namespace = ns, name, field, source = %w.source, "{}", w.message);
            config_warnings
                .entry(format!("{kind}/{ns}/{name}"))
                .or_default()
                .push(format!("{field}: {}", w.message));
        }
        let hosts: std::collections::BTreeSet<String> = config
            .all::<ImageRepository>()
            .filter_map(|r| ImageName::parse(&r.spec.image).ok())
            .map(|n| n.registry)
            .collect();
        let mut policies_by_repo: std::collections::HashMap<_, Vec<_>> = Default::default();
        for p in config.all::<ImagePolicy>() {
            let (ns, name) = p.repository_key();
            policies_by_repo
                .entry((ns.to_owned(), name.to_owned()))
                .or_default()
                .push((p.metadata.namespace.clone(), p.metadata.name.clone()));
        }
        let engine = Engine {
            policies_by_repo,
            host_share: slots::host_share(shared.concurrency, hosts.len()),
            config,
            secrets_dir,
            store,
            gates,
            shared,
            config_errors,
            config_warnings,
            git_cache,
            rows: Mutex::new(rows),
            events: Mutex::new(Vec::new()),
            prepared: Mutex::new(BTreeMap::new()),
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
        for (key, warnings) in &self.config_warnings {
            let mut status = self.stored_status(key);
            if status.config_warnings != *warnings {
                status.config_warnings.clone_from(warnings);
                self.put_status(key, &status);
            }
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
        let exists = |(ns, name): &(String, String)| config.find::<ImagePolicy>(ns, name).is_some();
        self.lock_latest().retain(|k, _| exists(k));
        lock(&self.shared.selections).retain(|k, _| exists(k));
        lock(&self.shared.held).retain(|k, _| exists(k));
        match self.store.latest_refs() {
            Ok(refs) => {
                let mut latest = self.lock_latest();
                let mut selections = lock(&self.shared.selections);
                for (key, value) in refs {
                    let generation = value.get("selectionGeneration").and_then(|g| g.as_i64());
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
                    let k = (ns.to_owned(), name.to_owned());
                    if let Some(g) = generation {
                        selections.entry(k.clone()).or_insert(g);
                    }
                    latest.entry(k).or_insert(r);
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

    /// A slow reconciliation of the object starts: `Reconciling` True (`Progressing`), Ready
    /// left as it was.
    fn mark_progressing(&self, kind: Kind, namespace: &str, name: &str) {
        let key = format!("{kind}/{namespace}/{name}");
        let mut status = self.stored_status(&key);
        status.progressing("reconciliation in progress", &tagpilot_api::rfc3339(now()));
        self.put_status(&key, &status);
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
        lock(&self.rows)
    }

    fn lock_latest(&self) -> MutexGuard<'_, BTreeMap<(String, String), LatestRef>> {
        lock(&self.shared.latest)
    }

    /// The events emitted since the last call, for Alerts.
    pub fn take_events(&self) -> Vec<Event> {
        std::mem::take(&mut *lock(&self.events))
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
        let (severity, reason) = match failure {
            Some(_) => (Severity::Error, "ReconciliationFailed"),
            None => (Severity::Info, "Succeeded"),
        };
        self.queue_event(
            Kind::ImageUpdateAutomation,
            a,
            failure,
            (severity, reason),
            message,
            metadata,
            AUTOMATION_CONTROLLER,
        );
    }

    /// Queues a warning event about a policy (a refused downgrade), once per distinct message.
    fn emit_policy(&self, p: &ImagePolicy, reason: &str, message: &str) {
        self.queue_event(
            Kind::ImagePolicy,
            p,
            Some(message),
            (Severity::Error, reason),
            message.to_owned(),
            BTreeMap::new(),
            "image-reflector-controller",
        );
    }

    /// Queues an event about an object for Alerts. A failure that repeats the last one
    /// reported for that object is not queued again; a success clears it.
    #[allow(clippy::too_many_arguments)]
    fn queue_event<S>(
        &self,
        kind: Kind,
        object: &tagpilot_api::Manifest<S>,
        failure: Option<&str>,
        (severity, reason): (Severity, &str),
        message: String,
        metadata: BTreeMap<String, String>,
        controller: &str,
    ) {
        let m = &object.metadata;
        let key = (kind, m.namespace.clone(), m.name.clone());
        {
            let mut reported = lock(&self.shared.reported);
            match failure {
                Some(f) if !reported.failure(key.clone(), f) => return,
                Some(_) => {}
                None => reported.success(&key),
            }
        }
        lock(&self.events).push(Event {
            involved_object: InvolvedObject {
                kind: kind.to_string(),
                namespace: m.namespace.clone(),
                name: m.name.clone(),
                api_version: object.api_version.clone(),
            },
            severity,
            timestamp: tagpilot_api::rfc3339((self.shared.clock)()),
            message,
            reason: reason.to_owned(),
            metadata,
            reporting_controller: controller.to_owned(),
            reporting_instance: "tagpilot".to_owned(),
        });
    }

    /// An automation is healthy again: its next failure is news.
    fn emit_clear(&self, a: &ImageUpdateAutomation) {
        lock(&self.shared.reported).success(&(
            Kind::ImageUpdateAutomation,
            a.metadata.namespace.clone(),
            a.metadata.name.clone(),
        ));
    }

    /// The reports recorded since the last call (configuration errors first).
    pub fn take_reports(&self) -> Vec<Report> {
        std::mem::take(&mut *self.lock_rows())
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
    /// runs on the store writer thread, never on the actor's.
    pub(crate) async fn record_outcome_async(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        outcome: Outcome,
        fields: serde_json::Value,
    ) {
        let (key, status) = self.next_status(kind, namespace, name, outcome, fields);
        let value = status.to_value();
        let k = key.clone();
        if let Err(e) = self
            .shared
            .write(&self.store, move |store| store.put_status(&k, &value))
            .await
        {
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
            .map(|l| l.object.generation());
        let suspension = outcome.is_suspension();
        // Suspended, as in Flux: nothing is reconciled and the last conditions stay; only an
        // object that never ran gets a Ready condition saying so.
        if !suspension
            || status
                .condition(tagpilot_api::ConditionType::Ready)
                .is_none()
        {
            status.finish(&outcome, generation, &tagpilot_api::rfc3339(now_secs));
        }
        status.suspended = suspension;
        if outcome.is_ready() && !suspension {
            status.last_success_time = Some(now_secs);
        }
        if let serde_json::Value::Object(extra) = fields {
            status.fields.extend(extra);
        }
        // The Git revision the manifest came from (an automation's own field of that name is
        // its checkout, as in Flux).
        if let (Some(rev), false) = (
            &self.config.source_revision,
            kind == Kind::ImageUpdateAutomation,
        ) {
            status
                .fields
                .insert("observedSourceRevision".into(), json!(rev));
        }
        status.config_error = self.config_errors.get(&key).map(|e| config_error_text(e));
        status.config_warnings = self.config_warnings.get(&key).cloned().unwrap_or_default();
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

    /// After a reload: objects whose manifest was fixed lose the `configError` and the
    /// `configWarnings` the previous engine put in their status (a kept actor may not
    /// reconcile again soon). One read and at most one write per object.
    pub fn clear_fixed_config_errors(&self, old: &Engine) {
        let keys: std::collections::BTreeSet<&String> = old
            .config_errors
            .keys()
            .chain(old.config_warnings.keys())
            .collect();
        for key in keys {
            let fixed_error = !self.config_errors.contains_key(key);
            let fixed_warnings = !self.config_warnings.contains_key(key);
            if !fixed_error && !fixed_warnings {
                continue;
            }
            let mut status = self.stored_status(key);
            let mut changed = false;
            if fixed_error {
                changed |= status.config_error.take().is_some();
            }
            if fixed_warnings {
                changed |= !std::mem::take(&mut status.config_warnings).is_empty();
            }
            if changed {
                self.put_status(key, &status);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFESTS: &str = "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {name: app, namespace: apps}\nspec: {image: 127.0.0.1:5000/app, interval: 1h}\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {name: app, namespace: apps}\nspec:\n  imageRepositoryRef: {name: app}\n  policy: {semver: {range: '>=1.0.0'}}\n";

    fn engine(dir: &Path, store: &Arc<Store>, manifests: &str) -> Engine {
        Engine::with_shared(
            Arc::new(tagpilot_api::load_str(manifests, Path::new("m.yaml"))),
            None,
            store.clone(),
            Arc::new(Gates::new(tagpilot_registry::Limits::default())),
            dir.join("git"),
            Arc::new(Shared::new(2)),
        )
    }

    /// The policy with `spec.suspend: true`.
    fn suspended() -> String {
        MANIFESTS.replace(
            "  imageRepositoryRef",
            "  suspend: true\n  imageRepositoryRef",
        )
    }

    fn status(store: &Store) -> Status {
        Status::from_value(
            store
                .status("ImagePolicy/apps/app")
                .ok()
                .flatten()
                .unwrap_or_default(),
        )
    }

    #[tokio::test]
    async fn a_suspended_policy_keeps_its_last_status_and_resolves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("s.redb")).unwrap());
        let tags = |t: &[&str]| t.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let scan = |t: &[&str]| {
            store
                .record_scan("127.0.0.1:5000/app", &tags(t), "r", 1)
                .unwrap();
        };
        scan(&["1.0.0", "1.1.0"]);
        let e = engine(dir.path(), &store, MANIFESTS);
        let p = e.policies()[0].clone();
        e.reconcile_policy(&p).await;
        let before = status(&store);
        assert!(!before.suspended);
        assert!(
            before.message().ends_with("resolved to 1.1.0"),
            "{before:?}"
        );

        // spec.suspend: true, and a new tag: nothing is resolved, the last status stays.
        scan(&["1.0.0", "1.1.0", "1.2.0"]);
        let e = engine(dir.path(), &store, &suspended());
        let p = e.policies()[0].clone();
        e.reconcile_policy(&p).await;
        let during = status(&store);
        assert!(during.suspended, "{during:?}");
        assert_eq!(during.message(), before.message());
        assert_eq!(during.conditions, before.conditions);
        assert_eq!(during.field("latestRef")["tag"], "1.1.0");
        assert_eq!(
            e.lock_latest()
                .get(&("apps".to_owned(), "app".to_owned()))
                .map(|l| l.tag.clone()),
            Some("1.1.0".to_owned())
        );

        // Resumed: resolved again, the flag is gone.
        let e = engine(dir.path(), &store, MANIFESTS);
        let p = e.policies()[0].clone();
        e.reconcile_policy(&p).await;
        let after = status(&store);
        assert!(!after.suspended);
        assert!(after.message().ends_with("resolved to 1.2.0"), "{after:?}");
    }

    #[tokio::test]
    async fn a_policy_suspended_before_it_ever_ran_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("s.redb")).unwrap());
        let e = engine(dir.path(), &store, &suspended());
        let p = e.policies()[0].clone();
        e.reconcile_policy(&p).await;
        let s = status(&store);
        assert!(s.suspended && s.message() == "suspended", "{s:?}");
    }

    fn engine_in(dir: &Path, store: &Arc<Store>, manifests: &str, shared: &Arc<Shared>) -> Engine {
        let config = tagpilot_api::load_str(manifests, Path::new("m.yaml"));
        assert!(config.errors.is_empty(), "{:?}", config.errors);
        Engine::with_shared(
            Arc::new(config),
            None,
            store.clone(),
            Arc::new(Gates::new(tagpilot_registry::Limits::default())),
            dir.join("git"),
            shared.clone(),
        )
    }

    fn tags(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| (*s).to_owned()).collect()
    }

    async fn resolve_once(e: &Engine) -> Status {
        let p = e.policies()[0].clone();
        e.reconcile_policy(&p).await;
        status(&e.store)
    }

    static MIN_AGE_NOW: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

    #[tokio::test]
    async fn min_age_holds_a_new_tag_until_it_is_old_enough() {
        use std::sync::atomic::Ordering::SeqCst;
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("s.redb")).unwrap());
        let mut shared = Shared::new(2);
        shared.clock = || MIN_AGE_NOW.load(SeqCst);
        let shared = Arc::new(shared);
        let manifests = MANIFESTS.replace(
            "  imageRepositoryRef",
            "  gates: {minAge: 1h}\n  imageRepositoryRef",
        );
        // The first scan's tags have no known age: they count as old enough.
        store
            .record_scan("127.0.0.1:5000/app", &tags(&["1.0.0", "1.1.0"]), "r1", 1000)
            .unwrap();
        MIN_AGE_NOW.store(1000, SeqCst);
        let e = engine_in(dir.path(), &store, &manifests, &shared);
        let s = resolve_once(&e).await;
        assert_eq!(s.field("latestRef")["tag"], "1.1.0", "{s:?}");
        assert!(s.message().ends_with("resolved to 1.1.0"), "{s:?}");

        // 1.2.0 appears at t=2000 (2026-12-02T09:00:00Z + …): held for an hour.
        let t0 = tagpilot_api::parse_rfc3339("2026-12-02T09:00:00Z").unwrap();
        store
            .record_scan(
                "127.0.0.1:5000/app",
                &tags(&["1.0.0", "1.1.0", "1.2.0"]),
                "r2",
                t0,
            )
            .unwrap();
        MIN_AGE_NOW.store(t0 + 1800, SeqCst);
        let s = resolve_once(&e).await;
        assert_eq!(s.field("latestRef")["tag"], "1.1.0");
        assert!(
            s.message().ends_with(
                "resolved to 1.1.0 (1.2.0 held by minAge until 2026-12-02T10:00:00Z; using 1.1.0)"
            ),
            "{}",
            s.message()
        );
        assert_eq!(s.field("heldTags")[0]["tag"], "1.2.0");
        assert_eq!(s.field("heldTags")[0]["verdict"], "too-young");
        assert!(s.is_ready(), "a hold is not a failure: {s:?}");

        // An hour after it was first seen: taken, and the hold is gone from the status.
        MIN_AGE_NOW.store(t0 + 3600, SeqCst);
        let s = resolve_once(&e).await;
        assert_eq!(s.field("latestRef")["tag"], "1.2.0");
        assert_eq!(s.field("heldTags"), &serde_json::json!([]));
    }

    #[tokio::test]
    async fn a_vanished_tag_is_not_replaced_by_an_older_one_without_a_policy_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("s.redb")).unwrap());
        let shared = Arc::new(Shared::new(2));
        store
            .record_scan(
                "127.0.0.1:5000/app",
                &tags(&["1.0.0", "1.1.0", "1.2.0"]),
                "r1",
                1,
            )
            .unwrap();
        let e = engine_in(dir.path(), &store, MANIFESTS, &shared);
        assert_eq!(resolve_once(&e).await.field("latestRef")["tag"], "1.2.0");

        // A registry clean-up drops 1.2.0: the latest ref stays, the status says why, an
        // event is queued for Alerts.
        store
            .record_scan("127.0.0.1:5000/app", &tags(&["1.0.0", "1.1.0"]), "r2", 2)
            .unwrap();
        let s = resolve_once(&e).await;
        assert_eq!(s.field("latestRef")["tag"], "1.2.0");
        assert!(
            s.message().ends_with("resolved to 1.2.0 (1.2.0 is no longer listed; not moving back to 1.1.0 without a policy change)"),
            "{}",
            s.message()
        );
        let events = e.take_events();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(
            (
                events[0].involved_object.kind.as_str(),
                events[0].reason.as_str()
            ),
            ("ImagePolicy", "DowngradeRefused")
        );
        // The same refusal again is no new event.
        resolve_once(&e).await;
        assert!(e.take_events().is_empty());

        // After a restart (a new engine, the ref read back from the store): still kept.
        let shared2 = Arc::new(Shared::new(2));
        let e2 = engine_in(dir.path(), &store, MANIFESTS, &shared2);
        assert_eq!(resolve_once(&e2).await.field("latestRef")["tag"], "1.2.0");

        // The guide's rollback: change the range. Now the lower tag is taken.
        let rollback = MANIFESTS.replace(">=1.0.0", "<1.2.0");
        let e3 = engine_in(dir.path(), &store, &rollback, &shared2);
        assert_eq!(resolve_once(&e3).await.field("latestRef")["tag"], "1.1.0");
        // Back to the old range with 1.2.0 listed again: up is always allowed.
        store
            .record_scan(
                "127.0.0.1:5000/app",
                &tags(&["1.0.0", "1.1.0", "1.2.0"]),
                "r3",
                3,
            )
            .unwrap();
        let e4 = engine_in(dir.path(), &store, MANIFESTS, &shared2);
        assert_eq!(resolve_once(&e4).await.field("latestRef")["tag"], "1.2.0");

        // allowDowngrade: a vanished tag gives way to the best listed one.
        let allow = MANIFESTS.replace(
            "  imageRepositoryRef",
            "  gates: {allowDowngrade: true}\n  imageRepositoryRef",
        );
        store
            .record_scan("127.0.0.1:5000/app", &tags(&["1.0.0", "1.1.0"]), "r4", 4)
            .unwrap();
        let e5 = engine_in(dir.path(), &store, &allow, &shared2);
        assert_eq!(resolve_once(&e5).await.field("latestRef")["tag"], "1.1.0");
    }

    static WINDOW_NOW: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

    #[test]
    fn a_closed_window_says_when_the_remote_should_run_again() {
        use std::sync::atomic::Ordering::SeqCst;
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("s.redb")).unwrap());
        let mut shared = Shared::new(2);
        shared.clock = || WINDOW_NOW.load(SeqCst);
        let shared = Arc::new(shared);
        let manifests = format!("{MANIFESTS}---\napiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata: {{name: fleet, namespace: apps}}\nspec: {{url: 'git://127.0.0.1/fleet', interval: 1h}}\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageUpdateAutomation\nmetadata: {{name: a, namespace: apps}}\nspec:\n  interval: 1h\n  sourceRef: {{name: fleet}}\n  git: {{commit: {{author: {{email: bot@example.com}}}}}}\n  windows: [{{cron: '0 9 * * 1-5', duration: 8h, timeZone: Europe/Berlin}}]\n");
        let e = engine_in(dir.path(), &store, &manifests, &shared);
        let t = |s: &str| tagpilot_api::parse_rfc3339(s).unwrap();
        WINDOW_NOW.store(t("2026-12-02T07:00:00Z"), SeqCst);
        // Opens at 09:00 Berlin (08:00Z): an hour and a second from now.
        assert_eq!(
            e.until_window_opens("git://127.0.0.1/fleet"),
            Some(std::time::Duration::from_secs(3601))
        );
        assert_eq!(e.until_window_opens("git://127.0.0.1/other"), None);
        WINDOW_NOW.store(t("2026-12-02T09:00:00Z"), SeqCst);
        assert_eq!(
            e.until_window_opens("git://127.0.0.1/fleet"),
            None,
            "open now"
        );
        let a = e
            .config
            .all::<ImageUpdateAutomation>()
            .next()
            .unwrap()
            .clone();
        assert_eq!(e.outside_windows(&a), None);
        WINDOW_NOW.store(t("2026-12-04T17:00:00Z"), SeqCst);
        assert_eq!(
            e.outside_windows(&a).as_deref(),
            Some("outside the change windows: changes wait until 2026-12-07T08:00:00Z (tagpilot reconcile forces a round)")
        );
    }
}

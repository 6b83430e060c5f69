//! The daemon: actix actors that drive the [`Engine`] on intervals and on change.
//!
//! - `Supervisor` owns the engine and its children. The configuration directory is watched
//!   (inotify, debounced, plus a periodic fingerprint check that also sees a Kubernetes volume's
//!   `..data` swap); a change is applied as a diff: unchanged actors keep running with the new
//!   engine, changed ones restart, removed ones stop.
//! - `RegistryScanner` (one per ImageRepository) scans on its interval; a new tag revision
//!   wakes the policies that read the repository.
//! - `PolicyResolver` (one per ImagePolicy) resolves when woken; a new latest ref wakes the Git
//!   writers whose automations are in the policy's namespace.
//! - `GitWriter` (one per remote and push branch) runs its round ~1 s after the last wake-up
//!   (so policies changing together make one push) and on its interval; Git runs on a blocking
//!   thread, never on the executor. After a round, its events go to the matching Alerts'
//!   Providers in a task of their own, so a slow endpoint never holds up the next round.
//!
//! Actors hold no business logic: every step is an `Engine` call.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tagpilot_api::{Config, ImagePolicy, ImageRepository, ImageUpdateAutomation, Kind, Object};
use tagpilot_registry::{Gates, Limits};
use tagpilot_store::Store;

use crate::engine::Engine;
use crate::receiver::{ReceiverState, ReconcileNow, Routes};

/// How the daemon is set up.
#[derive(Debug, Clone)]
pub struct Settings {
    pub config_dir: PathBuf,
    pub state_dir: PathBuf,
    pub secrets_dir: Option<PathBuf>,
    /// How often the configuration directory is re-read for changes.
    pub reload_every: Duration,
    /// Where the HTTP API listens (`host:port`), if anywhere.
    pub api_address: Option<String>,
    /// Where the webhook receiver server listens, if anywhere.
    pub webhook_address: Option<String>,
    /// Where `gcr` receivers fetch Google's signing keys (None: Google's own address).
    pub google_jwks_url: Option<String>,
    /// HTTPS for the receiver server: PEM certificate chain and private key files.
    pub webhook_tls: Option<(PathBuf, PathBuf)>,
    /// Per registry host politeness.
    pub limits: Limits,
    /// Scans running at once across all registries.
    pub concurrency: usize,
    /// When set, the API's controls need this bearer token.
    pub api_token: Option<Vec<u8>>,
}

type Key = (String, String);

fn log_reports(engine: &Engine) {
    for r in engine.take_reports() {
        let kind = r.kind.map_or("config", Kind::as_str);
        if r.ready {
            tracing::info!(kind, namespace = %r.namespace, name = %r.name, message = %r.message.lines().next().unwrap_or(""), "reconciled");
        } else {
            tracing::warn!(kind, namespace = %r.namespace, name = %r.name, message = %r.message, "reconciliation failed");
        }
    }
}

/// Whether a wake-up comes from a webhook: then the writer skips most of its debounce.
type Urgent = bool;

#[derive(Message)]
#[rtype(result = "()")]
struct Tick(Urgent);

#[derive(Message)]
#[rtype(result = "()")]
struct TagsScanned(Key, Urgent);

#[derive(Message)]
#[rtype(result = "()")]
struct LatestChanged(String, Urgent);

/// A writer: the namespaces it serves, its interval and its address.
type WriterEntry = (Vec<String>, (Duration, Addr<GitWriter>));

/// The root actor.
struct Supervisor {
    settings: Settings,
    store: Arc<Store>,
    api: Arc<crate::api::ApiState>,
    receivers: Arc<ReceiverState>,
    gates: Arc<Gates>,
    /// The limit of scans running at once, kept across reloads.
    scan_slots: Arc<tokio::sync::Semaphore>,
    /// Cloud credentials, kept across reloads; each key gets a `CredentialRefresher`.
    keyring: Arc<tagpilot_providers::Keyring>,
    refreshers: BTreeMap<String, Addr<CredentialRefresher>>,
    /// Watches the configuration directory; kept alive with the supervisor.
    watcher: Option<notify::RecommendedWatcher>,
    /// A change check already scheduled (events come in bursts).
    reload_pending: bool,
    engine: Option<Arc<Engine>>,
    fingerprint: String,
    scanners: BTreeMap<Key, Addr<RegistryScanner>>,
    resolvers: BTreeMap<Key, (Key, Addr<PolicyResolver>)>,
    writers: BTreeMap<Key, WriterEntry>,
}

impl Supervisor {
    fn new(
        settings: Settings,
        store: Arc<Store>,
        api: Arc<crate::api::ApiState>,
        receivers: Arc<ReceiverState>,
    ) -> Self {
        Supervisor {
            keyring: api.keyring.clone(),
            gates: api.gates.clone(),
            scan_slots: Arc::new(tokio::sync::Semaphore::new(settings.concurrency.max(1))),
            settings,
            store,
            api,
            receivers,
            refreshers: BTreeMap::new(),
            watcher: None,
            reload_pending: false,
            engine: None,
            fingerprint: String::new(),
            scanners: BTreeMap::new(),
            resolvers: BTreeMap::new(),
            writers: BTreeMap::new(),
        }
    }

    /// A cheap summary of the configuration directory's contents, to notice changes (including
    /// Kubernetes volumes that swap a `..data` link).
    fn fingerprint(&self) -> String {
        let mut entries = Vec::new();
        collect(&self.settings.config_dir, &mut entries);
        entries.sort();
        entries.join("\n")
    }

    /// Loads the configuration and applies it as a diff: actors whose object did not change
    /// keep running (they get the new engine), changed ones restart, removed ones stop, new
    /// ones start. Latest refs carry over, so kept writers lose nothing.
    fn start_children(&mut self, ctx: &mut Context<Self>) {
        let mut loaded = tagpilot_api::load_dir(&self.settings.config_dir);
        if let Some(old) = &self.engine {
            for (kind, namespace, name) in loaded.keep_last_good(old.config()) {
                tracing::warn!(kind = %kind, %namespace, %name, "invalid edit: the last good version keeps running");
            }
        }
        let config = Arc::new(loaded);
        let engine = Arc::new(
            Engine::new(
                config.clone(),
                self.settings.secrets_dir.clone(),
                self.store.clone(),
                self.gates.clone(),
                self.settings.state_dir.join("git"),
            )
            .with_keyring(self.keyring.clone())
            .with_scan_slots(self.scan_slots.clone())
            .with_metrics(self.api.metrics.clone()),
        );
        let old = self.engine.take();
        if let Some(old) = &old {
            engine.inherit_latest(old);
            engine.clear_fixed_config_errors(old);
        }
        let unchanged = |kind: Kind, key: &Key| {
            let before = old
                .as_ref()
                .and_then(|o| o.config().get(kind, &key.0, &key.1))
                .map(|l| &l.object);
            before.is_some() && before == config.get(kind, &key.0, &key.1).map(|l| &l.object)
        };
        let me = ctx.address();
        let (mut kept, mut started) = (0usize, 0usize);
        let mut old_scanners = std::mem::take(&mut self.scanners);
        for l in config.of_kind(Kind::ImageRepository) {
            if let Object::ImageRepository(r) = &l.object {
                let key = (r.metadata.namespace.clone(), r.metadata.name.clone());
                match old_scanners.remove(&key) {
                    Some(addr) if unchanged(Kind::ImageRepository, &key) => {
                        addr.do_send(SetEngine(engine.clone()));
                        self.scanners.insert(key, addr);
                        kept += 1;
                        continue;
                    }
                    Some(addr) => addr.do_send(Stop),
                    None => {}
                }
                let interval = r
                    .spec
                    .interval
                    .as_duration()
                    .max(Duration::from_millis(500));
                let addr = RegistryScanner {
                    engine: engine.clone(),
                    key: key.clone(),
                    interval,
                    supervisor: me.clone(),
                    failures: 0,
                    retry: None,
                }
                .start();
                self.scanners.insert(key, addr);
                started += 1;
            }
        }
        for (_, addr) in old_scanners {
            addr.do_send(Stop);
        }
        let mut old_resolvers = std::mem::take(&mut self.resolvers);
        for l in config.of_kind(Kind::ImagePolicy) {
            if let Object::ImagePolicy(p) = &l.object {
                let key = (p.metadata.namespace.clone(), p.metadata.name.clone());
                let r = &p.spec.image_repository_ref;
                let repo = (
                    r.namespace.clone().unwrap_or_else(|| key.0.clone()),
                    r.name.clone(),
                );
                match old_resolvers.remove(&key) {
                    Some((_, addr)) if unchanged(Kind::ImagePolicy, &key) => {
                        addr.do_send(SetEngine(engine.clone()));
                        self.resolvers.insert(key, (repo, addr));
                        kept += 1;
                        continue;
                    }
                    Some((_, addr)) => addr.do_send(Stop),
                    None => {}
                }
                let addr = PolicyResolver {
                    engine: engine.clone(),
                    key: key.clone(),
                    supervisor: me.clone(),
                }
                .start();
                // A new or changed policy resolves from the stored tags at once.
                if old.is_some() {
                    addr.do_send(Tick(false));
                }
                self.resolvers.insert(key, (repo, addr));
                started += 1;
            }
        }
        for (_, (_, addr)) in old_resolvers {
            addr.do_send(Stop);
        }
        let mut old_writers = std::mem::take(&mut self.writers);
        for (writer, namespaces) in engine.writers() {
            let interval = writer_interval(&config, &namespaces);
            match old_writers.remove(&writer) {
                Some((_, (old_interval, addr))) if old_interval == interval => {
                    addr.do_send(SetEngine(engine.clone()));
                    self.writers.insert(writer, (namespaces, (interval, addr)));
                    kept += 1;
                    continue;
                }
                Some((_, (_, addr))) => addr.do_send(Stop),
                None => {}
            }
            let addr = GitWriter {
                engine: engine.clone(),
                key: writer.clone(),
                interval,
                pending: None,
            }
            .start();
            self.writers.insert(writer, (namespaces, (interval, addr)));
            started += 1;
        }
        for (_, (_, (_, addr))) in old_writers {
            addr.do_send(Stop);
        }
        tracing::debug!(kept, started, "actors after load");
        let routes = engine.receiver_routes();
        engine.check_alerts();
        let receivers = routes.len();
        self.receivers.replace(Routes {
            by_path: routes.into_iter().map(|r| (r.path.clone(), r)).collect(),
            config: config.clone(),
            supervisor: me.recipient(),
        });
        // Configuration errors, unplannable automations and receivers, before any child runs.
        log_reports(&engine);
        tracing::info!(
            receivers,
            repositories = self.scanners.len(),
            policies = self.resolvers.len(),
            writers = self.writers.len(),
            errors = config.errors.len(),
            "configuration loaded"
        );
        crate::sd_notify::notify(&format!(
            "READY=1\nSTATUS={} repositories, {} policies, {} writers, {} configuration errors",
            self.scanners.len(),
            self.resolvers.len(),
            self.writers.len(),
            config.errors.len()
        ));
        self.engine = Some(engine);
        self.api.set_control(config, ctx.address().recipient());
        self.api.ready.store(true, Ordering::Relaxed);
    }
}

/// The shortest interval among the automations of these namespaces (default 1 minute).
fn writer_interval(config: &Config, namespaces: &[String]) -> Duration {
    config
        .all::<ImageUpdateAutomation>()
        .filter(|a| namespaces.contains(&a.metadata.namespace))
        .map(|a| a.spec.interval.as_duration())
        .min()
        .unwrap_or(Duration::from_secs(60))
        .max(Duration::from_millis(500))
}

fn collect(dir: &std::path::Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        // metadata() follows links, so a swapped `..data` changes what the visible names show.
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if !e.file_name().to_string_lossy().starts_with('.') {
                collect(&path, out);
            }
        } else {
            let modified = meta
                .modified()
                .ok()
                .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            out.push(format!("{} {} {modified}", path.display(), meta.len()));
        }
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.fingerprint = self.fingerprint();
        self.start_children(ctx);
        // The watchdog is fed from the actor system itself: a stuck system stops feeding it.
        if let Some(every) = crate::sd_notify::watchdog_interval() {
            ctx.run_interval(every, |_, _| {
                crate::sd_notify::notify("WATCHDOG=1");
            });
        }
        // Credentials are created on first use by a scan; give each new one its refresher.
        ctx.run_interval(Duration::from_secs(1), |this, _| {
            for (key, refresher) in this.keyring.all() {
                this.refreshers
                    .entry(key.clone())
                    .or_insert_with(|| CredentialRefresher { key, refresher }.start());
            }
        });
        // Changes are noticed by inotify at once and, as a safety net (network file systems,
        // missed events), by comparing the directory's fingerprint every `reload_every`.
        let me = ctx.address();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.is_ok() {
                me.do_send(ConfigTouched);
            }
        })
        .and_then(|mut w| {
            use notify::Watcher as _;
            w.watch(&self.settings.config_dir, notify::RecursiveMode::Recursive)
                .map(|()| w)
        });
        match watcher {
            Ok(w) => self.watcher = Some(w),
            Err(e) => {
                tracing::warn!(dir = %self.settings.config_dir.display(), error = %e, "cannot watch the configuration directory; polling only")
            }
        }
        ctx.run_interval(self.settings.reload_every, |this, ctx| {
            this.reload_if_changed(ctx)
        });
    }
}

/// Something in the configuration directory changed (inotify).
#[derive(Message)]
#[rtype(result = "()")]
struct ConfigTouched;

/// How long to let a burst of file events settle before reloading.
const RELOAD_DEBOUNCE: Duration = Duration::from_millis(300);

impl Handler<ConfigTouched> for Supervisor {
    type Result = ();
    fn handle(&mut self, _: ConfigTouched, ctx: &mut Context<Self>) {
        if !self.reload_pending {
            self.reload_pending = true;
            ctx.run_later(RELOAD_DEBOUNCE, |this, ctx| {
                this.reload_pending = false;
                this.reload_if_changed(ctx);
            });
        }
    }
}

impl Supervisor {
    fn reload_if_changed(&mut self, ctx: &mut Context<Self>) {
        let now = self.fingerprint();
        if now != self.fingerprint {
            self.fingerprint = now;
            tracing::info!(dir = %self.settings.config_dir.display(), "configuration changed, reloading");
            self.start_children(ctx);
        }
    }
}

impl Handler<TagsScanned> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: TagsScanned, _: &mut Context<Self>) {
        for (repo, addr) in self.resolvers.values() {
            if *repo == msg.0 {
                addr.do_send(Tick(msg.1));
            }
        }
    }
}

impl Handler<ReconcileNow> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: ReconcileNow, _: &mut Context<Self>) {
        for (kind, namespace, name) in msg.0 {
            let key = (namespace, name);
            match kind {
                Kind::ImageRepository => {
                    if let Some(a) = self.scanners.get(&key) {
                        a.do_send(Tick(true));
                    }
                }
                Kind::ImagePolicy => {
                    if let Some((_, a)) = self.resolvers.get(&key) {
                        a.do_send(Tick(true));
                    }
                }
                // An automation or its Git source: the writers of that namespace run a round
                // (which fetches first).
                _ => {
                    for (namespaces, (_, a)) in self.writers.values() {
                        if namespaces.contains(&key.0) {
                            a.do_send(Tick(true));
                        }
                    }
                }
            }
        }
    }
}

impl Handler<LatestChanged> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: LatestChanged, _: &mut Context<Self>) {
        for (namespaces, (_, addr)) in self.writers.values() {
            if namespaces.contains(&msg.0) {
                addr.do_send(Tick(msg.1));
            }
        }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Stop;

/// A reload kept this actor: it works with the new configuration from now on.
#[derive(Message)]
#[rtype(result = "()")]
struct SetEngine(Arc<Engine>);

/// What every child of the supervisor answers alike: Stop, and SetEngine after a reload.
macro_rules! child_actor {
    ($($actor:ty),*) => {$(
        impl Handler<Stop> for $actor {
            type Result = ();
            fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
                ctx.stop();
            }
        }
        impl Handler<SetEngine> for $actor {
            type Result = ();
            fn handle(&mut self, msg: SetEngine, _: &mut Context<Self>) {
                self.engine = msg.0;
            }
        }
    )*};
}
child_actor!(RegistryScanner, PolicyResolver, GitWriter);

/// Scans one ImageRepository on its interval.
struct RegistryScanner {
    engine: Arc<Engine>,
    key: Key,
    interval: Duration,
    supervisor: Addr<Supervisor>,
    /// Consecutive failed scans, and the early retry they scheduled.
    failures: u32,
    retry: Option<SpawnHandle>,
}

impl Actor for RegistryScanner {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        let due = self
            .engine
            .config()
            .find::<ImageRepository>(&self.key.0, &self.key.1)
            .and_then(|r| self.engine.scan_due_in(r, crate::engine::now()));
        match due {
            // Scanned recently (before a restart or reload): the policies resolve from the
            // stored tags now, the scan waits for its turn.
            Some(wait) if !wait.is_zero() => {
                tracing::info!(kind = "ImageRepository", namespace = %self.key.0, name = %self.key.1, next_scan_in_seconds = wait.as_secs(), "resuming from the stored scan");
                self.supervisor
                    .do_send(TagsScanned(self.key.clone(), false));
                ctx.run_later(wait, |this, ctx| {
                    ctx.notify(Tick(false));
                    ctx.run_interval(this.interval, |_, ctx| ctx.notify(Tick(false)));
                });
            }
            _ => {
                ctx.notify(Tick(false));
                ctx.run_interval(self.interval, |_, ctx| ctx.notify(Tick(false)));
            }
        }
    }
}

impl Handler<Tick> for RegistryScanner {
    type Result = ResponseActFuture<Self, ()>;
    fn handle(&mut self, msg: Tick, _: &mut Context<Self>) -> Self::Result {
        let engine = self.engine.clone();
        let key = self.key.clone();
        let supervisor = self.supervisor.clone();
        Box::pin(
            async move {
                let Some(repo) = engine.config().find::<ImageRepository>(&key.0, &key.1) else {
                    return true;
                };
                let before = engine.stored_revision(repo);
                // A panic in a scan (a bug) must not take the daemon down: it counts as a
                // failed scan and is retried with back-off like one.
                let ready = guarded(&key, engine.reconcile_repository(repo)).await;
                log_reports(&engine);
                let after = engine.stored_revision(repo);
                // A first scan after a restart also wakes the policies (their latest refs live
                // in memory).
                if after.is_some() && (after != before || engine.latest_of_repo_is_empty(&key)) {
                    supervisor.do_send(TagsScanned(key, msg.0));
                }
                ready
            }
            .into_actor(self)
            .map(|ready, this, ctx| {
                if let Some(h) = this.retry.take() {
                    ctx.cancel_future(h);
                }
                if ready {
                    this.failures = 0;
                    return;
                }
                // Failed: try again sooner than the interval, backing off (Flux requeues
                // failures the same way).
                this.failures += 1;
                let wait = failure_backoff(this.failures).min(this.interval);
                this.retry = Some(ctx.run_later(wait, |this, ctx| {
                    this.retry = None;
                    ctx.notify(Tick(false));
                }));
            }),
        )
    }
}

/// Waits after the n-th consecutive failure: 5 s doubling, at most 5 minutes.
fn failure_backoff(failures: u32) -> Duration {
    Duration::from_secs(5)
        .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1).min(16)))
        .min(Duration::from_secs(300))
}

/// Runs one reconciliation, turning a panic into a failure (logged with the object).
async fn guarded(key: &Key, work: impl std::future::Future<Output = bool>) -> bool {
    use futures_util::FutureExt as _;
    match std::panic::AssertUnwindSafe(work).catch_unwind().await {
        Ok(ready) => ready,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(namespace = %key.0, name = %key.1, panic = %what, "reconciliation panicked; retrying with back-off");
            false
        }
    }
}

/// Resolves one ImagePolicy when its repository's tags change.
struct PolicyResolver {
    engine: Arc<Engine>,
    key: Key,
    supervisor: Addr<Supervisor>,
}

impl Actor for PolicyResolver {
    type Context = Context<Self>;
}

impl Handler<Tick> for PolicyResolver {
    type Result = ResponseActFuture<Self, ()>;
    fn handle(&mut self, msg: Tick, _: &mut Context<Self>) -> Self::Result {
        let engine = self.engine.clone();
        let key = self.key.clone();
        let supervisor = self.supervisor.clone();
        Box::pin(
            async move {
                let Some(policy) = engine.config().find::<ImagePolicy>(&key.0, &key.1) else {
                    return;
                };
                let before = engine.latest_of(&key.0, &key.1);
                engine.reconcile_policy(policy).await;
                log_reports(&engine);
                if engine.latest_of(&key.0, &key.1) != before {
                    supervisor.do_send(LatestChanged(key.0, msg.0));
                }
            }
            .into_actor(self),
        )
    }
}

/// Keeps one cloud credential fresh: sleeps until its refresh (or retry) is due, then renews
/// it, so that scans find a valid token without waiting for the cloud.
struct CredentialRefresher {
    key: String,
    refresher: Arc<tagpilot_providers::Refresher>,
}

#[derive(Message)]
#[rtype(result = "()")]
struct Renew;

impl Actor for CredentialRefresher {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.notify(Renew);
    }
}

impl Handler<Renew> for CredentialRefresher {
    type Result = ResponseActFuture<Self, ()>;
    fn handle(&mut self, _: Renew, _: &mut Context<Self>) -> Self::Result {
        let refresher = self.refresher.clone();
        let key = self.key.clone();
        Box::pin(
            async move {
                let wait = refresher
                    .next_due()
                    .await
                    .and_then(|t| t.duration_since(std::time::SystemTime::now()).ok())
                    .unwrap_or_default();
                tokio::time::sleep(wait.max(Duration::from_secs(1))).await;
                if let Err(e) = refresher.get().await {
                    tracing::warn!(credential = %key, error = %e, "credential refresh failed");
                }
            }
            .into_actor(self)
            .map(|(), _, ctx| ctx.notify(Renew)),
        )
    }
}

/// Runs the Git rounds of one remote and push branch.
struct GitWriter {
    engine: Arc<Engine>,
    key: Key,
    interval: Duration,
    /// The debounce timer of a pending round.
    pending: Option<SpawnHandle>,
}

/// Git rounds running now; shutdown waits for them so that a round completes rather than
/// stopping between commit and push.
static ROUNDS_IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
/// Set on SIGTERM/SIGINT: no new round starts.
static SHUTTING_DOWN: AtomicBool = AtomicBool::new(false);
/// How long shutdown waits for rounds in flight.
const ROUND_GRACE: Duration = Duration::from_secs(60);

struct InFlight;

impl Drop for InFlight {
    fn drop(&mut self) {
        ROUNDS_IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How long a writer waits after a wake-up, so that many policies changing together make one push.
const DEBOUNCE: Duration = Duration::from_secs(1);
/// The same after a webhook: the policies it woke resolve within milliseconds of each other.
const URGENT_DEBOUNCE: Duration = Duration::from_millis(50);

#[derive(Message)]
#[rtype(result = "()")]
struct RunRound;

impl Actor for GitWriter {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.interval, |_, ctx| ctx.notify(RunRound));
    }
}

impl Handler<Tick> for GitWriter {
    type Result = ();
    fn handle(&mut self, msg: Tick, ctx: &mut Context<Self>) {
        if let Some(h) = self.pending.take() {
            ctx.cancel_future(h);
        }
        let wait = if msg.0 { URGENT_DEBOUNCE } else { DEBOUNCE };
        self.pending = Some(ctx.run_later(wait, |this, ctx| {
            this.pending = None;
            ctx.notify(RunRound);
        }));
    }
}

impl Handler<RunRound> for GitWriter {
    type Result = ResponseActFuture<Self, ()>;
    fn handle(&mut self, _: RunRound, _: &mut Context<Self>) -> Self::Result {
        let engine = self.engine.clone();
        let key = self.key.clone();
        Box::pin(
            async move {
                if SHUTTING_DOWN.load(Ordering::SeqCst) {
                    return;
                }
                let e = engine.clone();
                let k = key.clone();
                ROUNDS_IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
                // libgit2 blocks: off the executor. The guard counts the round out even if it
                // panics, so shutdown never waits for a round that is gone.
                let done = tokio::task::spawn_blocking(move || {
                    let _in_flight = InFlight;
                    e.automations_for(Some(&k))
                })
                .await;
                if let Err(err) = done {
                    tracing::error!(remote = %tagpilot_git::redact(&key.0), branch = %key.1, error = %err, "git round did not complete");
                }
                log_reports(&engine);
                // Deliveries retry for up to a minute: they run beside the next rounds.
                let notes = engine.notifications(&engine.take_events());
                if !notes.is_empty() {
                    let e = engine.clone();
                    actix::spawn(async move {
                        crate::alerts::deliver_all(&e, notes, tagpilot_notifier::Retry::default()).await;
                        log_reports(&e);
                    });
                }
            }
            .into_actor(self),
        )
    }
}

impl Engine {
    /// Whether a policy reading `repo` has not resolved yet (after a start or a reload).
    fn latest_of_repo_is_empty(&self, repo: &Key) -> bool {
        self.policies()
            .into_iter()
            .filter(|p| {
                let r = &p.spec.image_repository_ref;
                r.name == repo.1
                    && r.namespace.as_deref().unwrap_or(&p.metadata.namespace) == repo.0
            })
            .any(|p| {
                self.latest_of(&p.metadata.namespace, &p.metadata.name)
                    .is_none()
            })
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(settings: Settings) -> std::io::Result<()> {
    let store = Store::open(&settings.state_dir.join("tagpilot.redb"))
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let system = System::new();
    let store = Arc::new(store);
    let mut api_state =
        crate::api::ApiState::new(store.clone(), Arc::new(Gates::new(settings.limits)));
    api_state.control_token = settings.api_token.clone();
    if let Some(addr) = &settings.api_address {
        let loopback =
            addr.starts_with("127.") || addr.starts_with("[::1]") || addr.starts_with("localhost:");
        if !loopback && settings.api_token.is_none() {
            tracing::warn!(address = %addr, "the API listens beyond loopback without --api-token-file: anyone who reaches it can suspend, resume and reconcile");
        }
    }
    let state = Arc::new(api_state);
    let api = settings.api_address.clone();
    let hooks = settings.webhook_address.clone();
    let receivers = Arc::new(ReceiverState::new(crate::receiver::GoogleKeys::new(
        settings.google_jwks_url.clone(),
    )));
    let tls = match &settings.webhook_tls {
        Some((cert, key)) => Some(
            crate::receiver::tls_config(cert, key)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
        ),
        None => None,
    };
    system.block_on(async move {
        let shutdown = shutdown_signal();
        let hook_server = match &hooks {
            Some(addr) => Some(spawn_server(
                crate::receiver::start(addr, receivers.clone(), tls)?,
                "webhook receiver",
                addr,
            )),
            None => None,
        };
        let server = match &api {
            Some(addr) => Some(spawn_server(
                crate::api::start(addr, state.clone())?,
                "API",
                addr,
            )),
            None => None,
        };
        let _supervisor = Supervisor::new(settings, store, state, receivers).start();
        shutdown.await;
        crate::sd_notify::notify("STOPPING=1");
        tracing::info!("shutting down");
        SHUTTING_DOWN.store(true, Ordering::SeqCst);
        for h in [server, hook_server].into_iter().flatten() {
            h.stop(true).await;
        }
        let deadline = std::time::Instant::now() + ROUND_GRACE;
        let mut told = false;
        while ROUNDS_IN_FLIGHT.load(Ordering::SeqCst) > 0 && std::time::Instant::now() < deadline {
            if !told {
                tracing::info!(
                    rounds = ROUNDS_IN_FLIGHT.load(Ordering::SeqCst),
                    "waiting for git rounds to finish"
                );
                told = true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        System::current().stop();
        Ok::<(), std::io::Error>(())
    })?;
    system.run()
}

/// Runs an HTTP server on the actix system and returns its handle.
fn spawn_server(
    server: actix_web::dev::Server,
    what: &'static str,
    address: &str,
) -> actix_web::dev::ServerHandle {
    tracing::info!(server = what, address, "listening");
    let handle = server.handle();
    actix::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(server = what, error = %e, "server stopped");
        }
    });
    handle
}

/// Registers SIGTERM/SIGINT handlers now (first thing at start, so an early signal is a clean
/// stop too) and returns what resolves when one arrives.
fn shutdown_signal() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            return Box::pin(async move {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            });
        }
    }
    Box::pin(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_backoff_doubles_to_five_minutes() {
        let secs: Vec<u64> = (1..=9).map(|n| failure_backoff(n).as_secs()).collect();
        assert_eq!(secs, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(failure_backoff(u32::MAX).as_secs(), 300);
    }

    #[actix::test]
    async fn a_panicking_reconciliation_is_a_failure_not_a_crash() {
        let key = ("apps".to_owned(), "web".to_owned());
        assert!(guarded(&key, async { true }).await);
        let panicked = guarded(&key, async {
            let v: Vec<bool> = Vec::new();
            // An out-of-bounds index: the kind of bug a guard must survive.
            v[usize::from(v.is_empty())]
        })
        .await;
        assert!(!panicked);
    }
}

//! The daemon: actix actors that drive the [`Engine`] on intervals and on change. Every
//! decision is a call into the engine or tagpilot-reconcile; this module is wiring.
//!
//! - `Supervisor` (on the system arbiter) owns the children. The configuration and secrets
//!   directories are watched (inotify, debounced, plus a periodic fingerprint check that also
//!   sees a Kubernetes volume's `..data` swap); a change is loaded on a blocking thread (never
//!   on an actor's) and applied as a diff: unchanged actors keep running with the new engine,
//!   changed ones restart, removed ones stop.
//! - `RegistryScanner` (one per ImageRepository) scans on its interval, on webhooks and on
//!   request; one scan at a time, requests during a scan merging into one follow-up.
//! - `PolicyResolver` (one per ImagePolicy) resolves when its repository's tags change (and on
//!   its interval with `digestReflectionPolicy: Always`); a new latest ref wakes the Git
//!   workers whose automations select the policy.
//! - `GitWorker` (one per remote URL, for the life of the process) is the only owner of that
//!   URL's warm clone: the rounds of every branch and automation on it run one at a time on the
//!   `GitExecutor` sync arbiter; wake-ups during a round merge into one follow-up round.
//!
//! Scanners, resolvers and workers are spread over one arbiter per core under
//! `actix::Supervisor`: a panicking reconciliation stops its actor, which is restarted with
//! back-off and carries on from the store.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use tagpilot_api::{DigestReflectionPolicy, ImagePolicy, ImageRepository, Kind};
use tagpilot_reconcile::backoff;
use tagpilot_reconcile::schedule::{Batch, Coalescer, Request, Throttle, Urgent as UrgentRequest};
use tagpilot_reconcile::writers::WriterIndex;
use tagpilot_registry::{Gates, Limits};
use tagpilot_store::Store;

use crate::engine::{lock, Engine, Shared};
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
    /// Manifests from Git (the local directory, if any, is an overlay).
    pub source: Option<crate::source::SourceSetting>,
}

/// The Git source between loads: what was fetched last, and when the next fetch is due.
#[derive(Debug, Default)]
struct SourceCache {
    fetched: Option<Arc<crate::source::Fetched>>,
    interval: Option<Duration>,
    last_attempt: Option<std::time::Instant>,
    /// A webhook or reconcile request asked for a fetch now.
    force: bool,
}

type Key = (String, String);

fn log_reports(engine: &Engine) {
    for r in engine.take_reports() {
        let kind = r.kind.map_or("config", Kind::as_str);
        // `status`, not `message`: JSON logs already use `message` for the event itself.
        if r.ready {
            tracing::info!(kind, namespace = %r.namespace, name = %r.name, status = %r.message.lines().next().unwrap_or(""), "reconciled");
        } else {
            tracing::warn!(kind, namespace = %r.namespace, name = %r.name, status = %r.message, "reconciliation failed");
        }
    }
}

/// Whether a wake-up comes from a webhook or a person: then the worker skips most of its
/// debounce.
type Urgent = bool;

/// A request to run (scan, resolve, or a Git round after the debounce).
#[derive(Message)]
#[rtype(result = "()")]
struct Tick(Urgent);

#[derive(Message)]
#[rtype(result = "()")]
struct TagsScanned(Key, Urgent);

/// A policy's latest ref changed.
#[derive(Message)]
#[rtype(result = "()")]
struct LatestChanged(Key, Urgent);

/// A configuration loaded off the actor thread, with everything that reads secrets or unlocks
/// keys already done: automations planned, receiver routes made, alerts checked.
struct Prepared {
    fingerprint: String,
    /// None: the manifests did not change (a commit elsewhere in the source), nothing to apply.
    engine: Option<Arc<Engine>>,
    routes: Vec<crate::receiver::Route>,
}

/// Stop the daemon: no new Git round starts; resolves when the rounds in flight ended (or the
/// grace period passed).
#[derive(Message)]
#[rtype(result = "()")]
struct Shutdown;

/// The root actor.
struct Supervisor {
    settings: Settings,
    store: Arc<Store>,
    api: Arc<crate::api::ApiState>,
    receivers: Arc<ReceiverState>,
    gates: Arc<Gates>,
    /// What every engine shares (credentials, scan slots, counters, requests), kept across
    /// reloads; each cloud credential gets a `CredentialRefresher`.
    shared: Arc<Shared>,
    refreshers: BTreeMap<String, Addr<CredentialRefresher>>,
    /// Watches the configuration and secrets directories; kept alive with the supervisor.
    watcher: Option<notify::RecommendedWatcher>,
    /// One load at a time; changes noticed meanwhile make one more.
    loads: Coalescer,
    /// A change check already scheduled (events come in bursts).
    reload_pending: bool,
    engine: Option<Arc<Engine>>,
    fingerprint: Option<String>,
    scanners: BTreeMap<Key, Addr<RegistryScanner>>,
    resolvers: BTreeMap<Key, (Key, Addr<PolicyResolver>)>,
    /// Which resolvers a repository's scan wakes (built with each load).
    wake: WakeIndex,
    /// One worker per remote URL, never stopped: it alone owns that URL's warm clone.
    workers: BTreeMap<String, Addr<GitWorker>>,
    index: WriterIndex,
    source: Arc<Mutex<SourceCache>>,
    executors: Executors,
    arbiters: Vec<ArbiterHandle>,
    next_arbiter: usize,
    shutting_down: bool,
}

impl Supervisor {
    fn new(
        settings: Settings,
        store: Arc<Store>,
        api: Arc<crate::api::ApiState>,
        receivers: Arc<ReceiverState>,
    ) -> Self {
        let mut shared = Shared::new(settings.concurrency);
        shared.keyring = api.keyring.clone();
        shared.metrics = api.metrics.clone();
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        // Git rounds of different remotes run side by side; each remote's one at a time.
        // Rounds a webhook or a reconcile request asked for have threads of their own, so that
        // they never queue behind the rounds of a first pass over every remote.
        let executors = Executors {
            scheduled: SyncArbiter::start(cores.clamp(2, 8), || GitExecutor).recipient(),
            urgent: SyncArbiter::start(URGENT_ROUNDS, || GitExecutor).recipient(),
        };
        Supervisor {
            gates: api.gates.clone(),
            shared: Arc::new(shared),
            settings,
            store,
            api,
            receivers,
            refreshers: BTreeMap::new(),
            watcher: None,
            loads: Coalescer::new(),
            reload_pending: false,
            engine: None,
            fingerprint: None,
            scanners: BTreeMap::new(),
            resolvers: BTreeMap::new(),
            wake: WakeIndex::default(),
            workers: BTreeMap::new(),
            index: WriterIndex::default(),
            source: Arc::default(),
            executors,
            arbiters: (0..cores.clamp(1, 16))
                .map(|_| Arbiter::new().handle())
                .collect(),
            next_arbiter: 0,
            shutting_down: false,
        }
    }

    /// The arbiter for the next child (round robin over the cores).
    fn arbiter(&mut self) -> ArbiterHandle {
        self.next_arbiter = (self.next_arbiter + 1) % self.arbiters.len();
        self.arbiters[self.next_arbiter].clone()
    }

    /// Checks the directories for a change and, when there is one, loads it on a blocking
    /// thread: parsing a large or hostile file never holds up an actor or the watchdog.
    fn reload(&mut self, ctx: &mut Context<Self>) {
        if self.shutting_down || self.loads.request(false) == Request::Merged {
            return;
        }
        self.load(ctx);
    }

    fn load(&mut self, ctx: &mut Context<Self>) {
        let settings = self.settings.clone();
        let known = self.fingerprint.clone();
        let old = self.engine.clone();
        let store = self.store.clone();
        let gates = self.gates.clone();
        let shared = self.shared.clone();
        let source = self.source.clone();
        let work = tokio::task::spawn_blocking(move || {
            let (fetched, source_error) = match &settings.source {
                Some(setting) => fetch_if_due(setting, &settings, &source, &shared),
                None => (None, None),
            };
            let mut fingerprint = fingerprint(&settings);
            if let Some(f) = &fetched {
                fingerprint.push_str("\n--source--\n");
                fingerprint.push_str(&f.content_key());
            }
            if known.as_ref() == Some(&fingerprint) {
                return None;
            }
            if known.is_some() {
                tracing::info!(dir = %settings.config_dir.display(), revision = fetched.as_ref().map_or("", |f| f.revision.as_str()), "configuration changed, reloading");
            }
            let mut loaded = crate::source::load(
                &settings.config_dir,
                settings.secrets_dir.as_deref(),
                fetched.as_deref(),
            );
            if let Some(e) = source_error {
                loaded.errors.push(tagpilot_api::LoadError {
                    source: tagpilot_api::Source {
                        file: "tagpilot.toml [source]".into(),
                        document: 0,
                    },
                    kind: None,
                    namespace: None,
                    name: None,
                    field: None,
                    message: e,
                });
            }
            if let Some(old) = &old {
                for (kind, namespace, name) in loaded.keep_last_good(old.config()) {
                    tracing::warn!(kind = %kind, %namespace, %name, "invalid edit: the last good version keeps running");
                }
                let o = old.config();
                // A commit that changed no manifest (tagpilot's own image updates): the
                // running configuration stays as it is, no actor is touched.
                if loaded.objects() == o.objects()
                    && loaded.errors == o.errors
                    && loaded.warnings == o.warnings
                    && settings.source.is_some()
                {
                    tracing::info!(
                        revision = loaded.source_revision.as_deref().unwrap_or(""),
                        "config source: no manifest changed"
                    );
                    return Some(Prepared {
                        fingerprint,
                        engine: None,
                        routes: Vec::new(),
                    });
                }
            }
            let engine = Engine::with_shared(
                Arc::new(loaded),
                settings.secrets_dir.clone(),
                store,
                gates,
                settings.state_dir.join("git"),
                shared,
            );
            if let Some(old) = &old {
                engine.clear_fixed_config_errors(old);
            }
            engine.check_automations();
            let routes = engine.receiver_routes();
            engine.check_alerts();
            Some(Prepared {
                fingerprint,
                engine: Some(Arc::new(engine)),
                routes,
            })
        });
        ctx.spawn(work.into_actor(self).map(|done, this, ctx| {
            match done {
                Ok(Some(p)) => {
                    this.fingerprint = Some(p.fingerprint);
                    if let Some(engine) = p.engine {
                        this.apply(engine, p.routes, ctx);
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "loading the configuration did not complete"),
            }
            if this.loads.finish().is_some() && !this.shutting_down {
                this.load(ctx);
            }
        }));
    }

    /// Applies a loaded configuration as a diff: actors whose object did not change keep
    /// running (they get the new engine), changed ones restart, removed ones stop, new ones
    /// start. Git workers are kept for the life of the process.
    fn apply(
        &mut self,
        engine: Arc<Engine>,
        routes: Vec<crate::receiver::Route>,
        ctx: &mut Context<Self>,
    ) {
        let config = engine.config_arc();
        let old = self.engine.take();
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
        for r in config.all::<ImageRepository>() {
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
            let scanner = RegistryScanner {
                engine: engine.clone(),
                key: key.clone(),
                interval: r
                    .spec
                    .interval
                    .as_duration()
                    .max(Duration::from_millis(500)),
                supervisor: me.clone(),
                runs: Coalescer::new(),
                failures: 0,
                retry: None,
                restarts: 0,
                stopped: false,
                urgent: Throttle::new(BURST_WINDOW),
            };
            let addr = actix::Supervisor::start_in_arbiter(&self.arbiter(), move |_| scanner);
            self.scanners.insert(key, addr);
            started += 1;
        }
        for (_, addr) in old_scanners {
            addr.do_send(Stop);
        }
        let mut old_resolvers = std::mem::take(&mut self.resolvers);
        for p in config.all::<ImagePolicy>() {
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
            // Always: the digest is checked again every interval (Flux's default 10m).
            let every =
                (p.spec.digest_reflection_policy == DigestReflectionPolicy::Always).then(|| {
                    p.spec
                        .interval
                        .as_ref()
                        .map_or(Duration::from_secs(600), |i| i.as_duration())
                        .max(Duration::from_secs(1))
                });
            let resolver = PolicyResolver {
                engine: engine.clone(),
                key: key.clone(),
                supervisor: me.clone(),
                runs: Coalescer::new(),
                every,
                restarts: 0,
                stopped: false,
                // A new or changed policy resolves from the stored tags at once.
                resolve_at_start: old.is_some(),
                expiry: None,
            };
            let addr = actix::Supervisor::start_in_arbiter(&self.arbiter(), move |_| resolver);
            self.resolvers.insert(key, (repo, addr));
            started += 1;
        }
        for (_, (_, addr)) in old_resolvers {
            addr.do_send(Stop);
        }
        self.wake = WakeIndex::build(&config, &self.resolvers);
        self.index = WriterIndex::build(&config);
        for (url, addr) in &self.workers {
            let worker = self.index.workers.get(url);
            addr.do_send(Configure(engine.clone(), worker.map(|w| w.interval)));
            // A new or edited automation runs a round soon (Flux reconciles on a new
            // generation), whatever its interval.
            let edited = worker.is_some_and(|w| {
                w.automations
                    .iter()
                    .any(|a| !unchanged(Kind::ImageUpdateAutomation, a))
            });
            if edited {
                addr.do_send(Tick(false));
            }
        }
        let new_urls: Vec<(String, Duration)> = self
            .index
            .workers
            .values()
            .filter(|w| !self.workers.contains_key(&w.url))
            .map(|w| (w.url.clone(), w.interval))
            .collect();
        for (url, interval) in new_urls {
            let worker = GitWorker {
                engine: engine.clone(),
                url: url.clone(),
                interval: None,
                timer: None,
                debounce: None,
                window_timer: None,
                runs: Coalescer::new(),
                batch: Batch::new(),
                executors: self.executors.clone(),
                draining: false,
                drained: Vec::new(),
            };
            let addr = actix::Supervisor::start_in_arbiter(&self.arbiter(), move |_| worker);
            addr.do_send(Configure(engine.clone(), Some(interval)));
            // A first round at start, as Flux reconciles every object when it starts: a latest
            // ref resolved (and stored) just before a crash is applied now, not an interval
            // later. A round with nothing to change commits nothing.
            addr.do_send(Tick(false));
            self.workers.insert(url, addr);
            started += 1;
        }
        tracing::debug!(kept, started, "actors after load");
        deliver_events(&engine);
        let receivers = routes.len();
        self.receivers.replace(Routes {
            by_path: routes.into_iter().map(|r| (r.path.clone(), r)).collect(),
            config: config.clone(),
            supervisor: me.clone().recipient(),
        });
        // Configuration errors, unplannable automations and receivers, before any child runs.
        log_reports(&engine);
        let writers = self.index.workers.len();
        tracing::info!(
            receivers,
            repositories = self.scanners.len(),
            policies = self.resolvers.len(),
            remotes = writers,
            errors = config.errors.len(),
            "configuration loaded"
        );
        crate::sd_notify::notify(&format!(
            "READY=1\nSTATUS={} repositories, {} policies, {} remotes, {} configuration errors",
            self.scanners.len(),
            self.resolvers.len(),
            writers,
            config.errors.len()
        ));
        self.engine = Some(engine);
        self.api.set_control(config, me.recipient());
        self.api.ready.store(true, Ordering::Relaxed);
    }
}

/// Which policy resolvers a repository's scan wakes: those of every repository of the same
/// canonical image, since they share one stored tag list (news from one scan is news for all),
/// or of that repository alone when its image does not parse. An index, because the
/// supervisor answers every scan: a walk over every resolver per scan is quadratic in the
/// configuration (at 10,000 policies it kept the supervisor busy and its mailbox long).
#[derive(Default)]
struct WakeIndex {
    group_of: std::collections::HashMap<Key, WakeGroup>,
    resolvers: std::collections::HashMap<WakeGroup, Vec<Addr<PolicyResolver>>>,
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum WakeGroup {
    Image(String),
    Repository(Key),
}

impl WakeIndex {
    fn build(
        config: &tagpilot_api::Config,
        resolvers: &BTreeMap<Key, (Key, Addr<PolicyResolver>)>,
    ) -> Self {
        let group_of: std::collections::HashMap<Key, WakeGroup> = config
            .all::<ImageRepository>()
            .filter_map(|r| {
                let image = tagpilot_registry::ImageName::parse(&r.spec.image).ok()?;
                let key = (r.metadata.namespace.clone(), r.metadata.name.clone());
                Some((key, WakeGroup::Image(image.canonical())))
            })
            .collect();
        let mut index = WakeIndex {
            group_of,
            resolvers: Default::default(),
        };
        for (repo, addr) in resolvers.values() {
            let group = index.group(repo);
            index.resolvers.entry(group).or_default().push(addr.clone());
        }
        index
    }

    fn group(&self, repo: &Key) -> WakeGroup {
        self.group_of
            .get(repo)
            .cloned()
            .unwrap_or_else(|| WakeGroup::Repository(repo.clone()))
    }

    fn resolvers_of(&self, repo: &Key) -> &[Addr<PolicyResolver>] {
        self.resolvers
            .get(&self.group(repo))
            .map_or(&[], Vec::as_slice)
    }
}

/// A cheap summary of the configuration and secrets directories' contents, to notice changes
/// (including Kubernetes volumes that swap a `..data` link).
/// Fetches the Git source when a fetch is due (its interval passed, or one was asked for);
/// else the last fetch serves. A failed fetch keeps the last good manifests and says why.
fn fetch_if_due(
    setting: &crate::source::SourceSetting,
    settings: &Settings,
    cache: &Mutex<SourceCache>,
    shared: &Shared,
) -> (Option<Arc<crate::source::Fetched>>, Option<String>) {
    let due = {
        let c = lock(cache);
        c.force
            || c.fetched.is_none()
            || c.last_attempt
                .is_none_or(|t| t.elapsed() >= c.interval.unwrap_or(Duration::from_secs(60)))
    };
    if !due {
        return (lock(cache).fetched.clone(), None);
    }
    let result = crate::source::fetch_setting(
        setting,
        &settings.config_dir,
        settings.secrets_dir.as_deref(),
        &settings.state_dir.join("git"),
        shared,
    );
    let mut c = lock(cache);
    c.force = false;
    c.last_attempt = Some(std::time::Instant::now());
    match result {
        Ok((spec, fetched)) => {
            c.interval = Some(spec.interval);
            if c.fetched
                .as_ref()
                .is_none_or(|f| f.revision != fetched.revision)
            {
                tracing::info!(revision = %fetched.revision, "config source fetched");
            }
            c.fetched = Some(Arc::new(fetched));
            (c.fetched.clone(), None)
        }
        Err(e) => {
            let running = c
                .fetched
                .as_ref()
                .map_or("nothing from it yet".to_owned(), |f| {
                    format!("running {}", f.revision)
                });
            let message = format!("{}; {running}", crate::format_chain(&e));
            tracing::warn!(error = %message, "config source cannot be fetched");
            (c.fetched.clone(), Some(message))
        }
    }
}

fn fingerprint(settings: &Settings) -> String {
    let mut entries = Vec::new();
    collect(&settings.config_dir, &mut entries);
    if let Some(dir) = &settings.secrets_dir {
        entries.push("--secrets--".to_owned());
        collect(dir, &mut entries);
    }
    entries.sort();
    entries.join("\n")
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
        self.reload(ctx);
        // The watchdog is fed from the actor system itself: a stuck system stops feeding it.
        if let Some(every) = crate::sd_notify::watchdog_interval() {
            ctx.run_interval(every, |_, _| {
                crate::sd_notify::notify("WATCHDOG=1");
            });
        }
        // Credentials are created on first use by a scan; give each new one its refresher.
        ctx.run_interval(Duration::from_secs(1), |this, _| {
            for (key, refresher) in this.shared.keyring.all() {
                this.refreshers
                    .entry(key.clone())
                    .or_insert_with(|| CredentialRefresher { key, refresher }.start());
            }
        });
        // Changes are noticed by inotify at once and, as a safety net (network file systems,
        // missed events, a directory that was away), by comparing the directories'
        // fingerprint every `reload_every`.
        let me = ctx.address();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.is_ok() {
                me.do_send(ConfigTouched);
            }
        })
        .and_then(|mut w| {
            use notify::Watcher as _;
            w.watch(&self.settings.config_dir, notify::RecursiveMode::Recursive)?;
            if let Some(dir) = &self.settings.secrets_dir {
                w.watch(dir, notify::RecursiveMode::Recursive)?;
            }
            Ok(w)
        });
        match watcher {
            Ok(w) => self.watcher = Some(w),
            // With a Git source the local overlay is optional.
            Err(_) if self.settings.source.is_some() && !self.settings.config_dir.exists() => {
                tracing::info!(dir = %self.settings.config_dir.display(), "no local overlay directory; the configuration comes from the Git source")
            }
            Err(e) => {
                tracing::warn!(dir = %self.settings.config_dir.display(), error = %e, "cannot watch the configuration directory; polling only")
            }
        }
        ctx.run_interval(self.settings.reload_every, |this, ctx| this.reload(ctx));
    }
}

/// Something in the configuration or secrets directory changed (inotify).
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
                this.reload(ctx);
            });
        }
    }
}

impl Handler<TagsScanned> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: TagsScanned, _: &mut Context<Self>) {
        for addr in self.wake.resolvers_of(&msg.0) {
            addr.do_send(Tick(msg.1));
        }
    }
}

impl Handler<ReconcileNow> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: ReconcileNow, ctx: &mut Context<Self>) {
        let ReconcileNow(targets, token) = msg;
        for (kind, namespace, name) in targets {
            if let (Some(token), Some(engine)) = (&token, &self.engine) {
                engine.request(kind, &namespace, &name, token);
            }
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
                // An automation runs in its remote's next round (which fetches first).
                Kind::ImageUpdateAutomation => {
                    if let Some(w) = self
                        .index
                        .of_automation(&key)
                        .and_then(|u| self.workers.get(u))
                    {
                        w.do_send(Tick(true));
                    }
                }
                // A Git source: the remotes of the automations that use it, and the
                // configuration when it comes from that GitRepository.
                _ => {
                    if self
                        .settings
                        .source
                        .as_ref()
                        .and_then(|s| s.repository())
                        .as_ref()
                        == Some(&key)
                    {
                        lock(&self.source).force = true;
                        ctx.notify(ConfigTouched);
                    }
                    for url in self.index.of_source(&key) {
                        if let Some(w) = self.workers.get(url) {
                            w.do_send(Tick(true));
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
        // Only the remotes whose automations select this policy.
        for url in self.index.woken_by_policy(&msg.0) {
            if let Some(w) = self.workers.get(url) {
                w.do_send(Tick(msg.1));
            }
        }
    }
}

impl Handler<Shutdown> for Supervisor {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, _: Shutdown, _: &mut Context<Self>) -> Self::Result {
        self.shutting_down = true;
        let waits: Vec<_> = self
            .workers
            .values()
            .map(|w| {
                let (tx, rx) = tokio::sync::oneshot::channel();
                w.do_send(Drain(tx));
                rx
            })
            .collect();
        Box::pin(async move {
            let all = futures_util::future::join_all(waits);
            if tokio::time::timeout(ROUND_GRACE, all).await.is_err() {
                tracing::warn!(
                    grace_seconds = ROUND_GRACE.as_secs(),
                    "git rounds still running at the end of the grace period"
                );
            }
        })
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Stop;

/// A reload kept this actor: it works with the new configuration from now on.
#[derive(Message)]
#[rtype(result = "()")]
struct SetEngine(Arc<Engine>);

/// What scanners and resolvers answer alike: Stop (for good: the supervisor dropped its
/// address, so actix's Supervisor does not restart it), and SetEngine after a reload.
macro_rules! child_actor {
    ($($actor:ty),*) => {$(
        impl Handler<Stop> for $actor {
            type Result = ();
            fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
                self.stopped = true;
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
child_actor!(RegistryScanner, PolicyResolver);

/// How long a restarted actor waits before it works again (its n-th restart).
fn restart_delay(restarts: u32) -> Duration {
    if restarts == 0 {
        Duration::ZERO
    } else {
        backoff::after_failures(restarts, Duration::from_secs(300))
    }
}

/// Scans one ImageRepository on its interval, on webhooks and on request: one scan at a time.
struct RegistryScanner {
    engine: Arc<Engine>,
    key: Key,
    interval: Duration,
    supervisor: Addr<Supervisor>,
    runs: Coalescer,
    /// Consecutive failed scans, and the early retry they scheduled.
    failures: u32,
    retry: Option<SpawnHandle>,
    restarts: u32,
    stopped: bool,
    /// Webhooks: the first of a burst scans at once, the rest of the window makes one more.
    urgent: Throttle<std::time::Instant, Duration>,
}

/// The window in which a repository's webhooks beyond the first make one scan together: a
/// burst (a CI retrying, many tags at once) arrives within milliseconds, while webhooks for
/// separate pushes are further apart than a scan and a round (~200 ms) and are not delayed.
const BURST_WINDOW: Duration = Duration::from_millis(250);

impl Actor for RegistryScanner {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.stopped {
            ctx.stop();
            return;
        }
        let due = self
            .engine
            .config()
            .find::<ImageRepository>(&self.key.0, &self.key.1)
            .and_then(|r| self.engine.scan_due_in(r, crate::engine::now()));
        let wait = match due {
            // Scanned recently (before a restart or reload): the policies resolve from the
            // stored tags now, the scan waits for its turn.
            Some(wait) if !wait.is_zero() => {
                tracing::info!(kind = "ImageRepository", namespace = %self.key.0, name = %self.key.1, next_scan_in_seconds = wait.as_secs(), "resuming from the stored scan");
                self.supervisor
                    .do_send(TagsScanned(self.key.clone(), false));
                wait
            }
            _ => restart_delay(self.restarts),
        };
        ctx.run_later(wait, |this, ctx| {
            ctx.notify(Tick(false));
            ctx.run_interval(this.interval, |_, ctx| ctx.notify(Tick(false)));
        });
    }
}

impl Supervised for RegistryScanner {
    fn restarting(&mut self, _: &mut Context<Self>) {
        // A new start from the store: nothing of the failed run is trusted.
        self.runs = Coalescer::new();
        self.retry = None;
        self.urgent.reset();
        self.restarts += 1;
    }
}

impl Handler<Tick> for RegistryScanner {
    type Result = ();
    fn handle(&mut self, msg: Tick, ctx: &mut Context<Self>) {
        // Webhooks come in bursts (a CI pushing many tags, retries): the first scans at once,
        // the rest of the burst makes one more scan, not one each.
        if msg.0 {
            let now = std::time::Instant::now();
            match self.urgent.request(now) {
                UrgentRequest::Now => {}
                UrgentRequest::At(at) => {
                    ctx.run_later(at.saturating_duration_since(now), |this, ctx| {
                        this.urgent.fire(std::time::Instant::now());
                        if this.runs.request(true) == Request::Start {
                            this.scan(true, ctx);
                        }
                    });
                    return;
                }
                UrgentRequest::Merged => return,
            }
        }
        if self.runs.request(msg.0) == Request::Start {
            self.scan(msg.0, ctx);
        }
    }
}

impl RegistryScanner {
    fn scan(&mut self, urgent: Urgent, ctx: &mut Context<Self>) {
        let engine = self.engine.clone();
        let key = self.key.clone();
        let supervisor = self.supervisor.clone();
        let work = async move {
            let Some(repo) = engine.config().find::<ImageRepository>(&key.0, &key.1) else {
                return Some(true);
            };
            let before = engine.stored_revision(repo);
            let ready = guarded(
                Kind::ImageRepository,
                &key,
                engine.reconcile_repository(repo, urgent),
            )
            .await?;
            log_reports(&engine);
            let after = engine.stored_revision(repo);
            // A first scan after a restart also wakes policies that have not resolved, and
            // every scan wakes those that compare digests (repushHold).
            if after.is_some() && (after != before || engine.resolves_after_any_scan(&key)) {
                supervisor.do_send(TagsScanned(key, urgent));
            }
            Some(ready)
        };
        ctx.spawn(work.into_actor(self).map(|ready, this, ctx| {
            let Some(ready) = ready else {
                // A panic: stop, and actix's Supervisor restarts this actor with back-off.
                ctx.stop();
                return;
            };
            if let Some(h) = this.retry.take() {
                ctx.cancel_future(h);
            }
            if ready {
                this.failures = 0;
                this.restarts = 0;
            } else {
                // Failed: try again sooner than the interval, backing off (Flux requeues
                // failures the same way).
                this.failures += 1;
                let wait = backoff::after_failures(this.failures, this.interval);
                this.retry = Some(ctx.run_later(wait, |this, ctx| {
                    this.retry = None;
                    ctx.notify(Tick(false));
                }));
            }
            if let Some(urgent) = this.runs.finish() {
                this.scan(urgent, ctx);
            }
        }));
    }
}

/// Runs one reconciliation; a panic (a bug) is logged with the object and becomes None.
async fn guarded<T>(
    kind: Kind,
    key: &Key,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    use futures_util::FutureExt as _;
    match std::panic::AssertUnwindSafe(work).catch_unwind().await {
        Ok(v) => Some(v),
        Err(panic) => {
            tracing::error!(kind = %kind, namespace = %key.0, name = %key.1, panic = %panic_text(&*panic), "reconciliation panicked; restarting the actor with back-off");
            None
        }
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

/// Resolves one ImagePolicy when its repository's tags change, on request, and every interval
/// with `digestReflectionPolicy: Always`: one resolution at a time.
struct PolicyResolver {
    engine: Arc<Engine>,
    key: Key,
    supervisor: Addr<Supervisor>,
    runs: Coalescer,
    every: Option<Duration>,
    restarts: u32,
    stopped: bool,
    resolve_at_start: bool,
    /// A resolution when the first time-bound hold (minAge, repushHold) ends.
    expiry: Option<SpawnHandle>,
}

impl Actor for PolicyResolver {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.stopped {
            ctx.stop();
            return;
        }
        if self.resolve_at_start || self.restarts > 0 {
            ctx.run_later(restart_delay(self.restarts), |_, ctx| {
                ctx.notify(Tick(false))
            });
        }
        if let Some(every) = self.every {
            ctx.run_interval(every, |_, ctx| ctx.notify(Tick(false)));
        }
    }
}

impl Supervised for PolicyResolver {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.runs = Coalescer::new();
        self.restarts += 1;
        self.expiry = None;
    }
}

impl Handler<Tick> for PolicyResolver {
    type Result = ();
    fn handle(&mut self, msg: Tick, ctx: &mut Context<Self>) {
        if self.runs.request(msg.0) == Request::Start {
            self.resolve(msg.0, ctx);
        }
    }
}

impl PolicyResolver {
    fn resolve(&mut self, urgent: Urgent, ctx: &mut Context<Self>) {
        let engine = self.engine.clone();
        let key = self.key.clone();
        let supervisor = self.supervisor.clone();
        let work = async move {
            let Some(policy) = engine.config().find::<ImagePolicy>(&key.0, &key.1) else {
                return Some(());
            };
            let before = engine.latest_of(&key.0, &key.1);
            guarded(Kind::ImagePolicy, &key, engine.reconcile_policy(policy)).await?;
            log_reports(&engine);
            if engine.latest_of(&key.0, &key.1) != before {
                supervisor.do_send(LatestChanged(key, urgent));
            }
            Some(())
        };
        ctx.spawn(work.into_actor(self).map(|done, this, ctx| {
            if done.is_none() {
                ctx.stop();
                return;
            }
            this.restarts = 0;
            if let Some(h) = this.expiry.take() {
                ctx.cancel_future(h);
            }
            if let Some(wait) = this.engine.until_hold_ends(&this.key.0, &this.key.1) {
                this.expiry = Some(ctx.run_later(wait, |this, ctx| {
                    this.expiry = None;
                    ctx.notify(Tick(false));
                }));
            }
            if let Some(urgent) = this.runs.finish() {
                this.resolve(urgent, ctx);
            }
        }));
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

/// The sole owner of one remote URL's warm clone: its rounds (every branch and automation of
/// the URL) run one at a time on the `GitExecutor`; wake-ups during a round merge into one
/// follow-up round.
struct GitWorker {
    engine: Arc<Engine>,
    url: String,
    interval: Option<Duration>,
    timer: Option<SpawnHandle>,
    /// The debounce timer of a pending round.
    debounce: Option<SpawnHandle>,
    /// A round when the next change window of an automation on this remote opens.
    window_timer: Option<SpawnHandle>,
    runs: Coalescer,
    /// Wake-ups gathered into the next round.
    batch: Batch<tokio::time::Instant>,
    executors: Executors,
    /// Shutting down: no new round starts; `drained` are told when the one in flight ended.
    draining: bool,
    drained: Vec<tokio::sync::oneshot::Sender<()>>,
}

/// How long shutdown waits for rounds in flight.
const ROUND_GRACE: Duration = Duration::from_secs(60);
/// How long a worker gathers wake-ups after the first one, so that many policies changing
/// together make one push. Later wake-ups do not extend it.
const DEBOUNCE: Duration = Duration::from_secs(1);
/// The same after a webhook: the policies it woke resolve within milliseconds of each other.
const URGENT_DEBOUNCE: Duration = Duration::from_millis(50);
/// Threads for rounds that a webhook or a reconcile request asked for.
const URGENT_ROUNDS: usize = 2;

/// A round to start now (urgent: asked for by a webhook or a reconcile request).
#[derive(Message)]
#[rtype(result = "()")]
struct RunRound(Urgent);

/// Where Git rounds run: the scheduled ones (intervals, policy changes) and the urgent ones,
/// on separate sync arbiters.
#[derive(Clone)]
struct Executors {
    scheduled: Recipient<Round>,
    urgent: Recipient<Round>,
}

/// The engine after a reload, and the interval of the remote's automations (None: it has none
/// now, so no interval rounds).
#[derive(Message)]
#[rtype(result = "()")]
struct Configure(Arc<Engine>, Option<Duration>);

/// Shutting down: answer when no round runs.
#[derive(Message)]
#[rtype(result = "()")]
struct Drain(tokio::sync::oneshot::Sender<()>);

impl Actor for GitWorker {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        // After a restart: the interval timer again (the first start gets it from Configure).
        if let Some(every) = self.interval {
            self.timer = Some(ctx.run_interval(every, |_, ctx| ctx.notify(RunRound(false))));
        }
    }
}

impl Supervised for GitWorker {
    fn restarting(&mut self, _: &mut Context<Self>) {
        // Timers died with the old context. A round the executor still runs holds the
        // remote's clone lock, so a new one waits for it.
        self.runs = Coalescer::new();
        self.batch = Batch::new();
        self.timer = None;
        self.debounce = None;
        self.window_timer = None;
    }
}

impl Handler<Configure> for GitWorker {
    type Result = ();
    fn handle(&mut self, msg: Configure, ctx: &mut Context<Self>) {
        self.engine = msg.0;
        if msg.1 != self.interval || self.timer.is_none() {
            if let Some(h) = self.timer.take() {
                ctx.cancel_future(h);
            }
            self.interval = msg.1;
            if let Some(every) = self.interval {
                self.timer = Some(ctx.run_interval(every, |_, ctx| ctx.notify(RunRound(false))));
            }
        }
    }
}

impl Handler<Tick> for GitWorker {
    type Result = ();
    fn handle(&mut self, msg: Tick, ctx: &mut Context<Self>) {
        let now = tokio::time::Instant::now();
        let wait = if msg.0 { URGENT_DEBOUNCE } else { DEBOUNCE };
        let Some(due) = self.batch.wake(now + wait, msg.0) else {
            return;
        };
        if let Some(h) = self.debounce.take() {
            ctx.cancel_future(h);
        }
        self.debounce = Some(ctx.run_later(due - now, |this, ctx| {
            this.debounce = None;
            let urgent = this.batch.fire();
            ctx.notify(RunRound(urgent));
        }));
    }
}

impl Handler<RunRound> for GitWorker {
    type Result = ();
    fn handle(&mut self, msg: RunRound, ctx: &mut Context<Self>) {
        if !self.draining && self.runs.request(msg.0) == Request::Start {
            self.round(ctx, msg.0);
        }
    }
}

impl Handler<Drain> for GitWorker {
    type Result = ();
    fn handle(&mut self, msg: Drain, _: &mut Context<Self>) {
        self.draining = true;
        self.runs.cancel_follow_up();
        if self.runs.is_running() {
            self.drained.push(msg.0);
        } else {
            let _ = msg.0.send(());
        }
    }
}

impl GitWorker {
    fn round(&mut self, ctx: &mut Context<Self>, urgent: Urgent) {
        let engine = self.engine.clone();
        let url = self.url.clone();
        let executor = if urgent {
            &self.executors.urgent
        } else {
            &self.executors.scheduled
        };
        let sent = executor.send(Round {
            engine: engine.clone(),
            url: url.clone(),
        });
        ctx.spawn(sent.into_actor(self).map(move |done, this, ctx| {
            match done {
                Ok(Ok(())) => {}
                Ok(Err(panic)) => {
                    tracing::error!(kind = "ImageUpdateAutomation", remote = %tagpilot_git::redact(&url), %panic, "git round panicked")
                }
                Err(e) => {
                    tracing::error!(kind = "ImageUpdateAutomation", remote = %tagpilot_git::redact(&url), error = %e, "git round did not complete")
                }
            }
            log_reports(&engine);
            deliver_events(&engine);
            if let Some(h) = this.window_timer.take() {
                ctx.cancel_future(h);
            }
            if let Some(wait) = engine.until_window_opens(&this.url) {
                this.window_timer = Some(ctx.run_later(wait, |this, ctx| {
                    this.window_timer = None;
                    ctx.notify(RunRound(false));
                }));
            }
            if this.draining {
                this.runs.cancel_follow_up();
            }
            if let Some(urgent) = this.runs.finish() {
                this.round(ctx, urgent);
            } else {
                for tx in this.drained.drain(..) {
                    let _ = tx.send(());
                }
            }
        }));
    }
}

/// Sends the events queued so far to the Alerts' Providers. Deliveries retry for up to a
/// minute: they run in a task of their own, beside the next rounds.
fn deliver_events(engine: &Arc<Engine>) {
    let notes = engine.notifications(&engine.take_events());
    if !notes.is_empty() {
        let e = engine.clone();
        actix::spawn(async move {
            crate::alerts::deliver_all(&e, notes, tagpilot_notifier::Retry::default()).await;
            log_reports(&e);
        });
    }
}

/// One Git round of a remote: every branch and automation on the URL.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
struct Round {
    engine: Arc<Engine>,
    url: String,
}

/// Runs Git rounds on a sync arbiter (libgit2 blocks). Several remotes' rounds run side by
/// side; each remote's worker sends one at a time.
struct GitExecutor;

impl Actor for GitExecutor {
    type Context = SyncContext<Self>;
}

impl Handler<Round> for GitExecutor {
    type Result = Result<(), String>;
    fn handle(&mut self, msg: Round, _: &mut SyncContext<Self>) -> Self::Result {
        // The worker sends one round at a time; the lock also holds if a restarted worker
        // sends while the executor still runs its predecessor's round.
        let lock = msg.engine.shared().clone_lock(&msg.url);
        let _owner = lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            msg.engine.automations_for(Some(&msg.url));
        }))
        .map_err(|p| panic_text(&*p))
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
    api_state.listen_host = settings
        .api_address
        .as_deref()
        .map(|a| crate::api::host_of(a).to_owned());
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
        let supervisor = Supervisor::new(settings, store, state, receivers).start();
        shutdown.await;
        crate::sd_notify::notify("STOPPING=1");
        tracing::info!("shutting down: the git rounds in flight finish, no new one starts");
        for h in [server, hook_server].into_iter().flatten() {
            h.stop(true).await;
        }
        if let Err(e) = supervisor.send(Shutdown).await {
            tracing::warn!(error = %e, "supervisor gone before shutdown");
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

    /// Stands in for the Git executor: counts rounds and ends each only when the test says.
    struct FakeExecutor {
        rounds: Arc<std::sync::atomic::AtomicUsize>,
        release: Arc<tokio::sync::Semaphore>,
    }

    impl Actor for FakeExecutor {
        type Context = Context<Self>;
    }

    impl Handler<Round> for FakeExecutor {
        type Result = ResponseFuture<Result<(), String>>;
        fn handle(&mut self, _: Round, _: &mut Context<Self>) -> Self::Result {
            self.rounds.fetch_add(1, Ordering::SeqCst);
            let release = self.release.clone();
            Box::pin(async move {
                release.acquire().await.map_err(|e| e.to_string())?.forget();
                Ok(())
            })
        }
    }

    fn empty_engine(dir: &std::path::Path) -> Arc<Engine> {
        let store = Store::open(&dir.join("s.redb")).unwrap();
        Arc::new(Engine::new(
            Arc::new(tagpilot_api::Config::default()),
            None,
            Arc::new(store),
            Arc::new(Gates::new(Limits::default())),
            dir.join("git"),
        ))
    }

    /// Lets the actors run until nothing is ready (the paused clock does not move).
    async fn settle() {
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
    }

    /// Two fake executors (scheduled, urgent) and a worker sending to them.
    fn fake_worker(
        dir: &std::path::Path,
    ) -> (
        Addr<GitWorker>,
        [Arc<std::sync::atomic::AtomicUsize>; 2],
        Arc<tokio::sync::Semaphore>,
    ) {
        let release = Arc::new(tokio::sync::Semaphore::new(0));
        let counters = [Arc::default(), Arc::default()];
        let [scheduled, urgent] = counters.clone().map(|rounds| {
            FakeExecutor {
                rounds,
                release: release.clone(),
            }
            .start()
            .recipient()
        });
        let worker = GitWorker {
            engine: empty_engine(dir),
            url: "git://127.0.0.1/fleet.git".into(),
            interval: None,
            timer: None,
            debounce: None,
            window_timer: None,
            runs: Coalescer::new(),
            batch: Batch::new(),
            executors: Executors { scheduled, urgent },
            draining: false,
            drained: Vec::new(),
        }
        .start();
        (worker, counters, release)
    }

    #[actix::test]
    async fn wake_ups_during_a_round_make_exactly_one_follow_up() {
        tokio::time::pause();
        let dir = tempfile::tempdir().unwrap();
        let (worker, [scheduled, urgent], release) = fake_worker(dir.path());
        let rounds = || scheduled.load(Ordering::SeqCst) + urgent.load(Ordering::SeqCst);
        worker.do_send(Tick(true));
        settle().await;
        tokio::time::advance(URGENT_DEBOUNCE * 2).await;
        settle().await;
        assert_eq!(
            urgent.load(Ordering::SeqCst),
            1,
            "the webhook's round, on the urgent executor"
        );
        // While it runs: webhooks, ordinary wake-ups and interval rounds.
        for i in 0..10 {
            worker.do_send(Tick(i % 2 == 0));
            worker.do_send(RunRound(false));
        }
        settle().await;
        tokio::time::advance(DEBOUNCE * 3).await;
        settle().await;
        assert_eq!(rounds(), 1, "never two rounds at once");
        release.add_permits(1);
        settle().await;
        assert_eq!(rounds(), 2, "one follow-up round");
        assert_eq!(
            urgent.load(Ordering::SeqCst),
            2,
            "urgent, as a webhook was merged into it"
        );
        release.add_permits(1);
        settle().await;
        tokio::time::advance(Duration::from_secs(3600)).await;
        settle().await;
        assert_eq!(rounds(), 2, "and nothing after it");

        // Shutdown during a round: the drain answers only once the round ended, and no
        // follow-up starts.
        worker.do_send(RunRound(false));
        settle().await;
        assert_eq!(
            scheduled.load(Ordering::SeqCst),
            1,
            "an interval round is scheduled work"
        );
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        worker.do_send(Drain(tx));
        worker.do_send(RunRound(false));
        settle().await;
        assert!(rx.try_recv().is_err(), "answered while the round ran");
        release.add_permits(1);
        settle().await;
        assert!(rx.try_recv().is_ok(), "drained after the round");
        worker.do_send(Tick(true));
        settle().await;
        tokio::time::advance(Duration::from_secs(10)).await;
        settle().await;
        assert_eq!(rounds(), 3, "nothing starts after a drain");
    }

    #[actix::test]
    async fn a_steady_stream_of_wake_ups_still_gets_its_round() {
        tokio::time::pause();
        let dir = tempfile::tempdir().unwrap();
        let (worker, [scheduled, urgent], release) = fake_worker(dir.path());
        release.add_permits(100);
        // A first pass: a policy of this remote resolves every 100 ms for 5 s.
        let step = DEBOUNCE / 10;
        for _ in 0..50 {
            worker.do_send(Tick(false));
            settle().await;
            tokio::time::advance(step).await;
            settle().await;
        }
        let n = scheduled.load(Ordering::SeqCst);
        // One round per DEBOUNCE (of 5 s: 4 or 5 as the timers fall), never none.
        assert!((4..=5).contains(&n), "{n} rounds in 5 s of wake-ups");
        assert_eq!(urgent.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn restarts_back_off() {
        assert_eq!(restart_delay(0), Duration::ZERO);
        assert_eq!(restart_delay(1), Duration::from_secs(5));
        assert_eq!(restart_delay(3), Duration::from_secs(20));
        assert_eq!(restart_delay(40), Duration::from_secs(300));
    }

    #[actix::test]
    async fn a_panicking_reconciliation_is_none_not_a_crash() {
        let key = ("apps".to_owned(), "web".to_owned());
        assert_eq!(
            guarded(Kind::ImagePolicy, &key, async { true }).await,
            Some(true)
        );
        let panicked = guarded(Kind::ImagePolicy, &key, async {
            let v: Vec<bool> = Vec::new();
            // An out-of-bounds index: the kind of bug a guard must survive.
            v[usize::from(v.is_empty())]
        })
        .await;
        assert_eq!(panicked, None);
    }
}

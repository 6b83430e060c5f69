//! tagpilot's state: one redb file. Tag lists per canonical repository (with the time each tag
//! was first seen and its digest when known), scan metadata (revision, count, time, a pending
//! revision awaiting confirmation), and every object's status as JSON.
//!
//! Writes are redb transactions: a crash leaves the previous committed state. Tag lists are
//! read on demand, one repository at a time, so memory does not grow with the stored total.

use std::path::Path;

use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

/// redb's page cache (its default is 1 GiB, which a daemon's RSS would slowly fill with every
/// page it ever touched). Reads past it come from the OS page cache, which holds the file
/// anyway: at 10,000 repositories 4 MiB instead of 16 kept the time to Ready (52 s) and cut
/// the daemon's RSS by 14 MiB (bench/daemon-scale.sh).
const CACHE_BYTES: usize = 4 << 20;

/// Bumped when the layout changes; an unknown version is refused, never guessed at.
pub const SCHEMA_VERSION: u64 = 1;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const TAGS: TableDefinition<&str, &[u8]> = TableDefinition::new("tags");
const REPOS: TableDefinition<&str, &[u8]> = TableDefinition::new("repos");
const STATUS: TableDefinition<&str, &[u8]> = TableDefinition::new("status");
/// Runtime suspend/resume (`tagpilot suspend|resume`): `Kind/namespace/name` → 1 suspended,
/// 0 resumed. Absent: the manifest's `spec.suspend` decides.
const OVERRIDES: TableDefinition<&str, u8> = TableDefinition::new("overrides");
/// Every ImagePolicy's latest ref (`namespace/name` → JSON), so a restart resumes without a
/// scan and a deleted policy's ref can be pruned. Added in schema 1 (opening creates it).
const LATEST: TableDefinition<&str, &[u8]> = TableDefinition::new("latest");
/// Per ImageUpdateAutomation (`namespace/name`): what it last wrote per policy and the manual
/// holds (`manualChanges: hold`), as JSON. Added in schema 1 (opening creates it).
const MANUAL: TableDefinition<&str, &[u8]> = TableDefinition::new("manual");
/// Release requests (`tagpilot release image policy`): `automation|policy` (each
/// `namespace/name`) → the request's token (JSON string); the automation's round that applies
/// one removes it.
const RELEASES: TableDefinition<&str, &[u8]> = TableDefinition::new("releases");
/// Platforms of image digests (`digest` → `os/arch[/variant]` lines), for the platform gate.
/// Added in schema 1 (opening creates it).
const PLATFORMS: TableDefinition<&str, &[u8]> = TableDefinition::new("platforms");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store {path}: {message}")]
    Open { path: String, message: String },
    #[error("state store schema version {found} is not supported (this tagpilot reads version {SCHEMA_VERSION})")]
    Schema { found: u64 },
    #[error("state store: {0}")]
    Db(String),
    #[error("state store: corrupt record for {key}: {message}")]
    Corrupt { key: String, message: String },
}

macro_rules! db_err {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(e.to_string())
            }
        }
    )*};
}
db_err!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// One stored tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredTag {
    pub tag: String,
    /// Unix seconds when a scan first listed it; 0 when it was listed at the repository's
    /// first scan (its age is unknown).
    pub first_seen: u64,
    pub digest: Option<String>,
    /// Unix seconds when its digest was seen to change under the same tag (0: never).
    pub digest_changed: u64,
}

/// What the last accepted scan of a repository found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RepoMeta {
    pub revision: String,
    pub tag_count: usize,
    /// Unix seconds of the last accepted scan.
    pub scan_time: u64,
    /// A suspicious listing's revision, accepted if the next scan sees it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_revision: Option<String>,
}

/// The state store.
#[derive(Debug)]
pub struct Store {
    db: Database,
    /// A commit made by [`deferred`] work is not on disk until [`Store::sync`].
    unsynced: std::sync::atomic::AtomicBool,
    /// Set by [`Store::hold`]: no commit is durable until [`Store::release`].
    held: std::sync::atomic::AtomicBool,
    /// Why the last [`deferred`] batch was not committed, until [`Store::sync`] reports it.
    failure: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

thread_local! {
    /// Set by [`deferred`]: this thread's writes share one transaction per store.
    static DEFERRED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// The open shared transactions of [`deferred`], one per store written.
    static SHARED: std::cell::RefCell<Vec<Shared>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A write transaction that every write of one [`deferred`] call to one store shares.
struct Shared {
    /// The store's address: a store is written only while it is borrowed by the call.
    store: usize,
    tx: redb::WriteTransaction,
    /// Where the outcome of the commit is left for [`Store::sync`].
    failure: std::sync::Arc<std::sync::Mutex<Option<String>>>,
    /// A write failed in the database (not in our checks): nothing of the batch is kept.
    broken: Option<String>,
}

/// Group commit: runs `f` with the writes this thread makes to each store inside one
/// transaction, committed non-durably (redb's `Durability::None`: atomic and visible, but not
/// fsynced) when `f` returns. The caller must call [`Store::sync`] on each store written
/// before it reports any of that work as done: it makes the batch durable or says that it
/// failed. Many small writes then cost one commit and one disk sync instead of one each (a
/// redb commit writes its allocator state; commits were most of a 100-image `run --once`'s
/// store time).
pub fn deferred<R>(f: impl FnOnce() -> R) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            DEFERRED.with(|d| d.set(false));
            for shared in SHARED.with(|s| std::mem::take(&mut *s.borrow_mut())) {
                let outcome = match shared.broken {
                    Some(why) => Err(why),
                    None => shared.tx.commit().map_err(|e| e.to_string()),
                };
                if let Err(why) = outcome {
                    if let Ok(mut slot) = shared.failure.lock() {
                        slot.get_or_insert(why);
                    }
                }
            }
        }
    }
    DEFERRED.with(|d| d.set(true));
    let _reset = Reset;
    f()
}

fn encode(tags: &[StoredTag]) -> Vec<u8> {
    let mut out = Vec::with_capacity(tags.len() * 24);
    for t in tags {
        out.extend_from_slice(t.tag.as_bytes());
        out.push(b'\t');
        out.extend_from_slice(t.first_seen.to_string().as_bytes());
        out.push(b'\t');
        out.extend_from_slice(t.digest.as_deref().unwrap_or("").as_bytes());
        if t.digest_changed > 0 {
            out.push(b'\t');
            out.extend_from_slice(t.digest_changed.to_string().as_bytes());
        }
        out.push(b'\n');
    }
    out
}

fn decode(key: &str, bytes: &[u8]) -> Result<Vec<StoredTag>, StoreError> {
    let corrupt = |m: &str| StoreError::Corrupt {
        key: key.to_owned(),
        message: m.to_owned(),
    };
    let text = std::str::from_utf8(bytes).map_err(|_| corrupt("not UTF-8"))?;
    text.lines()
        .map(|line| {
            let mut f = line.split('\t');
            let tag = f
                .next()
                .filter(|t| !t.is_empty())
                .ok_or_else(|| corrupt("empty tag"))?;
            let first_seen = f
                .next()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| corrupt("bad first-seen time"))?;
            let digest = f.next().filter(|d| !d.is_empty()).map(str::to_owned);
            // Absent in records written before the re-push gate.
            let digest_changed = match f.next() {
                None => 0,
                Some(s) => s.parse().map_err(|_| corrupt("bad digest-change time"))?,
            };
            Ok(StoredTag {
                tag: tag.to_owned(),
                first_seen,
                digest,
                digest_changed,
            })
        })
        .collect()
}

impl Store {
    /// A write transaction, non-durable inside [`deferred`] or while held.
    fn begin_write(&self) -> Result<redb::WriteTransaction, StoreError> {
        let mut tx = self.db.begin_write()?;
        if DEFERRED.with(std::cell::Cell::get)
            || self.held.load(std::sync::atomic::Ordering::SeqCst)
        {
            tx.set_durability(redb::Durability::None);
            self.unsynced
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(tx)
    }

    /// Runs `f` in a write transaction and commits it; inside [`deferred`], in the
    /// transaction this thread shares for this store, committed when `deferred` returns. `f`
    /// must check what it reads before it writes: an error of `f` itself leaves the shared
    /// transaction to the others, while a failed database write breaks the whole batch.
    fn write<R>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        if !DEFERRED.with(std::cell::Cell::get) {
            let tx = self.begin_write()?;
            let out = f(&tx)?;
            tx.commit()?;
            return Ok(out);
        }
        let id = std::ptr::from_ref(self) as usize;
        SHARED.with(|shared| {
            let mut shared = shared.borrow_mut();
            let at = match shared.iter().position(|s| s.store == id) {
                Some(at) => at,
                None => {
                    shared.push(Shared {
                        store: id,
                        tx: self.begin_write()?,
                        failure: self.failure.clone(),
                        broken: None,
                    });
                    shared.len() - 1
                }
            };
            let entry = &mut shared[at];
            if let Some(why) = &entry.broken {
                return Err(StoreError::Db(format!(
                    "an earlier write of this batch failed: {why}"
                )));
            }
            let out = f(&entry.tx);
            if let Err(StoreError::Db(why)) = &out {
                entry.broken = Some(why.clone());
            }
            out
        })
    }

    /// Makes every commit so far durable (one fsync), if a [`deferred`] one is not yet; an
    /// error if a [`deferred`] batch could not be committed. Does nothing while the store is
    /// held ([`Store::hold`]).
    pub fn sync(&self) -> Result<(), StoreError> {
        if let Some(why) = self.failure.lock().ok().and_then(|mut f| f.take()) {
            return Err(StoreError::Db(format!("a batch of writes was lost: {why}")));
        }
        // Held, or inside a batch that commits when it ends (a write transaction begun here
        // would wait for the batch's forever).
        if self.held.load(std::sync::atomic::Ordering::SeqCst)
            || DEFERRED.with(std::cell::Cell::get)
        {
            return Ok(());
        }
        if self
            .unsynced
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            // An empty durable commit: redb makes the non-durable ones before it durable too.
            let done = self
                .db
                .begin_write()
                .map_err(StoreError::from)
                .and_then(|tx| Ok(tx.commit()?));
            if done.is_err() {
                self.unsynced
                    .store(true, std::sync::atomic::Ordering::SeqCst);
            }
            return done;
        }
        Ok(())
    }

    /// For a process that runs once and exits (`tagpilot run --once`): from now on no commit
    /// is fsynced and [`Store::sync`] does nothing, until [`Store::release`] makes all of
    /// them durable with one sync. A crash before that leaves the store as it was here (redb
    /// returns to its last durable commit) and the next run redoes the work. Commits stay
    /// atomic and visible at once. In a 100-image `run --once`, 136 durable commits (two
    /// fdatasyncs each) were half of its wall time.
    pub fn hold(&self) {
        self.held.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Ends [`Store::hold`]: everything committed since is made durable now.
    pub fn release(&self) -> Result<(), StoreError> {
        self.held.store(false, std::sync::atomic::Ordering::SeqCst);
        self.sync()
    }

    /// Opens (or creates) the store file.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let open_err = |e: &dyn std::fmt::Display| StoreError::Open {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| open_err(&e))?;
        }
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| open_err(&e))?;
        let store = Store {
            db,
            unsynced: Default::default(),
            held: Default::default(),
            failure: Default::default(),
        };
        let tx = store.db.begin_write()?;
        {
            let mut meta = tx.open_table(META)?;
            let found = meta.get("schema")?.map(|v| v.value());
            match found {
                None => {
                    meta.insert("schema", SCHEMA_VERSION)?;
                }
                Some(SCHEMA_VERSION) => {}
                Some(found) => return Err(StoreError::Schema { found }),
            }
            tx.open_table(TAGS)?;
            tx.open_table(REPOS)?;
            tx.open_table(STATUS)?;
            tx.open_table(OVERRIDES)?;
            tx.open_table(LATEST)?;
            tx.open_table(PLATFORMS)?;
            tx.open_table(MANUAL)?;
            tx.open_table(RELEASES)?;
        }
        tx.commit()?;
        Ok(store)
    }

    /// Records an accepted scan: the new tag list (sorted as given), keeping each known tag's
    /// first-seen time and digest. Tags of a repository's first scan get first-seen 0 (their
    /// age is unknown: tagpilot was not watching when they were pushed). Returns the new
    /// metadata.
    pub fn record_scan(
        &self,
        repo: &str,
        tags: &[String],
        revision: &str,
        now: u64,
    ) -> Result<RepoMeta, StoreError> {
        let mut metas = self.record_scans(&[(repo, tags, revision)], now)?;
        metas
            .pop()
            .ok_or_else(|| StoreError::Db("no scan recorded".into()))
    }

    /// Records several accepted scans in one transaction (one disk sync for the batch).
    pub fn record_scans(
        &self,
        scans: &[(&str, &[String], &str)],
        now: u64,
    ) -> Result<Vec<RepoMeta>, StoreError> {
        self.write(|tx| {
            let mut table = tx.open_table(TAGS)?;
            let mut repos = tx.open_table(REPOS)?;
            // Every stored list is read and checked before anything is written.
            let mut stored = Vec::with_capacity(scans.len());
            for (repo, _, _) in scans {
                stored.push(match table.get(*repo)? {
                    Some(v) => (decode(repo, v.value())?, now),
                    None => (Vec::new(), 0),
                });
            }
            let mut metas = Vec::with_capacity(scans.len());
            for ((repo, tags, revision), (previous, first_seen)) in scans.iter().zip(stored) {
                let known: std::collections::HashMap<&str, &StoredTag> =
                    previous.iter().map(|t| (t.tag.as_str(), t)).collect();
                let merged: Vec<StoredTag> = tags
                    .iter()
                    .map(|t| match known.get(t.as_str()) {
                        Some(old) => (*old).clone(),
                        None => StoredTag {
                            tag: t.clone(),
                            first_seen,
                            digest: None,
                            digest_changed: 0,
                        },
                    })
                    .collect();
                table.insert(*repo, encode(&merged).as_slice())?;
                let meta = RepoMeta {
                    revision: (*revision).to_owned(),
                    tag_count: tags.len(),
                    scan_time: now,
                    pending_revision: None,
                };
                let json = serde_json::to_vec(&meta).map_err(|e| StoreError::Db(e.to_string()))?;
                repos.insert(*repo, json.as_slice())?;
                metas.push(meta);
            }
            Ok(metas)
        })
    }

    /// Remembers a held (suspicious) listing's revision without touching the tag list.
    pub fn set_pending(&self, repo: &str, revision: Option<&str>) -> Result<(), StoreError> {
        self.write(|tx| {
            let mut repos = tx.open_table(REPOS)?;
            let mut meta = match repos.get(repo)? {
                Some(v) => parse_meta(repo, v.value())?,
                None => RepoMeta::default(),
            };
            meta.pending_revision = revision.map(str::to_owned);
            let json = serde_json::to_vec(&meta).map_err(|e| StoreError::Db(e.to_string()))?;
            repos.insert(repo, json.as_slice())?;
            Ok(())
        })
    }

    /// Records the digest of one stored tag seen at `now`; a digest other than the known one
    /// marks the tag re-pushed at `now`. Returns the tag's record, None when it is not stored.
    pub fn set_digest(
        &self,
        repo: &str,
        tag: &str,
        digest: &str,
        now: u64,
    ) -> Result<Option<StoredTag>, StoreError> {
        self.write(|tx| {
            let mut table = tx.open_table(TAGS)?;
            let mut tags = match table.get(repo)? {
                Some(v) => decode(repo, v.value())?,
                None => Vec::new(),
            };
            let found = tags.iter_mut().find(|t| t.tag == tag).map(|t| {
                let changed = t.digest.as_deref().is_some_and(|d| d != digest);
                if changed {
                    t.digest_changed = now;
                }
                let write = changed || t.digest.is_none();
                t.digest = Some(digest.to_owned());
                (t.clone(), write)
            });
            if found.as_ref().is_some_and(|(_, write)| *write) {
                table.insert(repo, encode(&tags).as_slice())?;
            }
            Ok(found.map(|(t, _)| t))
        })
    }

    /// An automation's manual-change state (JSON), under `namespace/name`.
    pub fn manual_state(&self, key: &str) -> Result<Option<serde_json::Value>, StoreError> {
        self.get_json(MANUAL, key)
    }

    pub fn put_manual_state(&self, key: &str, state: &serde_json::Value) -> Result<(), StoreError> {
        self.put_json(MANUAL, key, state)
    }

    /// Drops the manual-change state of automations `keep` refuses (deleted ones).
    pub fn retain_manual_states(&self, keep: impl Fn(&str) -> bool) -> Result<usize, StoreError> {
        self.retain(MANUAL, keep)
    }

    /// Asks the rounds to release a policy's manual holds; `token` tells this request apart.
    pub fn request_release(&self, policy: &str, token: &str) -> Result<(), StoreError> {
        self.put_json(
            RELEASES,
            policy,
            &serde_json::Value::String(token.to_owned()),
        )
    }

    /// Pending release requests: `automation|policy` → token.
    pub fn releases(&self) -> Result<Vec<(String, String)>, StoreError> {
        Ok(self
            .all_json(RELEASES)?
            .into_iter()
            .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_owned()))
            .collect())
    }

    /// Removes a release request once applied, unless a newer one replaced it meanwhile.
    pub fn release_done(&self, key: &str, token: &str) -> Result<bool, StoreError> {
        self.write(|tx| {
            let mut t = tx.open_table(RELEASES)?;
            let same = t
                .get(key)?
                .and_then(|v| serde_json::from_slice::<String>(v.value()).ok())
                .is_some_and(|v| v == token);
            if same {
                t.remove(key)?;
            }
            Ok(same)
        })
    }

    /// The platforms (`os/arch[/variant]`) of the image with this digest, when recorded.
    /// Content under a digest never changes, so the record never goes stale.
    pub fn platforms(&self, digest: &str) -> Result<Option<Vec<String>>, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(PLATFORMS)?;
        let v = table.get(digest)?;
        v.map(|v| {
            std::str::from_utf8(v.value())
                .map(|s| s.lines().map(str::to_owned).collect())
                .map_err(|_| StoreError::Corrupt {
                    key: digest.to_owned(),
                    message: "not UTF-8".into(),
                })
        })
        .transpose()
    }

    pub fn put_platforms(&self, digest: &str, platforms: &[String]) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.open_table(PLATFORMS)?
                .insert(digest, platforms.join("\n").as_bytes())?;
            Ok(())
        })
    }

    /// The stored tags of a repository, in stored order.
    pub fn tags(&self, repo: &str) -> Result<Option<Vec<StoredTag>>, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(TAGS)?;
        let v = table.get(repo)?;
        v.map(|v| decode(repo, v.value())).transpose()
    }

    pub fn repo_meta(&self, repo: &str) -> Result<Option<RepoMeta>, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(REPOS)?;
        let v = table.get(repo)?;
        v.map(|v| parse_meta(repo, v.value())).transpose()
    }

    /// Stores an object's status (any JSON) under a key such as `ImagePolicy/ns/name`.
    pub fn put_status(&self, key: &str, status: &serde_json::Value) -> Result<(), StoreError> {
        self.put_json(STATUS, key, status)
    }

    pub fn status(&self, key: &str) -> Result<Option<serde_json::Value>, StoreError> {
        self.get_json(STATUS, key)
    }

    /// Every stored status, by key (`Kind/namespace/name`).
    pub fn statuses(&self) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        self.all_json(STATUS)
    }

    /// Visits every stored status (key, JSON bytes) in one read transaction, without
    /// collecting them: the metrics endpoint reads every status on every scrape, and holding
    /// them all as JSON values was most of the daemon's peak heap at 3,000 repositories.
    pub fn each_status(&self, mut f: impl FnMut(&str, &[u8])) -> Result<(), StoreError> {
        self.each(STATUS, |k, v| {
            f(k, v);
            Ok(())
        })
    }

    /// Removes the statuses whose key `keep` refuses (objects deleted from the configuration).
    pub fn retain_statuses(&self, keep: impl Fn(&str) -> bool) -> Result<usize, StoreError> {
        self.retain(STATUS, keep)
    }

    /// Stores (or with None removes) a policy's latest ref under `namespace/name`.
    pub fn put_latest(
        &self,
        key: &str,
        latest: Option<&serde_json::Value>,
    ) -> Result<(), StoreError> {
        match latest {
            Some(v) => self.put_json(LATEST, key, v),
            None => self.retain(LATEST, |k| k != key).map(|_| ()),
        }
    }

    /// Every stored latest ref, by `namespace/name`.
    pub fn latest_refs(&self) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        self.all_json(LATEST)
    }

    /// Removes the latest refs whose key `keep` refuses (deleted or renamed policies).
    pub fn retain_latest(&self, keep: impl Fn(&str) -> bool) -> Result<usize, StoreError> {
        self.retain(LATEST, keep)
    }

    fn put_json(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_vec(value).map_err(|e| StoreError::Db(e.to_string()))?;
        self.write(|tx| {
            tx.open_table(table)?.insert(key, json.as_slice())?;
            Ok(())
        })
    }

    fn get_json(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(table)?;
        let v = table.get(key)?;
        v.map(|v| {
            serde_json::from_slice(v.value()).map_err(|e| StoreError::Corrupt {
                key: key.to_owned(),
                message: e.to_string(),
            })
        })
        .transpose()
    }

    fn all_json(
        &self,
        table: TableDefinition<&str, &[u8]>,
    ) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        let mut out = Vec::new();
        self.each(table, |key, bytes| {
            let value = serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
                key: key.to_owned(),
                message: e.to_string(),
            })?;
            out.push((key.to_owned(), value));
            Ok(())
        })?;
        Ok(out)
    }

    /// Visits every entry of `table` (key, stored bytes) in one read transaction.
    fn each(
        &self,
        table: TableDefinition<&str, &[u8]>,
        mut f: impl FnMut(&str, &[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(table)?;
        for entry in table.iter()? {
            let (k, v) = entry?;
            f(k.value(), v.value())?;
        }
        Ok(())
    }

    /// Removes every entry of `table` whose key `keep` refuses, in one transaction.
    fn retain(
        &self,
        table: TableDefinition<&str, &[u8]>,
        keep: impl Fn(&str) -> bool,
    ) -> Result<usize, StoreError> {
        if !DEFERRED.with(std::cell::Cell::get) {
            // Most calls remove nothing: then no write transaction (an empty commit still
            // costs one). Inside a batch the write transaction reads what the batch stored.
            let tx = self.db.begin_read()?;
            let mut any = false;
            for entry in tx.open_table(table)?.iter()? {
                if !keep(entry?.0.value()) {
                    any = true;
                    break;
                }
            }
            if !any {
                return Ok(0);
            }
        }
        self.write(|tx| {
            let mut t = tx.open_table(table)?;
            let mut doomed = Vec::new();
            for entry in t.iter()? {
                let (k, _) = entry?;
                if !keep(k.value()) {
                    doomed.push(k.value().to_owned());
                }
            }
            for k in &doomed {
                t.remove(k.as_str())?;
            }
            Ok(doomed.len())
        })
    }

    /// Sets (or with None clears) the runtime suspend override of `key` (`Kind/ns/name`).
    pub fn set_suspended(&self, key: &str, suspended: Option<bool>) -> Result<(), StoreError> {
        self.write(|tx| {
            let mut table = tx.open_table(OVERRIDES)?;
            match suspended {
                Some(s) => {
                    table.insert(key, u8::from(s))?;
                }
                None => {
                    table.remove(key)?;
                }
            }
            Ok(())
        })
    }

    /// The runtime suspend override of `key`, if any.
    pub fn suspended(&self, key: &str) -> Result<Option<bool>, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(OVERRIDES)?;
        Ok(table.get(key)?.map(|v| v.value() != 0))
    }

    /// Every repository with a stored tag list.
    pub fn repositories(&self) -> Result<Vec<String>, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(REPOS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (k, _) = entry?;
            out.push(k.value().to_owned());
        }
        Ok(out)
    }
}

fn parse_meta(repo: &str, bytes: &[u8]) -> Result<RepoMeta, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: repo.to_owned(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn held_writes_are_visible_at_once_and_on_disk_after_release() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let store = Store::open(&path).unwrap();
        store.hold();
        store
            .put_status("ImagePolicy/a/b", &serde_json::json!({"n": 1}))
            .unwrap();
        // The writer thread's sync answers at once while held; the write is still visible.
        store.sync().unwrap();
        assert!(store.unsynced.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(
            store.status("ImagePolicy/a/b").unwrap(),
            Some(serde_json::json!({"n": 1}))
        );
        store.release().unwrap();
        assert!(!store.unsynced.load(std::sync::atomic::Ordering::SeqCst));
        drop(store);
        let again = Store::open(&path).unwrap();
        assert_eq!(
            again.status("ImagePolicy/a/b").unwrap(),
            Some(serde_json::json!({"n": 1}))
        );
    }

    #[test]
    fn deferred_writes_are_visible_at_once_and_on_disk_after_sync() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tagpilot.redb");
        let store = Store::open(&path).unwrap();
        deferred(|| {
            store
                .put_status("ImagePolicy/ns/a", &serde_json::json!({"n": 1}))
                .unwrap();
            store
                .put_status("ImagePolicy/ns/b", &serde_json::json!({"n": 2}))
                .unwrap();
        });
        assert!(store.unsynced.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(store.statuses().unwrap().len(), 2);
        store.sync().unwrap();
        assert!(!store.unsynced.load(std::sync::atomic::Ordering::SeqCst));
        // Outside `deferred` a commit is durable by itself and leaves nothing to sync.
        store
            .put_status("ImagePolicy/ns/c", &serde_json::json!({"n": 3}))
            .unwrap();
        assert!(!store.unsynced.load(std::sync::atomic::Ordering::SeqCst));
        drop(store);
        let again = Store::open(&path).unwrap();
        let keys: Vec<String> = again
            .statuses()
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            keys,
            ["ImagePolicy/ns/a", "ImagePolicy/ns/b", "ImagePolicy/ns/c"]
        );
    }

    #[test]
    fn scans_keep_first_seen_and_digests() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/tagpilot.redb");
        let store = Store::open(&path).unwrap();
        let m = store
            .record_scan("r.io/app", &tags(&["1.0.1", "1.0.0"]), "sha256:a", 100)
            .unwrap();
        assert_eq!(m.tag_count, 2);
        let set = store
            .set_digest("r.io/app", "1.0.1", "sha256:d1", 150)
            .unwrap();
        // First seen at the first scan: age unknown; a first digest is no re-push.
        assert_eq!(set.map(|t| (t.first_seen, t.digest_changed)), Some((0, 0)));
        assert_eq!(
            store
                .set_digest("r.io/app", "9.9.9", "sha256:d1", 150)
                .unwrap(),
            None
        );
        store
            .record_scan("r.io/app", &tags(&["1.0.2", "1.0.1"]), "sha256:b", 200)
            .unwrap();
        let t = store.tags("r.io/app").ok().flatten().unwrap_or_default();
        assert_eq!(
            t[0],
            StoredTag {
                tag: "1.0.2".into(),
                first_seen: 200,
                digest: None,
                digest_changed: 0,
            }
        );
        assert_eq!(
            t[1],
            StoredTag {
                tag: "1.0.1".into(),
                first_seen: 0,
                digest: Some("sha256:d1".into()),
                digest_changed: 0,
            }
        );
        // The same digest again changes nothing; another one is a re-push, seen now.
        let same = store
            .set_digest("r.io/app", "1.0.1", "sha256:d1", 250)
            .unwrap();
        assert_eq!(same.map(|t| t.digest_changed), Some(0));
        let repushed = store
            .set_digest("r.io/app", "1.0.1", "sha256:d2", 300)
            .unwrap();
        assert_eq!(repushed.map(|t| t.digest_changed), Some(300));
        let t = store.tags("r.io/app").unwrap().unwrap();
        assert_eq!(
            (t[1].digest.as_deref(), t[1].digest_changed),
            (Some("sha256:d2"), 300)
        );
        store
            .put_platforms(
                "sha256:d2",
                &["linux/amd64".into(), "linux/arm64/v8".into()],
            )
            .unwrap();
        assert_eq!(
            store.platforms("sha256:d2").unwrap(),
            Some(vec!["linux/amd64".to_owned(), "linux/arm64/v8".to_owned()])
        );
        assert_eq!(store.platforms("sha256:none").unwrap(), None);
        store.request_release("apps/a|apps/p", "t1").unwrap();
        store.request_release("apps/a|apps/p", "t2").unwrap();
        assert_eq!(
            store.releases().unwrap(),
            vec![("apps/a|apps/p".to_owned(), "t2".to_owned())]
        );
        // A round that applied t1 does not drop the newer request.
        assert!(!store.release_done("apps/a|apps/p", "t1").unwrap());
        assert!(store.release_done("apps/a|apps/p", "t2").unwrap());
        assert!(store.releases().unwrap().is_empty());
        store.set_pending("r.io/app", Some("sha256:c")).unwrap();
        drop(store);
        // Reopened: everything is still there.
        let store = Store::open(&path).unwrap();
        let m = store
            .repo_meta("r.io/app")
            .ok()
            .flatten()
            .unwrap_or_default();
        assert_eq!(
            (
                m.revision.as_str(),
                m.scan_time,
                m.pending_revision.as_deref()
            ),
            ("sha256:b", 200, Some("sha256:c"))
        );
        assert_eq!(store.repositories().ok(), Some(vec!["r.io/app".to_owned()]));
        assert_eq!(store.tags("other").ok(), Some(None));
        store
            .put_status("ImagePolicy/ns/p", &serde_json::json!({"ready": true}))
            .unwrap();
        assert_eq!(
            store.status("ImagePolicy/ns/p").ok().flatten(),
            Some(serde_json::json!({"ready": true}))
        );
    }

    #[test]
    fn a_batch_is_one_transaction_and_a_failed_write_loses_all_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let json = |n: u64| serde_json::json!({ "n": n });
        // A corrupt tag list, as a damaged file or an older bug would leave it.
        let tx = store.db.begin_write().unwrap();
        tx.open_table(TAGS)
            .unwrap()
            .insert("bad", b"\tno tag\n".as_slice())
            .unwrap();
        tx.commit().unwrap();
        deferred(|| {
            store.put_status("K/a", &json(1)).unwrap();
            // Not committed before the batch ends: a reader does not see it yet.
            assert_eq!(store.status("K/a").unwrap(), None);
            // A record refused by our checks (before anything is written) costs only itself.
            assert!(matches!(
                store.set_digest("bad", "t", "sha256:x", 1),
                Err(StoreError::Corrupt { .. })
            ));
            // Later writes read what earlier ones of the batch stored.
            store.put_latest("ns/p", Some(&json(2))).unwrap();
            assert_eq!(store.retain_latest(|k| k != "ns/p").unwrap(), 1);
            store.put_status("K/b", &json(3)).unwrap();
        });
        store.sync().unwrap();
        assert_eq!(store.status("K/a").unwrap(), Some(json(1)));
        assert_eq!(store.status("K/b").unwrap(), Some(json(3)));
        assert_eq!(store.latest_refs().unwrap(), Vec::new());

        // A write the database refuses breaks the batch: nothing of it is kept, the writes
        // after it are refused, and the next sync says so (once).
        deferred(|| {
            store.put_status("K/c", &json(4)).unwrap();
            let failed = store.write(|_| Err::<(), _>(StoreError::Db("disk on fire".into())));
            assert!(failed.is_err());
            let refused = store.put_status("K/d", &json(5)).unwrap_err();
            assert!(refused.to_string().contains("disk on fire"), "{refused}");
        });
        let lost = store.sync().unwrap_err();
        assert!(lost.to_string().contains("disk on fire"), "{lost}");
        assert_eq!(store.status("K/c").unwrap(), None);
        assert_eq!(store.status("K/d").unwrap(), None);
        store.sync().unwrap();
        store.put_status("K/e", &json(6)).unwrap();
        assert_eq!(store.status("K/e").unwrap(), Some(json(6)));
    }

    #[test]
    fn refuses_unknown_schema_and_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        {
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            {
                let mut t = tx.open_table(META).unwrap();
                t.insert("schema", 99).unwrap();
            }
            tx.commit().unwrap();
        }
        assert!(matches!(
            Store::open(&path),
            Err(StoreError::Schema { found: 99 })
        ));
        let junk = dir.path().join("junk.redb");
        std::fs::write(&junk, b"this is not a database").unwrap();
        let e = Store::open(&junk)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("junk.redb"), "{e}");
    }

    #[test]
    fn suspend_overrides_persist_and_clear() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        {
            let store = Store::open(&path).unwrap();
            assert_eq!(store.suspended("ImageRepository/a/b").ok().flatten(), None);
            store
                .set_suspended("ImageRepository/a/b", Some(true))
                .unwrap();
            store.set_suspended("ImagePolicy/a/b", Some(false)).unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(
            store.suspended("ImageRepository/a/b").ok().flatten(),
            Some(true)
        );
        assert_eq!(
            store.suspended("ImagePolicy/a/b").ok().flatten(),
            Some(false)
        );
        store.set_suspended("ImageRepository/a/b", None).unwrap();
        assert_eq!(store.suspended("ImageRepository/a/b").ok().flatten(), None);
    }

    #[test]
    fn latest_refs_persist_and_prune() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        {
            let store = Store::open(&path).unwrap();
            let v = serde_json::json!({"name": "r/app", "tag": "1.0.0"});
            store.put_latest("apps/a", Some(&v)).unwrap();
            store.put_latest("apps/b", Some(&v)).unwrap();
            store.put_status("ImagePolicy/apps/b", &v).unwrap();
        }
        let store = Store::open(&path).unwrap();
        let keys = |s: &Store| -> Vec<String> {
            s.latest_refs()
                .unwrap()
                .into_iter()
                .map(|(k, _)| k)
                .collect()
        };
        assert_eq!(keys(&store), ["apps/a", "apps/b"]);
        assert_eq!(store.retain_latest(|k| k == "apps/a").unwrap(), 1);
        assert_eq!(keys(&store), ["apps/a"]);
        store.put_latest("apps/a", None).unwrap();
        assert!(keys(&store).is_empty());
        assert_eq!(store.retain_statuses(|_| false).unwrap(), 1);
        assert!(store.statuses().unwrap().is_empty());
    }
}
